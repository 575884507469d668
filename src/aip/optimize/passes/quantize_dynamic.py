"""Pass ``quantize_dynamic``: INT8 weights, activations quantized on the fly per batch.

Needs no calibration data. On a transformer whose attention was fused by the graph pass,
``Attention`` becomes ``QAttention`` and the MatMuls ``DynamicQuantizeMatMul``. Weights are
tried per tensor first (cheapest), then per output channel: on CPUs without VNNI, ORT's
u8s8 kernels saturate and per-tensor scales can cost transformers several points of cosine
similarity, which per-channel scales win back. The first setting the guard accepts is kept.
ONNX Runtime runs these kernels on the CPU only, so the pass is skipped for ``target=cuda``.
"""

from __future__ import annotations

from typing import Any

from aip.optimize.passes.rewrites import drop_shape_annotations
from aip.optimize.pipeline import ModelState, PassContext, PassOutcome


def quantize_dynamic_pass(state: ModelState, context: PassContext) -> PassOutcome:
    if context.target != "cpu":
        return PassOutcome.skipped("ONNX Runtime runs INT8 dynamic quantization on the CPU "
                                   "only; on cuda the fp16 pass applies")
    source = state.quantize_from or state.path
    assert source is not None
    from onnxruntime.quantization import QuantType, quantize_dynamic

    candidates: list[dict[str, Any]] = []
    chosen = None
    for per_channel in context.options.dynamic_per_channel:
        out = context.workdir / f"quantize_dynamic_{'channel' if per_channel else 'tensor'}.onnx"
        quantize_dynamic(str(source), str(out), weight_type=QuantType.QInt8,
                         per_channel=per_channel, extra_options={"MatMulConstBOnly": True})
        drop_shape_annotations(out)
        verdict = context.verdict(out)
        candidates.append({"per_channel": per_channel, "metric": verdict.metric})
        if chosen is None or verdict.metric > chosen[1]:
            chosen = (out, verdict.metric, per_channel)
        if verdict.passed:
            chosen = (out, verdict.metric, per_channel)
            break
    assert chosen is not None
    return PassOutcome(state.moved_to(chosen[0], quantize_from=None),
                       details={"weight_type": "int8", "per_channel": chosen[2],
                                "candidates": candidates, "from": source.name})
