"""Per-job Python environments: the cache key, reading pip's failures, the cache itself (list,
remove, prune), and real builds with real venvs and real pip.

The real builds use a fresh cache under pytest's tmp dir; the big numpy build uses a persistent
cache ($AIP_TEST_ENV_CACHE, default ~/.cache/aip-test-envs) so that re-runs are fast.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aip.errors import Conflict, InvalidSpec, NotFound
from aip.runtime import envs
from aip.runtime.envs import (
    METADATA_FILE,
    EnvironmentBuildError,
    Interpreter,
    default_cache_dir,
    ensure_environment,
    environment_key,
    explain_pip_failure,
    list_environments,
    normalize_requirement,
    prune_environments,
    remove_environment,
)
from aip.spec import EnvironmentSpec

DAY = 86400.0
BAD_REQUIREMENT = "aip-no-such-package-xyz==1.0"
PLATFORM_IS_A_VENV = sys.prefix != sys.base_prefix


def spec(*requirements: str, **fields: object) -> EnvironmentSpec:
    return EnvironmentSpec.model_validate({"requirements": list(requirements), **fields})


def make_fake_environment(cache: Path, key: str, *requirements: str, last_used: float,
                          created: float | None = None) -> Path:
    """A complete-looking cache entry (metadata, an interpreter link) without running pip."""
    path = cache / key
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python").symlink_to(sys.executable)
    (path / "lib").mkdir()
    (path / "lib" / "payload").write_bytes(b"x" * 4096)
    created_at = datetime.fromtimestamp(created if created is not None else last_used, UTC)
    (path / METADATA_FILE).write_text(json.dumps({
        "format": 1, "key": key, "requirements": list(requirements),
        "python_version": "CPython 3.11.7", "base_python": sys.executable,
        "system_site_packages": False, "created": created_at.isoformat(), "pip_freeze": [],
    }))
    (path / "aip-last-used").touch()
    os.utime(path / "aip-last-used", (last_used, last_used))
    return path


def run_python(python: Path, code: str) -> str:
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


# --- the key ------------------------------------------------------------------------------

FAKE = Interpreter(path="/usr/bin/python3", implementation="cpython", version="3.11.7",
                   machine="x86_64", in_virtualenv=False, site_packages=())


@pytest.fixture
def fake_interpreter(monkeypatch: pytest.MonkeyPatch) -> list[Interpreter]:
    """environment_key sees the interpreter the test puts first in the returned list."""
    current = [FAKE]
    monkeypatch.setattr(envs, "probe_interpreter", lambda python, field=None: current[0])
    return current


@pytest.mark.usefixtures("fake_interpreter")
def test_the_key_is_stable_and_short_hex() -> None:
    first = environment_key(spec("numpy==1.26.4"))
    assert first == environment_key(spec("numpy==1.26.4"))
    assert len(first) == 16
    assert int(first, 16) >= 0


@pytest.mark.usefixtures("fake_interpreter")
@pytest.mark.parametrize(("written", "same_as"), [
    pytest.param(["numpy == 1.26.4"], ["numpy==1.26.4"], id="spaces around the operator"),
    pytest.param(["Six", "NumPy==1.26.4"], ["numpy==1.26.4", "six"], id="order and name case"),
    pytest.param(["numpy>=1.0, <2"], ["numpy<2,>=1.0"], id="specifier order"),
    pytest.param(["ray[serve, Default]==2.0"], ["ray[default,serve]==2.0"], id="extras"),
    pytest.param(["typing_extensions"], ["typing-extensions"], id="PEP 503 names"),
    pytest.param(["six==1.16.0", "six==1.16.0"], ["six==1.16.0"], id="duplicates"),
    pytest.param(['numpy; python_version < "3.12"'], ["numpy;python_version<'3.12'"],
                 id="marker spacing and quotes"),
])
def test_the_key_ignores_how_the_same_content_is_written(
        written: list[str], same_as: list[str]) -> None:
    assert environment_key(spec(*written)) == environment_key(spec(*same_as))


@pytest.mark.parametrize(("change", "changed"), [
    pytest.param("version", spec("numpy==2.0.0"), id="another version"),
    pytest.param("more", spec("numpy==1.26.4", "six"), id="one more requirement"),
    pytest.param("site", spec("numpy==1.26.4", system_site_packages=True),
                 id="system site packages"),
    pytest.param("python", spec("numpy==1.26.4", python="/opt/py39/bin/python"),
                 id="a named base interpreter"),
])
def test_the_key_changes_with_the_content(
        fake_interpreter: list[Interpreter], change: str, changed: EnvironmentSpec) -> None:
    assert environment_key(spec("numpy==1.26.4")) != environment_key(changed), change


def test_the_key_changes_with_the_interpreter_version_not_its_path(
        fake_interpreter: list[Interpreter]) -> None:
    base = environment_key(spec("numpy==1.26.4"))
    fake_interpreter[0] = replace(FAKE, path="/opt/other/bin/python3")
    assert environment_key(spec("numpy==1.26.4")) == base
    fake_interpreter[0] = replace(FAKE, version="3.11.8")
    assert environment_key(spec("numpy==1.26.4")) != base
    fake_interpreter[0] = replace(FAKE, implementation="pypy")
    assert environment_key(spec("numpy==1.26.4")) != base


def test_the_real_base_interpreter_counts_by_version_not_path() -> None:
    """The platform venv's python and the installation under it are the same CPython."""
    base = getattr(sys, "_base_executable", sys.executable)
    if os.path.realpath(base) == os.path.realpath(sys.executable) and not PLATFORM_IS_A_VENV:
        pytest.skip("no second path to the same interpreter here")
    assert environment_key(spec("six==1.16.0"), base) == environment_key(spec("six==1.16.0"))


