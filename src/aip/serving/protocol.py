"""The wire formats of a replica: the Open Inference Protocol v2 (KServe, Triton) for tensors,
with its binary tensor extension, and the ``{"instances": [...]}`` form for tabular models.

    request = decode_infer_request(body, header_length)       # OIP v2, JSON or binary
    parts, header_length = encode_infer_response("mlp", outputs, request)
    inputs = decode_instances(body, signature)                # {"instances": [...]}
    body = encode_predictions(outputs)                        # {"predictions": [...]}

Binary tensors (``Inference-Header-Content-Length: N``): the body is N bytes of JSON header,
then each binary input's raw little-endian bytes in the order of ``inputs``, each input
saying its length in ``parameters.binary_data_size``; ``BYTES`` elements are a 4-byte
little-endian length then the bytes. Binary inputs are numpy views of the request body (no
copy). Outputs come back binary when the request says ``parameters.binary_data_output: true``
or ``outputs[i].parameters.binary_data: true``; they are returned as memoryviews of the
output arrays, so the server can write them without copying.

Every problem raises an ``InvalidInput`` that names the field (``inputs.x.shape``).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from aip.serving.dtypes import numpy_dtype, numpy_dtype_for_oip, oip_datatype
from aip.serving.errors import (
    DtypeMismatch,
    InvalidInput,
    MalformedBody,
    MissingInput,
    ShapeMismatch,
    UnknownInput,
)
from aip.serving.validation import did_you_mean
from aip.spec.model import Signature

HEADER_LENGTH: Final = "inference-header-content-length"
DEFAULT_INPUT: Final = "input"  # the input's name for a model without a signature
Blob = bytes | memoryview


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A decoded OIP v2 request. ``outputs`` empty: every output, binary if
    ``binary_output``."""

    inputs: dict[str, np.ndarray]
    outputs: tuple[RequestedOutput, ...] = ()
    binary_output: bool = False
    id: str | None = None


def decode_infer_request(body: bytes | bytearray, header_length: int | None = None
                         ) -> InferRequest:
    """Decode an OIP v2 request; ``header_length`` is the ``Inference-Header-Content-Length``
    header's value (``None``: the whole body is JSON)."""
    if header_length is None:
        document = parse_json(body)
        offset = len(body)
    else:
        if not 0 < header_length <= len(body):
            field = f"headers.{HEADER_LENGTH}"
            raise InvalidInput(f"{field}: {header_length} is not within the body's "
                               f"{len(body)} bytes", field=field)
        document = parse_json(body[:header_length])
        offset = header_length
    if not isinstance(document, dict):
        raise MalformedBody('body: expected a JSON object {"inputs": [...]}', field="body")
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInput("inputs: expected a non-empty list of tensors "
                           "{name, shape, datatype, data}", field="inputs")
    inputs: dict[str, np.ndarray] = {}
    for index, raw in enumerate(raw_inputs):
        name, array, offset = _decode_input(index, raw, body, offset, header_length)
        if name in inputs:
            raise InvalidInput(f"inputs.{name}: given twice", field=f"inputs.{name}")
        inputs[name] = array
    if offset != len(body):
        raise InvalidInput(f"body: {len(body) - offset} bytes follow the last binary tensor; "
                           "check each input's parameters.binary_data_size", field="body")
    outputs, binary_output = _decode_outputs(document)
    request_id = document.get("id")
    return InferRequest(inputs, outputs, binary_output,
                        request_id if isinstance(request_id, str) else None)


def check_requested_outputs(request: InferRequest, available: list[str]) -> None:
    """Raise ``UnknownInput`` for a requested output the model does not have."""
    for output in request.outputs:
        if output.name not in available:
            field = f"outputs.{output.name}"
            raise UnknownInput(f"{field}: the model has no output {output.name!r} (its "
                               f"outputs: {', '.join(available)})"
                               f"{did_you_mean(output.name, available)}", field=field)


def encode_infer_response(model_name: str, outputs: dict[str, np.ndarray],
                          request: InferRequest) -> tuple[list[Blob], int | None]:
    """The response body's parts and, when any output is binary, the JSON header's length
    (send it as ``Inference-Header-Content-Length``)."""
    check_requested_outputs(request, list(outputs))
    selected = request.outputs or tuple(
        RequestedOutput(name, request.binary_output) for name in outputs)
    entries: list[dict[str, Any]] = []
    blobs: list[Blob] = []
    for output in selected:
        entries.append(_tensor_entry(output.name, outputs[output.name], output.binary, blobs))
    document: dict[str, Any] = {"model_name": model_name, "outputs": entries}
    if request.id is not None:
        document["id"] = request.id
    header = dumps(document)
    if not blobs:
        return [header], None
    header += b" " * (-len(header) % 8)  # 8-byte aligned tensors for the client
    return [header, *blobs], len(header)


