"""The Open Inference Protocol v2 (JSON and binary tensors) and the instances form: what a
client sends decodes to the arrays it meant, and every malformed request names its field."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aip.serving.errors import (
    DtypeMismatch,
    InvalidInput,
    MalformedBody,
    MissingInput,
    ShapeMismatch,
    UnknownInput,
)
from aip.serving.protocol import (
    InferRequest,
    RequestedOutput,
    decode_infer_request,
    decode_infer_response,
    decode_instances,
    encode_infer_request,
    encode_infer_response,
    encode_metadata,
    encode_predictions,
)
from aip.spec.model import Signature, TensorSpec

ARRAYS = {
    "float32": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
    "float64": np.array([[1.5, -2.25]]),
    "float16": np.array([0.5, 1.0], dtype=np.float16),
    "int64": np.array([[1, -2], [3, 2**40]], dtype=np.int64),
    "int8": np.array([-128, 127], dtype=np.int8),
    "uint8": np.arange(4, dtype=np.uint8).reshape(2, 2, 1),
    "bool": np.array([True, False, True]),
    "bytes": np.array([b"abc", b"", "é".encode()], dtype=object),
}


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("name", list(ARRAYS))
def test_a_request_decodes_to_the_arrays_sent(name: str, binary: bool) -> None:
    sent = ARRAYS[name]
    body, header_length = encode_infer_request({"t": sent}, binary=binary)

    received = decode_infer_request(body, header_length).inputs["t"]

    assert received.shape == sent.shape
    assert received.dtype == sent.dtype
    if sent.dtype == object and not binary:  # JSON carries BYTES as text
        assert received.tolist() == [value.decode() for value in sent]
    else:
        np.testing.assert_array_equal(received, sent)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_a_response_decodes_to_the_model_outputs(binary: bool) -> None:
    outputs = {"y": ARRAYS["float32"], "label": ARRAYS["int64"]}
    request = InferRequest(inputs={}, binary_output=binary, id="req-1")

    parts, header_length = encode_infer_response("mlp", outputs, request)
    body = b"".join(parts)

    assert (header_length is not None) == binary
    header = json.loads(body[:header_length] if binary else body)
    assert header["model_name"] == "mlp"
    assert header["id"] == "req-1"
    decoded = decode_infer_response(body, header_length)
    for name, array in outputs.items():
        np.testing.assert_array_equal(decoded[name], array)


def test_requested_outputs_pick_which_and_how_each_is_sent() -> None:
    outputs = {"y": ARRAYS["float32"], "label": ARRAYS["int64"]}
    request = InferRequest(inputs={}, outputs=(RequestedOutput("label", True),))

    parts, header_length = encode_infer_response("mlp", outputs, request)

    assert header_length is not None
    header = json.loads(b"".join(parts)[:header_length])
    assert [entry["name"] for entry in header["outputs"]] == ["label"]
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 32}


def test_binary_inputs_are_views_of_the_body_not_copies() -> None:
    raw, header_length = encode_infer_request({"x": ARRAYS["float32"]}, binary=True)
    body = bytearray(raw)

    received = decode_infer_request(body, header_length).inputs["x"]
    body[-4:] = np.float32(42).tobytes()

    assert received[-1, -1] == 42


def test_binary_inputs_at_unaligned_offsets_are_aligned() -> None:
    header = json.dumps({"inputs": [
        {"name": "x", "shape": [2], "datatype": "FP32",
         "parameters": {"binary_data_size": 8}}]}).encode() + b" "  # odd header length
    body = header + np.array([1.5, 2.5], dtype=np.float32).tobytes()

    received = decode_infer_request(body, len(header)).inputs["x"]

    assert received.flags.aligned
    np.testing.assert_array_equal(received, [1.5, 2.5])


def test_json_data_may_be_flat_or_nested() -> None:
    flat = {"name": "x", "shape": [2, 2], "datatype": "INT32", "data": [1, 2, 3, 4]}
    nested = {**flat, "data": [[1, 2], [3, 4]]}

    for entry in (flat, nested):
        body = json.dumps({"inputs": [entry]}).encode()
        np.testing.assert_array_equal(decode_infer_request(body).inputs["x"], [[1, 2], [3, 4]])


def test_request_parameters_ask_for_binary_outputs() -> None:
    body = json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32",
                                   "data": [1]}],
                       "parameters": {"binary_data_output": True},
                       "outputs": [{"name": "a"},
                                   {"name": "b", "parameters": {"binary_data": False}}]})

    request = decode_infer_request(body.encode())

    assert request.binary_output
    assert request.outputs == (RequestedOutput("a", True), RequestedOutput("b", False))


def _input(**fields: object) -> dict[str, object]:
    return {"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2], **fields}


def _body(*inputs: object) -> bytes:
    return json.dumps({"inputs": list(inputs)}).encode()


BINARY_HEADER = json.dumps({"inputs": [_input(data=None, parameters={"binary_data_size": 8})]})


@pytest.mark.parametrize("body, header_length, error, field", [
    (b"{", None, MalformedBody, "body"),
    (b"\xff\xfe\x00", None, MalformedBody, "body"),
    (b"[1, 2]", None, MalformedBody, "body"),
    (b'{"inputs": []}', None, InvalidInput, "inputs"),
    (b'{"instances": [[1, 2]]}', None, InvalidInput, "inputs"),
    (_body("x"), None, InvalidInput, "inputs[0]"),
    (_body(_input(name=None)), None, InvalidInput, "inputs[0].name"),
    (_body(_input(shape=[1, -1])), None, ShapeMismatch, "inputs.x.shape"),
    (_body(_input(shape="1,2")), None, ShapeMismatch, "inputs.x.shape"),
    (_body(_input(datatype="FP8")), None, DtypeMismatch, "inputs.x.datatype"),
    (_body(_input(datatype=["FP32"])), None, DtypeMismatch, "inputs.x.datatype"),
    (_body({"name": "x", "shape": [1], "datatype": "FP32"}), None, MissingInput,
     "inputs.x.data"),
    (_body(_input(data=[1, 2, 3])), None, ShapeMismatch, "inputs.x"),
    (_body(_input(data=[[1, 2], [3]])), None, ShapeMismatch, "inputs.x.data"),
    (_body(_input(data=["a", "b"])), None, DtypeMismatch, "inputs.x.data"),
    (_body(_input(datatype="UINT8", data=[1, 300])), None, DtypeMismatch, "inputs.x.data"),
    (_body(_input(), _input()), None, InvalidInput, "inputs.x"),
    (_body(_input(parameters={"binary_data_size": 8})), None, InvalidInput, "inputs.x"),
    (BINARY_HEADER.encode() + b"\0" * 8, 10_000, InvalidInput,
     "headers.inference-header-content-length"),
    (BINARY_HEADER.encode() + b"\0" * 4, len(BINARY_HEADER), InvalidInput,
     "inputs.x.parameters.binary_data_size"),
    (BINARY_HEADER.encode() + b"\0" * 12, len(BINARY_HEADER), InvalidInput, "body"),
    (BINARY_HEADER.replace('"FP32"', '"FP64"').encode() + b"\0" * 8, len(BINARY_HEADER),
     ShapeMismatch, "inputs.x"),
    (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}], '
     b'"outputs": [{"parameters": {}}]}', None, InvalidInput, "outputs[0].name"),
], ids=["truncated-json", "not-utf8", "not-an-object", "no-inputs", "instances-on-v2",
        "input-not-object", "input-without-name", "negative-dim", "shape-not-list",
        "unknown-datatype", "datatype-not-string", "no-data", "data-count-differs",
        "ragged-data", "strings-as-floats", "overflowing-uint8", "input-twice",
        "binary-size-without-header", "header-length-past-body", "binary-runs-past-body",
        "bytes-after-last-tensor", "binary-size-differs-from-shape", "output-without-name"])
def test_a_malformed_request_names_the_field_at_fault(body: bytes, header_length: int | None,
                                                      error: type[InvalidInput],
                                                      field: str) -> None:
    with pytest.raises(error) as raised:
        decode_infer_request(body, header_length)

    assert raised.value.field == field
    assert raised.value.message.startswith(field)
    assert raised.value.http_status == 400


def test_a_bytes_tensor_with_a_bad_length_prefix_is_refused() -> None:
    header = json.dumps({"inputs": [{"name": "s", "shape": [1], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": 6}}]}).encode()
    body = header + (100).to_bytes(4, "little") + b"ab"

    with pytest.raises(InvalidInput, match="runs past"):
        decode_infer_request(body, len(header))


SIGNATURE = Signature(inputs=[TensorSpec(name="age", dtype="float32", shape=[-1]),
                              TensorSpec(name="city", dtype="str", shape=[-1])])


def test_instances_as_objects_become_one_batch_per_input() -> None:
    body = json.dumps({"instances": [{"age": 31, "city": "Hangzhou"},
                                     {"age": 45.5, "city": "Beijing"}]}).encode()

    inputs = decode_instances(body, SIGNATURE)

    np.testing.assert_array_equal(inputs["age"], [31, 45.5])
    assert inputs["city"].tolist() == ["Hangzhou", "Beijing"]
    assert inputs["city"].dtype == object


def test_instances_as_lists_feed_a_single_input_model() -> None:
    signature = Signature(inputs=[TensorSpec(name="x", dtype="float32", shape=[-1, 2])])

    inputs = decode_instances(b'{"instances": [[1, 2], [3, 4.5]]}', signature)

    assert inputs["x"].shape == (2, 2)


def test_instances_without_a_signature_feed_an_input_named_input() -> None:
    assert list(decode_instances(b'{"instances": [1, 2]}', Signature())) == ["input"]


@pytest.mark.parametrize("instances, error, field", [
    ('{"rows": []}', InvalidInput, "instances"),
    ('{"instances": []}', InvalidInput, "instances"),
    ('{"instances": [[1, "a"]]}', InvalidInput, "instances"),
    ('{"instances": [{"age": 1, "city": "x"}, {"age": 2}]}', MissingInput, "instances[1].city"),
    ('{"instances": [{"age": 1, "city": "x", "cty": "y"}]}', UnknownInput, "instances[0].cty"),
    ('{"instances": [{"age": 1, "city": "x"}, [2, "y"]]}', InvalidInput, "instances[1]"),
    ('{"instances": [{"age": [1, 2], "city": "x"}, {"age": [1], "city": "y"}]}',
     ShapeMismatch, "inputs.age"),
], ids=["no-instances-key", "no-rows", "lists-for-two-inputs", "row-missing-an-input",
        "row-with-an-unknown-input", "row-not-an-object", "ragged-rows"])
def test_malformed_instances_name_the_row_and_input(instances: str, error: type[InvalidInput],
                                                    field: str) -> None:
    with pytest.raises(error) as raised:
        decode_instances(instances.encode(), SIGNATURE)

    assert raised.value.field == field


def test_an_unknown_key_in_a_row_gets_a_suggestion() -> None:
    with pytest.raises(UnknownInput, match="did you mean 'city'"):
        decode_instances(b'{"instances": [{"age": 1, "cty": "x"}]}', SIGNATURE)


def test_predictions_come_from_the_predictions_output_and_others_ride_along() -> None:
    body = encode_predictions({"probabilities": np.array([[0.25, 0.75]]),
                               "predictions": np.array([1]),
                               "names": np.array([b"yes"], dtype=object)})

    assert json.loads(body) == {"predictions": [1], "probabilities": [[0.25, 0.75]],
                                "names": ["yes"]}


def test_metadata_lists_inputs_and_outputs_with_oip_datatypes() -> None:
    document = json.loads(encode_metadata("tabular", SIGNATURE, "sklearn", ["3"]))

    assert document == {"name": "tabular", "versions": ["3"], "platform": "sklearn",
                        "inputs": [{"name": "age", "datatype": "FP32", "shape": [-1]},
                                   {"name": "city", "datatype": "BYTES", "shape": [-1]}],
                        "outputs": []}


NUMERIC = st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_])


@settings(max_examples=60, deadline=None)
@given(array=hnp.arrays(NUMERIC, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5)),
       binary=st.booleans())
def test_any_numeric_tensor_survives_the_round_trip(array: np.ndarray, binary: bool) -> None:
    body, header_length = encode_infer_request({"t": array}, binary=binary)
    received = decode_infer_request(body, header_length).inputs["t"]

    parts, response_header = encode_infer_response(
        "m", {"t": received}, InferRequest(inputs={}, binary_output=binary))
    returned = decode_infer_response(b"".join(parts), response_header)["t"]

    assert returned.dtype == array.dtype
    np.testing.assert_array_equal(returned, array)


def test_nan_and_infinity_go_as_strings_in_json_and_come_back_as_floats() -> None:
    array = np.array([1.5, np.nan, np.inf, -np.inf], dtype=np.float32)

    parts, _ = encode_infer_response("m", {"t": array}, InferRequest(inputs={}))
    document = json.loads(b"".join(parts))

    assert document["outputs"][0]["data"] == [1.5, "NaN", "Infinity", "-Infinity"]
    returned = decode_infer_response(b"".join(parts))["t"]
    np.testing.assert_array_equal(returned, array)