def test_another_python_version_gives_another_key() -> None:
    other = _other_python()
    if other is None:
        pytest.skip("no Python of another minor version on this machine")
    assert environment_key(spec("six==1.16.0"), other) != environment_key(spec("six==1.16.0"))


@pytest.mark.parametrize(("line", "normalized"), [
    ("numpy==1.26.4", "numpy==1.26.4"),
    ("  Torch_Vision >= 0.19 , < 1 ", "torch-vision<1,>=0.19"),
    ("pkg @ https://example.com/Pkg-1.0.tar.gz", "pkg@https://example.com/Pkg-1.0.tar.gz"),
    ('tensorflow; sys_platform == "linux" and python_version >= "3.10"',
     "tensorflow;sys_platform=='linux' and python_version>='3.10'"),
])
def test_normalize_requirement(line: str, normalized: str) -> None:
    assert normalize_requirement(line) == normalized


# --- reading pip's failures ---------------------------------------------------------------

NO_SUCH_PACKAGE = """\
Looking in indexes: https://pypi.org/simple
ERROR: Could not find a version that satisfies the requirement aip-no-such-package-xyz==1.0 (from versions: none)
ERROR: No matching distribution found for aip-no-such-package-xyz==1.0
"""  # noqa: E501

NO_SUCH_VERSION = """\
Looking in indexes: https://pypi.org/simple
ERROR: Could not find a version that satisfies the requirement six==9.9.9 (from versions: 0.9.0, 0.9.1, 0.9.2, 1.0b1, 1.0.0, 1.1.0, 1.2.0, 1.3.0, 1.4.0, 1.4.1, 1.5.0, 1.5.1, 1.5.2, 1.6.0, 1.6.1, 1.7.0, 1.7.1, 1.7.2, 1.7.3, 1.8.0, 1.9.0, 1.10.0, 1.11.0, 1.12.0, 1.13.0, 1.14.0, 1.15.0, 1.16.0, 1.17.0)
ERROR: No matching distribution found for six==9.9.9
"""  # noqa: E501

NEEDS_NEWER_PYTHON = """\
Looking in indexes: https://pypi.org/simple
ERROR: Ignored the following yanked versions: 2.4.0
ERROR: Ignored the following versions that require a different python version: 1.21.2 Requires-Python >=3.7,<3.11; 2.5.0 Requires-Python >=3.12; 2.5.1 Requires-Python >=3.12
ERROR: Could not find a version that satisfies the requirement numpy==2.5.0 (from versions: 1.26.4, 2.0.0, 2.4.6)
ERROR: No matching distribution found for numpy==2.5.0
"""  # noqa: E501

MISSING_DEPENDENCY = """\
Collecting mylib==1.0
  Using cached mylib-1.0-py3-none-any.whl (3.1 kB)
Collecting private-helper>=2 (from mylib==1.0)
ERROR: Could not find a version that satisfies the requirement private-helper>=2 (from mylib) (from versions: 1.0, 1.1)
ERROR: No matching distribution found for private-helper>=2
"""  # noqa: E501

