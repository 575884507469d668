"""Inputs are checked against the model's signature before inference: what is cast, what is
refused, and that each refusal names the input."""

from __future__ import annotations

import numpy as np
import pytest

from aip.serving.errors import DtypeMismatch, MissingInput, ShapeMismatch, UnknownInput
from aip.serving.validation import conform_inputs
from aip.spec.model import Signature, TensorSpec

SIGNATURE = Signature(inputs=[
    TensorSpec(name="pixels", dtype="float32", shape=[-1, 2, 2]),
    TensorSpec(name="ids", dtype="int64", shape=[-1]),
])


def _inputs(**overrides: np.ndarray) -> dict[str, np.ndarray]:
    return {"pixels": np.zeros((3, 2, 2), np.float32), "ids": np.zeros(3, np.int64),
            **overrides}


@pytest.mark.parametrize("name, array, dtype", [
    ("pixels", np.zeros((1, 2, 2), np.int64), np.float32),  # JSON integers into a float input
    ("pixels", np.zeros((1, 2, 2), np.float64), np.float32),
    ("pixels", np.zeros((1, 2, 2), np.uint8), np.float32),
    ("ids", np.zeros(1, np.int32), np.int64),
], ids=["int64-to-float32", "float64-to-float32", "uint8-to-float32", "int32-to-int64"])
def test_same_kind_casts_are_made(name: str, array: np.ndarray, dtype: type) -> None:
    conformed = conform_inputs(SIGNATURE, _inputs(**{name: array}))

    assert conformed[name].dtype == dtype


@pytest.mark.parametrize("overrides, error, field, message", [
    ({"ids": np.zeros(3, np.float32)}, DtypeMismatch, "inputs.ids",
     "expects INT64, got FP32"),
    ({"ids": np.array(["1"], dtype=object)}, DtypeMismatch, "inputs.ids",
     "expects INT64, got BYTES"),
    ({"pixels": np.zeros((3, 4), np.float32)}, ShapeMismatch, "inputs.pixels",
     "expects shape [-1, 2, 2] (-1: any size), got [3, 4]"),
    ({"pixels": np.zeros((3, 2, 3), np.float32)}, ShapeMismatch, "inputs.pixels", "[3, 2, 3]"),
    ({"ids": np.zeros((3, 1), np.int64)}, ShapeMismatch, "inputs.ids", "got [3, 1]"),
    ({"idz": np.zeros(3, np.int64)}, UnknownInput, "inputs.idz", "did you mean 'ids'?"),
], ids=["float-into-int", "strings-into-int", "wrong-rank", "wrong-fixed-dim",
        "extra-dim", "unknown-name"])
def test_inputs_the_model_cannot_take_are_refused(overrides: dict[str, np.ndarray],
                                                  error: type[Exception], field: str,
                                                  message: str) -> None:
    with pytest.raises(error) as raised:
        conform_inputs(SIGNATURE, _inputs(**overrides))

    assert raised.value.field == field  # type: ignore[attr-defined]
    assert message in raised.value.message  # type: ignore[attr-defined]


def test_a_missing_input_says_what_the_model_needs() -> None:
    inputs = _inputs()
    del inputs["ids"]

    with pytest.raises(MissingInput, match=r"inputs.ids: missing; the model needs ids "
                                           r"\(INT64 \[-1\]\)") as raised:
        conform_inputs(SIGNATURE, inputs)
    assert raised.value.field == "inputs.ids"


def test_without_a_signature_inputs_pass_unchecked() -> None:
    inputs = {"anything": np.zeros((2, 7))}

    assert conform_inputs(Signature(), inputs) is inputs


def test_an_empty_shape_accepts_any_shape() -> None:
    signature = Signature(inputs=[TensorSpec(name="x", dtype="float32")])

    assert conform_inputs(signature, {"x": np.zeros((2, 3, 4), np.float32)})["x"].shape == (
        2, 3, 4)


def test_conformed_inputs_follow_the_signature_order() -> None:
    inputs: dict[str, np.ndarray] = {"ids": np.zeros(1, np.int64),
                                     "pixels": np.zeros((1, 2, 2), np.float32)}

    assert list(conform_inputs(SIGNATURE, inputs)) == ["pixels", "ids"]
