"""The artifact store, the same suite against a directory and against the real S3 HTTP protocol
(moto's standalone server): round trips, recorded hashes that catch corruption, streaming,
atomic writes and downloads, prefixes, and keys that never escape."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from aip.errors import Conflict, InvalidSpec, NotFound
from aip.storage import ArtifactCorrupted, ArtifactStore
from aip.storage.backends import PART_SIZE
from aip.storage.transfer import CHUNK


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def tamper(store: ArtifactStore, key: str, data: bytes) -> None:
    """Change an object behind the store's back, as bit rot or another tool would."""
    store.fs.pipe_file(store.url_of(key), data)


class Counter:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, moved: int) -> None:
        self.calls.append(moved)


class Trickle(io.RawIOBase):
    """An upload body that arrives in pieces and is never whole in memory; can fail midway."""

    def __init__(self, size: int, fail_after: int | None = None) -> None:
        self.left, self.sent, self.fail_after = size, 0, fail_after
        self.digest = hashlib.sha256()
        self.largest_read = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        self.largest_read = max(self.largest_read, n)
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise ConnectionResetError("client went away")
        size = min(n if n > 0 else self.left, self.left, 256 * 1024)
        data = bytes([self.sent % 251]) * size
        self.left -= size
        self.sent += size
        self.digest.update(data)
        return data


def test_a_file_goes_up_and_comes_back_with_its_hash(store: ArtifactStore,
                                                     tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK + 17)
    source = write(tmp_path / "model.onnx", data)
    uploaded = Counter()

    info = store.put_file(source, "models/iris/3/model.onnx", progress=uploaded)

    assert (info.key, info.size, info.sha256) == ("models/iris/3/model.onnx", len(data), sha(data))
    assert sum(uploaded.calls) == len(data) and len(uploaded.calls) == 4
    assert store.info("models/iris/3/model.onnx").sha256 == sha(data)
    downloaded = Counter()
    back = store.get_file("models/iris/3/model.onnx", tmp_path / "out" / "model.onnx",
                          progress=downloaded)
    assert (tmp_path / "out" / "model.onnx").read_bytes() == data
    assert back.sha256 == sha(data) and back.modified is not None
    assert sum(downloaded.calls) == len(data)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["model.onnx"]  # no .part left


def test_a_directory_goes_up_and_comes_back(store: ArtifactStore, tmp_path: Path) -> None:
    model = tmp_path / "model"
    write(model / "aip-model.json", b'{"format": 1}')
    write(model / "variables" / "weights.bin", os.urandom(1000))
    write(model / "variables" / "empty", b"")
    moved = Counter()

    infos = store.put_dir(model, "models/tf/1/", progress=moved)

    assert [i.key for i in infos] == ["models/tf/1/aip-model.json", "models/tf/1/variables/empty",
                                      "models/tf/1/variables/weights.bin"]
    assert sum(moved.calls) == 1013
    store.get_dir("models/tf/1", tmp_path / "copy")
    for path in model.rglob("*"):
        if path.is_file():
            assert (tmp_path / "copy" / path.relative_to(model)).read_bytes() == path.read_bytes()
    assert store.info("models/tf/1/variables/empty").sha256 == sha(b"")


def test_an_upload_stream_goes_through_in_chunks(store: ArtifactStore, tmp_path: Path) -> None:
    body = Trickle(PART_SIZE + 3 * CHUNK)  # more than one S3 multipart part

    info = store.put_stream(body, "uploads/big.bin")  # type: ignore[arg-type]

    assert body.largest_read <= CHUNK
    assert info.size == PART_SIZE + 3 * CHUNK and info.sha256 == body.digest.hexdigest()
    assert store.list("uploads") == [store.info("uploads/big.bin")]
    with store.open("uploads/big.bin") as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == info.sha256


def test_a_failed_upload_leaves_nothing_behind(store: ArtifactStore) -> None:
    store.put_bytes(b"version 1", "models/m/weights")
    body = Trickle(PART_SIZE * 2, fail_after=PART_SIZE + CHUNK)  # a part is already up

    with pytest.raises(ConnectionResetError):
        store.put_stream(body, "models/m/weights")  # type: ignore[arg-type]
    with pytest.raises(ConnectionResetError):
        store.put_stream(Trickle(10, fail_after=0), "models/m/other")  # type: ignore[arg-type]

    assert store.read_bytes("models/m/weights", verify=False) == b"version 1"
    assert [i.key for i in store.list()] == ["models/m/weights"]


