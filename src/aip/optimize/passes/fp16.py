"""Pass ``fp16``: weights and activations in float16 for GPUs, inputs and outputs kept fp32.

ONNX Runtime's CPU kernels compute most float16 ops by casting back to float32, so on the
CPU this pass only costs accuracy; it is skipped there with that reason. The conversion is
``onnxruntime.transformers``' own (it knows which ops must stay fp32).
"""

from __future__ import annotations

from aip.optimize.pipeline import ModelState, PassContext, PassOutcome


def fp16_pass(state: ModelState, context: PassContext) -> PassOutcome:
    if context.target != "cuda":
        return PassOutcome.skipped(
            "fp16 runs only with target=cuda: ONNX Runtime's CPU kernels are not faster "
            "in fp16")
    assert state.path is not None
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(state.path)))
    model.convert_float_to_float16(keep_io_types=True)
    out = context.workdir / "fp16.onnx"
    model.save_model_to_file(str(out))
    return PassOutcome(state.moved_to(out, quantize_from=None),
                       details={"keep_io_types": True})
