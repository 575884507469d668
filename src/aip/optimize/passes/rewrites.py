"""Rewrites of a fused transformer graph, run by the graph pass after the fusers.

Each rewrite keeps the model's outputs (lossless) and exists because of something measured
or required downstream:

- ``padding_bias_to_mask_index``: the dynamo exporter builds the padding mask as an additive
  float bias (0 where a token is kept, the float minimum where it is padding), which the
  fusers pass to ``Attention`` as ``attention_bias``. ORT's ``QAttention`` (INT8 attention
  with quantized Q/K/V weights) has no such input, so INT8 left those weights in fp32. When
  the bias is a key-padding mask of one 2-D integer input, as checked by running its
  subgraph on random masks, the ``Attention`` nodes take that input as ``mask_index``
  instead, and the mask subgraph goes.
- ``drop_equal_qkv_sizes``: ``qkv_hidden_sizes`` equal for Q, K and V is the default, and
  ORT's quantizer refuses ``Attention`` nodes that carry the attribute.
- ``unfuse_skip_layer_norm`` (CPU): ORT 1.32's CPU ``SkipLayerNormalization`` kernel took
  four times as long as ``Add`` + ``LayerNormalization`` on MiniLM at batch 32 (52 ms
  against 14 ms of 330), so on the CPU target the fused node is split back.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

ATTENTION_BIAS_INPUT = 5
MASK_INDEX_INPUT = 3
PAD_BIAS_CEILING = -1e4  # a padded key's bias must be at least this negative
CHECK_SHAPES = ((2, 5), (3, 8), (1, 6))
INTEGER_TYPES = (6, 7)  # onnx.TensorProto.INT32, INT64


def rewrite_fused_transformer(model: Any, target: str) -> dict[str, int]:
    """Apply the rewrites to ``model`` (an ``onnxruntime.transformers`` ``OnnxModel``) in
    place; return how many nodes each changed (zeros left out)."""
    counts = {"attention_mask_index": padding_bias_to_mask_index(model),
              "qkv_sizes_dropped": drop_equal_qkv_sizes(model)}
    if target == "cpu":
        counts["skip_layer_norm_split"] = unfuse_skip_layer_norm(model)
    if any(counts.values()):
        model.prune_graph()
    return {name: count for name, count in counts.items() if count}


def padding_bias_to_mask_index(model: Any) -> int:
    """Give ``Attention`` nodes whose ``attention_bias`` is a key-padding mask the raw mask
    as ``mask_index``; return the number of nodes changed."""
    from onnx import TensorProto, helper

    by_bias: dict[str, list[Any]] = {}
    for node in _attention_nodes(model):
        by_bias.setdefault(node.input[ATTENTION_BIAS_INPUT], []).append(node)
    casts = {node.output[0] for node in model.model.graph.node if node.op_type == "Cast"}
    changed = 0
    for bias, nodes in by_bias.items():
        subgraph, inputs = _upstream(model, bias)
        mask = _mask_input(model, inputs)
        if mask is None or not _is_key_padding_bias(model, subgraph, mask, bias):
            continue
        mask_index = mask_index_name(mask.name)
        if mask_index not in casts:
            casts.add(mask_index)
            model.model.graph.node.insert(0, helper.make_node(
                "Cast", [mask.name], [mask_index], name=mask_index, to=TensorProto.INT32))
        for node in nodes:
            inputs_now = [*list(node.input)[:MASK_INDEX_INPUT], mask_index]
            del node.input[:]
            node.input.extend(inputs_now)
            changed += 1
    return changed


def mask_index_name(mask: str) -> str:
    """The int32 copy of graph input ``mask`` that ``Attention`` reads as ``mask_index``."""
    return f"{mask}_as_mask_index"


def drop_equal_qkv_sizes(model: Any) -> int:
    changed = 0
    for node in model.model.graph.node:
        if node.op_type != "Attention":
            continue
        kept = [attribute for attribute in node.attribute
                if not (attribute.name == "qkv_hidden_sizes" and len(set(attribute.ints)) == 1)]
        if len(kept) < len(node.attribute):
            del node.attribute[:]
            node.attribute.extend(kept)
            changed += 1
    return changed


def unfuse_skip_layer_norm(model: Any) -> int:
    """Split ``SkipLayerNormalization`` into ``Add`` (+ bias ``Add``) and
    ``LayerNormalization`` where only its normalized output and its sum are read."""
    from onnx import helper

    if _opset(model.model) < 17:  # LayerNormalization is opset 17
        return 0
    read = {name for node in model.model.graph.node for name in node.input}
    read |= {output.name for output in model.model.graph.output}
    read.discard("")  # an omitted optional input is not a read of an omitted output
    rebuilt: list[Any] = []
    changed = 0
    for node in model.model.graph.node:
        outputs = list(node.output) + [""] * 4
        if node.op_type != "SkipLayerNormalization" or outputs[1] in read or outputs[2] in read:
            rebuilt.append(node)
            continue
        inputs = list(node.input) + [""] * 5
        epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-12)
        total = outputs[3] if outputs[3] in read else f"{node.name}_sum"
        if inputs[4]:
            rebuilt.append(helper.make_node("Add", inputs[:2], [f"{total}_no_bias"],
                                            name=f"{node.name}_add"))
            rebuilt.append(helper.make_node("Add", [f"{total}_no_bias", inputs[4]], [total],
                                            name=f"{node.name}_add_bias"))
        else:
            rebuilt.append(helper.make_node("Add", inputs[:2], [total], name=f"{node.name}_add"))
        norm_inputs = [total, inputs[2]] + ([inputs[3]] if inputs[3] else [])
        rebuilt.append(helper.make_node("LayerNormalization", norm_inputs, [outputs[0]],
                                        name=f"{node.name}_norm", axis=-1, epsilon=epsilon))
        changed += 1
    if changed:
        del model.model.graph.node[:]
        model.model.graph.node.extend(rebuilt)
    return changed


def drop_shape_annotations(path: Path) -> None:
    """Remove the intermediate tensors' shape annotations (``value_info``) the quantizers
    write: ONNX Runtime infers them when it loads the model, and on a small model they are a
    few percent of the INT8 file. The guard runs on the file as rewritten."""
    import onnx

    model = onnx.load(str(path))
    if model.graph.value_info:
        del model.graph.value_info[:]
        onnx.save(model, str(path))


# -- helpers --------------------------------------------------------------------------------


def _attention_nodes(model: Any) -> Iterable[Any]:
    """Attention nodes with an attention bias and neither a mask nor past state."""
    for node in model.model.graph.node:
        inputs = list(node.input) + [""] * 7
        if (node.op_type == "Attention" and inputs[ATTENTION_BIAS_INPUT]
                and not inputs[MASK_INDEX_INPUT] and not inputs[4] and not inputs[6]):
            yield node


def _mask_input(model: Any, names: set[str]) -> Any | None:
    """The graph input among ``names``, if there is exactly one and it is 2-D integer."""
    if len(names) != 1:
        return None
    (mask,) = (item for item in model.model.graph.input if item.name in names)
    tensor_type = mask.type.tensor_type
    if tensor_type.elem_type not in INTEGER_TYPES or len(tensor_type.shape.dim) != 2:
        return None
    return mask


def _upstream(model: Any, tensor: str) -> tuple[list[Any], set[str]]:
    """The nodes ``tensor`` is computed by, in graph order, and the graph inputs they read."""
    producers = model.output_name_to_node()
    graph_inputs = {item.name for item in model.model.graph.input}
    needed: set[int] = set()
    found: set[str] = set()
    seen: set[str] = set()
    pending = [tensor]
    while pending:
        name = pending.pop()
        if name in seen or not name:
            continue
        seen.add(name)
        if name in graph_inputs:
            found.add(name)
        elif name in producers:
            needed.add(id(producers[name]))
            pending.extend(producers[name].input)
    return [node for node in model.model.graph.node if id(node) in needed], found


def _is_key_padding_bias(model: Any, nodes: list[Any], mask: Any, bias: str) -> bool:
    """Run ``nodes``, the subgraph from graph input ``mask`` to ``bias``, on random masks:
    the bias must be 0 for every kept key and at most ``PAD_BIAS_CEILING`` for every padded
    one, whatever the query row and head."""
    import onnxruntime
    from onnx import TensorProto, helper

    read = {name for node in nodes for name in node.input}
    graph = helper.make_graph(
        nodes, "padding_bias", [mask],
        [helper.make_tensor_value_info(bias, TensorProto.FLOAT, None)],
        [tensor for tensor in model.model.graph.initializer if tensor.name in read])
    subgraph = helper.make_model(graph, opset_imports=model.model.opset_import)
    subgraph.ir_version = model.model.ir_version
    try:
        session = onnxruntime.InferenceSession(subgraph.SerializeToString(),
                                               providers=["CPUExecutionProvider"])
    except Exception:  # a subgraph ORT cannot run alone is simply not rewritten
        return False
    dtype = np.int32 if mask.type.tensor_type.elem_type == TensorProto.INT32 else np.int64
    generator = np.random.default_rng(0)
    for batch, length in CHECK_SHAPES:
        values = (generator.random((batch, length)) > 0.4).astype(dtype)
        values[:, 0] = 1
        values[0] = 1  # one row unpadded
        (out,) = session.run([bias], {mask.name: values})
        if out.ndim != 4 or out.shape[0] not in (1, batch) or out.shape[-1] != length:
            return False
        keys = values[:, None, None, :] == 1
        if not np.all(np.where(keys, out == 0, out <= PAD_BIAS_CEILING)):
            return False
    return True


def _opset(model: Any) -> int:
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")),
                0)
