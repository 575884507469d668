"""The pipeline's decisions, with speeds and verdicts injected so no timing noise enters:
what is kept, rolled back or skipped, and why."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from aip.optimize.api import OptimizeOptions
from aip.optimize.guard import Guard, Verdict
from aip.optimize.measure import Speed
from aip.optimize.pipeline import (
    Alternatives,
    ModelState,
    Pass,
    PassContext,
    PassOutcome,
    run_pipeline,
)
from aip.optimize.report import PassReport, Status

# name -> (metric delta, latency ms, throughput rows/s, bytes)
Profile = dict[str, tuple[float, float, float, int]]


@pytest.fixture
def context(tmp_path: Path) -> PassContext:
    guard = Guard("cosine", 0.01, [np.ones((2, 2))], None)
    return PassContext(workdir=tmp_path, level="o2", target="cpu", specs=[], example={},
                       eval_feeds={}, guard=guard, options=OptimizeOptions())


def fake_pass(name: str, tmp_path: Path, size: int, *, lossless: bool = False,
              error: Exception | None = None) -> Pass:
    def run(state: ModelState, context: PassContext) -> PassOutcome:
        if error is not None:
            raise error
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(b"x" * size)
        return PassOutcome(state.moved_to(path))

    return Pass(name, run, lossless=lossless)


def install(monkeypatch: pytest.MonkeyPatch, profile: Profile) -> None:
    def assess(path: Path, context: PassContext, *, lossless: bool) -> tuple[Verdict, Speed]:
        delta, latency, throughput, _ = profile[path.stem]
        failure = "" if delta >= -0.01 else "below the reference"
        return Verdict(1.0 + delta, delta, 0.0, failure), Speed(latency, throughput, 1, 1)

    monkeypatch.setattr("aip.optimize.pipeline.assess", assess)
    monkeypatch.setattr("aip.optimize.pipeline._head_to_head",
                        lambda _path, current, _candidate_path, _candidate, _context: current)


def run(steps: list[Pass | Alternatives], context: PassContext
        ) -> tuple[ModelState, dict[str, PassReport]]:
    rows: list[PassReport] = []
    state = run_pipeline(steps, ModelState(path=None), context, rows)
    return state, {row.name: row for row in rows}




def test_the_fastest_alternative_within_tolerance_is_kept(
        monkeypatch: pytest.MonkeyPatch, context: PassContext, tmp_path: Path) -> None:
    install(monkeypatch, {"graph": (0, 10.0, 100.0, 400), "dynamic": (-0.005, 4.0, 300.0, 100),
                          "static": (-0.002, 6.0, 200.0, 100)})
    state, rows = run([fake_pass("graph", tmp_path, 400, lossless=True),
                       Alternatives((fake_pass("dynamic", tmp_path, 100),
                                     fake_pass("static", tmp_path, 100)))], context)
    assert state.path is not None and state.path.stem == "dynamic"
    assert rows["dynamic"].status is Status.kept
    assert rows["static"].status is Status.skipped
    assert "dynamic is faster overall" in rows["static"].reason


def test_an_alternative_that_breaks_tolerance_is_rolled_back_even_if_fastest(
        monkeypatch: pytest.MonkeyPatch, context: PassContext, tmp_path: Path) -> None:
    install(monkeypatch, {"graph": (0, 10.0, 100.0, 400), "dynamic": (-0.05, 1.0, 900.0, 100),
                          "static": (-0.002, 6.0, 200.0, 100)})
    state, rows = run([fake_pass("graph", tmp_path, 400, lossless=True),
                       Alternatives((fake_pass("dynamic", tmp_path, 100),
                                     fake_pass("static", tmp_path, 100)))], context)
    assert rows["dynamic"].status is Status.rolled_back
    assert state.path is not None and state.path.stem == "static"


def test_a_lossy_pass_that_is_not_faster_is_not_kept(
        monkeypatch: pytest.MonkeyPatch, context: PassContext, tmp_path: Path) -> None:
    install(monkeypatch, {"graph": (0, 2.0, 500.0, 400), "dynamic": (0.0, 3.0, 400.0, 100)})
    state, rows = run([fake_pass("graph", tmp_path, 400, lossless=True),
                       Alternatives((fake_pass("dynamic", tmp_path, 100),))], context)
    assert state.path is not None and state.path.stem == "graph"
    assert rows["dynamic"].status is Status.skipped
    assert "no faster overall than graph" in rows["dynamic"].reason


def test_with_the_size_objective_the_smaller_model_wins(
        monkeypatch: pytest.MonkeyPatch, context: PassContext, tmp_path: Path) -> None:
    context.options = replace(context.options, objective="size")
    install(monkeypatch, {"graph": (0, 2.0, 500.0, 400), "dynamic": (0.0, 3.0, 400.0, 100)})
    state, rows = run([fake_pass("graph", tmp_path, 400, lossless=True),
                       Alternatives((fake_pass("dynamic", tmp_path, 100),))], context)
    assert state.path is not None and state.path.stem == "dynamic"
    assert rows["dynamic"].status is Status.kept


def test_a_failing_optional_pass_is_reported_and_skipped(
        monkeypatch: pytest.MonkeyPatch, context: PassContext, tmp_path: Path) -> None:
    install(monkeypatch, {"graph": (0, 2.0, 500.0, 400)})
    state, rows = run([fake_pass("graph", tmp_path, 400, lossless=True),
                       fake_pass("broken", tmp_path, 1, error=RuntimeError("no kernel"))],
                      context)
    assert rows["broken"].status is Status.skipped
    assert rows["broken"].reason == "failed: RuntimeError: no kernel"
    assert state.path is not None and state.path.stem == "graph"


def test_passes_named_in_options_skip_do_not_run(
        monkeypatch: pytest.MonkeyPatch, context: PassContext, tmp_path: Path) -> None:
    context.options = replace(context.options, skip=("graph",))
    install(monkeypatch, {})
    state, rows = run([fake_pass("graph", tmp_path, 400, error=AssertionError("ran"))],
                      context)
    assert rows["graph"].status is Status.skipped and state.path is None


def test_when_no_alternative_beats_the_current_model_none_is_reported_kept(
        monkeypatch: pytest.MonkeyPatch, context: PassContext, tmp_path: Path) -> None:
    install(monkeypatch, {"graph": (0, 1.0, 900.0, 400), "dynamic": (0.0, 3.0, 400.0, 100),
                          "static": (0.0, 2.0, 500.0, 100)})
    state, rows = run([fake_pass("graph", tmp_path, 400, lossless=True),
                       Alternatives((fake_pass("dynamic", tmp_path, 100),
                                     fake_pass("static", tmp_path, 100)))], context)
    assert state.path is not None and state.path.stem == "graph"
    assert rows["dynamic"].status is Status.skipped
    assert rows["static"].status is Status.skipped
    assert all("no faster overall than graph" in rows[name].reason
               for name in ("dynamic", "static"))
