"""The commands and the Python example of docs/sim.md run as written, on the tiny fixtures
in place of the openb trace (so they are checked everywhere, quickly)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.sim.builders import TINY_NODES, TINY_PODS

DOC = Path(__file__).resolve().parents[3] / "docs" / "sim.md"
TEXT = DOC.read_text(encoding="utf-8")
OPENB = {
    "../shared/data/openb/openb_node_list_gpu_node.csv": str(TINY_NODES),
    "../shared/data/openb/openb_pod_list_default.csv": str(TINY_PODS),
}
SHELL_BLOCKS = [block for block in re.findall(r"```bash\n(.*?)```", TEXT, re.DOTALL)
                if "aip sim" in block]
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.DOTALL)


def on_tiny_trace(text: str) -> str:
    for path, tiny in OPENB.items():
        text = text.replace(path, tiny)
    return text


def test_the_doc_has_commands_for_both_modes_and_the_plot() -> None:
    commands = "\n".join(SHELL_BLOCKS)
    for command in ("aip sim fill", "aip sim replay", "aip sim plot", "--plot"):
        assert command in commands


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.split("\n")[0][:40])
def test_doc_commands_run(block: str, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
           f"{os.environ.get('PATH', '')}", "COLUMNS": "200"}
    env.pop("AIP_DEBUG", None)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", on_tiny_trace(block)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    for png in re.findall(r"(\S+\.png)", block):
        assert (tmp_path / png).read_bytes().startswith(b"\x89PNG")


def test_the_python_example_runs() -> None:
    [code] = PYTHON_BLOCKS
    result = subprocess.run([sys.executable, "-c", on_tiny_trace(code)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
