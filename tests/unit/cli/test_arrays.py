"""The CLI's array files: .npy is one array, .npz a dict of arrays, and a file numpy cannot
read (or one that would need unpickling) is refused naming the flag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aip.cli.arrays import load_arrays
from aip.errors import InvalidSpec


def test_npy_is_one_array_and_npz_a_dict(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.arange(6).reshape(2, 3))
    np.savez(tmp_path / "d.npz", x=np.ones(2), labels=np.array([0, 1]))

    np.testing.assert_array_equal(load_arrays(tmp_path / "x.npy", "--calib"),
                                  np.arange(6).reshape(2, 3))
    loaded = load_arrays(tmp_path / "d.npz", "--val")
    assert sorted(loaded) == ["labels", "x"]
    np.testing.assert_array_equal(loaded["labels"], [0, 1])
    assert load_arrays(None, "--val") is None


@pytest.mark.parametrize("content", [b"not numpy at all", None], ids=["garbage", "pickle"])
def test_an_unreadable_file_names_the_flag(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "bad.npy"
    if content is None:
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        path.write_bytes(content)

    with pytest.raises(InvalidSpec, match="--example-input: cannot read") as caught:
        load_arrays(path, "--example-input")
    assert caught.value.fields == {"--example-input": "not a .npy or .npz file"}
