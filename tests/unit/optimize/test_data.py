"""Inputs: naming, casting and the shape errors that name the argument."""

from __future__ import annotations

import numpy as np
import pytest

from aip.errors import InvalidSpec
from aip.optimize.data import InputSpec, split_labeled, tile, to_feeds

IMAGE = InputSpec("image", np.dtype("float32"), (None, 1, 8, 8))
TOKENS = [InputSpec("input_ids", np.dtype("int64"), (None, None)),
          InputSpec("attention_mask", np.dtype("int64"), (None, None))]


def test_one_array_feeds_a_one_input_model_and_is_cast_to_its_dtype() -> None:
    feeds = to_feeds(np.zeros((5, 1, 8, 8), dtype=np.float64), [IMAGE], field="calib_data")
    assert feeds["image"].dtype == np.float32
    assert feeds["image"].shape == (5, 1, 8, 8)


def test_npz_style_positional_names_map_to_inputs_in_order() -> None:
    ids, mask = np.ones((2, 7), np.int32), np.zeros((2, 7), np.int64)
    feeds = to_feeds({"arr_0": ids, "arr_1": mask}, TOKENS, field="calib_data")
    assert feeds["input_ids"].dtype == np.int64
    assert list(feeds) == ["input_ids", "attention_mask"]


def test_calibration_rows_of_the_wrong_shape_name_the_field_and_expected_shape() -> None:
    with pytest.raises(InvalidSpec) as raised:
        to_feeds(np.zeros((10, 64), np.float32), [IMAGE], field="calib_data")
    message = str(raised.value)
    assert "calib_data" in raised.value.fields
    assert "(10, 64)" in message
    assert "image: float32[N, 1, 8, 8]" in message


def test_a_wrong_dtype_kind_is_refused() -> None:
    with pytest.raises(InvalidSpec, match="dtype"):
        to_feeds((np.zeros((2, 4), np.float32),) * 2, TOKENS, field="calib_data")


def test_inputs_with_different_row_counts_are_refused() -> None:
    with pytest.raises(InvalidSpec, match="different numbers of rows"):
        to_feeds((np.ones((2, 4), np.int64), np.ones((3, 4), np.int64)), TOKENS,
                 field="val_data")


def test_unknown_input_names_list_the_expected_ones() -> None:
    with pytest.raises(InvalidSpec, match="expected input_ids"):
        to_feeds({"ids": np.ones((2, 4), np.int64)}, TOKENS, field="example_inputs")


def test_validation_data_splits_into_inputs_and_labels() -> None:
    x, y = np.zeros((4, 1, 8, 8), np.float32), np.array([0, 1, 2, 3])
    for value in ((x, y), {"image": x, "labels": y}):
        feeds, labels = split_labeled(value, [IMAGE])
        assert feeds["image"].shape[0] == 4
        assert labels is not None and labels.tolist() == [0, 1, 2, 3]


def test_two_input_validation_data_without_labels_is_taken_as_inputs() -> None:
    feeds, labels = split_labeled((np.ones((3, 5), np.int64), np.ones((3, 5), np.int64)),
                                  TOKENS)
    assert labels is None and feeds["attention_mask"].shape == (3, 5)


def test_labels_must_match_the_rows() -> None:
    with pytest.raises(InvalidSpec, match="one label per row"):
        split_labeled((np.zeros((4, 1, 8, 8), np.float32), np.array([0, 1])), [IMAGE])


def test_tile_repeats_rows_up_to_the_batch() -> None:
    feeds = tile({"x": np.array([[1.0], [2.0]])}, 5)
    assert feeds["x"].ravel().tolist() == [1.0, 2.0, 1.0, 2.0, 1.0]
