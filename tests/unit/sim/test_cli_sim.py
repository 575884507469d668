"""``aip sim`` through Typer's runner on the tiny fixtures: tables, JSON, plots, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aip.cli.main import app
from aip.scheduler.policies import DEFAULT_POLICY, policy_names
from tests.unit.sim.builders import TINY_NODES, TINY_PODS

runner = CliRunner()
TRACE = ["--nodes", str(TINY_NODES), "--pods", str(TINY_PODS)]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("AIP_DEBUG", raising=False)


def aip(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_fill_prints_a_table_with_both_unallocated_figures() -> None:
    code, out, err = aip("sim", "fill", *TRACE, "--seed", "42")
    assert code == 0, err
    header, row = out.strip().splitlines()
    assert header.split()[:3] == ["POLICY", "UNALLOC@100%", "UNALLOC@130%"]
    assert row.split()[0] == DEFAULT_POLICY
    assert "3 nodes, 3 GPUs; 6 tasks in openb_tiny_pods.csv" in err


def test_fill_json_is_one_object_with_the_figures_and_the_curve() -> None:
    code, out, _ = aip("sim", "fill", *TRACE, "--policy", DEFAULT_POLICY, "--output", "json")
    assert code == 0
    data = json.loads(out)
    for key in ("unallocated_at_100", "unallocated_at_130", "seconds", "curve", "policy",
                "seed", "scheduled", "failed"):
        assert key in data
    assert data["policy"] == DEFAULT_POLICY
    assert len(data["curve"]["arrived_pct"]) == len(data["curve"]["allocated_pct"]) > 0
    assert 0 <= data["unallocated_at_100"] <= 100


def test_fill_with_another_inflation_names_the_end_after_it() -> None:
    code, out, _ = aip("sim", "fill", *TRACE, "--inflation", "1.5", "-o", "json")
    assert code == 0
    assert "unallocated_at_150" in json.loads(out)


def test_policy_all_runs_every_registered_policy(tmp_path: Path) -> None:
    plot = tmp_path / "fill.png"
    code, out, err = aip("sim", "fill", *TRACE, "--policy", "all", "-o", "json",
                         "--plot", str(plot))
    assert code == 0, err
    data = json.loads(out)
    assert [run["policy"] for run in data["runs"]] == policy_names()
    assert plot.read_bytes().startswith(PNG_MAGIC)


def test_sim_plot_draws_saved_results(tmp_path: Path) -> None:
    saved = tmp_path / "fill.json"
    _, out, _ = aip("sim", "fill", *TRACE, "-o", "json")
    saved.write_text(out)
    png = tmp_path / "again.png"
    code, _, err = aip("sim", "plot", str(saved), "--png", str(png))
    assert code == 0, err
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_replay_prints_delays_and_utilization(tmp_path: Path) -> None:
    code, out, err = aip("sim", "replay", *TRACE)
    assert code == 0, err
    assert out.split()[:6] == ["POLICY", "SCHEDULED", "NEVER", "WAITED", "FAILED", "DELAY"]
    code, out, _ = aip("sim", "replay", *TRACE, "-o", "json", "--plot", str(tmp_path / "r.png"))
    data = json.loads(out)
    assert data["tasks"] == 6
    assert set(data["queueing_delay_s"]) == {"p50", "p95", "max", "mean"}
    assert data["timeline"]["time"][0] == 0
    assert (tmp_path / "r.png").read_bytes().startswith(PNG_MAGIC)


def test_a_variant_can_be_simulated_by_name() -> None:
    code, out, _ = aip("sim", "fill", *TRACE, "--variant", "type-constrained", "-o", "json")
    assert code == 0
    assert json.loads(out)["variant"] == "type-constrained"


def test_a_bad_csv_is_named_by_file_line_and_column_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "pods.csv"
    bad.write_text(TINY_PODS.read_text().replace("tiny-pod-3,8000,", "tiny-pod-3,lots,"))
    code, out, err = aip("sim", "fill", "--nodes", str(TINY_NODES), "--pods", str(bad))
    assert code == 1
    assert f"error: {bad}, line 5, column 2 (cpu_milli)" in err
    assert "expected a whole number, not 'lots'" in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize(("args", "says"), [
    (["--policy", "no-such-policy"], "unknown placement policy 'no-such-policy'"),
    (["--variant", "cpu-heavyy"], "did you mean 'cpu-heavy'"),
    (["--plot", "/no/such/folder/x.png"], "folder /no/such/folder does not exist"),
])
def test_bad_options_get_a_clear_message(args: list[str], says: str) -> None:
    code, _, err = aip("sim", "fill", *TRACE, *args)
    assert code == 1
    assert says in err


def test_sim_plot_refuses_a_file_that_is_not_a_fill_result(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"mode": "replay"}')
    code, _, err = aip("sim", "plot", str(other), "--png", str(tmp_path / "x.png"))
    assert code == 1
    assert "no fill-mode result with a curve" in err


@pytest.mark.parametrize("command", [["sim"], ["sim", "fill"], ["sim", "replay"],
                                     ["sim", "plot"]])
def test_every_sim_command_has_help(command: list[str]) -> None:
    code, out, _ = aip(*command, "--help")
    assert code == 0
    assert "Usage: aip sim" in out
