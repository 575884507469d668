"""Check decoded inputs against the model's signature before any inference runs.

    inputs = conform_inputs(signature, {"x": array})   # cast where allowed, or raise

Each problem raises an ``InvalidInput`` naming the field (``inputs.x``): a missing input, an
input the model does not have (with "did you mean"), a dtype that cannot be cast (see
``aip.serving.dtypes``), a rank or fixed dimension that differs. A signature with no inputs
means "unknown": the inputs pass as they are and the runtime has the last word. A spec whose
shape is ``[]`` accepts any shape (a batched input is never a scalar).
"""

from __future__ import annotations

import difflib

import numpy as np

from aip.serving.dtypes import castable, numpy_dtype, oip_datatype
from aip.serving.errors import DtypeMismatch, MissingInput, ShapeMismatch, UnknownInput
from aip.spec.model import Signature, TensorSpec


def conform_inputs(signature: Signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return ``inputs`` in the signature's order and dtypes; raise ``InvalidInput`` if any
    input is missing, unknown, of a dtype that cannot be cast, or of the wrong shape."""
    if not signature.inputs:
        return inputs
    specs = signature.inputs
    if len(inputs) > len(specs) or any(name not in inputs for name in _names(specs)):
        _raise_for_names(specs, inputs)
    conformed: dict[str, np.ndarray] = {}
    for spec in specs:
        conformed[spec.name] = conform_tensor(spec, inputs[spec.name])
    return conformed


def conform_tensor(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    """One input: cast to the spec's dtype if allowed, then check rank and fixed dims."""
    field = f"inputs.{spec.name}"
    target = numpy_dtype(spec.dtype)
    if array.dtype != target:
        if not castable(array.dtype, target):
            raise DtypeMismatch(f"{field}: the model expects {oip_datatype(target)}, got "
                                f"{oip_datatype(array.dtype)}", field=field)
        array = array.astype(target)
    if spec.shape and not _shape_fits(spec.shape, array.shape):
        raise ShapeMismatch(f"{field}: the model expects shape {spec.shape} (-1: any size), "
                            f"got {list(array.shape)}", field=field)
    return array


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _names(specs: list[TensorSpec]) -> list[str]:
    return [spec.name for spec in specs]


def _raise_for_names(specs: list[TensorSpec], inputs: dict[str, np.ndarray]) -> None:
    expected = _names(specs)
    for name in inputs:
        if name not in expected:
            field = f"inputs.{name}"
            raise UnknownInput(f"{field}: the model has no input {name!r} (its inputs: "
                               f"{', '.join(expected)}){did_you_mean(name, expected)}",
                               field=field)
    for spec in specs:
        if spec.name not in inputs:
            field = f"inputs.{spec.name}"
            raise MissingInput(f"{field}: missing; the model needs {spec.name} "
                               f"({oip_datatype(numpy_dtype(spec.dtype))} {spec.shape})",
                               field=field)


def _shape_fits(expected: list[int], actual: tuple[int, ...]) -> bool:
    if len(expected) != len(actual):
        return False
    return all(want in (-1, got) for want, got in zip(expected, actual, strict=True))
