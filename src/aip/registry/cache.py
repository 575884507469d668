"""A node's cache of model versions: each version's directory once, under its content
address, verified by sha256 before anyone sees it.

    path = fetch("models:/fraud@production", cache_dir, client=Client())   # through the API
    path = fetch(version, cache_dir, store=platform.artifacts)            # straight from storage
    manifest = read_manifest(path)

``version`` is what the API returns for a version (``client.resolve_model(uri)``): its
``sha256`` (the digest of its file index) names the directory ``cache_dir/<sha256>``, and its
``files`` give each file's size and sha256. A directory is filled in a scratch directory
beside it, checked file by file and as a whole, then renamed into place; so a directory in
the cache is complete and correct, two replicas fetching at once both end with the same one,
and a crash leaves only scratch that the next fetch removes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aip.errors import InvalidSpec
from aip.registry.transfer import ModelCorrupted, Progress
from aip.registry.tree import FileEntry, tree_digest

if TYPE_CHECKING:
    from aip.client import Client
    from aip.registry.uris import ModelRef
    from aip.storage import ArtifactStore

SCRATCH_PREFIX = ".fetch-"
STALE_SCRATCH_SECONDS = 24 * 3600


def fetch(model: str | ModelRef | Mapping[str, Any], cache_dir: Path, *,
          client: Client | None = None, store: ArtifactStore | None = None,
          progress: Progress | None = None) -> Path:
    """The local directory of a model version, downloaded on first use.

    ``model`` is a URI (resolved through ``client``) or a version as the API returns it. The
    files come from ``store`` when given (a node with access to the object storage), else
    through ``client``'s API.
    """
    version = _version(model, client)
    digest = str(version.get("sha256") or "")
    if len(digest) != 64:
        raise InvalidSpec(f"{version.get('uri', model)!r} is not a ready model version",
                          fields={"model": "no content digest"})
    cache_dir = Path(cache_dir)
    target = cache_dir / digest
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_scratch(cache_dir)
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=cache_dir))
    try:
        tree = scratch / "tree"
        if store is not None:
            entries = _from_store(store, version, tree, progress)
        elif client is not None:
            entries = _from_api(client, version, tree, progress)
        else:
            raise InvalidSpec("fetch needs a client (the API) or a store (object storage)",
                              fields={"source": "give client= or store="})
        if tree_digest(entries) != digest:
            raise ModelCorrupted(f"{version.get('uri')}: the files' digest differs from the "
                                 f"registry's {digest}")
        try:
            os.rename(tree, target)
        except OSError:
            if not target.is_dir():  # not a lost race with another fetch of the same version
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _version(model: str | ModelRef | Mapping[str, Any], client: Client | None
             ) -> Mapping[str, Any]:
    if isinstance(model, Mapping):
        return model
    if client is None:
        raise InvalidSpec(f"resolving {str(model)!r} needs a client", fields={
            "client": "required to resolve a URI"})
    return client.resolve_model(str(model))


def _from_api(client: Client, version: Mapping[str, Any], tree: Path,
              progress: Progress | None) -> list[FileEntry]:
    client.download_model(version, tree, progress=progress)  # each file checked as it lands
    return [FileEntry(str(item["path"]), int(item["size"]), str(item["sha256"]))
            for item in version["files"]]


def _from_store(store: ArtifactStore, version: Mapping[str, Any], tree: Path,
                progress: Progress | None) -> list[FileEntry]:
    from aip.registry.tree import extract_member
    from aip.storage.keys import join

    prefix = str(version["storage_prefix"]).rstrip("/")
    entries = []
    for item in version["files"]:
        path = str(item["path"])
        target = tree / path
        if not target.resolve().is_relative_to(tree.resolve()):
            raise ModelCorrupted(f"the registry lists a file outside the model: {path!r}")
        try:
            with store.open(join(prefix, path)) as stream:
                entry = extract_member(stream, target, str(item["sha256"]), progress)
        except OSError as exc:
            raise ModelCorrupted(f"{path} does not match the registry: {exc}") from None
        entries.append(FileEntry(path, entry.size, entry.sha256))
    return entries


def _remove_stale_scratch(cache_dir: Path) -> None:
    cutoff = time.time() - STALE_SCRATCH_SECONDS
    for leftover in cache_dir.glob(f"{SCRATCH_PREFIX}*"):
        try:
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass
