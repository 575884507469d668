"""The ``aip`` command without a server: help, usage errors, spec errors with file and line,
and how failures are reported (no traceback unless AIP_DEBUG=1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aip.cli.main import app

runner = CliRunner()
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def aip(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("command", [
    [], ["run"], ["job"], ["job", "submit"], ["job", "list"], ["node", "list"],
    ["queue", "create"], ["up"], ["down"],
])
def test_every_command_has_help(command: list[str]) -> None:
    code, out, _ = aip(*command, "--help")
    assert code == 0
    assert "Usage: aip" in out


def test_the_root_help_lists_the_command_groups() -> None:
    _, out, _ = aip("--help")
    for word in ("up", "down", "run", "job", "node", "queue", "--server", "--token"):
        assert word in out


def test_without_a_server_the_message_says_how_to_start_one() -> None:
    code, out, err = aip("job", "list")
    assert code == 1
    assert "error: no AIP server found: start one with `aip up`, or set AIP_SERVER" in err
    assert "Traceback" not in out + err


def test_an_unreachable_server_is_named_with_a_hint() -> None:
    code, _, err = aip("--server", UNREACHABLE, "--token", "t", "node", "list")
    assert code == 1
    assert f"cannot reach the AIP server at {UNREACHABLE}" in err
    assert "aip up" in err
    assert "Traceback" not in err


def test_a_bad_spec_file_is_reported_with_file_and_line_before_any_server_is_needed(
        tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("name: train\nreplicas:\n  worker:\n    command: [python, train.py]\n"
                    "    resources:\n      gpu: 1.5\n      gpux: 2\n")
    code, _, err = aip("job", "submit", "-f", str(spec))
    assert code == 1
    assert f"error: invalid {spec}" in err
    assert "  replicas.worker.resources.gpu: " in err
    assert "(line 6)" in err
    assert "unknown field 'gpux'; did you mean 'gpu'? (line 7)" in err
    assert "no AIP server found" not in err


def test_malformed_yaml_names_the_line_and_column(tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("name: train\n  command: [\n")
    code, _, err = aip("job", "submit", "-f", str(spec))
    assert code == 1
    assert f"{spec} is not valid YAML at line 2" in err


def test_a_missing_spec_file_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = aip("job", "submit", "-f", str(tmp_path / "absent.yaml"))
    assert code == 2
    assert "does not exist" in err


@pytest.mark.parametrize(("args", "words"), [
    pytest.param(["--env", "EPOCHS", "--", "python", "t.py"], "--env: takes KEY=VALUE",
                 id="env without ="),
    pytest.param(["--gpus", "1.5", "--", "python", "t.py"], "--gpus: 1.5 GPUs",
                 id="fractional GPUs above one"),
    pytest.param(["--gpus", "1"], "COMMAND: is required", id="no command"),
])
def test_bad_run_flags_are_usage_errors_naming_the_flag(args: list[str], words: str) -> None:
    code, _, err = aip("run", *args)
    assert code == 2
    assert "error: invalid command line" in err
    assert words in err


def test_run_takes_the_command_after_the_flags_without_eating_its_options() -> None:
    # No server: the spec is built (so the command's own --lr was not parsed as a flag of
    # `aip run`) and only then does the submit fail for want of a server.
    code, _, err = aip("run", "--gpus", "0.25", "python", "train.py", "--lr", "3")
    assert code == 1
    assert "no AIP server found" in err


def test_queue_create_reports_flag_errors_before_contacting_a_server() -> None:
    code, _, err = aip("queue", "create", "q", "--gpu", "4", "--gpu", "T4=2")
    assert code == 2
    assert "--gpu: give either N" in err


def run_module(*args: str, debug: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AIP_DEBUG", "AIP_TOKEN")}
    env.update(AIP_SERVER=UNREACHABLE, AIP_TOKEN="t")
    if debug:
        env["AIP_DEBUG"] = "1"
    return subprocess.run([sys.executable, "-m", "aip", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_failures_show_no_traceback_by_default() -> None:
    result = run_module("job", "list", debug=False)
    assert result.returncode == 1
    assert "error: cannot reach the AIP server" in result.stderr
    assert "Traceback" not in result.stderr


def test_aip_debug_shows_the_traceback() -> None:
    result = run_module("job", "list", debug=True)
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "ServerUnavailable" in result.stderr


def test_importing_the_cli_stays_light() -> None:
    # `aip --help` must start fast: the SDK, specs, settings and server load inside commands.
    code = ("import sys, aip.cli.main; "
            "heavy = [m for m in ('httpx', 'pydantic', 'aip.config', 'aip.client', 'aip.spec', "
            "'aip.server', 'fastapi', 'sqlalchemy') if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"
