"""The documented state machine is the implemented one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aip.control import states
from aip.control.states import TRANSITIONS, JobState, check_transition
from aip.errors import Conflict

ARCHITECTURE = Path(__file__).parents[3] / "docs" / "architecture.md"
EDGE = re.compile(r"^\s*([A-Z]+) --> ([A-Z]+)", re.MULTILINE)


def _edges(text: str) -> set[tuple[str, str]]:
    return set(EDGE.findall(text))


def test_the_docs_diagram_matches_the_transition_rules() -> None:
    rules = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    assert _edges(ARCHITECTURE.read_text()) == rules
    assert _edges(states.__doc__ or "") == rules


def test_final_states_have_no_way_out() -> None:
    for state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
        assert TRANSITIONS[state] == frozenset()


def test_an_illegal_transition_is_a_conflict() -> None:
    check_transition("j", "PENDING", JobState.ADMITTED)
    with pytest.raises(Conflict, match="cannot go from SUCCEEDED to RUNNING"):
        check_transition("j", "SUCCEEDED", JobState.RUNNING)