def encode_infer_request(inputs: dict[str, np.ndarray], *, binary: bool = False,
                         binary_output: bool = False) -> tuple[bytes, int | None]:
    """A client's request body (and header length when ``binary``): for tests, benchmarks
    and the SDK."""
    entries: list[dict[str, Any]] = []
    blobs: list[Blob] = []
    for name, array in inputs.items():
        entries.append(_tensor_entry(name, array, binary, blobs))
    document: dict[str, Any] = {"inputs": entries}
    if binary_output:
        document["parameters"] = {"binary_data_output": True}
    header = dumps(document)
    if not binary:
        return header, None
    # Pad the header (JSON allows trailing blanks) so that tensors start 8-byte aligned and
    # the replica can use them in place.
    header += b" " * (-len(header) % 8)
    return b"".join([header, *blobs]), len(header)


def _tensor_entry(name: str, array: np.ndarray, binary: bool,
                  blobs: list[Blob]) -> dict[str, Any]:
    """One tensor of a request or response: its values inline as JSON, or (``binary``) its
    bytes appended to ``blobs`` with their size in the entry."""
    entry: dict[str, Any] = {"name": name, "datatype": oip_datatype(array.dtype),
                             "shape": list(array.shape)}
    if binary:
        blob = tensor_bytes(array)
        entry["parameters"] = {"binary_data_size": len(blob)}
        blobs.append(blob)
    else:
        entry["data"] = _json_values(array.ravel())
    return entry


def decode_infer_response(body: bytes, header_length: int | None = None
                          ) -> dict[str, np.ndarray]:
    """A client's view of a response: output name -> array (JSON or binary outputs)."""
    end = len(body) if header_length is None else header_length
    document = parse_json(body[:end])
    offset, outputs = end, {}
    for entry in document["outputs"]:
        dtype = numpy_dtype_for_oip(entry["datatype"])
        shape = [int(dim) for dim in entry["shape"]]
        size = (entry.get("parameters") or {}).get("binary_data_size")
        if size is None:
            outputs[entry["name"]] = _from_json(entry["data"], dtype, shape,
                                                f"outputs.{entry['name']}")
        else:
            outputs[entry["name"]] = _from_binary(body, offset, size, dtype, shape,
                                                  f"outputs.{entry['name']}")
            offset += size
    return outputs


def decode_instances(body: bytes | bytearray, signature: Signature) -> dict[str, np.ndarray]:
    """``{"instances": [row, ...]}`` -> one batch per input. A row is the input's value (a
    model with one input) or an object keyed by input name."""
    document = parse_json(body)
    rows = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(rows, list) or not rows:
        raise InvalidInput('instances: expected {"instances": [row, ...]} with at least one '
                           "row", field="instances")
    names = [spec.name for spec in signature.inputs] or [DEFAULT_INPUT]
    if isinstance(rows[0], dict):
        columns = _columns(rows, names)
    elif len(names) == 1:
        columns = {names[0]: rows}
    else:
        raise InvalidInput(f"instances: the model has inputs {', '.join(names)}, so each row "
                           "must be an object keyed by input name", field="instances")
    return {name: _array_from_rows(name, column) for name, column in columns.items()}


def encode_predictions(outputs: dict[str, np.ndarray]) -> bytes:
    """``{"predictions": [...]}`` from the output named ``predictions`` (else the first);
    any other outputs ride along under their own names."""
    first = "predictions" if "predictions" in outputs else next(iter(outputs))
    document = {"predictions": _json_values(outputs[first])}
    for name, array in outputs.items():
        if name != first:
            document[name] = _json_values(array)
    return dumps(document)


def encode_metadata(name: str, signature: Signature, platform: str,
                    versions: list[str] | None = None) -> bytes:
    """The OIP v2 model metadata document."""
    def tensors(specs: list[Any]) -> list[dict[str, Any]]:
        return [{"name": spec.name, "datatype": oip_datatype(numpy_dtype(spec.dtype)),
                 "shape": spec.shape} for spec in specs]
    return dumps({"name": name, "versions": versions or [], "platform": platform,
                  "inputs": tensors(signature.inputs), "outputs": tensors(signature.outputs)})


