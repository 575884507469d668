"""The graph pass's rewrites of a fused transformer, on hand-made ONNX graphs: each keeps
the outputs, and each leaves alone what it cannot prove it may change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aip.optimize.passes.rewrites import (
    drop_equal_qkv_sizes,
    mask_index_name,
    padding_bias_to_mask_index,
    rewrite_fused_transformer,
    unfuse_skip_layer_norm,
)

HIDDEN, HEADS, LENGTH = 8, 2, 6
PADDED = float(np.finfo(np.float32).min)


def attention_model(*, padded_value: float = PADDED, qkv_sizes: bool = True,
                    masks: tuple[str, ...] = ("mask",)) -> Any:
    """x (batch, seq, 8) and, per name in ``masks``, a 0/1 mask (batch, seq) into a fused
    ``Attention`` (output ``y`` for the first mask, ``y_<mask>`` for others) whose
    ``attention_bias`` is built from that mask as the dynamo exporter builds it: kept keys
    0, padded keys ``padded_value``, broadcast over heads and query rows."""
    from onnx import TensorProto, helper, numpy_helper

    generator = np.random.default_rng(0)
    weights = {
        "qkv_weight": generator.standard_normal((HIDDEN, 3 * HIDDEN)).astype(np.float32),
        "qkv_bias": generator.standard_normal(3 * HIDDEN).astype(np.float32) * 0.1,
        "axes": np.array([1, 2], dtype=np.int64),
        "query_axes": np.array([1, 3], dtype=np.int64),
        "zero": np.array(0.0, dtype=np.float32),
        "padded": np.array(padded_value, dtype=np.float32),
    }
    attributes: dict[str, Any] = {"num_heads": HEADS}
    if qkv_sizes:
        attributes["qkv_hidden_sizes"] = [HIDDEN] * 3
    nodes, inputs, outputs = [], [], []
    for index, mask in enumerate(masks):
        bias, y = ("bias", "y") if index == 0 else (f"bias_{mask}", f"y_{mask}")
        nodes += [
            helper.make_node("Cast", [mask], [f"{mask}_bool"], to=TensorProto.BOOL),
            helper.make_node("Unsqueeze", [f"{mask}_bool", "axes"], [f"{mask}_4d"]),
            helper.make_node("Where", [f"{mask}_4d", "zero", "padded"], [f"{mask}_keys"]),
            # (batch, 1, 1, seq) + zeros of (batch, 1, seq, 1): one row per query, as ORT
            # wants
            helper.make_node("Cast", [mask], [f"{mask}_float"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [f"{mask}_float", "zero"], [f"{mask}_zeros"]),
            helper.make_node("Unsqueeze", [f"{mask}_zeros", "query_axes"],
                             [f"{mask}_query_zeros"]),
            helper.make_node("Add", [f"{mask}_keys", f"{mask}_query_zeros"], [bias]),
            helper.make_node("Attention", ["x", "qkv_weight", "qkv_bias", "", "", bias], [y],
                             domain="com.microsoft", **attributes),
        ]
        inputs.append(helper.make_tensor_value_info(mask, TensorProto.INT64, ["batch", "seq"]))
        outputs.append(helper.make_tensor_value_info(y, TensorProto.FLOAT,
                                                     ["batch", "seq", HIDDEN]))
    graph = helper.make_graph(
        nodes, "attention",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", HIDDEN]),
         *inputs], outputs,
        [numpy_helper.from_array(value, name) for name, value in weights.items()])
    return _model(graph)


def skip_layer_norm_model(*, read_mean: bool = False) -> Any:
    """x + skip + bias, normalized by ``SkipLayerNormalization``; the sum is read too."""
    from onnx import TensorProto, helper, numpy_helper

    generator = np.random.default_rng(1)
    weights = {name: generator.standard_normal(HIDDEN).astype(np.float32)
               for name in ("gamma", "beta", "bias")}
    outputs = ["normed", "mean" if read_mean else "", "", "total"]
    nodes = [helper.make_node("SkipLayerNormalization", ["x", "skip", "gamma", "beta", "bias"],
                              outputs, domain="com.microsoft", epsilon=1e-5, name="sln"),
             helper.make_node("Add", ["normed", "total"], ["unclipped"]),
             helper.make_node("Clip", ["unclipped", "", ""], ["y"])]  # omitted inputs: ""
    outputs_info = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if read_mean:
        outputs_info.append(helper.make_tensor_value_info("mean", TensorProto.FLOAT, None))
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", "seq", HIDDEN])
              for name in ("x", "skip")]
    graph = helper.make_graph(nodes, "sln", inputs, outputs_info,
                              [numpy_helper.from_array(v, k) for k, v in weights.items()])
    return _model(graph)


def run(model: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(model.model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def padded_feeds(batch: int, length: int) -> dict[str, np.ndarray]:
    generator = np.random.default_rng(batch)
    mask = np.ones((batch, length), dtype=np.int64)
    mask[batch // 2:, length // 2:] = 0
    return {"x": generator.standard_normal((batch, length, HIDDEN)).astype(np.float32),
            "mask": mask}


def nodes_of(model: Any, op_type: str) -> list[Any]:
    return [node for node in model.model.graph.node if node.op_type == op_type]


def test_a_padding_bias_becomes_the_attention_mask_index_with_the_same_outputs() -> None:
    model = attention_model()
    before = [run(model, padded_feeds(batch, length))[0] for batch, length in ((4, 6), (3, 9))]

    counts = rewrite_fused_transformer(model, "cpu")

    assert counts["attention_mask_index"] == 1 and counts["qkv_sizes_dropped"] == 1
    (attention,) = nodes_of(model, "Attention")
    assert list(attention.input) == ["x", "qkv_weight", "qkv_bias", mask_index_name("mask")]
    assert not nodes_of(model, "Where") and not nodes_of(model, "Mul")  # pruned
    after = [run(model, padded_feeds(batch, length))[0] for batch, length in ((4, 6), (3, 9))]
    for old, new in zip(before, after, strict=True):
        np.testing.assert_allclose(new, old, atol=1e-5)


def test_attention_nodes_with_different_masks_each_get_their_own_mask_index() -> None:
    model = attention_model(masks=("mask", "other"))
    feeds = padded_feeds(4, 6)
    feeds["other"] = feeds["mask"][::-1].copy()
    before = run(model, feeds)

    assert padding_bias_to_mask_index(model) == 2

    assert sorted(node.input[3] for node in nodes_of(model, "Attention")) == sorted(
        mask_index_name(name) for name in ("mask", "other"))
    for old, new in zip(before, run(model, feeds), strict=True):
        np.testing.assert_allclose(new, old, atol=1e-5)


def test_after_the_rewrite_int8_quantizes_the_attention_weights(tmp_path: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = attention_model()
    rewrite_fused_transformer(model, "cpu")
    onnx.save(model.model, str(tmp_path / "fused.onnx"))
    quantize_dynamic(str(tmp_path / "fused.onnx"), str(tmp_path / "int8.onnx"),
                     weight_type=QuantType.QInt8)
    ops = {node.op_type for node in onnx.load(str(tmp_path / "int8.onnx")).graph.node}
    assert "QAttention" in ops and "Attention" not in ops


def test_a_bias_that_only_lowers_padded_keys_a_little_is_not_a_mask() -> None:
    model = attention_model(padded_value=-5.0)  # a soft penalty, not a mask: keep it
    assert padding_bias_to_mask_index(model) == 0
    assert nodes_of(model, "Attention")[0].input[5] == "bias"


def test_unequal_qkv_sizes_stay() -> None:
    model = attention_model()
    nodes_of(model, "Attention")[0].attribute[1].ints[:] = [HIDDEN, HIDDEN, 2 * HIDDEN]
    assert drop_equal_qkv_sizes(model) == 0


def test_skip_layer_norm_splits_into_add_and_layer_norm_with_the_same_outputs() -> None:
    model = skip_layer_norm_model()
    feeds = {"x": padded_feeds(3, 5)["x"], "skip": padded_feeds(2, 5)["x"][:1]}
    feeds["skip"] = np.broadcast_to(feeds["skip"], feeds["x"].shape).copy()
    (before,) = run(model, feeds)

    assert unfuse_skip_layer_norm(model) == 1

    assert not nodes_of(model, "SkipLayerNormalization")
    assert len(nodes_of(model, "LayerNormalization")) == 1
    np.testing.assert_allclose(run(model, feeds)[0], before, atol=1e-5)


def test_skip_layer_norm_whose_statistics_are_read_stays_fused() -> None:
    model = skip_layer_norm_model(read_mean=True)
    assert unfuse_skip_layer_norm(model) == 0
    assert rewrite_fused_transformer(model, "cuda") == {}  # and cuda keeps the fused kernel


def test_a_tiny_bert_gets_qattention_from_the_whole_pipeline(tmp_path: Path) -> None:
    """The dynamo export of a real (tiny, random) BERT, fused and quantized by o2."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import onnx
    import torch

    import aip
    from aip.optimize import MeasureSettings, OptimizeOptions
    from tests.unit.optimize.builders import tokens

    config = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=64,
                                     max_position_embeddings=32)
    torch.manual_seed(0)
    bert = transformers.BertModel(config, add_pooling_layer=False).eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask)[0]

    ids, mask = tokens(8, 12)
    options = OptimizeOptions(measure=MeasureSettings(warmup=1, min_runs=2, min_seconds=0.0),
                              objective="size", skip=("quantize_static",))
    result = aip.optimize(Encoder().eval(), (ids[:2], mask[:2]), level="o2",
                          val_data=((ids, mask), None), metric="cosine",
                          output_dir=tmp_path, options=options)

    graph_row = next(row for row in result.report.passes if row.name == "graph")
    assert graph_row.details["fusions"]["rewrite:attention_mask_index"] == 2
    ops = {node.op_type for node in onnx.load(str(result.path)).graph.node}
    assert "QAttention" in ops, result.report.passes
    with torch.inference_mode():
        expected = Encoder()(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    got = result.predict((ids, mask))[0]
    cosine = np.sum(got * expected, -1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(
        expected, axis=-1)
    assert cosine[mask == 1].mean() > 0.99


def _model(graph: Any) -> Any:
    from onnx import helper
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return OnnxModel(model)
