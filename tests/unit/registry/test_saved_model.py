"""The SavedModel signature reader: protobuf bytes written here by a tiny encoder (and, in
the slow suite, a SavedModel exported by TensorFlow itself)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aip.errors import InvalidSpec
from aip.registry.saved_model import NotASavedModel, read_signatures
from aip.registry.signatures import infer_signature
from aip.spec.model import Signature, TensorSpec


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def tensor_info(dtype: int, dims: list[int] | None) -> bytes:
    shape = (b"".join(field(2, field(1, size)) for size in dims) if dims is not None
             else field(3, 1))
    return field(1, "serving_default_x:0") + field(2, dtype) + field(3, shape)


def saved_model(signatures: dict[str, tuple[dict[str, bytes], dict[str, bytes]]]) -> bytes:
    meta_graph = field(1, field(4, "serve"))  # meta_info_def.tags
    for key, (inputs, outputs) in signatures.items():
        definition = b"".join(field(1, field(1, n) + field(2, i)) for n, i in inputs.items())
        definition += b"".join(field(2, field(1, n) + field(2, i)) for n, i in outputs.items())
        definition += field(3, "tensorflow/serving/predict")
        meta_graph += field(5, field(1, key) + field(2, definition))
    return field(1, 1) + field(2, meta_graph)


def test_the_serving_signature_is_read_with_unknown_sizes_as_minus_one(tmp_path: Path) -> None:
    data = saved_model({
        "serving_default": ({"features": tensor_info(1, [-1, 4]), "ids": tensor_info(9, [-1])},
                            {"score": tensor_info(1, [-1, 1]), "label": tensor_info(7, None)}),
        "train": ({"x": tensor_info(2, [8])}, {}),
    })
    (tmp_path / "saved_model.pb").write_bytes(data)
    inferred = infer_signature("tensorflow", tmp_path)
    assert inferred.signature == Signature(
        inputs=[TensorSpec(name="features", dtype="float32", shape=[-1, 4]),
                TensorSpec(name="ids", dtype="int64", shape=[-1])],
        outputs=[TensorSpec(name="label", dtype="str", shape=[]),
                 TensorSpec(name="score", dtype="float32", shape=[-1, 1])])
    assert inferred.metadata == {"signature_key": "serving_default",
                                 "signature_keys": ["serving_default", "train"]}


def test_without_serving_default_the_first_signature_is_taken() -> None:
    data = saved_model({"predict": ({"x": tensor_info(2, [3])}, {})})
    assert list(read_signatures(data)) == ["predict"]


def test_garbage_is_not_a_saved_model(tmp_path: Path) -> None:
    with pytest.raises(NotASavedModel):
        read_signatures(b"\xff\xff\xff")
    (tmp_path / "saved_model.pb").write_bytes(b"\x12\xff\x01")
    with pytest.raises(InvalidSpec, match="not a valid tensorflow SavedModel"):
        infer_signature("tensorflow", tmp_path)


@pytest.mark.slow
def test_a_saved_model_exported_by_tensorflow(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")

    class Scale(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def __call__(self, x: object) -> dict[str, object]:
            return {"y": x * 2.0}

    module = Scale()
    tf.saved_model.save(module, str(tmp_path / "export"),
                        signatures={"serving_default": module.__call__})
    inferred = infer_signature("tensorflow", tmp_path / "export")
    assert inferred.signature == Signature(
        inputs=[TensorSpec(name="x", dtype="float32", shape=[-1, 3])],
        outputs=[TensorSpec(name="y", dtype="float32", shape=[-1, 3])])
