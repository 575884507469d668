"""Every flavor's runtime, on a tiny model made here: it loads from a model directory and
predicts what the framework predicts in-process."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aip.serving.errors import InvalidInput, ModelLoadError
from aip.serving.runtimes import RuntimeOptions, load_runtime, read_manifest, runtime_for
from aip.spec.model import MANIFEST_FILE, TensorSpec
from tests.unit.serving import models


@pytest.fixture
def rows() -> np.ndarray:
    return models.tabular_data(rows=7, seed=1)[0]


def test_onnx_predicts_what_onnxruntime_predicts_and_reads_the_signature_from_the_graph(
        tmp_path: Path, rows: np.ndarray) -> None:
    model_dir, session = models.onnx_mlp(tmp_path / "mlp")
    x = rows.astype(np.float32)

    _, runtime = load_runtime(model_dir, RuntimeOptions(threads=1))

    assert runtime.signature.inputs == [TensorSpec(name="x", dtype="float32", shape=[-1, 4])]
    assert runtime.signature.outputs == [TensorSpec(name="y", dtype="float32", shape=[-1, 3])]
    np.testing.assert_allclose(runtime.predict({"x": x})["y"], session.run(None, {"x": x})[0],
                               rtol=1e-6)


def test_onnx_session_is_tuned_for_serving(tmp_path: Path) -> None:
    model_dir, _ = models.onnx_mlp(tmp_path / "mlp")

    _, runtime = load_runtime(model_dir, RuntimeOptions(threads=3))

    options = runtime._session.get_session_options()  # type: ignore[attr-defined]
    assert options.intra_op_num_threads == 3
    assert options.inter_op_num_threads == 1
    assert str(options.graph_optimization_level).endswith("ORT_ENABLE_ALL")
    assert str(options.execution_mode).endswith("ORT_SEQUENTIAL")


def test_onnx_takes_read_only_inputs_such_as_views_of_a_request_body(tmp_path: Path) -> None:
    model_dir, session = models.onnx_mlp(tmp_path / "mlp")
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    view = np.frombuffer(x.tobytes(), dtype=np.float32).reshape(2, 4)
    assert not view.flags.writeable

    _, runtime = load_runtime(model_dir)

    np.testing.assert_allclose(runtime.predict({"x": view})["y"], session.run(None, {"x": x})[0])


def test_onnx_turns_a_shape_the_graph_refuses_into_invalid_input(tmp_path: Path) -> None:
    model_dir, _ = models.onnx_mlp(tmp_path / "mlp")
    _, runtime = load_runtime(model_dir)

    with pytest.raises(InvalidInput, match="ONNX Runtime refused"):
        runtime.predict({"x": np.zeros((2, 5), np.float32)})


@pytest.mark.parametrize("fmt", ["joblib", "pkl", "skops"])
def test_sklearn_predicts_classes_and_probabilities(tmp_path: Path, rows: np.ndarray,
                                                    fmt: str) -> None:
    model_dir, estimator = models.sklearn_logistic(tmp_path / "logistic", fmt=fmt)

    _, runtime = load_runtime(model_dir)
    outputs = runtime.predict({"input": rows})

    np.testing.assert_array_equal(outputs["predictions"], estimator.predict(rows))
    np.testing.assert_allclose(outputs["probabilities"], estimator.predict_proba(rows))
    assert [spec.name for spec in runtime.signature.outputs] == ["predictions", "probabilities"]
    assert runtime.signature.inputs == [TensorSpec(name="input", dtype="float64",
                                                   shape=[-1, 4])]


def test_sklearn_manifest_signature_picks_the_outputs_and_stacks_one_input_per_column(
        tmp_path: Path, rows: np.ndarray) -> None:
    model_dir, estimator = models.sklearn_logistic(tmp_path / "logistic")
    manifest = json.loads((model_dir / MANIFEST_FILE).read_text())
    manifest["signature"] = {
        "inputs": [{"name": f"f{index}", "dtype": "float64", "shape": [-1]} for index in range(4)],
        "outputs": [{"name": "probabilities", "dtype": "float64", "shape": [-1, 2]}]}
    (model_dir / MANIFEST_FILE).write_text(json.dumps(manifest))

    _, runtime = load_runtime(model_dir)
    outputs = runtime.predict({f"f{index}": rows[:, index] for index in range(4)})

    assert list(outputs) == ["probabilities"]
    np.testing.assert_allclose(outputs["probabilities"], estimator.predict_proba(rows))


def test_sklearn_fitted_on_named_columns_takes_one_input_per_column(tmp_path: Path,
                                                                    rows: np.ndarray) -> None:
    model_dir, estimator = models.sklearn_logistic(tmp_path / "logistic")
    estimator.feature_names_in_ = np.array(["age", "income", "debt", "tenure"], dtype=object)
    import joblib
    joblib.dump(estimator, model_dir / "model.joblib")

    _, runtime = load_runtime(model_dir)
    columns = dict(zip(["age", "income", "debt", "tenure"], rows.T, strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # numpy rows instead of a DataFrame
        outputs = runtime.predict(columns)
        expected = estimator.predict(rows)

    assert [spec.name for spec in runtime.signature.inputs] == ["age", "income", "debt",
                                                                "tenure"]
    np.testing.assert_array_equal(outputs["predictions"], expected)


def _square(values: np.ndarray) -> Any:
    return values * values


def test_skops_refuses_types_it_does_not_trust_unless_the_manifest_lists_them(
        tmp_path: Path, rows: np.ndarray) -> None:
    import skops.io
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    features, labels = models.tabular_data()
    pipeline = make_pipeline(FunctionTransformer(_square), LogisticRegression())
    pipeline.fit(features, labels)
    model_dir = models.write_manifest(tmp_path / "pipeline", "sklearn", "model.skops")
    skops.io.dump(pipeline, model_dir / "model.skops")
    untrusted = skops.io.get_untrusted_types(file=model_dir / "model.skops")
    assert untrusted

    with pytest.raises(ModelLoadError, match="skops_trusted_types") as refused:
        load_runtime(model_dir)
    assert untrusted[0] in refused.value.message

    models.write_manifest(model_dir, "sklearn", "model.skops",
                          metadata={"skops_trusted_types": untrusted})
    _, runtime = load_runtime(model_dir)
    np.testing.assert_array_equal(runtime.predict({"input": rows})["predictions"],
                                  pipeline.predict(rows))


def test_xgboost_predicts_what_the_booster_predicts(tmp_path: Path, rows: np.ndarray) -> None:
    import xgboost as xgb

    model_dir, booster = models.xgboost_booster(tmp_path / "xgb")

    _, runtime = load_runtime(model_dir, RuntimeOptions(threads=1))
    x = rows.astype(np.float32)

    assert runtime.signature.inputs[0].shape == [-1, 4]
    np.testing.assert_allclose(runtime.predict({"input": x})["predictions"],
                               booster.predict(xgb.DMatrix(x)), rtol=1e-6)


def test_lightgbm_predicts_what_the_booster_predicts(tmp_path: Path, rows: np.ndarray) -> None:
    model_dir, booster = models.lightgbm_booster(tmp_path / "lgbm")

    _, runtime = load_runtime(model_dir, RuntimeOptions(threads=1))

    assert runtime.signature.inputs[0].shape == [-1, 4]
    np.testing.assert_allclose(runtime.predict({"input": rows})["predictions"],
                               booster.predict(rows))


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("build, output", [(models.torchscript_mlp, "y"),
                                           (models.torch_export_mlp, "output")],
                         ids=["torchscript", "torch.export"])
def test_pytorch_predicts_what_the_module_predicts(tmp_path: Path, rows: np.ndarray,
                                                   build: object, output: str) -> None:
    import torch

    model_dir, module = build(tmp_path / "torch")  # type: ignore[operator]
    x = rows.astype(np.float32)

    _, runtime = load_runtime(model_dir, RuntimeOptions(threads=1, device="cpu"))
    read_only = np.frombuffer(x.tobytes(), dtype=np.float32).reshape(x.shape)
    outputs = runtime.predict({"x": read_only})

    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    assert list(outputs) == [output]
    np.testing.assert_allclose(outputs[output], expected, rtol=1e-5, atol=1e-6)


def test_pytorch_without_a_signature_takes_exactly_one_input(tmp_path: Path) -> None:
    model_dir, _ = models.torch_export_mlp(tmp_path / "torch")
    _, runtime = load_runtime(model_dir, RuntimeOptions(threads=1, device="cpu"))

    with pytest.raises(InvalidInput, match="takes one input"):
        runtime.predict({"a": np.zeros((1, 4), np.float32), "b": np.zeros((1, 4), np.float32)})


@pytest.mark.slow
def test_tensorflow_savedmodel_predicts_through_serving_default(tmp_path: Path,
                                                                rows: np.ndarray) -> None:
    model_dir, module = models.tensorflow_savedmodel(tmp_path / "tf")
    x = rows.astype(np.float32)

    _, runtime = load_runtime(model_dir, RuntimeOptions(threads=1))

    assert runtime.signature.inputs == [TensorSpec(name="x", dtype="float32", shape=[-1, 4])]
    assert runtime.signature.outputs == [TensorSpec(name="y", dtype="float32", shape=[-1, 2])]
    np.testing.assert_allclose(runtime.predict({"x": x})["y"], x @ module.weights.numpy(),
                               rtol=1e-6)


def test_python_flavor_loads_the_class_from_the_model_directory(tmp_path: Path) -> None:
    model_dir = models.python_doubler(tmp_path / "doubler")

    _, runtime = load_runtime(model_dir)

    x = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(runtime.predict({"x": x})["doubled"], x * 2)
    assert runtime.signature.outputs[0].name == "doubled"


def test_an_unknown_flavor_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ModelLoadError, match="did you mean 'onnx'"):
        runtime_for("onnxx")


@pytest.mark.parametrize("manifest, problem", [
    (None, "cannot read the model manifest"),
    ("{not json", "invalid manifest"),
    ('{"format": 1, "flavor": "caffe", "path": "m"}', "invalid manifest: flavor"),
    ('{"format": 1, "flavor": "onnx", "path": "../outside.onnx"}', "invalid manifest: path"),
], ids=["missing", "not-json", "unknown-flavor", "path-escapes"])
def test_a_bad_manifest_says_what_is_wrong(tmp_path: Path, manifest: str | None,
                                           problem: str) -> None:
    if manifest is not None:
        (tmp_path / MANIFEST_FILE).write_text(manifest)

    with pytest.raises(ModelLoadError, match=problem):
        read_manifest(tmp_path)


@pytest.mark.parametrize("flavor, path", [("onnx", "model.onnx"), ("sklearn", "model.joblib"),
                                          ("xgboost", "model.json"),
                                          ("lightgbm", "model.txt")])
def test_a_missing_model_file_is_named(tmp_path: Path, flavor: str, path: str) -> None:
    model_dir = models.write_manifest(tmp_path / "m", flavor, path)

    with pytest.raises(ModelLoadError, match=f"{path}: the model file"):
        load_runtime(model_dir)


def test_a_corrupt_onnx_file_is_a_load_error(tmp_path: Path) -> None:
    model_dir = models.write_manifest(tmp_path / "m", "onnx", "model.onnx")
    (model_dir / "model.onnx").write_bytes(b"not a model")

    with pytest.raises(ModelLoadError, match="ONNX Runtime cannot load"):
        load_runtime(model_dir)


def test_asking_for_a_gpu_the_framework_lacks_is_a_load_error(tmp_path: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    model_dir, _ = models.onnx_mlp(tmp_path / "mlp")

    with pytest.raises(ModelLoadError, match="onnxruntime-gpu"):
        load_runtime(model_dir, RuntimeOptions(device="cuda"))
