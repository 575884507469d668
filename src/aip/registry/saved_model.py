"""Signatures of a TensorFlow SavedModel, read from ``saved_model.pb`` without TensorFlow.

Importing TensorFlow takes seconds and loading a SavedModel runs its graph; the serving
signature is plain protobuf data, so a small wire-format reader gets it safely:

    SavedModel.meta_graphs (2) -> MetaGraphDef.signature_def (5, map<string, SignatureDef>)
    SignatureDef.inputs (1) / outputs (2): map<string, TensorInfo>
    TensorInfo.dtype (2, DataType enum), tensor_shape (3): TensorShapeProto.dim (2).size (1),
    unknown_rank (3)
"""

from __future__ import annotations

from collections.abc import Iterator

from aip.spec.model import Signature, TensorSpec

# tensorflow/core/framework/types.proto
TF_DTYPES: dict[int, str] = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "str",
    9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 19: "float16", 22: "uint32",
    23: "uint64",
}
SERVING_DEFAULT = "serving_default"
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class NotASavedModel(ValueError):
    pass


def read_signatures(data: bytes) -> dict[str, Signature]:
    """Every SignatureDef of the first MetaGraph, by key (``serving_default`` ...)."""
    meta_graphs = [value for number, value in _fields(data) if number == 2]
    if not meta_graphs or not isinstance(meta_graphs[0], bytes):
        raise NotASavedModel("no MetaGraphDef in it")
    signatures: dict[str, Signature] = {}
    for number, entry in _fields(meta_graphs[0]):
        if number == 5 and isinstance(entry, bytes):
            key, value = _map_entry(entry)
            signatures[key] = _signature_def(value)
    return signatures


def _signature_def(data: bytes) -> Signature:
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    for number, entry in _fields(data):
        if number in (1, 2) and isinstance(entry, bytes):
            name, info = _map_entry(entry)
            spec = _tensor_info(name, info)
            if spec is not None:
                (inputs if number == 1 else outputs).append(spec)
    return Signature(inputs=sorted(inputs, key=lambda s: s.name),
                     outputs=sorted(outputs, key=lambda s: s.name))


def _tensor_info(name: str, data: bytes) -> TensorSpec | None:
    dtype: str | None = None
    shape: list[int] = []
    for number, value in _fields(data):
        if number == 2 and isinstance(value, int):
            dtype = TF_DTYPES.get(value)
        elif number == 3 and isinstance(value, bytes):
            shape = _shape(value)
    if dtype is None:
        return None  # sparse, ragged or an exotic dtype: not describable as one tensor
    return TensorSpec(name=name, dtype=dtype, shape=shape)


def _shape(data: bytes) -> list[int]:
    dims: list[int] = []
    for number, value in _fields(data):
        if number == 3 and value:
            return []  # unknown rank
        if number == 2 and isinstance(value, bytes):
            size = next((v for n, v in _fields(value) if n == 1 and isinstance(v, int)), 0)
            dims.append(-1 if size < 0 else size)
    return dims


def _map_entry(data: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for number, item in _fields(data):
        if number == 1 and isinstance(item, bytes):
            key = item.decode("utf-8", errors="replace")
        elif number == 2 and isinstance(item, bytes):
            value = item
    return key, value


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs of one message: ints for varints, bytes for the rest."""
    position, end = 0, len(data)
    while position < end:
        tag, position = _varint(data, position)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == _VARINT:
            value, position = _varint(data, position)
            yield number, value - (1 << 64) if value >= 1 << 63 else value
        elif wire_type == _LENGTH:
            length, position = _varint(data, position)
            if position + length > end:
                raise NotASavedModel("truncated message")
            yield number, data[position:position + length]
            position += length
        elif wire_type == _FIXED64:
            yield number, data[position:position + 8]
            position += 8
        elif wire_type == _FIXED32:
            yield number, data[position:position + 4]
            position += 4
        else:
            raise NotASavedModel(f"unknown protobuf wire type {wire_type}")


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise NotASavedModel("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
