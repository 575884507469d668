"""The Python interpreters per-job environments are built on: asking one what it is
(``probe_interpreter``: implementation, version, machine, whether it is a venv), and the
environment variables every child interpreter of a build runs with.

``EnvironmentBuildError`` is defined here, the lowest module that raises it (an interpreter
that is missing or does not answer); ``aip.runtime.envs`` raises it too, when pip or venv
fails, and re-exports it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from aip.errors import InvalidSpec

PROBE_TIMEOUT_S: Final = 30.0
# Variables that would send pip's files somewhere other than the environment, or mix another
# installation's packages into it.
_SCRUBBED_VARIABLES: Final = ("PYTHONPATH", "PYTHONHOME", "PIP_TARGET", "PIP_PREFIX", "PIP_ROOT",
                              "PIP_USER", "PIP_REQUIRE_VIRTUALENV")
# Runs under the interpreter being asked, so it stays valid Python 2.7 as well.
_PROBE_SOURCE = """\
import json, platform, site, sys
get = getattr(site, "getsitepackages", None)
print(json.dumps({
    "implementation": platform.python_implementation().lower(),
    "version": "%d.%d.%d" % sys.version_info[:3],
    "machine": platform.machine(),
    "in_virtualenv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
    "site_packages": get() if get else [],
}))
"""


class EnvironmentBuildError(InvalidSpec):
    """A job's environment could not be made: pip failed, or an interpreter does not run.

    ``requirement`` is the requirement pip failed on when its output tells (None otherwise);
    ``output`` holds the last lines pip printed, for people who want the whole story.
    """

    code = "environment_build_failed"
    http_status = 422

    def __init__(self, message: str, *, requirement: str | None = None,
                 fields: dict[str, str] | None = None, output: Sequence[str] = ()) -> None:
        super().__init__(message, fields=fields)
        self.requirement = requirement
        self.output: tuple[str, ...] = tuple(output)


@dataclass(frozen=True)
class Interpreter:
    """What a Python interpreter says about itself."""

    path: str
    implementation: str  # cpython, pypy
    version: str  # major.minor.micro
    machine: str  # platform.machine(): x86_64, aarch64
    in_virtualenv: bool
    site_packages: tuple[str, ...]

    @property
    def label(self) -> str:
        """For people: ``CPython 3.11.7``."""
        names = {"cpython": "CPython", "pypy": "PyPy"}
        return f"{names.get(self.implementation, self.implementation)} {self.version}"


def probe_interpreter(python: str, *, field: str | None = None) -> Interpreter:
    """Run ``python`` once (with a timeout) to learn its implementation and version. Raises
    ``EnvironmentBuildError`` naming ``field`` when it is missing or does not answer."""
    path = _locate(python, field)
    try:
        stat = os.stat(path)
    except OSError:
        raise _interpreter_error(field, f"{python} does not exist") from None
    return _probe(path, stat.st_mtime_ns, field)


def clean_environment() -> dict[str, str]:
    """This process's environment variables without those that would mix another
    installation into a child interpreter, and with its output unbuffered."""
    environment = {name: value for name, value in os.environ.items()
                   if name not in _SCRUBBED_VARIABLES}
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


# --- helpers ------------------------------------------------------------------------------

def _locate(python: str, field: str | None) -> str:
    """An absolute path for ``python``; a bare name is looked up on PATH. Symlinks are kept:
    a venv's interpreter is a symlink, and resolving it would leave the venv."""
    if os.sep in python:
        return os.path.abspath(os.path.expanduser(python))
    found = shutil.which(python)
    if found is None:
        raise _interpreter_error(field, f"{python} is not on PATH; give an absolute path")
    return os.path.abspath(found)


def _interpreter_error(field: str | None, text: str) -> EnvironmentBuildError:
    if field is None:
        return EnvironmentBuildError(f"the base interpreter cannot be used: {text}")
    return EnvironmentBuildError(f"cannot use the interpreter: {field}: {text}",
                                 fields={field: text})


@lru_cache(maxsize=64)
def _probe(path: str, mtime_ns: int, field: str | None) -> Interpreter:
    del mtime_ns  # part of the cache key only: a replaced interpreter is asked again
    try:
        result = subprocess.run([path, "-c", _PROBE_SOURCE], capture_output=True, text=True,
                                timeout=PROBE_TIMEOUT_S, env=clean_environment(),
                                check=False)
    except PermissionError:
        raise _interpreter_error(field, f"{path} is not executable") from None
    except OSError as exc:
        raise _interpreter_error(field, f"{path} cannot run: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise _interpreter_error(
            field, f"{path} did not answer within {PROBE_TIMEOUT_S:g}s") from None
    if result.returncode != 0:
        detail = _last_line(result.stderr) or f"exit status {result.returncode}"
        raise _interpreter_error(field, f"{path} is not a working Python: {detail}")
    try:
        facts = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise _interpreter_error(field, f"{path} is not a Python interpreter") from None
    return Interpreter(path=path, implementation=str(facts["implementation"]),
                       version=str(facts["version"]), machine=str(facts["machine"]),
                       in_virtualenv=bool(facts["in_virtualenv"]),
                       site_packages=tuple(str(p) for p in facts["site_packages"]))


def _last_line(text: str) -> str:
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
