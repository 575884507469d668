"""The plot files are PNGs; the plot module itself needs matplotlib only when it draws."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aip.scheduler.policies import DEFAULT_POLICY, make_policy
from aip.sim.fill import run_fill
from aip.sim.plot import plot_fill, plot_replay
from aip.sim.replay import run_replay
from tests.unit.sim.builders import node, task

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_fill_writes_a_png(tmp_path: Path) -> None:
    result = run_fill([node("n0"), node("n1")], [task("h", gpu=500)],
                      make_policy(DEFAULT_POLICY), seed=1)
    path = plot_fill([("a", result.arrived_pct, result.allocated_pct),
                      ("b", [0, 50, 130], [0, 40, 60])], tmp_path / "fill.png", title="t")
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_plot_replay_writes_a_png(tmp_path: Path) -> None:
    tasks = [task("a", gpu=1000, created=0, deleted=7200),
             task("b", gpu=1000, created=60, deleted=9000)]
    result = run_replay([node("n0")], tasks, make_policy(DEFAULT_POLICY))
    assert plot_replay([result], tmp_path / "replay.png").read_bytes().startswith(PNG_MAGIC)


def test_the_cli_and_the_simulator_import_no_matplotlib() -> None:
    code = ("import sys, aip.cli.main, aip.sim, aip.sim.plot; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