def tensor_bytes(array: np.ndarray) -> Blob:
    """The raw little-endian bytes of a tensor, without a copy when it is contiguous."""
    if array.dtype.kind in "OSU":
        return b"".join(_length_prefixed(value) for value in array.ravel().tolist())
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array).data.cast("B")


def parse_json(data: bytes | bytearray) -> Any:
    try:
        return _loads(data)
    except json.JSONDecodeError as exc:
        raise MalformedBody(f"body: malformed JSON: {exc.msg} at line {exc.lineno} column "
                            f"{exc.colno}", field="body") from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise MalformedBody(f"body: not a JSON document: {exc}", field="body") from None


def dumps(document: Any) -> bytes:
    if _orjson is not None:  # numpy arrays serialized natively, no tolist()
        return bytes(_orjson.dumps(document, default=_json_default,
                                   option=_orjson.OPT_SERIALIZE_NUMPY))
    return json.dumps(document, separators=(",", ":"), default=_json_default).encode()


_orjson: Any
try:  # orjson (the serving extra) parses and writes JSON several times faster
    import orjson as _orjson

    _loads: Any = _orjson.loads  # its JSONDecodeError is json's, with msg/lineno/colno
except ImportError:  # pragma: no cover - without the serving extra
    _orjson = None
    _loads = json.loads


# -- helpers, in call order --------------------------------------------------------------

def _decode_input(index: int, raw: Any, body: bytes | bytearray, offset: int,
                  header_length: int | None) -> tuple[str, np.ndarray, int]:
    if not isinstance(raw, dict):
        raise InvalidInput(f"inputs[{index}]: expected a tensor {{name, shape, datatype, "
                           "data}", field=f"inputs[{index}]")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"inputs[{index}].name: expected the input's name",
                           field=f"inputs[{index}].name")
    field = f"inputs.{name}"
    shape = raw.get("shape")
    if not isinstance(shape, list) or not all(
            isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in shape):
        raise ShapeMismatch(f"{field}.shape: expected a list of sizes >= 0, got {shape!r}",
                            field=f"{field}.shape")
    try:
        dtype = numpy_dtype_for_oip(str(raw.get("datatype")))
    except ValueError as exc:
        raise DtypeMismatch(f"{field}.datatype: {exc}", field=f"{field}.datatype") from None
    parameters = raw.get("parameters")
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is None:
        if "data" not in raw:
            raise MissingInput(f"{field}.data: missing; send data, or binary data with "
                               "parameters.binary_data_size", field=f"{field}.data")
        return name, _from_json(raw["data"], dtype, shape, field), offset
    if header_length is None:
        raise InvalidInput(f"{field}: parameters.binary_data_size needs the "
                           "Inference-Header-Content-Length header", field=field)
    if not isinstance(size, int) or size < 0 or offset + size > len(body):
        raise InvalidInput(f"{field}.parameters.binary_data_size: {size!r} is not within the "
                           f"{len(body) - offset} bytes left in the body",
                           field=f"{field}.parameters.binary_data_size")
    return name, _from_binary(body, offset, size, dtype, shape, field), offset + size


def _from_json(data: Any, dtype: np.dtype, shape: list[int], field: str) -> np.ndarray:
    count = math.prod(shape)
    try:
        array = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        if "inhomogeneous" in str(exc) or "sequence" in str(exc):
            raise ShapeMismatch(f"{field}.data: nested lists of different lengths",
                                field=f"{field}.data") from None
        raise DtypeMismatch(f"{field}.data: not {oip_datatype(dtype)} values: {exc}",
                            field=f"{field}.data") from None
    if array.size != count:
        raise ShapeMismatch(f"{field}: shape {shape} holds {count} values, data has "
                            f"{array.size}", field=field)
    return array if array.shape == tuple(shape) else array.reshape(shape)


