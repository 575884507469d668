"""``aip.optimize`` end to end on tiny models: what is kept, what is rolled back, and the
optimized model's behaviour (dynamic axes, save/load/predict, bad input)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import aip
from aip.errors import InvalidSpec
from aip.optimize import OptimizeOptions, OptimizeResult
from aip.optimize.errors import ExportFailed
from aip.optimize.report import Status, report_from_dict
from tests.unit.optimize.builders import (
    FEATURES,
    labelled_rows,
    onnx_rows,
    tokens,
    torch_cnn,
    torch_encoder,
    torch_mlp,
)


def statuses(result: OptimizeResult) -> dict[str, str]:
    return {row.name: str(row.status) for row in result.report.passes}


def torch_outputs(model: object, *inputs: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model(*(torch.from_numpy(array) for array in inputs)).numpy()  # type: ignore[operator]


@pytest.fixture(scope="module")
def mlp_o1(tmp_path_factory: pytest.TempPathFactory, quick: OptimizeOptions) -> OptimizeResult:
    pytest.importorskip("torch")
    model = torch_mlp()
    x, _ = labelled_rows(model, (64, FEATURES))
    return aip.optimize(model, x[:1], level="o1", val_data=(x, None),
                        output_dir=tmp_path_factory.mktemp("mlp-o1"), options=quick)


def test_o2_on_an_onnx_file_keeps_the_smallest_int8_pass_within_tolerance(
        tmp_path: Path, mlp_path: Path, quick: OptimizeOptions) -> None:
    x, labels = onnx_rows(mlp_path, 300)
    result = aip.optimize(mlp_path, level="o2", calib_data=x[:128], val_data=(x, labels),
                          metric="accuracy", tolerance=0.05, output_dir=tmp_path,
                          options=replace(quick, objective="size"))
    rows = statuses(result)
    assert list(rows) == ["source", "export", "prune", "graph", "fp16", "quantize_dynamic",
                          "quantize_static"]
    assert rows["source"] == "reference" and rows["fp16"] == "skipped"
    kept = [name for name in ("quantize_dynamic", "quantize_static") if rows[name] == "kept"]
    assert len(kept) == 1, rows  # alternatives: at most one is kept
    final = result.report.final
    assert final is not None and final.name == kept[0]
    graph = next(row for row in result.report.passes if row.name == "graph")
    assert final.size_bytes is not None and graph.size_bytes is not None
    assert final.size_bytes < graph.size_bytes
    assert final.metric_delta is not None and final.metric_delta >= -0.05
    assert result.path == tmp_path / "model.onnx" and result.path.is_file()
    assert (tmp_path / "report.json").is_file() and (tmp_path / "report.md").is_file()
    assert not (tmp_path / "passes").exists()  # intermediates are cleaned up
    assert result.predict(x[:5])[0].shape == (5, 3)


def test_the_guard_rolls_back_every_pass_that_breaks_a_zero_tolerance(
        tmp_path: Path, mlp_path: Path, quick: OptimizeOptions) -> None:
    x, _ = onnx_rows(mlp_path, 100)
    result = aip.optimize(mlp_path, level="o2", calib_data=x, metric="cosine", tolerance=0.0,
                          output_dir=tmp_path, options=quick)
    rows = {row.name: row for row in result.report.passes}
    for name in ("quantize_dynamic", "quantize_static"):
        assert rows[name].status is Status.rolled_back
        assert "below the reference" in rows[name].reason
    assert result.report.final is not None and result.report.final.name == "graph"
    reference = onnx_rows(mlp_path, 100)[1]
    assert (result.predict(x)[0].argmax(axis=1) == reference).all()


def test_o1_export_matches_pytorch_within_a_thousandth_at_batch_1_and_64(
        mlp_o1: OptimizeResult) -> None:
    model = torch_mlp()
    assert statuses(mlp_o1) == {"source": "reference", "export": "kept", "graph": "kept"}
    assert mlp_o1.report.passes[1].details["exporter"] == "dynamo"
    for batch in (1, 64):
        x = np.random.default_rng(batch).standard_normal((batch, FEATURES)).astype(np.float32)
        np.testing.assert_allclose(mlp_o1.predict(x)[0], torch_outputs(model, x), atol=1e-3,
                                   rtol=1e-3)


def test_the_optimized_model_round_trips_through_save_load_and_predict(
        mlp_o1: OptimizeResult, tmp_path: Path) -> None:
    import onnxruntime

    copy = tmp_path / "elsewhere.onnx"
    shutil.copyfile(mlp_o1.path, copy)
    session = onnxruntime.InferenceSession(str(copy), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(7).standard_normal((9, FEATURES)).astype(np.float32)
    name = session.get_inputs()[0].name
    np.testing.assert_array_equal(session.run(None, {name: x})[0], mlp_o1.predict(x)[0])
    saved = report_from_dict(json.loads((mlp_o1.path.parent / "report.json").read_text()))
    assert [row.name for row in saved.passes] == [row.name for row in mlp_o1.report.passes]


def test_token_inputs_get_dynamic_batch_and_sequence_axes(
        tmp_path: Path, quick: OptimizeOptions) -> None:
    pytest.importorskip("torch")
    model = torch_encoder()
    ids, mask = tokens(4, 12)
    result = aip.optimize(model, (ids, mask), level="o1", output_dir=tmp_path, options=quick)
    assert statuses(result)["export"] == "kept"
    for batch, length in ((1, 12), (64, 12), (3, 20)):
        ids, mask = tokens(batch, length, seed=batch)
        np.testing.assert_allclose(result.predict((ids, mask))[0],
                                   torch_outputs(model, ids, mask), atol=1e-3, rtol=1e-3)


def test_o2_on_a_cnn_with_calibration_keeps_accuracy_within_tolerance(
        tmp_path: Path, quick: OptimizeOptions) -> None:
    pytest.importorskip("torch")
    model = torch_cnn()
    x, labels = labelled_rows(model, (300, 1, 8, 8))
    result = aip.optimize(model, x[:1], level="o2", calib_data=x[:128], val_data=(x, labels),
                          metric="accuracy", tolerance=0.02, output_dir=tmp_path,
                          options=quick)
    for row in result.report.passes:
        if row.status is Status.kept:
            assert row.metric_delta is not None and row.metric_delta >= -0.02
        if row.status is Status.rolled_back:
            assert row.metric_delta is not None and row.metric_delta < -0.02
    predicted = result.predict(x)[0].argmax(axis=1)
    assert np.mean(predicted == labels) >= 0.98


def test_pruning_runs_the_fine_tune_hook_and_is_guarded(
        tmp_path: Path, quick: OptimizeOptions) -> None:
    pytest.importorskip("torch")
    model = torch_mlp()
    x, labels = labelled_rows(model, (200, FEATURES))
    calls: list[object] = []
    options = replace(quick, prune=0.5, fine_tune=calls.append,
                      skip=("quantize_dynamic", "quantize_static"))
    result = aip.optimize(model, x[:1], level="o2", val_data=(x, labels), metric="accuracy",
                          tolerance=0.0, output_dir=tmp_path, options=options)
    prune_row = next(row for row in result.report.passes if row.name == "prune")
    assert len(calls) == 1
    assert prune_row.details["layers"] == 1
    # half of the hidden units gone without retraining: accuracy must drop, so it is undone
    assert prune_row.status is Status.rolled_back
    assert statuses(result)["quantize_dynamic"] == "skipped"


def test_a_torchscript_file_is_exported_and_optimized(tmp_path: Path,
                                                      quick: OptimizeOptions) -> None:
    torch = pytest.importorskip("torch")
    model = torch_mlp()
    x = np.random.default_rng(3).standard_normal((8, FEATURES)).astype(np.float32)
    path = tmp_path / "mlp.pt"
    torch.jit.save(torch.jit.trace(model, torch.from_numpy(x[:2])), str(path))
    result = aip.optimize(path, x[:1], level="o1", output_dir=tmp_path / "out", options=quick)
    assert result.report.source == "TorchScript mlp.pt"
    np.testing.assert_allclose(result.predict(x)[0], torch_outputs(model, x), atol=1e-3)


def test_an_unsupported_operator_is_named_with_a_workaround(tmp_path: Path,
                                                            quick: OptimizeOptions) -> None:
    torch = pytest.importorskip("torch")

    # an operator neither exporter knows: a custom op without an ONNX translation
    @torch.library.custom_op("aiptest::mystery", mutates_args=(),
                             schema="(Tensor x) -> Tensor")
    def mystery(x):  # type: ignore[no-untyped-def]
        return x * 2

    @mystery.register_fake
    def _(x):  # type: ignore[no-untyped-def]
        return torch.empty_like(x)

    class Mysterious(torch.nn.Module):
        def forward(self, x):  # type: ignore[no-untyped-def]
            return mystery(x) + 1

    with pytest.raises(ExportFailed) as raised:
        aip.optimize(Mysterious(), np.zeros((1, 4), np.float32), level="o1",
                     output_dir=tmp_path, options=quick)
    message = str(raised.value)
    assert "aiptest::mystery" in message
    assert "custom_translation_table" in message
    assert raised.value.fields == {"model": "unsupported operator aiptest::mystery"}


def test_calibration_data_of_the_wrong_shape_fails_before_any_work(
        tmp_path: Path, mlp_path: Path, quick: OptimizeOptions) -> None:
    with pytest.raises(InvalidSpec) as raised:
        aip.optimize(mlp_path, calib_data=np.zeros((10, 1, 4, 4), np.float32),
                     output_dir=tmp_path, options=quick)
    assert "calib_data" in raised.value.fields
    assert f"x: float32[N, {FEATURES}]" in str(raised.value)
    assert not (tmp_path / "passes").exists()


def test_a_metric_that_cannot_be_computed_fails_before_any_work(
        tmp_path: Path, mlp_path: Path, quick: OptimizeOptions) -> None:
    x, _ = onnx_rows(mlp_path, 20)
    with pytest.raises(InvalidSpec) as raised:
        aip.optimize(mlp_path, val_data=(x, np.ones(20, np.int64)), metric="auc",
                     output_dir=tmp_path, options=quick)
    assert raised.value.fields.keys() == {"metric"}
    assert "auc needs one score per row" in str(raised.value)  # three class scores


def test_an_onnx_model_with_a_string_input_is_refused_by_name(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["same"])], "strings",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, ["batch"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "strings.onnx"))
    with pytest.raises(InvalidSpec) as raised:
        aip.optimize(tmp_path / "strings.onnx", output_dir=tmp_path / "out")
    assert raised.value.fields.keys() == {"model"}
    assert "input 'text' has type tensor(string)" in str(raised.value)


def test_an_export_the_guard_rolls_back_ends_the_run_with_its_reason(
        tmp_path: Path, quick: OptimizeOptions) -> None:
    torch = pytest.importorskip("torch")
    from aip.optimize.errors import OptimizeError

    class Noisy(torch.nn.Module):  # eager and exported outputs never agree
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.rand_like(x)

    with pytest.raises(OptimizeError) as raised:
        aip.optimize(Noisy(), np.zeros((4, 3), np.float32), output_dir=tmp_path,
                     options=quick)
    assert "export rolled_back" in str(raised.value)
    assert "outputs differ from the reference" in raised.value.fields["model"]


def test_a_pt_file_that_is_not_torchscript_is_named_with_the_fix(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "weights.pt"
    torch.save(torch_mlp().state_dict(), path)  # a state dict: a zip, but no TorchScript
    with pytest.raises(InvalidSpec) as raised:
        aip.optimize(path, np.zeros((1, FEATURES), np.float32), output_dir=tmp_path / "out")
    assert raised.value.fields.keys() == {"model"}
    message = str(raised.value)
    assert "weights.pt is not a TorchScript file" in message
    assert "torch.jit.save(torch.jit.script(model), path)" in message


def test_empty_weight_scale_settings_are_named(mlp_path: Path) -> None:
    for name in ("per_channel", "dynamic_per_channel"):
        with pytest.raises(InvalidSpec) as raised:
            aip.optimize(mlp_path, options=OptimizeOptions(**{name: ()}))
        assert raised.value.fields.keys() == {f"options.{name}"}


def test_unknown_level_and_missing_example_inputs_are_named(mlp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="level"):
        aip.optimize(mlp_path, level="o3")
    pytest.importorskip("torch")
    with pytest.raises(InvalidSpec) as raised:
        aip.optimize(torch_mlp())
    assert "example_inputs" in raised.value.fields


def test_import_aip_stays_light_and_aip_optimize_is_callable() -> None:
    code = ("import sys, aip; fn = aip.optimize; import aip.optimize.report; "
            "assert callable(aip.optimize) and callable(fn); "
            "heavy = {'torch', 'onnx', 'onnxruntime'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.gpu
def test_fp16_on_cuda_runs_on_the_cuda_provider(tmp_path: Path, mlp_path: Path,
                                                quick: OptimizeOptions) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime has no CUDAExecutionProvider here")
    x, labels = onnx_rows(mlp_path, 200)
    result = aip.optimize(mlp_path, level="o2", target="cuda", val_data=(x, labels),
                          metric="accuracy", tolerance=0.02, output_dir=tmp_path,
                          options=quick)
    rows = statuses(result)
    assert rows["fp16"] == "kept", result.report.to_markdown()
    assert rows["quantize_dynamic"] == "skipped"
    assert result.session.get_providers()[0] == "CUDAExecutionProvider"
    assert np.mean(result.predict(x)[0].argmax(axis=1) == labels) >= 0.98
