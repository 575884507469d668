"""Pass ``graph``: ONNX Runtime's graph optimizations, saved offline.

Transformer encoders (BERT, MiniLM, RoBERTa...) get the transformer fusions (Attention,
SkipLayerNormalization, BiasGelu, EmbedLayerNormalization): ORT only applies them offline,
and they are what makes INT8 attention (QAttention) possible afterwards. Two fusers run in
turn: ``onnxscript.rewriter.ort_fusions``, which knows the graphs the dynamo exporter
writes (scaled-dot-product attention with its NaN guards), then
``onnxruntime.transformers.optimizer``, which knows the TorchScript exporter's; each leaves
alone what the other fused. Then the rewrites of ``rewrites.py``: the padding mask as
``mask_index`` (so INT8 quantizes the attention weights too) and, on the CPU, the slow
``SkipLayerNormalization`` split back into ``Add`` + ``LayerNormalization``.

Other models get ORT's extended optimizations
(constant folding, Conv+BN+activation, Gemm fusions) written through
``SessionOptions.optimized_model_filepath``; since ORT applies those same fusions online
whenever a session loads, quantization keeps reading the model before them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from aip.optimize.passes.rewrites import rewrite_fused_transformer
from aip.optimize.pipeline import ModelState, PassContext, PassOutcome
from aip.optimize.sessions import providers_for

TRANSFORMER_MARKERS = ("Softmax", "MatMul")
NORMALIZATION_OPS = ("LayerNormalization", "SimplifiedLayerNormalization")


def graph_pass(state: ModelState, context: PassContext) -> PassOutcome:
    assert state.path is not None
    transformer = context.options.transformer
    if transformer is None:
        transformer = looks_like_transformer(state.path)
    out = context.workdir / "graph.onnx"
    if transformer:
        fusions, fusers = optimize_transformer(state.path, out, context)
        return PassOutcome(state.moved_to(out, quantize_from=out),
                           details={"optimizer": " + ".join(fusers), "fusions": fusions})
    optimize_extended(state.path, out, context.target)
    return PassOutcome(state.moved_to(out, quantize_from=state.quantize_from or state.path),
                       details={"optimizer": "onnxruntime ORT_ENABLE_EXTENDED"})


def looks_like_transformer(path: Path) -> bool:
    """Self-attention encoder: Softmax and MatMul, layer normalization (as one op or as the
    ReduceMean/Pow/Sqrt pattern of older exports) and a 2-D integer input (token ids)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops = Counter(node.op_type for node in model.graph.node)
    has_norm = any(ops[name] for name in NORMALIZATION_OPS) or ops["ReduceMean"] >= 2
    integer_types = {onnx.TensorProto.INT64, onnx.TensorProto.INT32}
    token_input = any(
        item.type.tensor_type.elem_type in integer_types
        and len(item.type.tensor_type.shape.dim) == 2 for item in model.graph.input)
    return all(ops[name] for name in TRANSFORMER_MARKERS) and has_norm and token_input


def optimize_transformer(source: Path, out: Path, context: PassContext
                         ) -> tuple[dict[str, int], list[str]]:
    """Fuse with both fusers; return the fused-operator counts that are not zero and the
    fusers that changed the graph."""
    from onnxruntime.transformers.optimizer import optimize_model

    fused = fuse_dynamo_attention(source, out.with_name(out.stem + "_onnxscript.onnx"))
    optimized = optimize_model(str(fused or source), model_type="bert",
                               num_heads=context.options.num_heads,
                               hidden_size=context.options.hidden_size,
                               use_gpu=context.target == "cuda")
    statistics = optimized.get_fused_operator_statistics()
    rewrites = rewrite_fused_transformer(optimized, context.target)
    optimized.save_model_to_file(str(out))
    fusers = (["onnxscript ort_fusions"] if fused else []) + ["onnxruntime.transformers (bert)"]
    counts = {name: int(count) for name, count in statistics.items() if count}
    return counts | {f"rewrite:{name}": count for name, count in rewrites.items()}, fusers


def fuse_dynamo_attention(source: Path, out: Path) -> Path | None:
    """onnxscript's ORT fusions; None when onnxscript is missing or fused nothing."""
    try:
        import onnx_ir
        from onnxscript.rewriter.ort_fusions import optimize_for_ort
    except ImportError:
        return None
    model = onnx_ir.load(str(source))
    model, counts = optimize_for_ort(model)
    if not any(counts.values()):
        return None
    onnx_ir.save(model, str(out))
    return out


def optimize_extended(source: Path, out: Path, target: str) -> None:
    """Let ORT optimize at the extended level for ``target`` and save the result."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(out)
    options.log_severity_level = 3
    onnxruntime.InferenceSession(str(source), options, providers=providers_for(target))