def _from_binary(body: bytes | bytearray, offset: int, size: int, dtype: np.dtype,
                 shape: list[int], field: str) -> np.ndarray:
    count = math.prod(shape)
    if dtype.kind == "O":
        values = _split_length_prefixed(body, offset, size, field)
        if len(values) != count:
            raise ShapeMismatch(f"{field}: shape {shape} holds {count} values, the binary "
                                f"data has {len(values)}", field=field)
        array = np.empty(count, dtype=object)
        array[:] = values
        return array.reshape(shape)
    if size != count * dtype.itemsize:
        raise ShapeMismatch(f"{field}: shape {shape} of {oip_datatype(dtype)} is "
                            f"{count * dtype.itemsize} bytes, parameters.binary_data_size "
                            f"says {size}", field=field)
    if count == 0:
        return np.empty(shape, dtype=dtype)
    array = np.frombuffer(body, dtype=dtype, count=count, offset=offset).reshape(shape)
    # The header's length decides the offset; unaligned data is copied once so that every
    # framework can take it.
    return array if array.flags.aligned else array.copy()


def _split_length_prefixed(body: bytes | bytearray, offset: int, size: int,
                           field: str) -> list[bytes]:
    values: list[bytes] = []
    position, end = offset, offset + size
    while position < end:
        if position + 4 > end:
            raise InvalidInput(f"{field}: BYTES element at byte {position - offset} has no "
                               "4-byte length", field=field)
        (length,) = struct.unpack_from("<I", body, position)
        position += 4
        if position + length > end:
            raise InvalidInput(f"{field}: BYTES element of {length} bytes runs past "
                               "binary_data_size", field=field)
        values.append(bytes(body[position:position + length]))
        position += length
    return values


def _decode_outputs(document: dict[str, Any]) -> tuple[tuple[RequestedOutput, ...], bool]:
    parameters = document.get("parameters")
    binary_output = bool(isinstance(parameters, dict)
                         and parameters.get("binary_data_output", False))
    raw_outputs = document.get("outputs")
    if raw_outputs is None:
        return (), binary_output
    if not isinstance(raw_outputs, list):
        raise InvalidInput("outputs: expected a list of {name, parameters}", field="outputs")
    requested: list[RequestedOutput] = []
    for index, raw in enumerate(raw_outputs):
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str):
            raise InvalidInput(f"outputs[{index}].name: expected an output's name",
                               field=f"outputs[{index}].name")
        output_parameters = raw.get("parameters")
        binary = binary_output
        if isinstance(output_parameters, dict) and "binary_data" in output_parameters:
            binary = bool(output_parameters["binary_data"])
        requested.append(RequestedOutput(name, binary))
    return tuple(requested), binary_output


def _columns(rows: list[Any], names: list[str]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidInput(f"instances[{index}]: expected an object keyed by input name "
                               "like the first row", field=f"instances[{index}]")
        if len(row) != len(names) or any(name not in row for name in names):
            _raise_for_row(index, row, names)
        for name in names:
            columns[name].append(row[name])
    return columns


def _raise_for_row(index: int, row: dict[str, Any], names: list[str]) -> None:
    for key in row:
        if key not in names:
            field = f"instances[{index}].{key}"
            raise UnknownInput(f"{field}: the model has no input {key!r} (its inputs: "
                               f"{', '.join(names)}){did_you_mean(key, names)}", field=field)
    missing = next(name for name in names if name not in row)
    field = f"instances[{index}].{missing}"
    raise MissingInput(f"{field}: missing; the model needs {', '.join(names)}", field=field)


def _array_from_rows(name: str, column: list[Any]) -> np.ndarray:
    try:
        array = np.asarray(column)
    except ValueError:
        raise ShapeMismatch(f"inputs.{name}: rows of different shapes",
                            field=f"inputs.{name}") from None
    return array.astype(object) if array.dtype.kind in "US" else array


def _json_values(array: np.ndarray) -> Any:
    if array.dtype.kind in "OSU":
        return [_json_default(value) if isinstance(value, bytes | np.generic) else value
                for value in array.ravel().tolist()] if array.ndim <= 1 else [
            _json_values(row) for row in array]
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        # JSON has no NaN or infinity (orjson would write null): they go as the strings of
        # the protobuf JSON mapping, which numpy reads back as floats.
        return np.where(np.isfinite(array), array.astype(object),
                        np.vectorize(_non_finite, otypes=[object])(array)).tolist()
    return array.tolist()


def _non_finite(value: float) -> Any:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity" if math.isinf(value) else value


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _length_prefixed(value: Any) -> bytes:
    data = value if isinstance(value, bytes) else str(value).encode()
    return struct.pack("<I", len(data)) + data