def test_small_objects_round_trip_as_bytes(store: ArtifactStore) -> None:
    info = store.put_bytes(b'{"flavor": "onnx"}', "models/m/aip-model.json")
    assert store.read_bytes("models/m/aip-model.json") == b'{"flavor": "onnx"}'
    assert info.sha256 == sha(b'{"flavor": "onnx"}')
    store.put_bytes(b"second", "models/m/aip-model.json")  # replaced, hash recorded anew
    assert store.read_bytes("models/m/aip-model.json") == b"second"
    assert store.info("models/m/aip-model.json").sha256 == sha(b"second")


def test_a_corrupted_object_is_caught_on_every_read(store: ArtifactStore,
                                                    tmp_path: Path) -> None:
    store.put_bytes(b"the real weights", "models/m/weights.bin")
    local = write(tmp_path / "downloads" / "weights.bin", b"an earlier good copy")
    tamper(store, "models/m/weights.bin", b"the rotten weights")

    with pytest.raises(ArtifactCorrupted) as caught:
        store.get_file("models/m/weights.bin", local)
    assert "models/m/weights.bin" in caught.value.message
    assert store.url in caught.value.message and "store it again" in caught.value.message
    assert local.read_bytes() == b"an earlier good copy"  # untouched
    assert [p.name for p in local.parent.iterdir()] == ["weights.bin"]
    with pytest.raises(ArtifactCorrupted):
        store.read_bytes("models/m/weights.bin")
    with pytest.raises(ArtifactCorrupted), store.open("models/m/weights.bin") as stream:
        while stream.read(4):
            pass
    assert store.read_bytes("models/m/weights.bin", verify=False) == b"the rotten weights"
    store.get_file("models/m/weights.bin", local, verify=False)
    assert local.read_bytes() == b"the rotten weights"


def test_an_object_written_by_another_tool_has_no_hash_to_check(store: ArtifactStore) -> None:
    store.fs.pipe_file(store.url_of("imported/data.csv"), b"a,b\n1,2\n")

    info = store.info("imported/data.csv")

    assert (info.size, info.sha256) == (8, None)
    assert store.read_bytes("imported/data.csv") == b"a,b\n1,2\n"
    assert store.list("imported")[0].sha256 is None


def test_a_prefix_means_whole_names(store: ArtifactStore) -> None:
    for key in ("models/a/1/m", "models/a/2/m", "models/ab/1/m", "models/a.txt", "runs/7/log"):
        store.put_bytes(key.encode(), key)

    assert [i.key for i in store.list("models/a")] == ["models/a/1/m", "models/a/2/m"]
    assert [i.key for i in store.list("models/a/")] == ["models/a/1/m", "models/a/2/m"]
    assert [i.key for i in store.list("models/a/1/m")] == ["models/a/1/m"]
    assert store.list("nothing/here") == []
    assert len(store.list()) == 5
    assert all(i.sha256 == sha(i.key.encode()) for i in store.list())
    assert [i.sha256 for i in store.list("runs", hashes=False)] == [None]


def test_a_key_next_to_its_own_prefix_works_on_s3_and_is_a_conflict_in_a_directory(
        store: ArtifactStore) -> None:
    store.put_bytes(b"child", "models/a/1/m")
    if store.protocol == "file":
        with pytest.raises(Conflict, match="both an artifact and the prefix"):
            store.put_bytes(b"parent", "models/a")
        with pytest.raises(Conflict):
            store.put_bytes(b"grandchild", "models/a/1/m/x")
        return
    store.put_bytes(b"parent", "models/a")
    assert [i.key for i in store.list("models/a")] == ["models/a", "models/a/1/m"]
    assert store.read_bytes("models/a") == b"parent"
    assert store.delete("models/a") == 2


def test_delete_removes_an_artifact_or_a_whole_prefix(store: ArtifactStore) -> None:
    for key in ("models/a/1/m", "models/a/2/m", "models/ab/1/m"):
        store.put_bytes(b"x", key)

    assert store.delete("models/a/1/m") == 1
    assert store.delete("models/a") == 1
    assert store.delete("models/a") == 0  # idempotent
    assert [i.key for i in store.list()] == ["models/ab/1/m"]
    assert not store.exists("models/a/2/m") and store.exists("models/ab/1/m")
    store.put_bytes(b"y", "models/a/2/m")  # no stale hash record left to trip over
    assert store.read_bytes("models/a/2/m") == b"y"


