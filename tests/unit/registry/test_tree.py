"""The model directory on the wire: a streamed tar of known length, read back with every
member checked (paths escaping the directory, links, devices refused)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aip.errors import InvalidSpec
from aip.registry.tree import FileEntry, TarMember, TarStream, member_path, read_tar, tree_digest


def tar_of(*members: tuple[str, bytes | tuple[str, str]]) -> io.BytesIO:
    """A tar built with tarfile: (name, data) for a file, (name, ("sym"|"hard"|"fifo", target))."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if isinstance(content, bytes):
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
                continue
            kind, target = content
            info.type = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
                         "fifo": tarfile.FIFOTYPE, "dir": tarfile.DIRTYPE}[kind]
            info.linkname = target
            archive.addfile(info)
    buffer.seek(0)
    return buffer


def read_all(stream: io.BytesIO) -> dict[str, bytes | str]:
    return {path: content if isinstance(content, str) else content.read()
            for path, content in read_tar(stream)}


def test_the_stream_is_a_tar_of_exactly_the_announced_size(tmp_path: Path) -> None:
    big = tmp_path / "weights.bin"
    big.write_bytes(bytes(range(256)) * 5000)
    long_name = "deep/" * 30 + "file.txt"  # over 100 characters: a pax header carries it
    stream = TarStream([TarMember.of_bytes("aip-model.json", b'{"flavor": "onnx"}'),
                        TarMember.of_file("weights.bin", big),
                        TarMember.of_bytes(long_name, b"x")])
    data = b"".join(stream)
    assert len(data) == stream.size and stream.size % tarfile.RECORDSIZE == 0
    assert read_all(io.BytesIO(data)) == {"aip-model.json": b'{"flavor": "onnx"}',
                                          "weights.bin": big.read_bytes(), long_name: b"x"}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:  # any tar reader agrees
        assert archive.getnames() == ["aip-model.json", "weights.bin", long_name]


def test_a_file_that_grows_while_it_is_sent_fails_the_stream(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"abc")
    stream = TarStream([TarMember.of_file("model.onnx", path)])
    path.write_bytes(b"abcdef")
    with pytest.raises(OSError, match="grew"):
        b"".join(stream)


@pytest.mark.parametrize(("name", "problem"), [
    pytest.param("../escape.txt", "'..' part", id="parent-directory"),
    pytest.param("a/../../escape.txt", "'..' part", id="parent-directory-inside"),
    pytest.param("/etc/passwd", "absolute", id="absolute-path"),
    pytest.param("C:/windows/x", "absolute", id="drive-letter"),
    pytest.param("a\\..\\b", "backslash", id="backslashes"),
    pytest.param("bad\nname", "control character", id="newline"),
])
def test_members_escaping_the_directory_are_refused(name: str, problem: str) -> None:
    with pytest.raises(InvalidSpec, match=problem) as caught:
        read_all(tar_of((name, b"payload")))
    assert "archive" in caught.value.fields


def test_member_paths_are_normalised() -> None:
    assert member_path("./a//b/./c.txt") == "a/b/c.txt"


@given(st.text(alphabet="ab./\\:\n", max_size=16))
def test_an_accepted_member_path_never_leaves_the_directory(name: str) -> None:
    try:
        path = member_path(name)
    except InvalidSpec:
        return
    assert not path.startswith("/") and ".." not in path.split("/") and "\\" not in path
    root = Path("/model")
    assert (root / path).resolve().is_relative_to(root)


def test_a_link_inside_the_tree_to_an_earlier_file_is_kept_as_a_reference() -> None:
    entries = read_all(tar_of(("weights/model.onnx", b"m"), ("current", ("sym",
                                                                          "weights/model.onnx")),
                              ("copy.onnx", ("hard", "weights/model.onnx"))))
    assert entries == {"weights/model.onnx": b"m", "current": "weights/model.onnx",
                       "copy.onnx": "weights/model.onnx"}


@pytest.mark.parametrize(("member", "problem"), [
    pytest.param(("leak", ("sym", "/home/user/.aip/token")), "outside", id="symlink-absolute"),
    pytest.param(("leak", ("sym", "../../etc/passwd")), "outside", id="symlink-upwards"),
    pytest.param(("leak", ("hard", "/etc/passwd")), "outside", id="hardlink-absolute"),
    pytest.param(("later", ("sym", "model.onnx")), "no file before it", id="symlink-forward"),
    pytest.param(("pipe", ("fifo", "")), "only files", id="fifo"),
])
def test_links_out_of_the_tree_and_special_files_are_refused(
        member: tuple[str, tuple[str, str]], problem: str) -> None:
    with pytest.raises(InvalidSpec, match=problem):
        read_all(tar_of(member, ("model.onnx", b"m")))


def test_a_path_twice_and_a_non_tar_body_are_refused() -> None:
    with pytest.raises(InvalidSpec, match="appears twice"):
        read_all(tar_of(("a", b"1"), ("a", b"2")))
    with pytest.raises(InvalidSpec, match="not a tar archive"):
        read_all(io.BytesIO(b"definitely not a tar file" * 40))


def test_directories_are_implied_and_skipped() -> None:
    assert read_all(tar_of(("sub", ("dir", "")), ("sub/a", b"1"))) == {"sub/a": b"1"}


def test_a_gzipped_tar_is_accepted() -> None:
    import gzip

    plain = tar_of(("model.onnx", b"m")).getvalue()
    assert read_all(io.BytesIO(gzip.compress(plain))) == {"model.onnx": b"m"}


@given(st.lists(st.tuples(st.text(alphabet="abc/.", min_size=1, max_size=12),
                          st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)),
                min_size=1, max_size=6, unique_by=lambda pair: pair[0]))
def test_the_tree_digest_ignores_order_and_changes_with_any_file(
        pairs: list[tuple[str, str]]) -> None:
    files = [FileEntry(path, 1, sha) for path, sha in pairs]
    assert tree_digest(files) == tree_digest(list(reversed(files)))
    changed = [FileEntry(files[0].path, 1, "f" * 64 if files[0].sha256 != "f" * 64 else "0" * 64),
               *files[1:]]
    assert tree_digest(changed) != tree_digest(files)
