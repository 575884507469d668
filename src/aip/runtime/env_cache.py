"""The cache of per-job Python environments on a node: where it is, which entries are
complete, the per-key lock, and listing, removing and pruning entries (``aip env list``,
``aip env remove``, ``aip env prune``). Building an entry is ``aip.runtime.envs``'s job; it
re-exports the public names of this module.

Cache layout (``default_cache_dir()``: ``$AIP_ENV_CACHE``, else ``$AIP_HOME/envs``)::

    <cache>/<key>/                 a complete environment (a venv); <key> = environment_key()
    <cache>/<key>/aip-env.json     written last, so its presence marks the environment complete:
                                   key, requirements, base interpreter, created, pip freeze
    <cache>/<key>/aip-last-used    its mtime is the last time a job asked for the environment
    <cache>/<key>.lock             flock(2) held by the one process building or removing <key>
    <cache>/.<key>.build-XXXX/     a build in progress, renamed to <key> once complete
    <cache>/.<key>.trash-XXXX/     an environment being deleted

Removal takes the key's lock without waiting (``Conflict`` while a build holds it), renames
the entry out of the way, then deletes it: deletion is not atomic, renaming is.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from pydantic_settings import BaseSettings, SettingsConfigDict

from aip.errors import Conflict, InvalidSpec, NotFound

Progress = Callable[[str], None]

METADATA_FILE: Final = "aip-env.json"
LAST_USED_FILE: Final = "aip-last-used"


class EnvironmentSettings(BaseSettings):
    """``AIP_ENV_CACHE``: where built environments live (default ``$AIP_HOME/envs``)."""

    model_config = SettingsConfigDict(env_prefix="AIP_", extra="ignore")

    env_cache: Path | None = None


@dataclass(frozen=True)
class EnvironmentInfo:
    """A complete environment in the cache, as ``aip env list`` shows it."""

    key: str
    path: Path
    requirements: tuple[str, ...]
    python_version: str  # "CPython 3.11.7"
    base_python: str
    system_site_packages: bool
    created: datetime
    last_used: datetime
    size_bytes: int | None

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key, "path": str(self.path), "python": str(self.python),
            "requirements": list(self.requirements), "python_version": self.python_version,
            "base_python": self.base_python, "system_site_packages": self.system_site_packages,
            "created": self.created.isoformat(), "last_used": self.last_used.isoformat(),
            "size_bytes": self.size_bytes,
        }


def default_cache_dir() -> Path:
    """``$AIP_ENV_CACHE`` if set, else ``$AIP_HOME/envs`` (``~/.aip/envs``)."""
    from aip.config import Settings

    configured = EnvironmentSettings().env_cache
    return (configured or Settings().home / "envs").expanduser()


def list_environments(cache_dir: Path | None = None, *,
                      with_size: bool = True) -> list[EnvironmentInfo]:
    """The complete environments in the cache, most recently used first. ``with_size`` walks
    each one to add up its files (slow for big environments)."""
    cache = cache_dir or default_cache_dir()
    if not cache.is_dir():
        return []
    found = []
    for path in cache.iterdir():
        if path.name.startswith(".") or not path.is_dir() or not is_complete(path, path.name):
            continue
        info = read_info(path, with_size=with_size)
        if info is not None:
            found.append(info)
    return sorted(found, key=lambda info: info.last_used, reverse=True)


def remove_environment(cache_dir: Path | None, key: str) -> EnvironmentInfo:
    """Delete the environment ``key`` (or the one a unique key prefix names). Raises NotFound,
    InvalidSpec for an ambiguous prefix, or Conflict while another process builds it."""
    cache = cache_dir or default_cache_dir()
    info = _resolve_key(cache, key)
    _remove(cache, info)
    return info


def prune_environments(cache_dir: Path | None, older_than_s: float, *, now: float | None = None,
                       dry_run: bool = False) -> list[EnvironmentInfo]:
    """Delete the environments no job has asked for in ``older_than_s`` seconds, and the
    leftovers of killed builds. Environments busy building are skipped. Returns what was (or,
    with ``dry_run``, would be) removed."""
    cache = cache_dir or default_cache_dir()
    cutoff = (time.time() if now is None else now) - older_than_s
    stale = [info for info in list_environments(cache)
             if info.last_used.timestamp() < cutoff]
    if dry_run:
        return stale
    removed = []
    for info in stale:
        try:
            _remove(cache, info)
        except Conflict:
            continue
        removed.append(info)
    _remove_abandoned_builds(cache)
    return removed


def is_complete(path: Path, key: str) -> bool:
    """Complete: the metadata (written last) names this key, and the interpreter still runs
    from here (its base installation may have been removed since)."""
    try:
        metadata = json.loads((path / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(metadata, dict) and metadata.get("key") == key
            and (path / "bin" / "python").exists())


def touch_last_used(path: Path) -> None:
    """Record that a job asked for the environment at ``path`` now (``aip env prune`` goes
    by it)."""
    try:
        (path / LAST_USED_FILE).touch()
    except OSError:
        pass  # a read-only cache still serves jobs; prune then goes by the creation time


@contextmanager
def key_lock(cache: Path, key: str, progress: Progress, *, wait: bool = True) -> Iterator[None]:
    """Hold ``<cache>/<key>.lock`` exclusively. ``wait=False`` raises Conflict when it is held.
    Re-checks after locking that the file is still the one at that path, since removal
    deletes the lock file while holding it."""
    path = cache / f"{key}.lock"
    told = False
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise Conflict(f"environment {key} is being built or removed by another "
                                   "process; try again when it is done") from None
                if not told:
                    progress(f"waiting for another process to finish building environment "
                             f"{key}")
                    told = True
                fcntl.flock(descriptor, fcntl.LOCK_EX)
            if _same_file(descriptor, path):
                break
        except BaseException:
            os.close(descriptor)
            raise
        os.close(descriptor)
    try:
        yield
    finally:
        os.close(descriptor)  # closing the descriptor releases the lock


def clear_leftovers(cache: Path, key: str, progress: Progress) -> None:
    """Called holding the key's lock, so no build of ``key`` is running: any temporary
    directory of ``key`` belongs to a killed process, and ``<key>`` itself is incomplete."""
    for leftover in [*cache.glob(f".{key}.build-*"), *cache.glob(f".{key}.trash-*")]:
        progress(f"removing {leftover.name}, left by an interrupted build")
        shutil.rmtree(leftover, ignore_errors=True)
    final = cache / key
    if final.exists() or final.is_symlink():
        progress(f"removing the incomplete environment {key}")
        _discard(cache, key)


def read_info(path: Path, *, with_size: bool = True) -> EnvironmentInfo | None:
    """What the metadata of the environment at ``path`` says; None when it cannot be read."""
    try:
        metadata = json.loads((path / METADATA_FILE).read_text())
        created = datetime.fromisoformat(str(metadata["created"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        last_used = datetime.fromtimestamp((path / LAST_USED_FILE).stat().st_mtime, UTC)
    except OSError:
        last_used = created
    return EnvironmentInfo(
        key=path.name, path=path,
        requirements=tuple(str(r) for r in metadata.get("requirements") or ()),
        python_version=str(metadata.get("python_version") or "-"),
        base_python=str(metadata.get("base_python") or "-"),
        system_site_packages=bool(metadata.get("system_site_packages")),
        created=created, last_used=last_used,
        size_bytes=_directory_size(path) if with_size else None)


# --- helpers ------------------------------------------------------------------------------

def _resolve_key(cache: Path, key: str) -> EnvironmentInfo:
    environments = list_environments(cache, with_size=True)
    exact = [info for info in environments if info.key == key]
    matches = exact or [info for info in environments if key and info.key.startswith(key)]
    if not matches:
        raise NotFound(f"no environment {key!r} in {cache}: see `aip env list`")
    if len(matches) > 1:
        keys = ", ".join(info.key for info in matches)
        raise InvalidSpec(f"key prefix {key!r} matches {len(matches)} environments ({keys}): "
                          "give more of the key")
    return matches[0]


def _remove(cache: Path, info: EnvironmentInfo) -> None:
    with key_lock(cache, info.key, _ignore, wait=False):
        if (cache / info.key).exists():
            _discard(cache, info.key)
        (cache / f"{info.key}.lock").unlink(missing_ok=True)


def _remove_abandoned_builds(cache: Path) -> None:
    """Temporary directories whose key is not locked belong to killed processes."""
    pattern = re.compile(r"^\.([0-9a-f]+)\.(build|trash)-")
    for path in cache.glob(".*"):
        match = pattern.match(path.name)
        if match is None:
            continue
        try:
            with key_lock(cache, match[1], _ignore, wait=False):
                shutil.rmtree(path, ignore_errors=True)
                if not (cache / match[1]).exists():
                    (cache / f"{match[1]}.lock").unlink(missing_ok=True)
        except Conflict:
            continue


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _discard(cache: Path, key: str) -> None:
    """Rename out of the way first: deletion is not atomic, renaming is."""
    trash = cache / f".{key}.trash-{secrets.token_hex(4)}"
    os.rename(cache / key, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _directory_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def _ignore(_: str) -> None:
    return None