OFFLINE = """\
Looking in indexes: http://127.0.0.1:9/simple
WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after connection broken by 'NewConnectionError("HTTPConnection(host='127.0.0.1', port=9): Failed to establish a new connection: [Errno 111] Connection refused")': /simple/six/
ERROR: Could not find a version that satisfies the requirement six==1.15.0 (from versions: none)
ERROR: No matching distribution found for six==1.15.0
"""  # noqa: E501

CONFLICT_PIP26 = """\
Collecting mxnet==1.9.1
Processing /opt/pypi-more/files/numpy-2.0.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
ERROR: Cannot install mxnet==1.9.1 and numpy==2.0.0 because these package versions have conflicting dependencies.

The conflict is caused by:
    The user requested numpy==2.0.0
    mxnet 1.9.1 depends on numpy<2.0.0 and >1.16.0

Additionally, some packages in these conflicts have no matching distributions available for your environment:
    numpy

To fix this you could try to:
1. loosen the range of package versions you've specified
2. remove package versions to allow pip to attempt to solve the dependency conflict

ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/#dealing-with-dependency-conflicts
"""  # noqa: E501

CONFLICT_PIP23 = """\
Requirement already satisfied: six==1.16.0 in ./v/lib/python3.11/site-packages (1.16.0)
ERROR: Cannot install six==1.15.0 and six==1.16.0 because these package versions have conflicting dependencies.

The conflict is caused by:
    The user requested six==1.16.0
    The user requested six==1.15.0

To fix this you could try to:
1. loosen the range of package versions you've specified
2. remove package versions to allow pip attempt to solve the dependency conflict

ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/#dealing-with-dependency-conflicts
"""  # noqa: E501

INVALID_PIP23 = "ERROR: Invalid requirement: 'foo bar'\n"
INVALID_PIP26 = """\
ERROR: Invalid requirement: 'numpy>>1': Expected semicolon (after name with no version specifier) or end
    numpy>>1
         ^
"""  # noqa: E501

WHEEL_BUILD_PIP23 = """\
Processing ./badbuild
  Getting requirements to build wheel: started
  Getting requirements to build wheel: finished with status 'done'
  Preparing metadata (pyproject.toml): started
  Preparing metadata (pyproject.toml): finished with status 'done'
Building wheels for collected packages: badbuild
  Building wheel for badbuild (pyproject.toml): started
  Building wheel for badbuild (pyproject.toml): finished with status 'error'
  error: subprocess-exited-with-error

  × Building wheel for badbuild (pyproject.toml) did not run successfully.
  │ exit code: 1
  ╰─> [12 lines of output]
      Traceback (most recent call last):
        File "/tmp/scratch/badbuild/backend.py", line 9, in build_wheel
          raise RuntimeError("this project cannot be built: missing CUDA toolkit")
      RuntimeError: this project cannot be built: missing CUDA toolkit
      [end of output]

  note: This error originates from a subprocess, and is likely not a problem with pip.
  ERROR: Failed building wheel for badbuild
Failed to build badbuild
ERROR: Could not build wheels for badbuild, which is required to install pyproject.toml-based projects
"""  # noqa: E501

WHEEL_BUILD_PIP26 = """\
Processing ./badbuild
Building wheels for collected packages: badbuild
  Building wheel for badbuild (pyproject.toml): started
  Building wheel for badbuild (pyproject.toml): finished with status 'error'
  error: subprocess-exited-with-error

  × Building wheel for badbuild (pyproject.toml) did not run successfully.
  │ exit code: 1
  ╰─> [12 lines of output]
      Traceback (most recent call last):
        File "/tmp/scratch/badbuild/backend.py", line 9, in build_wheel
          raise RuntimeError("this project cannot be built: missing CUDA toolkit")
      RuntimeError: this project cannot be built: missing CUDA toolkit
      [end of output]

  note: This error originates from a subprocess, and is likely not a problem with pip.
  ERROR: Failed building wheel for badbuild
Failed to build badbuild
error: failed-wheel-build-for-install

× Failed to build installable wheels for some pyproject.toml based projects
╰─> badbuild
"""

