"""docs/optimize.md stays true: its Python example runs as written, and the flags it shows
are the command's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = (Path(__file__).parents[3] / "docs" / "optimize.md").read_text()


def test_every_flag_the_doc_shows_is_a_flag_of_the_command() -> None:
    from typer.main import get_command

    from aip.cli.main import app

    command = get_command(app).commands["optimize"]  # type: ignore[attr-defined]
    known = {name for parameter in command.params for name in parameter.opts}
    shown = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", DOC)) - {"--output"}
    assert shown <= known, shown - known


@pytest.mark.slow
def test_the_python_example_runs(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    code = re.search(r"```python\n(# example: python-api\n.*?)```", DOC, re.DOTALL)
    assert code is not None
    script = tmp_path / "example.py"
    script.write_text(code.group(1))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| quantize_dynamic |" in done.stdout
    assert (tmp_path / "digits-o2" / "model.onnx").is_file()
