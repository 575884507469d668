"""Datatype names across the three vocabularies a replica meets: the manifest's numpy-style
names (``float32``, ``str``), the Open Inference Protocol's (``FP32``, ``BYTES``) and numpy
dtypes. Strings and bytes travel as numpy ``object`` arrays.

Casting rule (one for JSON and binary payloads): an input is cast to the model's dtype when
numpy's ``same_kind`` casting allows it (int64 -> float32, float64 -> float32, int64 -> int32,
uint8 -> float32), and refused otherwise (float -> int, numbers <-> strings), because JSON
numbers carry no width but a float sent to an integer input is a client bug.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from aip.spec.model import OIP_DATATYPES

OIP_BY_NAME: Final[dict[str, str]] = {name: oip for oip, name in OIP_DATATYPES.items()}
OIP_BY_NAME["str"] = "BYTES"
_OBJECT: Final = np.dtype(object)
_NUMPY_BY_NAME: Final[dict[str, np.dtype]] = {
    name: (_OBJECT if name in ("str", "bytes") else np.dtype(name))
    for name in OIP_BY_NAME if name != "bfloat16"
}
_OIP_BY_DTYPE: dict[np.dtype, str] = {}


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype for a manifest dtype name; ``ValueError`` for one numpy lacks."""
    try:
        return _NUMPY_BY_NAME[name]
    except KeyError:
        raise ValueError(f"dtype {name!r} is not supported by the replica; use one of "
                         f"{', '.join(_NUMPY_BY_NAME)}") from None


def numpy_dtype_for_oip(datatype: str) -> np.dtype:
    """The numpy dtype for an OIP datatype (``FP32``); ``ValueError`` naming the valid ones."""
    name = OIP_DATATYPES.get(datatype)
    if name is None or name not in _NUMPY_BY_NAME:
        valid = ", ".join(oip for oip, n in OIP_DATATYPES.items() if n in _NUMPY_BY_NAME)
        raise ValueError(f"datatype {datatype!r} is not one of {valid}")
    return _NUMPY_BY_NAME[name]


def dtype_name(dtype: np.dtype) -> str:
    """The manifest name of a numpy dtype: ``float32``; strings, bytes and objects are ``str``
    (``bytes`` when the dtype is numpy's fixed-width bytes)."""
    if dtype.kind in "OU":
        return "str"
    if dtype.kind == "S":
        return "bytes"
    return dtype.name


def oip_datatype(dtype: np.dtype) -> str:
    """The OIP datatype of a numpy dtype: ``FP32``, ``INT64``, ``BYTES`` ..."""
    datatype = _OIP_BY_DTYPE.get(dtype)
    if datatype is None:  # numpy's dtype.name is slow (µs): remember each dtype's answer
        datatype = _OIP_BY_DTYPE[dtype] = OIP_BY_NAME.get(dtype_name(dtype), "BYTES")
    return datatype


def castable(source: np.dtype, target: np.dtype) -> bool:
    """Whether an input of ``source`` dtype may be cast to a model input of ``target``."""
    if source == target:
        return True
    if target.kind == "O":
        return source.kind in "OUS"
    if source.kind in "OUS":
        return False
    return bool(np.can_cast(source, target, casting="same_kind"))
