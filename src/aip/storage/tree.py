"""The files of a local directory as artifact keys, for ``ArtifactStore.put_dir``.

Symbolic links are followed only while they stay inside the directory: a job's output
directory holding ``token -> ~/.aip/token`` must not upload the server's secrets, so a link
that leaves the directory is an error that names it. A broken link is skipped with a warning;
a link to a directory already walked (a cycle) is skipped; sockets and FIFOs are skipped.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from aip.errors import InvalidSpec, NotFound

log = logging.getLogger("aip.storage")


def files_under(directory: Path) -> list[tuple[str, Path]]:
    """``(relative posix path, file to read)`` for every file under ``directory``, sorted."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise NotFound(f"{directory} is not a directory")
    root = root.resolve()
    found: list[tuple[str, Path]] = []
    _walk(root, "", root, {root}, found)
    return sorted(found)


def _walk(directory: Path, relative: str, root: Path, visited: set[Path],
          found: list[tuple[str, Path]]) -> None:
    with os.scandir(directory) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            name = f"{relative}/{entry.name}" if relative else entry.name
            path = Path(entry.path)
            if entry.is_symlink():
                _follow(path, name, root, visited, found)
            elif entry.is_dir(follow_symlinks=False):
                visited.add(path)
                _walk(path, name, root, visited, found)
            elif entry.is_file(follow_symlinks=False):
                found.append((name, path))


def _follow(link: Path, name: str, root: Path, visited: set[Path],
            found: list[tuple[str, Path]]) -> None:
    target = link.resolve()
    if not target.is_relative_to(root):
        raise InvalidSpec(
            f"{link} is a symbolic link to {target}, outside {root}; links may only point "
            "inside the uploaded directory: copy the file in or remove the link",
            fields={"path": str(link)})
    if target.is_dir():
        if target not in visited:
            visited.add(target)
            _walk(target, name, root, visited, found)
    elif target.is_file():
        found.append((name, target))
    else:
        log.warning("skipping %s: the link is broken (-> %s)", link, target)
