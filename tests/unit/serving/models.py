"""Tiny models of every flavor, written as model directories (``aip-model.json`` + file),
each with the in-process model to compare a runtime's predictions against.

    model_dir, session = onnx_mlp(tmp_path)          # session: an onnxruntime session
    model_dir, estimator = sklearn_logistic(tmp_path, fmt="skops")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from aip.spec.model import MANIFEST_FILE

FEATURES = 4


def write_manifest(model_dir: Path, flavor: str, path: str, **fields: Any) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"format": 1, "flavor": flavor, "path": path, **fields}
    (model_dir / MANIFEST_FILE).write_text(json.dumps(manifest))
    return model_dir


def tabular_data(rows: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, FEATURES))
    labels = (features[:, 0] + 0.5 * features[:, 1] > 0).astype(np.int64)
    return features, labels


def onnx_mlp_bytes(features: int = FEATURES, hidden: int = 8, outputs: int = 3,
                   seed: int = 0) -> bytes:
    """x [N, features] float32 -> y [N, outputs] float32: Gemm, Relu, Gemm."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {
        "w1": rng.normal(size=(features, hidden)).astype(np.float32),
        "b1": rng.normal(size=(hidden,)).astype(np.float32),
        "w2": rng.normal(size=(hidden, outputs)).astype(np.float32),
        "b2": rng.normal(size=(outputs,)).astype(np.float32),
    }
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
         helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Gemm", ["r", "w2", "b2"], ["y"])],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", outputs])],
        [numpy_helper.from_array(value, name) for name, value in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def onnx_mlp(directory: Path, *, signature: dict[str, Any] | None = None,
             **manifest: Any) -> tuple[Path, Any]:
    import onnxruntime as ort

    data = onnx_mlp_bytes()
    model_dir = write_manifest(directory, "onnx", "model.onnx", signature=signature,
                               **manifest)
    (model_dir / "model.onnx").write_bytes(data)
    return model_dir, ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def sklearn_logistic(directory: Path, *, fmt: str = "joblib") -> tuple[Path, Any]:
    from sklearn.linear_model import LogisticRegression

    features, labels = tabular_data()
    estimator = LogisticRegression().fit(features, labels)
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "skops":
        import skops.io

        skops.io.dump(estimator, directory / "model.skops")
    else:
        import joblib

        joblib.dump(estimator, directory / f"model.{fmt}")
    return write_manifest(directory, "sklearn", f"model.{fmt}"), estimator


def xgboost_booster(directory: Path) -> tuple[Path, Any]:
    import xgboost as xgb

    features, labels = tabular_data()
    booster = xgb.train({"objective": "binary:logistic", "nthread": 1},
                        xgb.DMatrix(features, label=labels), num_boost_round=5)
    directory.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(directory / "model.json"))
    return write_manifest(directory, "xgboost", "model.json"), booster


def lightgbm_booster(directory: Path) -> tuple[Path, Any]:
    import lightgbm as lgb

    features, labels = tabular_data()
    booster = lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 5,
                         "num_threads": 1}, lgb.Dataset(features, label=labels),
                        num_boost_round=5)
    directory.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(directory / "model.txt"))
    return write_manifest(directory, "lightgbm", "model.txt"), booster


def torch_module() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(FEATURES, 8), torch.nn.ReLU(),
                               torch.nn.Linear(8, 3)).eval()


def torchscript_mlp(directory: Path) -> tuple[Path, Any]:
    import torch

    module = torch_module()
    directory.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(module), str(directory / "model.pt"))
    signature = {"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, FEATURES]}],
                 "outputs": [{"name": "y", "dtype": "float32", "shape": [-1, 3]}]}
    return write_manifest(directory, "pytorch", "model.pt", signature=signature), module


def torch_export_mlp(directory: Path) -> tuple[Path, Any]:
    import torch

    module = torch_module()
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(module, (torch.zeros(2, FEATURES),),
                                  dynamic_shapes=({0: batch},))
    directory.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(directory / "model.pt2"))
    return write_manifest(directory, "pytorch", "model.pt2"), module


def tensorflow_savedmodel(directory: Path) -> tuple[Path, Any]:
    import tensorflow as tf

    class Scale(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.weights = tf.Variable(np.arange(FEATURES * 2, dtype=np.float32).reshape(
                FEATURES, 2))

        @tf.function(  # type: ignore[untyped-decorator]
            input_signature=[tf.TensorSpec([None, FEATURES], tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"y": tf.matmul(x, self.weights)}

    module = Scale()
    directory.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(module, str(directory / "saved"),
                        signatures={"serving_default": module.serve})
    return write_manifest(directory, "tensorflow", "saved"), module


PYTHON_MODEL = '''
import numpy as np


class Doubler:
    def load(self, model_dir):
        self.factor = float((model_dir / "factor.txt").read_text())

    def predict(self, inputs):
        return {"doubled": inputs["x"] * self.factor}
'''


def python_doubler(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "doubler_model.py").write_text(PYTHON_MODEL)
    (directory / "factor.txt").write_text("2")
    signature = {"inputs": [{"name": "x", "dtype": "float64", "shape": [-1, 2]}],
                 "outputs": [{"name": "doubled", "dtype": "float64", "shape": [-1, 2]}]}
    return write_manifest(directory, "python", ".", python_class="doubler_model:Doubler",
                          signature=signature)
