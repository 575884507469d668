"""What a model is on disk: a directory holding the model's files and ``aip-model.json``, the
manifest that the registry writes and every serving runtime reads.

    my-model/
      aip-model.json     {"format": 1, "flavor": "onnx", "path": "model.onnx",
                          "signature": {"inputs": [{"name": "x", "dtype": "float32",
                                                    "shape": [-1, 4]}],
                                        "outputs": [...]},
                          "python_class": null, "metadata": {...}}
      model.onnx

``path`` is relative to the directory (a file, or a sub-directory for a TensorFlow
SavedModel); it never leaves it. ``shape`` uses -1 for a dimension of any size (the batch).
``dtype`` names follow numpy (``float32``, ``int64``, ``bool``, ``str``...) so both the Open
Inference Protocol's datatypes (``FP32``...) and numpy arrays map onto them.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MANIFEST_FILE: Final = "aip-model.json"
MANIFEST_FORMAT: Final = 1
Flavor = Literal["onnx", "pytorch", "sklearn", "xgboost", "lightgbm", "tensorflow", "python"]
FLAVORS: Final[tuple[str, ...]] = (
    "onnx", "pytorch", "sklearn", "xgboost", "lightgbm", "tensorflow", "python")
DTYPES: Final[tuple[str, ...]] = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "bfloat16", "float32", "float64", "str", "bytes")
# Open Inference Protocol v2 datatypes <-> numpy-style names.
OIP_DATATYPES: Final[dict[str, str]] = {
    "BOOL": "bool", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
    "FP16": "float16", "BF16": "bfloat16", "FP32": "float32", "FP64": "float64",
    "BYTES": "bytes",
}
_TENSOR_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")


class TensorSpec(BaseModel):
    """One named input or output: its dtype and shape (-1: any size)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    dtype: str = Field(description="numpy-style: float32, int64, bool, str ...")
    shape: list[int] = Field(default_factory=list, description="-1 for any size, e.g. [-1, 4]")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _TENSOR_NAME.match(value):
            raise ValueError(f"tensor name {value!r} must be 1-128 letters, digits or _.:/-")
        return value

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, value: str) -> str:
        if value not in DTYPES:
            raise ValueError(f"dtype {value!r} is not one of {', '.join(DTYPES)}")
        return value

    @field_validator("shape")
    @classmethod
    def _shape(cls, value: list[int]) -> list[int]:
        if any(dim < -1 for dim in value):
            raise ValueError("shape dimensions are sizes >= 0, or -1 for any size")
        return value


class Signature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: list[TensorSpec] = Field(default_factory=list)
    outputs: list[TensorSpec] = Field(default_factory=list)


class ModelManifest(BaseModel):
    """The content of ``aip-model.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = MANIFEST_FORMAT
    flavor: Flavor
    path: str = Field(description="The model file or directory, relative to the model's own.")
    signature: Signature | None = None
    python_class: str | None = Field(
        default=None, description="python flavor: module:Class with load() and predict().")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("path")
    @classmethod
    def _inside(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not value or path.is_absolute() or ".." in path.parts:
            raise ValueError(f"path {value!r} must be relative to the model directory, "
                             "without '..'")
        return value
