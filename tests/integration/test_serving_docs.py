"""docs/serving.md runs as written: every command of its bash blocks, in order, against a
real `aip up` — train with tracking, register from the job, alias, deploy, invoke, canary,
list, delete. Commands are run as argv lists (shlex), never through a shell.

Marked slow (about 35 s: a training job, two deploys and a canary) to keep `make test` inside
CI's budget; `make test-slow` and `make verify` run it."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from aip.testing.server import AipServer, free_port

ROOT = Path(__file__).parents[2]
DOC = (ROOT / "docs" / "serving.md").read_text()
COMMANDS = [line for block in re.findall(r"```bash\n(.*?)```", DOC, re.DOTALL)
            for line in block.splitlines() if line.strip() and not line.startswith("#")]

pytestmark = pytest.mark.slow

pytest.importorskip("sklearn")
pytest.importorskip("skops")


def test_the_serving_walkthrough_runs_as_written(tmp_path: Path) -> None:
    assert len(COMMANDS) >= 12
    with AipServer(tmp_path / "aip-home", nodes=[{"name": "node-a", "cpu": 8, "memory": "8Gi"}],
                   server={"router_port": free_port()}) as server:
        outputs = []
        for command in COMMANDS:
            argv = shlex.split(command)
            assert argv[0] == "aip", command
            result = subprocess.run([sys.executable, "-m", "aip", *argv[1:]], cwd=ROOT,
                                    env=server.env, capture_output=True, text=True,
                                    timeout=300, check=False)
            assert result.returncode == 0, (command, result.stdout, result.stderr)
            outputs.append((command, result.stdout))
        invoked = next(out for cmd, out in outputs if cmd.startswith("aip endpoint invoke"))
        predictions = json.loads(invoked)["predictions"]
        assert predictions == [0, 2]  # setosa, virginica
        registered = server.client.get_model("iris")
        versions = {v["version"]: v for v in registered["versions"]}
        assert set(versions) == {1, 2} and versions[1]["source_job"]
        assert versions[1]["aliases"] == ["production"]
