"""Artifact keys never leave the store's prefix: a table of keys a person or an attacker
might send, and an invariant over random keys."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aip.errors import InvalidSpec
from aip.storage.keys import check_key, check_prefix, key_problem


@pytest.mark.parametrize("key", [
    "model.onnx",
    "models/iris/3/model.onnx",
    "runs/7/metrics.json",
    ".hidden/file",            # dot-files are fine; only '.aip' first is reserved
    "a/.aip/b",                # '.aip' deeper down is an ordinary name
    "a..b/c...d",              # dots inside names are not '..'
    "spaces are fine/ünïcödé.txt",
    "x" * 1024,
])
def test_ordinary_relative_paths_are_keys(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(("key", "why"), [
    ("", "empty"),
    ("../x", "'..'"),
    ("a/../../b", "'..'"),
    ("a/..", "'..'"),
    ("./a", "'.'"),
    ("/etc/passwd", "absolute"),
    ("//server/share", "absolute"),
    ("a\\b", "backslash"),
    ("..\\..\\windows", "backslash"),
    ("a//b", "empty name"),
    ("a/", "empty name"),
    ("a\x00b", "control character"),
    ("line\nbreak", "control character"),
    ("models/*", "pattern"),
    ("a?b", "pattern"),
    ("[ab]", "pattern"),
    (".aip/sha256/x", "reserved"),
    (".aip", "reserved"),
    ("x" * 1025, "1024 bytes"),
])
def test_keys_that_could_escape_or_confuse_are_refused(key: str, why: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        check_key(key)
    assert why in caught.value.message
    assert repr(key) in caught.value.message  # names the key
    assert "such as models/" in caught.value.message  # and says what a key looks like


def test_a_non_string_key_is_refused() -> None:
    assert key_problem(None) == "must be a string, not NoneType"


@pytest.mark.parametrize(("prefix", "expected"), [
    ("", ""), ("/", ""), ("models", "models"), ("models/iris/", "models/iris")])
def test_a_prefix_is_a_key_or_the_whole_store(prefix: str, expected: str) -> None:
    assert check_prefix(prefix) == expected


def test_a_prefix_may_not_escape_either() -> None:
    with pytest.raises(InvalidSpec):
        check_prefix("../")


@given(st.lists(st.text(alphabet=st.sampled_from("ab./\\:*~\x00 "), max_size=6), max_size=5))
def test_every_accepted_key_stays_under_the_root(parts: list[str]) -> None:
    key = "/".join(parts)
    if key_problem(key) is not None:
        return
    joined = posixpath.normpath(f"/store/prefix/{key}")
    assert joined.startswith("/store/prefix/")
    assert joined != "/store/prefix/.aip" and not joined.startswith("/store/prefix/.aip/")
