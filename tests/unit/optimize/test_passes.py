"""Each pass on its own, on a tiny model: its outputs stay within the pass's tolerance."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from aip.optimize.api import OptimizeOptions
from aip.optimize.data import InputSpec
from aip.optimize.guard import Guard
from aip.optimize.passes.fp16 import fp16_pass
from aip.optimize.passes.graph import graph_pass, looks_like_transformer
from aip.optimize.passes.prune import prune_module
from aip.optimize.passes.quantize_dynamic import quantize_dynamic_pass
from aip.optimize.passes.quantize_static import quantize_static_pass
from aip.optimize.pipeline import ModelState, PassContext
from aip.optimize.sessions import open_session, run_batched
from tests.unit.optimize.builders import FEATURES, mlp_onnx, onnx_rows, torch_cnn, torch_mlp

SPECS = [InputSpec("x", np.dtype("float32"), (None, FEATURES))]


def make_context(tmp_path: Path, mlp_path: Path, options: OptimizeOptions, *,
                 calib: bool = True, target: str = "cpu") -> PassContext:
    x, _ = onnx_rows(mlp_path, 200)
    reference = run_batched(open_session(mlp_path, "cpu", basic_only=True), {"x": x})
    return PassContext(workdir=tmp_path, level="o2", target=target, specs=SPECS,
                       example={"x": x[:1]}, eval_feeds={"x": x},
                       guard=Guard("cosine", 0.01, reference, None), options=options,
                       calib={"x": x[:128]} if calib else None)


def outputs_of(path: Path, x: np.ndarray) -> np.ndarray:
    return run_batched(open_session(path, "cpu"), {"x": x})[0]


def test_graph_pass_is_lossless_and_keeps_the_pre_fusion_model_for_quantizers(
        tmp_path: Path, mlp_path: Path, quick: OptimizeOptions) -> None:
    context = make_context(tmp_path, mlp_path, quick)
    outcome = graph_pass(ModelState(mlp_path, quantize_from=mlp_path), context)
    assert outcome.state is not None and outcome.state.path is not None
    assert outcome.state.quantize_from == mlp_path
    assert not looks_like_transformer(mlp_path)
    x = context.eval_feeds["x"]
    np.testing.assert_allclose(outputs_of(outcome.state.path, x), outputs_of(mlp_path, x),
                               atol=1e-3, rtol=1e-3)


def test_dynamic_int8_is_four_times_smaller_in_weights_and_close_in_cosine(
        tmp_path: Path, mlp_path: Path, quick: OptimizeOptions) -> None:
    context = make_context(tmp_path, mlp_path, quick)
    outcome = quantize_dynamic_pass(ModelState(mlp_path, quantize_from=mlp_path), context)
    assert outcome.state is not None and outcome.state.path is not None
    verdict = context.verdict(outcome.state.path)
    assert verdict.passed, verdict.failure
    assert verdict.metric > 0.99
    assert outcome.details["candidates"][0]["per_channel"] is False


def test_static_int8_calibrates_and_reports_its_candidates(
        tmp_path: Path, mlp_path: Path) -> None:
    from aip.optimize import MeasureSettings

    options = OptimizeOptions(calibration_methods=("minmax", "percentile"),
                              per_channel=(False,), measure=MeasureSettings(min_runs=1))
    context = make_context(tmp_path, mlp_path, options)
    events: list[str] = []
    context.progress = lambda event: events.append(event.kind)
    outcome = quantize_static_pass(ModelState(mlp_path, quantize_from=mlp_path), context)
    assert outcome.state is not None and outcome.state.path is not None
    assert [c["method"] for c in outcome.details["candidates"]] == ["minmax", "percentile"]
    assert context.verdict(outcome.state.path).metric > 0.98
    assert events[0] == "calibration_started"
    assert events.count("calibration_step") == 2 * 4  # 128 rows in batches of 32, twice
    assert events[-1] == "calibration_finished"


def test_static_int8_without_calibration_data_is_skipped_with_the_reason(
        tmp_path: Path, mlp_path: Path, quick: OptimizeOptions) -> None:
    context = make_context(tmp_path, mlp_path, quick, calib=False)
    outcome = quantize_static_pass(ModelState(mlp_path), context)
    assert outcome.state is None and "no calib_data" in outcome.reason


def test_fp16_is_skipped_on_the_cpu(tmp_path: Path, mlp_path: Path,
                                    quick: OptimizeOptions) -> None:
    outcome = fp16_pass(ModelState(mlp_path), make_context(tmp_path, mlp_path, quick))
    assert outcome.state is None and "target=cuda" in outcome.reason


def test_fp16_conversion_keeps_fp32_inputs_and_stays_close(tmp_path: Path, mlp_path: Path,
                                                            quick: OptimizeOptions) -> None:
    """The conversion itself (what target=cuda runs) checked on the CPU provider."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(mlp_path)))
    model.convert_float_to_float16(keep_io_types=True)
    path = tmp_path / "fp16.onnx"
    model.save_model_to_file(str(path))
    x, _ = onnx_rows(mlp_path, 50)
    np.testing.assert_allclose(outputs_of(path, x), outputs_of(mlp_path, x), atol=2e-2,
                               rtol=2e-2)