def test_missing_things_are_not_found(store: ArtifactStore, tmp_path: Path) -> None:
    store.put_bytes(b"x", "models/a/1/m")

    with pytest.raises(NotFound, match=r"no artifact 'models/b' in "):
        store.get_file("models/b", tmp_path / "b")
    with pytest.raises(NotFound, match="prefix of other artifacts"):
        store.info("models/a")
    with pytest.raises(NotFound, match="no artifacts under 'models/zz'"):
        store.get_dir("models/zz", tmp_path / "zz")
    with pytest.raises(NotFound):
        store.open("models/b")
    assert not store.exists("models/a") and not store.exists("models/b")


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a/../../b", "a\\b", "", ".aip/sha256/k",
                                 "models/*"])
def test_no_operation_takes_a_key_outside_the_prefix(store: ArtifactStore, tmp_path: Path,
                                                     key: str) -> None:
    source = write(tmp_path / "f", b"x")
    for attempt in (lambda: store.put_file(source, key), lambda: store.put_bytes(b"x", key),
                    lambda: store.get_file(key, tmp_path / "g"), lambda: store.open(key),
                    lambda: store.info(key), lambda: store.exists(key),
                    lambda: store.delete(key), lambda: store.url_of(key)):
        with pytest.raises(InvalidSpec):
            attempt()
    if key:
        with pytest.raises(InvalidSpec):
            store.list(key)
        with pytest.raises(InvalidSpec):
            store.put_dir(tmp_path, key)
    assert store.list() == []


def test_put_dir_refuses_links_that_leave_the_directory(store: ArtifactStore,
                                                       tmp_path: Path) -> None:
    secret = write(tmp_path / "secret" / "token", b"admin token")
    outputs = tmp_path / "outputs"
    write(outputs / "model.bin", b"weights")
    (outputs / "token").symlink_to(secret)

    with pytest.raises(InvalidSpec, match="outside"):
        store.put_dir(outputs, "runs/1")
    assert store.list() == []  # checked before anything moved

    (outputs / "token").unlink()
    (outputs / "secrets").symlink_to(secret.parent)
    with pytest.raises(InvalidSpec, match="outside"):
        store.put_dir(outputs, "runs/1")


def test_put_dir_follows_links_inside_the_directory(store: ArtifactStore,
                                                   tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    write(outputs / "checkpoints" / "step-10.bin", b"ten")
    (outputs / "latest.bin").symlink_to(outputs / "checkpoints" / "step-10.bin")
    (outputs / "checkpoints" / "loop").symlink_to(outputs)  # a cycle is not followed twice
    (outputs / "dangling").symlink_to(outputs / "gone")

    infos = store.put_dir(outputs, "runs/1")

    assert [i.key for i in infos] == ["runs/1/checkpoints/step-10.bin", "runs/1/latest.bin"]
    assert store.read_bytes("runs/1/latest.bin") == b"ten"


def test_get_dir_does_not_write_through_a_link_in_the_destination(
        store: ArtifactStore, tmp_path: Path) -> None:
    store.put_bytes(b"x", "models/m/sub/file")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "sub").symlink_to(elsewhere)

    with pytest.raises(InvalidSpec, match="outside"):
        store.get_dir("models/m", tmp_path / "dest")
    assert list(elsewhere.iterdir()) == []


def test_the_store_answers_its_health_check(store: ArtifactStore) -> None:
    store.check()
    assert store.list() == []


def test_local_urls_are_canonical_and_tidy(tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path}/store")
    assert store.url == f"file://{tmp_path}/store"
    assert ArtifactStore(str(tmp_path / "store" / "x" / "..")).url == store.url
    store.put_bytes(b"x", "a/b/c")
    store.delete("a")
    leftovers = sorted(p.relative_to(tmp_path / "store").as_posix()
                       for p in (tmp_path / "store").rglob("*"))
    assert leftovers == [".aip", ".aip/staging"]  # no empty a/b directories left


@pytest.mark.parametrize(("url", "message"), [
    ("", "empty"), ("s3://", "names no bucket"), ("/data/[x]", "pattern characters")])
def test_a_bad_store_url_says_what_to_do(url: str, message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        ArtifactStore(url)
