"""The examples in docs/jobs.md run as written against a real server."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from aip.testing.server import AipServer

DOC = Path(__file__).parents[2] / "docs" / "jobs.md"
EXAMPLES = re.findall(r"```yaml\n(# example: [^\n]*\n.*?)```", DOC.read_text(), re.DOTALL)


def _python_is_this_interpreter(spec: dict) -> dict:  # type: ignore[type-arg]
    """Docs say `python`; run them with the interpreter of this test run."""
    groups = spec.get("replicas", {"": spec}).values()
    for group in groups:
        if group.get("command", [None])[0] == "python":
            group["command"][0] = sys.executable
    return spec


def test_the_docs_have_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("text", EXAMPLES, ids=lambda t: t.splitlines()[0][len("# example: "):])
def test_doc_example_runs_to_success(server: AipServer, text: str) -> None:
    spec = _python_is_this_interpreter(yaml.safe_load(text))
    job = server.client.submit_job(spec)
    done = server.client.wait_job(job["id"], timeout=30)
    assert done["state"] == "SUCCEEDED", (done["reason"], server.client.job_logs(job["id"]))


def test_the_python_example_runs(server: AipServer, tmp_path: Path) -> None:
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert code is not None
    script = tmp_path / "example.py"
    script.write_text(code.group(1).replace('"python"', repr(sys.executable)))
    import subprocess
    result = subprocess.run([sys.executable, str(script)], env=server.env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["SUCCEEDED", "42"]


def test_every_yaml_block_in_the_docs_is_a_valid_spec() -> None:
    from aip.control.platform import PlatformConfig
    from aip.errors import InvalidSpec
    from aip.spec import JobSpec, QueueSpec, load_yaml

    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.DOTALL)
    for text in blocks:
        errors = []
        for model in (JobSpec, QueueSpec, PlatformConfig):
            try:
                load_yaml(text, model)
                break
            except InvalidSpec as exc:
                errors.append(str(exc))
        else:
            raise AssertionError(f"not a valid job, queue or config:\n{text}\n{errors}")
