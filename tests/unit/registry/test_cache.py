"""The node cache: a version fetched once into its content address, verified, and a
download that does not match the registry leaving nothing behind."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from aip.errors import InvalidSpec
from aip.registry import fetch
from aip.registry.transfer import ModelCorrupted, unpack_verified
from aip.registry.tree import FileEntry, TarMember, TarStream, tree_digest
from aip.storage import ArtifactCorrupted, ArtifactStore


def stored_version(store: ArtifactStore, files: dict[str, bytes]) -> dict[str, Any]:
    """A version as the API returns it, its files put in the store."""
    entries = []
    for path, data in files.items():
        info = store.put_bytes(data, f"models/m/1/{path}")
        entries.append(FileEntry(path, info.size, info.sha256 or ""))
    return {"name": "m", "version": 1, "uri": "models:/m/1", "storage_prefix": "models/m/1/",
            "sha256": tree_digest(entries), "files": [e.to_json() for e in entries]}


FILES = {"aip-model.json": b'{"flavor": "onnx", "path": "model.onnx"}',
         "model.onnx": b"\x08\x07" * 1000, "sub/labels.txt": b"a\nb\n"}


def test_a_version_is_fetched_once_into_its_content_address(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    version = stored_version(store, FILES)
    moved: list[int] = []
    path = fetch(version, tmp_path / "cache", store=store, progress=moved.append)
    assert path == tmp_path / "cache" / version["sha256"]
    assert {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*")
            if p.is_file()} == FILES
    assert sum(moved) == sum(len(data) for data in FILES.values())
    store.delete("models")  # the second fetch does not need the store
    assert fetch(version, tmp_path / "cache", store=store) == path
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [version["sha256"]]


def test_a_corrupted_object_fails_the_fetch_and_caches_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    version = stored_version(store, FILES)
    (tmp_path / "store" / "models" / "m" / "1" / "model.onnx").write_bytes(b"tampered")
    with pytest.raises((ArtifactCorrupted, ModelCorrupted), match=r"corrupted|does not match"):
        fetch(version, tmp_path / "cache", store=store)
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_index_that_does_not_match_the_digest_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    version = stored_version(store, FILES)
    version["sha256"] = "0" * 64
    with pytest.raises(ModelCorrupted, match="digest"):
        fetch(version, tmp_path / "cache", store=store)
    assert list((tmp_path / "cache").iterdir()) == []


def test_fetch_needs_a_source_and_a_ready_version(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="needs a client"):
        fetch("models:/m@production", tmp_path)
    with pytest.raises(InvalidSpec, match="not a ready model version"):
        fetch({"uri": "models:/m/1", "sha256": None, "files": []}, tmp_path)


def tar_bytes(files: dict[str, bytes]) -> bytes:
    return b"".join(TarStream([TarMember.of_bytes(p, d) for p, d in files.items()]))


def index(files: dict[str, bytes]) -> list[dict[str, Any]]:
    import hashlib

    return [{"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
            for p, d in files.items()]


def chunked(data: bytes, size: int = 777) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_a_download_unpacks_and_checks_every_file(tmp_path: Path) -> None:
    entries = unpack_verified(chunked(tar_bytes(FILES)), tmp_path / "out", index(FILES))
    assert sorted(e.path for e in entries) == sorted(FILES)
    assert (tmp_path / "out" / "sub" / "labels.txt").read_bytes() == b"a\nb\n"


@pytest.mark.parametrize(("sent", "problem"), [
    pytest.param({**FILES, "model.onnx": b"other bytes"}, "does not match", id="changed-file"),
    pytest.param({k: v for k, v in FILES.items() if k != "sub/labels.txt"}, "lacks",
                 id="missing-file"),
    pytest.param({**FILES, "extra.py": b"import os"}, "does not list", id="extra-file"),
])
def test_a_download_unlike_the_registry_leaves_nothing(
        tmp_path: Path, sent: dict[str, bytes], problem: str) -> None:
    with pytest.raises(ModelCorrupted, match=problem):
        unpack_verified(chunked(tar_bytes(sent)), tmp_path / "out", index(FILES))
    assert list(tmp_path.iterdir()) == []


def test_a_download_goes_only_into_a_new_or_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(Exception, match="not an empty directory"):
        unpack_verified([tar_bytes(FILES)], tmp_path / "out", index(FILES))
    (tmp_path / "empty").mkdir()
    unpack_verified([tar_bytes(FILES)], tmp_path / "empty", index(FILES))
    assert (tmp_path / "empty" / "model.onnx").exists()


def test_manifest_json_in_the_cache_is_what_was_stored(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    path = fetch(stored_version(store, FILES), tmp_path / "cache", store=store)
    assert json.loads((path / "aip-model.json").read_text())["flavor"] == "onnx"
    assert io.BytesIO((path / "model.onnx").read_bytes()).read(2) == b"\x08\x07"