METADATA_FAILURE = """\
Collecting six==1.16.0
  Using cached six-1.16.0-py2.py3-none-any.whl (11 kB)
Processing ./badmeta
  Getting requirements to build wheel: started
  Getting requirements to build wheel: finished with status 'done'
  Preparing metadata (pyproject.toml): started
  Preparing metadata (pyproject.toml): finished with status 'error'
  error: subprocess-exited-with-error

  × Preparing metadata (pyproject.toml) did not run successfully.
  │ exit code: 1
  ╰─> [12 lines of output]
      Traceback (most recent call last):
        File "/tmp/scratch/badmeta/backend.py", line 2, in build_wheel
          raise RuntimeError("this project cannot be built: missing CUDA toolkit")
      RuntimeError: this project cannot be built: missing CUDA toolkit
      [end of output]

  note: This error originates from a subprocess, and is likely not a problem with pip.
error: metadata-generation-failed

× Encountered error while generating package metadata.
╰─> See above for output.

note: This is an issue with the package mentioned above, not pip.
hint: See above for details.
"""

DISK_FULL = """\
Collecting torch==2.13.0
Installing collected packages: torch
ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device
"""


@pytest.mark.parametrize(("output", "requirement", "reason_has"), [
    pytest.param(NO_SUCH_PACKAGE, BAD_REQUIREMENT, "no versions at all: check the name",
                 id="no such package"),
    pytest.param(NO_SUCH_VERSION, "six==9.9.9",
                 "versions available: ..., 1.10.0, 1.11.0, 1.12.0, 1.13.0, 1.14.0, 1.15.0, 1.16.0, "
                 "1.17.0)",
                 id="no such version: the newest versions are listed"),
    pytest.param(NEEDS_NEWER_PYTHON, "numpy==2.5.0", "that version needs Python >=3.12",
                 id="the version needs another Python"),
    pytest.param(MISSING_DEPENDENCY, "private-helper>=2", "versions available: 1.0, 1.1",
                 id="a dependency is missing"),
    pytest.param(OFFLINE, "six==1.15.0", "could not reach the package index",
                 id="no network"),
    pytest.param(CONFLICT_PIP26, "mxnet==1.9.1",
                 "conflicting dependencies with 'numpy==2.0.0': The user requested "
                 "numpy==2.0.0; mxnet 1.9.1 depends on numpy<2.0.0 and >1.16.0",
                 id="conflict (pip 26)"),
    pytest.param(CONFLICT_PIP23, "six==1.15.0", "with 'six==1.16.0'", id="conflict (pip 23)"),
    pytest.param(INVALID_PIP23, "foo bar", "not a valid requirement", id="invalid (pip 23)"),
    pytest.param(INVALID_PIP26, "numpy>>1", "(Expected semicolon", id="invalid (pip 26)"),
    pytest.param(WHEEL_BUILD_PIP23, "badbuild",
                 "building it failed: RuntimeError: this project cannot be built: missing "
                 "CUDA toolkit", id="wheel build fails (pip 23)"),
    pytest.param(WHEEL_BUILD_PIP26, "badbuild", "building it failed: RuntimeError",
                 id="wheel build fails (pip 26)"),
    pytest.param(METADATA_FAILURE, "./badmeta", "preparing its metadata failed: RuntimeError",
                 id="metadata fails: the project pip was processing"),
    pytest.param(DISK_FULL, None, "Could not install packages due to an OSError: [Errno 28]",
                 id="anything else: the last ERROR line"),
    pytest.param("", None, "pip exited with status 1", id="no output at all"),
])
def test_explain_pip_failure(output: str, requirement: str | None, reason_has: str) -> None:
    failure = explain_pip_failure(output.splitlines())
    assert failure.requirement == requirement
    assert reason_has in failure.reason


def test_a_missing_dependency_says_who_needs_it() -> None:
    assert explain_pip_failure(MISSING_DEPENDENCY.splitlines()).required_by == "mylib==1.0"


def test_the_error_points_at_the_spec_line_that_needed_the_missing_dependency() -> None:
    failure = explain_pip_failure(MISSING_DEPENDENCY.splitlines())
    error = envs._pip_error(spec("six", "MyLib==1.0"), failure, [])
    assert error.fields == {"environment.requirements.1": "pip could not install "
                            "'private-helper>=2' (required by mylib==1.0): no matching "
                            "distribution found (versions available: 1.0, 1.1)"}
    assert error.requirement == "private-helper>=2"


def test_a_local_project_is_named_as_the_spec_wrote_it() -> None:
    failure = explain_pip_failure(METADATA_FAILURE.splitlines())
    error = envs._pip_error(spec("six==1.16.0", "badmeta @ file:///src/badmeta"), failure, [])
    assert error.requirement == "badmeta @ file:///src/badmeta"
    assert list(error.fields) == ["environment.requirements.1"]


# --- interpreters without a build ---------------------------------------------------------

def test_a_python_only_spec_returns_the_interpreter_without_building(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    lines: list[str] = []
    python = ensure_environment(EnvironmentSpec(python=sys.executable), cache,
                                progress=lines.append)
    assert python == Path(os.path.abspath(sys.executable))
    assert not cache.exists()
    assert lines == []


def _script(tmp_path: Path, name: str, body: str, mode: int = 0o755) -> str:
    path = tmp_path / name
    path.write_text(body)
    path.chmod(mode)
    return str(path)


@pytest.mark.parametrize(("make_python", "problem"), [
    pytest.param(lambda tmp: "/nonexistent/bin/python", "does not exist", id="missing"),
    pytest.param(lambda tmp: "aip-no-such-python-3.99", "is not on PATH", id="not on PATH"),
    pytest.param(lambda tmp: _script(tmp, "python", "#!/bin/sh\n", mode=0o644),
                 "is not executable", id="not executable"),
    pytest.param(lambda tmp: _script(tmp, "python", "#!/bin/sh\necho broken >&2\nexit 3\n"),
                 "is not a working Python: broken", id="fails"),
    pytest.param(lambda tmp: _script(tmp, "python", "#!/bin/sh\necho hello\n"),
                 "is not a Python interpreter", id="not python"),
])
def test_a_bad_interpreter_is_named_by_its_field(
        tmp_path: Path, make_python: Callable[[Path], str], problem: str) -> None:
    python = make_python(tmp_path)
    with pytest.raises(EnvironmentBuildError) as caught:
        ensure_environment(EnvironmentSpec(python=python), tmp_path / "cache")
    assert list(caught.value.fields) == ["environment.python"]
    assert problem in caught.value.fields["environment.python"]
    assert "environment.python" in str(caught.value)
    assert caught.value.requirement is None


def test_the_build_error_is_an_invalid_spec_with_its_own_code() -> None:
    error = EnvironmentBuildError("x")
    assert isinstance(error, InvalidSpec)
    assert error.to_body()["code"] == "environment_build_failed"
    assert error.http_status == 422


# --- the cache without pip ----------------------------------------------------------------

def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AIP_ENV_CACHE", raising=False)
    monkeypatch.setenv("AIP_HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / "envs"
    monkeypatch.setenv("AIP_ENV_CACHE", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"


def test_list_shows_complete_environments_most_recently_used_first(tmp_path: Path) -> None:
    now = time.time()
    make_fake_environment(tmp_path, "aaaa000000000001", "six", last_used=now - 5 * DAY)
    make_fake_environment(tmp_path, "bbbb000000000002", "numpy==1.26.4", last_used=now)
    (tmp_path / "cccc000000000003" / "bin").mkdir(parents=True)  # no metadata: incomplete
    (tmp_path / ".dddd000000000004.build-x1").mkdir()  # a build in progress
    listed = list_environments(tmp_path)
    assert [info.key for info in listed] == ["bbbb000000000002", "aaaa000000000001"]
    assert listed[0].requirements == ("numpy==1.26.4",)
    assert listed[0].python_version == "CPython 3.11.7"
    assert listed[0].size_bytes is not None and listed[0].size_bytes >= 4096


def test_an_environment_whose_base_interpreter_is_gone_is_not_complete(tmp_path: Path) -> None:
    path = make_fake_environment(tmp_path, "aaaa000000000001", "six", last_used=time.time())
    (path / "bin" / "python").unlink()
    (path / "bin" / "python").symlink_to(tmp_path / "removed-python")
    assert list_environments(tmp_path) == []


def test_prune_removes_only_what_went_unused_and_abandoned_builds(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    make_fake_environment(tmp_path, "aaaa000000000001", "six", last_used=now - 40 * DAY)
    make_fake_environment(tmp_path, "bbbb000000000002", "numpy", last_used=now - 2 * DAY,
                          created=now - 90 * DAY)
    (tmp_path / ".eeee000000000005.build-dead").mkdir()  # a killed build
    (tmp_path / ".ffff000000000006.build-live").mkdir()  # a build still running: locked
    with _held_lock(tmp_path, "ffff000000000006"):
        would = prune_environments(tmp_path, 30 * DAY, now=now, dry_run=True)
        assert [info.key for info in would] == ["aaaa000000000001"]
        assert (tmp_path / "aaaa000000000001").exists()
        removed = prune_environments(tmp_path, 30 * DAY, now=now)
    assert [info.key for info in removed] == ["aaaa000000000001"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".ffff000000000006.build-live", "bbbb000000000002", "ffff000000000006.lock"]


def test_remove_by_unique_prefix(tmp_path: Path) -> None:
    make_fake_environment(tmp_path, "aaaa000000000001", "six", last_used=time.time())
    make_fake_environment(tmp_path, "aabb000000000002", "six", last_used=time.time())
    with pytest.raises(InvalidSpec, match="matches 2 environments"):
        remove_environment(tmp_path, "aa")
    with pytest.raises(NotFound, match="aip env list"):
        remove_environment(tmp_path, "ffff")
    assert remove_environment(tmp_path, "aaaa").key == "aaaa000000000001"
    assert [info.key for info in list_environments(tmp_path)] == ["aabb000000000002"]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_an_environment_being_built_is_not_removed(tmp_path: Path) -> None:
    make_fake_environment(tmp_path, "aaaa000000000001", "six", last_used=time.time())
    with _held_lock(tmp_path, "aaaa000000000001"), pytest.raises(Conflict, match="try again"):
        remove_environment(tmp_path, "aaaa000000000001")
    assert list_environments(tmp_path)


@contextmanager
def _held_lock(cache: Path, key: str) -> Iterator[None]:
    """Hold a key's build lock the way another process would."""
    descriptor = os.open(cache / f"{key}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


# --- real builds --------------------------------------------------------------------------

SIX = spec("six==1.16.0")
_BUILD_IN_A_PROCESS = textwrap.dedent("""
    import sys
    from pathlib import Path
    from aip.runtime.envs import ensure_environment
    from aip.spec import EnvironmentSpec
    python = ensure_environment(EnvironmentSpec(requirements=["six==1.16.0"]), Path(sys.argv[1]),
                                progress=lambda line: print("progress:", line, flush=True))
    print("python:", python)
""")


@pytest.fixture(scope="module")
def six_built_twice_at_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A cold cache where two processes asked for the same environment at the same time."""
    cache = tmp_path_factory.mktemp("envs")
    processes = [subprocess.Popen([sys.executable, "-c", _BUILD_IN_A_PROCESS, str(cache)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=240)[0] for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
    return cache, outputs


def test_two_processes_asking_at_once_build_it_once(
        six_built_twice_at_once: tuple[Path, list[str]]) -> None:
    cache, outputs = six_built_twice_at_once
    key = environment_key(SIX)
    builds = [output for output in outputs if f"progress: building environment {key}" in output]
    assert len(builds) == 1, outputs
    other = next(output for output in outputs if output is not builds[0])
    assert "reusing it" in other or "using cached environment" in other, other
    pythons = {line for output in outputs for line in output.splitlines()
               if line.startswith("python:")}
    assert pythons == {f"python: {cache / key / 'bin' / 'python'}"}
    assert sorted(p.name for p in cache.iterdir()) == [key, f"{key}.lock"]


def test_the_built_environment_runs_its_own_packages(
        six_built_twice_at_once: tuple[Path, list[str]]) -> None:
    cache, _ = six_built_twice_at_once
    python = cache / environment_key(SIX) / "bin" / "python"
    assert run_python(python, "import six, sys; print(six.__version__, sys.prefix)") == (
        f"1.16.0 {python.parent.parent}")


def test_a_second_call_reuses_it_without_running_pip(
        six_built_twice_at_once: tuple[Path, list[str]]) -> None:
    cache, _ = six_built_twice_at_once
    key = environment_key(SIX)
    metadata = cache / key / METADATA_FILE
    last_used = cache / key / "aip-last-used"
    os.utime(last_used, (1_000_000_000, 1_000_000_000))
    before = metadata.stat().st_mtime_ns
    lines: list[str] = []
    started = time.monotonic()
    assert ensure_environment(spec("Six == 1.16.0"), cache, progress=lines.append) == (
        cache / key / "bin" / "python")
    assert time.monotonic() - started < 5
    assert lines == [f"using cached environment {key}"]
    assert metadata.stat().st_mtime_ns == before
    assert last_used.stat().st_mtime > 1_000_000_000


def test_the_metadata_records_what_was_installed(
        six_built_twice_at_once: tuple[Path, list[str]]) -> None:
    cache, _ = six_built_twice_at_once
    key = environment_key(SIX)
    metadata = json.loads((cache / key / METADATA_FILE).read_text())
    assert metadata["key"] == key
    assert metadata["requirements"] == ["six==1.16.0"]
    assert metadata["python_version"].startswith("CPython 3.")
    assert "six==1.16.0" in metadata["pip_freeze"]
    [info] = list_environments(cache)
    assert info.key == key and info.requirements == ("six==1.16.0",)


def test_scripts_name_the_final_directory_not_the_build_directory(
        six_built_twice_at_once: tuple[Path, list[str]]) -> None:
    cache, _ = six_built_twice_at_once
    env = cache / environment_key(SIX)
    for path in [*(env / "bin").iterdir(), env / "pyvenv.cfg"]:
        if path.is_file() and not path.is_symlink():
            assert b".build-" not in path.read_bytes(), path
    assert (env / "bin" / "pip").read_text().startswith(f"#!{env}/bin/python")
    version = subprocess.run([str(env / "bin" / "pip"), "--version"], capture_output=True,
                             text=True, check=True, timeout=60).stdout
    assert str(env) in version


def test_a_bad_requirement_is_named_and_leaves_nothing_behind(tmp_path: Path) -> None:
    bad = spec("six==1.16.0", BAD_REQUIREMENT)
    key = environment_key(bad)
    # What a build killed earlier left: its temporary directory and an incomplete environment.
    (tmp_path / f".{key}.build-killed" / "bin").mkdir(parents=True)
    (tmp_path / key / "bin").mkdir(parents=True)
    lines: list[str] = []
    with pytest.raises(EnvironmentBuildError) as caught:
        ensure_environment(bad, tmp_path, progress=lines.append)
    error = caught.value
    assert error.requirement == BAD_REQUIREMENT
    assert f"pip could not install '{BAD_REQUIREMENT}'" in str(error)
    assert list(error.fields) == ["environment.requirements.1"]
    assert any(BAD_REQUIREMENT in line for line in error.output)
    assert any("interrupted build" in line for line in lines)
    assert any("incomplete environment" in line for line in lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{key}.lock"]


@pytest.mark.skipif(not PLATFORM_IS_A_VENV, reason="the platform does not run from a venv")
def test_system_site_packages_sees_the_platform_venv(tmp_path: Path) -> None:
    """numpy is in the platform's venv only; six 1.16.0 in the environment wins over the
    platform's own six."""
    python = ensure_environment(spec("six==1.16.0", system_site_packages=True), tmp_path,
                                progress=lambda line: None)
    seen = run_python(python, "import numpy, six; print(six.__version__, numpy.__file__)")
    six_version, numpy_file = seen.split()
    assert six_version == "1.16.0"
    assert numpy_file.startswith(sys.prefix)


@pytest.fixture
def persistent_cache() -> Iterator[Path]:
    cache = Path(os.environ.get("AIP_TEST_ENV_CACHE", "~/.cache/aip-test-envs")).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    yield cache


@pytest.mark.slow
def test_numpy_1_beside_the_platforms_numpy_2(persistent_cache: Path) -> None:
    """The MXNet case: a job pins numpy < 2 while the platform runs numpy 2."""
    import numpy

    assert numpy.__version__.startswith("2."), "the platform is expected to run numpy 2"
    python = ensure_environment(spec("numpy==1.26.4"), persistent_cache,
                                progress=lambda line: None)
    assert run_python(python, "import numpy; print(numpy.__version__)") == "1.26.4"


def _other_python() -> str | None:
    """A working CPython of another minor version, if this machine has one."""
    current = f"{sys.version_info[0]}.{sys.version_info[1]}"
    pyenv = sorted((Path.home() / ".pyenv" / "versions").glob("3.*/bin/python3"))
    on_path = [shutil.which(f"python3.{minor}") for minor in range(8, 15)]
    for candidate in [*map(str, pyenv), *filter(None, on_path)]:
        try:
            version = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True, text=True, timeout=30, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if version != current:
            return candidate
    return None
