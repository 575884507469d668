"""Per-job Python environments: pip requirements installed into a virtual environment that is
built once per content hash and then reused by every job that asks for the same content.

    from aip.runtime.envs import ensure_environment

    python = ensure_environment(job.environment, progress=log.info)   # blocks while it builds
    subprocess.run([str(python), "train.py"])

A spec with only ``python`` names an existing interpreter: it is checked (it must start and
answer) and returned as it is. A spec with ``requirements`` gets a venv made from ``python``
(default: the interpreter AIP runs on), then ``pip install`` of the requirements in it.

The cache these environments live in (where it is, its layout, the per-key lock, listing,
removal and pruning) is ``aip.runtime.env_cache``; asking an interpreter what it is, is
``aip.runtime.interpreters``. Their public names are importable from here too.

The key hashes the normalized content, not the text: requirements are a set to pip, so the key
sorts them, and whitespace, the case of project names and the order of version specifiers do
not count (``Six == 1.16.0`` and ``six==1.16.0`` share one environment; pip still gets the lines
in the order written). The base interpreter counts by implementation, version and machine
(``cpython-3.11.7-x86_64``), not by path, unless the spec names one in ``python``.

Concurrency: replicas on one node may ask for the same environment at once. Whoever takes
``<key>.lock`` first builds; the others wait on the lock, then find the environment complete
and reuse it. Builds happen in a temporary directory that is renamed into place, so a killed
build never leaves something that looks complete; the next builder deletes its leftovers.

Worth knowing:
- An unpinned requirement (``numpy``) is resolved once: the environment keeps what pip chose
  then. ``aip env remove KEY`` makes the next job build it afresh.
- ``system_site_packages`` with a base interpreter that is itself a venv (the platform's own)
  sees that venv's packages, not only the installation under it.
- ``aip env prune`` goes by ``aip-last-used``, touched each time a job starts with the
  environment; it does not know about jobs still running from an earlier start.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from aip.runtime.env_cache import (
    LAST_USED_FILE,
    METADATA_FILE,
    EnvironmentInfo,
    EnvironmentSettings,
    Progress,
    clear_leftovers,
    default_cache_dir,
    is_complete,
    key_lock,
    list_environments,
    prune_environments,
    read_info,
    remove_environment,
    touch_last_used,
)
from aip.runtime.interpreters import (
    PROBE_TIMEOUT_S,
    EnvironmentBuildError,
    Interpreter,
    clean_environment,
    probe_interpreter,
)
from aip.runtime.pip_output import (
    REQUIREMENT_HEAD,
    PipFailure,
    canonical_name,
    explain_pip_failure,
    matching_requirement,
    same_project,
)
from aip.spec.job import EnvironmentSpec

__all__ = [
    "KEY_FORMAT",
    "KEY_LENGTH",
    "LAST_USED_FILE",
    "METADATA_FILE",
    "METADATA_FORMAT",
    "PROBE_TIMEOUT_S",
    "EnvironmentBuildError",
    "EnvironmentInfo",
    "EnvironmentSettings",
    "Interpreter",
    "Progress",
    "default_cache_dir",
    "ensure_environment",
    "environment_key",
    "explain_pip_failure",
    "find_environment",
    "list_environments",
    "normalize_requirement",
    "probe_interpreter",
    "prune_environments",
    "remove_environment",
]

METADATA_FORMAT: Final = 1
KEY_FORMAT: Final = 1
KEY_LENGTH: Final = 16
VENV_TIMEOUT_S: Final = 600.0
FREEZE_TIMEOUT_S: Final = 120.0
OUTPUT_TAIL_LINES: Final = 400


def environment_key(spec: EnvironmentSpec, base_python: str = sys.executable) -> str:
    """The cache key of ``spec`` built on ``spec.python`` (else ``base_python``): the first 16
    hex digits of a SHA-256 over the normalized content. Runs the interpreter once to learn its
    version (cached per interpreter file)."""
    interpreter = probe_interpreter(spec.python or base_python, field=_python_field(spec))
    return _key_for(spec, interpreter)


def ensure_environment(spec: EnvironmentSpec, cache_dir: Path | None = None, *,
                       base_python: str = sys.executable, progress: Progress = print) -> Path:
    """The interpreter to run a job with: ``spec.python`` itself when there are no
    requirements, else ``<cache>/<key>/bin/python``, building the environment first if no
    complete one exists. Blocking; safe to call from many threads and processes at once.
    Progress lines (pip's own output included) go to ``progress`` without a prefix.

    Raises ``EnvironmentBuildError`` naming the field, and the requirement pip failed on.
    """
    interpreter = probe_interpreter(spec.python or base_python, field=_python_field(spec))
    if not spec.requirements:
        return Path(interpreter.path)
    # Absolute, so the paths baked into the environment's scripts do not depend on the cwd.
    cache = Path(os.path.abspath(cache_dir or default_cache_dir()))
    key = _key_for(spec, interpreter)
    final = cache / key
    if is_complete(final, key):
        touch_last_used(final)
        progress(f"using cached environment {key}")
        return final / "bin" / "python"
    cache.mkdir(parents=True, exist_ok=True)
    with key_lock(cache, key, progress):
        if is_complete(final, key):
            progress(f"environment {key} was built by another process; reusing it")
        else:
            clear_leftovers(cache, key, progress)
            _build(spec, interpreter, cache, key, progress)
        touch_last_used(final)
    return final / "bin" / "python"


def find_environment(spec: EnvironmentSpec, cache_dir: Path | None = None, *,
                     base_python: str = sys.executable) -> EnvironmentInfo | None:
    """The complete cached environment for ``spec``, or None. Builds nothing."""
    if not spec.requirements:
        return None
    cache = cache_dir or default_cache_dir()
    key = environment_key(spec, base_python)
    return read_info(cache / key) if is_complete(cache / key, key) else None


def normalize_requirement(line: str) -> str:
    """One requirement in the form the key hashes: canonical project name, sorted extras and
    specifiers, no whitespace; a marker keeps single spaces between words."""
    requirement, _, marker = line.partition(";")
    match = REQUIREMENT_HEAD.match(requirement.strip())
    if match is None:
        head = "".join(requirement.split())
    else:
        name, extras, rest = match[1], match[2] or "", "".join(match[3].split())
        extra_names = sorted({canonical_name(e) for e in extras.strip("[]").split(",")
                              if e.strip()})
        head = canonical_name(name) + (f"[{','.join(extra_names)}]" if extra_names else "")
        if rest.startswith("@"):
            head += rest  # a direct reference (URL) is kept as written
        else:
            head += ",".join(sorted(s for s in rest.strip("()").split(",") if s))
    if not marker.strip():
        return head
    marker_text = re.sub(r"\s*(===|==|!=|~=|<=|>=|<|>)\s*", r"\1", " ".join(marker.split()))
    return f"{head};{marker_text.replace(chr(34), chr(39))}"


# --- the key -----------------------------------------------------------------------------

def _python_field(spec: EnvironmentSpec) -> str | None:
    return "environment.python" if spec.python else None


def _key_for(spec: EnvironmentSpec, interpreter: Interpreter) -> str:
    content = {
        "format": KEY_FORMAT,
        "requirements": sorted({normalize_requirement(r) for r in spec.requirements}),
        "python": spec.python.strip() if spec.python else None,
        "system_site_packages": spec.system_site_packages,
        "interpreter": f"{interpreter.implementation}-{interpreter.version}-"
                       f"{interpreter.machine}",
    }
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:KEY_LENGTH]


# --- building -----------------------------------------------------------------------------

def _build(spec: EnvironmentSpec, interpreter: Interpreter, cache: Path, key: str,
           progress: Progress) -> None:
    started = time.monotonic()
    final = cache / key
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.build-", dir=cache))
    try:
        os.chmod(staging, 0o755)  # mkdtemp makes it private; jobs of other users read it too
        progress(f"building environment {key} on {interpreter.label} ({interpreter.path})")
        progress("creating the virtual environment")
        _create_venv(spec, interpreter, staging, key, progress)
        progress(f"pip install {' '.join(spec.requirements)}")
        python = staging / "bin" / "python"
        _pip_install(spec, python, progress)
        frozen = _pip_freeze(python)
        _relocate(staging, final)
        _write_metadata(staging, spec, interpreter, key, frozen, time.monotonic() - started)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress(f"environment {key} ready in {time.monotonic() - started:.1f}s")


def _create_venv(spec: EnvironmentSpec, interpreter: Interpreter, staging: Path, key: str,
                 progress: Progress) -> None:
    # The prompt would otherwise be the build directory's name, which is renamed away.
    argv = [interpreter.path, "-m", "venv", "--prompt", f"aip-{key}"]
    if spec.system_site_packages:
        argv.append("--system-site-packages")
    returncode, tail = _stream([*argv, str(staging)], progress, timeout_s=VENV_TIMEOUT_S)
    if returncode != 0:
        detail = next((line.strip() for line in reversed(tail) if line.strip()),
                      f"exit status {returncode}")
        field = _python_field(spec) or "environment"
        text = f"{interpreter.path} -m venv failed: {detail}"
        raise EnvironmentBuildError(f"cannot build the Python environment: {field}: {text}",
                                    fields={field: text}, output=tail)
    if spec.system_site_packages and interpreter.in_virtualenv:
        _see_base_virtualenv(staging, interpreter)


def _see_base_virtualenv(staging: Path, interpreter: Interpreter) -> None:
    """``venv --system-site-packages`` run from a venv sees the packages of the installation
    under that venv, not the venv's own. Add the base venv's site-packages (and run its .pth
    files) after the new environment's own, so "the base interpreter's packages" means the
    packages that interpreter actually imports."""
    own = sorted(staging.glob("lib/*/site-packages"))
    if not own or not interpreter.site_packages:
        return
    lines = [f"import site; site.addsitedir({directory!r})"
             for directory in interpreter.site_packages]
    (own[0] / "_aip_base_environment.pth").write_text("\n".join(lines) + "\n")


def _pip_install(spec: EnvironmentSpec, python: Path, progress: Progress) -> None:
    argv = [str(python), "-m", "pip", "install", "--disable-pip-version-check",
            "--progress-bar", "off", "--no-input", "--", *spec.requirements]
    returncode, tail = _stream(argv, progress)
    if returncode == 0:
        return
    raise _pip_error(spec, explain_pip_failure(tail, returncode), tail)


def _pip_error(spec: EnvironmentSpec, failure: PipFailure,
               output: Sequence[str]) -> EnvironmentBuildError:
    requirement = failure.requirement
    field = "environment.requirements"
    index = matching_requirement(spec.requirements, requirement, failure.required_by)
    if index is not None:
        field = f"environment.requirements.{index}"
        if requirement is not None and same_project(requirement, spec.requirements[index]):
            requirement = spec.requirements[index]
    if requirement is None:
        text = f"pip could not install the requirements: {failure.reason}"
    else:
        via = f" (required by {failure.required_by})" if failure.required_by else ""
        text = f"pip could not install {requirement!r}{via}: {failure.reason}"
    return EnvironmentBuildError(f"cannot build the Python environment: {field}: {text}",
                                 requirement=requirement, fields={field: text}, output=output)


def _pip_freeze(python: Path) -> list[str]:
    """What the environment holds, for the record; an empty list when pip cannot tell."""
    try:
        result = subprocess.run(
            [str(python), "-m", "pip", "freeze", "--local", "--disable-pip-version-check"],
            capture_output=True, text=True, timeout=FREEZE_TIMEOUT_S, env=clean_environment(),
            check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return result.stdout.splitlines() if result.returncode == 0 else []


def _relocate(staging: Path, final: Path) -> None:
    """Point the scripts in ``bin/`` (pip, console scripts, activate) and ``pyvenv.cfg`` at the
    final directory: they name the interpreter by the absolute path the build ran under."""
    old_paths = {str(staging), os.path.realpath(staging)}
    replacements = [(old.encode(), str(final).encode()) for old in old_paths]
    bin_dir = staging / "bin"
    candidates = [*bin_dir.iterdir(), staging / "pyvenv.cfg"] if bin_dir.is_dir() else []
    for path in candidates:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 1 << 20:
            continue
        data = original = path.read_bytes()
        for old, new in replacements:
            data = data.replace(old, new)
        if data != original:
            path.write_bytes(data)


def _write_metadata(staging: Path, spec: EnvironmentSpec, interpreter: Interpreter, key: str,
                    frozen: list[str], build_seconds: float) -> None:
    metadata = {
        "format": METADATA_FORMAT,
        "key": key,
        "requirements": list(spec.requirements),
        "python": spec.python,
        "system_site_packages": spec.system_site_packages,
        "base_python": interpreter.path,
        "python_version": interpreter.label,
        "implementation": interpreter.implementation,
        "version": interpreter.version,
        "machine": interpreter.machine,
        "created": datetime.now(UTC).isoformat(),
        "build_seconds": round(build_seconds, 3),
        "pip_freeze": frozen,
    }
    (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")


def _stream(argv: list[str], progress: Progress, *,
            timeout_s: float | None = None) -> tuple[int, list[str]]:
    """Run ``argv`` (never through a shell), hand each non-empty output line to ``progress``,
    and return the exit status with the last lines. The child is killed after ``timeout_s``
    or when we are interrupted."""
    tail: deque[str] = deque(maxlen=OUTPUT_TAIL_LINES)
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", bufsize=1, env=clean_environment()) as process:
        assert process.stdout is not None
        timed_out = threading.Event()

        def kill_on_timeout() -> None:
            timed_out.set()
            process.kill()

        watchdog = threading.Timer(timeout_s, kill_on_timeout) if timeout_s else None
        if watchdog is not None:
            watchdog.daemon = True
            watchdog.start()
        try:
            for raw in process.stdout:
                line = raw.rstrip("\r\n")
                tail.append(line)
                if line.strip():
                    progress(line)
            returncode = process.wait()
        except BaseException:
            process.kill()
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()
    if timed_out.is_set():
        tail.append(f"(killed after {timeout_s:g}s)")
    return returncode, list(tail)