def test_pruning_zeroes_channels_but_never_the_output_layer() -> None:
    torch = pytest.importorskip("torch")
    model = torch_cnn()
    pruned, layers = prune_module(model, 0.5)
    assert layers == 2  # two convolutions; the Linear head is left alone
    first = pruned[0].weight.detach()
    zero_filters = int((first.flatten(1).abs().sum(1) == 0).sum())
    assert zero_filters == 4
    assert torch.equal(pruned[-1].weight, model[-1].weight)
    assert int((model[0].weight.flatten(1).abs().sum(1) == 0).sum()) == 0  # original intact


def test_pruning_calls_the_fine_tune_hook_with_the_masks_in_place() -> None:
    pytest.importorskip("torch")
    seen: list[bool] = []

    def fine_tune(module: object) -> None:
        seen.append(hasattr(module[0], "weight_mask"))  # type: ignore[index]

    pruned, _ = prune_module(torch_mlp(), 0.25, fine_tune)
    assert seen == [True]
    assert not hasattr(pruned[0], "weight_mask")  # made permanent afterwards


def test_the_export_carries_no_stack_traces_of_the_users_code(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import onnx

    from aip.optimize.passes.export import export_module

    x = np.zeros((1, FEATURES), dtype=np.float32)
    assert export_module(torch_mlp(), {"x": x}, SPECS, tmp_path / "mlp.onnx") == "dynamo"
    model = onnx.load(str(tmp_path / "mlp.onnx"))
    keys = {entry.key for node in model.graph.node for entry in node.metadata_props}
    assert not {key for key in keys if key.startswith("pkg.torch.") or key == "namespace"}
    assert __file__ not in model.SerializeToString().decode("latin-1")


def test_a_fixed_field_count_is_exported_with_a_dynamic_batch(tmp_path: Path) -> None:
    """Integer ids (batch, fields) are first given a dynamic second axis, as token sequences
    are; a model that flattens a fixed number of fields gets that axis specialized, and the
    batch axis stays dynamic."""
    torch = pytest.importorskip("torch")
    import onnx
    import onnxruntime

    from aip.optimize.passes.export import export_module

    fields, width = 3, 4

    class FieldsModel(torch.nn.Module):  # CTR-style: one embedding per field, concatenated
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(20, width)
            self.head = torch.nn.Linear(fields * width, 1)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.head(self.embedding(ids).flatten(1))

    torch.manual_seed(0)
    model = FieldsModel().eval()
    specs = [InputSpec("ids", np.dtype("int64"), (None, fields))]
    ids = np.arange(2 * fields, dtype=np.int64).reshape(2, fields)

    assert export_module(model, {"ids": ids}, specs, tmp_path / "fields.onnx") == "dynamo"

    shape = onnx.load(str(tmp_path / "fields.onnx")).graph.input[0].type.tensor_type.shape
    assert [d.dim_param or d.dim_value for d in shape.dim] == ["batch", fields]
    session = onnxruntime.InferenceSession(str(tmp_path / "fields.onnx"),
                                           providers=["CPUExecutionProvider"])
    many = np.random.default_rng(0).integers(0, 20, (7, fields)).astype(np.int64)
    with torch.inference_mode():
        expected = model(torch.from_numpy(many)).numpy()
    np.testing.assert_allclose(session.run(None, {"ids": many})[0], expected, atol=1e-5)


def test_a_files_verdict_is_computed_once_until_the_file_changes(
        tmp_path: Path, mlp_path: Path, quick: OptimizeOptions,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    context = make_context(tmp_path, mlp_path, quick)
    checks: list[bool] = []
    original = Guard.check
    monkeypatch.setattr(Guard, "check", lambda self, outputs, *, lossless=False: (
        checks.append(lossless), original(self, outputs, lossless=lossless))[1])
    model = tmp_path / "candidate.onnx"
    shutil.copyfile(mlp_path, model)
    first = context.verdict(model)
    assert context.verdict(model) is first and checks == [False]
    context.verdict(model, lossless=True)  # another rule: another check
    assert checks == [False, True]
    shutil.copyfile(mlp_onnx(tmp_path / "other.onnx", seed=3), model)
    os.utime(model, ns=(1, model.stat().st_mtime_ns + 1))
    assert context.verdict(model) is not first and checks == [False, True, False]


def test_dynamic_int8_tries_per_channel_scales_when_per_tensor_is_refused(
        tmp_path: Path, mlp_path: Path, quick: OptimizeOptions) -> None:
    context = make_context(tmp_path, mlp_path, quick)
    strict = Guard("cosine", 0.0, context.guard.reference, None)  # no loss allowed at all
    context = PassContext(**{**context.__dict__, "guard": strict, "verdicts": {}})
    outcome = quantize_dynamic_pass(ModelState(mlp_path, quantize_from=mlp_path), context)
    assert [c["per_channel"] for c in outcome.details["candidates"]] == [False, True]
    best = max(outcome.details["candidates"], key=lambda c: c["metric"])
    assert outcome.details["per_channel"] is best["per_channel"]
