"""``aip env``: list, remove and prune on a cache of fake environments; build's error paths
(flags, files, interpreters, a requirement pip cannot find) and one real build, cold then
cached."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aip.cli.envs import read_requirements_file
from aip.cli.main import app
from aip.cli.specs import InvalidFlags
from tests.unit.runtime.test_envs import BAD_REQUIREMENT, DAY, make_fake_environment

runner = CliRunner()


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "envs"
    monkeypatch.setenv("AIP_ENV_CACHE", str(path))
    return path


def aip(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("command", [["env"], ["env", "build"], ["env", "list"],
                                     ["env", "remove"], ["env", "prune"]])
def test_every_env_command_has_help(command: list[str]) -> None:
    code, out, _ = aip(*command, "--help")
    assert code == 0
    assert "Usage: aip env" in out


def test_list_on_an_empty_cache_says_how_to_build_one(cache: Path) -> None:
    code, out, err = aip("env", "list")
    assert code == 0
    assert out == ""
    assert f"no environments in {cache}" in err
    assert "aip env build -r REQ" in err


def test_list_shows_key_requirements_python_size_and_last_use(cache: Path) -> None:
    make_fake_environment(cache, "aaaa000000000001", "mxnet==1.9.1", "numpy<2",
                          last_used=time.time() - 3 * DAY)
    code, out, _ = aip("env", "list")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["KEY", "REQUIREMENTS", "PYTHON", "SIZE", "LAST", "USED"]
    assert row.split() == ["aaaa000000000001", "mxnet==1.9.1", "numpy<2", "CPython", "3.11.7",
                           row.split()[5], "3d"]


def test_list_as_json(cache: Path) -> None:
    make_fake_environment(cache, "aaaa000000000001", "six", last_used=time.time())
    code, out, _ = aip("env", "list", "-o", "json")
    assert code == 0
    [item] = json.loads(out)["items"]
    assert item["key"] == "aaaa000000000001"
    assert item["python"] == str(cache / "aaaa000000000001" / "bin" / "python")
    assert item["requirements"] == ["six"]


def test_remove(cache: Path) -> None:
    make_fake_environment(cache, "aaaa000000000001", "six", last_used=time.time())
    code, out, _ = aip("env", "remove", "aaaa")
    assert code == 0
    assert out.startswith("removed environment aaaa000000000001 (")
    assert not (cache / "aaaa000000000001").exists()


def test_removing_an_unknown_key_is_an_error_without_a_traceback() -> None:
    code, out, err = aip("env", "remove", "ffff")
    assert code == 1
    assert "error: no environment 'ffff'" in err
    assert "Traceback" not in out + err


def test_prune_removes_environments_unused_for_longer_than_asked(cache: Path) -> None:
    make_fake_environment(cache, "aaaa000000000001", "six", last_used=time.time() - 40 * DAY)
    make_fake_environment(cache, "bbbb000000000002", "numpy", last_used=time.time() - DAY)
    code, out, _ = aip("env", "prune", "--older-than", "30d", "--dry-run")
    assert code == 0
    assert "would remove aaaa000000000001  six  (last used 40d ago)" in out
    assert (cache / "aaaa000000000001").exists()
    code, out, _ = aip("env", "prune", "--older-than", "30d")
    assert code == 0
    assert "removed 1 environment, " in out
    assert sorted(p.name for p in cache.iterdir()) == ["bbbb000000000002"]
    code, _, err = aip("env", "prune", "--older-than", "30d")
    assert code == 0
    assert "no environment has gone unused for 30d" in err


def test_prune_needs_a_duration() -> None:
    code, _, err = aip("env", "prune", "--older-than", "soon")
    assert code == 2
    assert "error: --older-than" in err


@pytest.mark.parametrize(("args", "message"), [
    pytest.param([], "nothing to build: give requirements", id="nothing"),
    pytest.param(["-r", "-e ."], "is not a pip requirement", id="a pip option as requirement"),
    pytest.param(["--spec", "job.yaml", "-r", "six"], "--spec takes the whole environment",
                 id="spec with flags"),
])
def test_build_usage_errors(args: list[str], message: str) -> None:
    code, out, err = aip("env", "build", *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in out + err


def test_build_names_the_requirements_file_line_with_a_pip_option(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==1.26.4\n--index-url https://example.com/simple\n")
    code, _, err = aip("env", "build", "--file", str(requirements))
    assert code == 2
    assert f"{requirements}:2: pip options such as --index-url are not accepted" in err


def test_requirements_files_keep_requirements_and_drop_comments(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned for MXNet\nnumpy==1.26.4  # < 2\n\nmxnet \\\n"
                            "  ==1.9.1\npkg @ https://example.com/pkg.tar.gz#sha256=ab\n")
    assert read_requirements_file(requirements) == [
        "numpy==1.26.4", "mxnet ==1.9.1", "pkg @ https://example.com/pkg.tar.gz#sha256=ab"]
    with pytest.raises(InvalidFlags, match="cannot read"):
        read_requirements_file(tmp_path / "missing.txt")


def test_build_with_a_spec_that_has_no_environment(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("name: train\ncommand: [python, train.py]\n")
    code, _, err = aip("env", "build", "--spec", str(job))
    assert code == 1
    assert "the job has no environment: section" in err


def test_build_with_a_missing_interpreter_names_the_field() -> None:
    code, out, err = aip("env", "build", "--python", "/nonexistent/bin/python")
    assert code == 1
    assert "error: cannot use the interpreter" in err
    assert "environment.python: /nonexistent/bin/python does not exist" in err
    assert "Traceback" not in out + err


def test_build_with_an_interpreter_alone_only_checks_it() -> None:
    import sys

    code, out, _ = aip("env", "build", "--python", sys.executable, "-o", "json")
    assert code == 0
    assert json.loads(out) == {"key": None, "python": sys.executable, "cached": False,
                               "requirements": []}


def test_build_names_the_requirement_pip_cannot_find(cache: Path) -> None:
    code, out, err = aip("env", "build", "-r", "six==1.16.0", "-r", BAD_REQUIREMENT)
    assert code == 1
    assert "error: cannot build the Python environment" in err
    assert (f"environment.requirements.1: pip could not install '{BAD_REQUIREMENT}': no "
            "matching distribution found") in err
    assert "Collecting six==1.16.0" in err  # without a terminal, pip's lines are printed
    assert "Traceback" not in out + err
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []


def test_build_then_find_it_cached(cache: Path, tmp_path: Path) -> None:
    code, out, err = aip("env", "build", "-r", "six==1.16.0", "-o", "json")
    assert code == 0, err
    built = json.loads(out)
    assert built["cached"] is False
    assert built["python"] == str(cache / built["key"] / "bin" / "python")
    job = tmp_path / "job.yaml"
    job.write_text("name: train\ncommand: [python, train.py]\n"
                   "environment:\n  requirements: [Six == 1.16.0]\n")
    code, out, err = aip("env", "build", "--spec", str(job))
    assert code == 0, err
    assert f"using cached environment {built['key']}" in err
    assert built["key"] in out and "earlier (cached)" in out
