"""Tiny models of every flavor, built in a test's temporary directory in well under a
second each (TensorFlow aside)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

FEATURES = 4


def training_data(rows: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return x, y


def onnx_model(path: Path, *, batch: str | int = "batch") -> Path:
    """y = x @ W: input x float32 [batch, 4], output y float32 [batch, 2]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((FEATURES, 2), dtype=np.float32), name="W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 2])],
        initializer=[weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="aip-tests")
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def sklearn_classifier(path: Path, *, frame: bool = False) -> Path:
    """A logistic regression saved with joblib (a pickle); with ``frame``, fitted on a
    DataFrame so it knows its feature names."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    x, y = training_data()
    data: Any = x
    if frame:
        import pandas as pd

        data = pd.DataFrame(x, columns=["age", "income", "debt", "score"])
    joblib.dump(LogisticRegression().fit(data, y), path)
    return path


def sklearn_regressor_skops(path: Path) -> Path:
    import skops.io
    from sklearn.linear_model import LinearRegression

    x, y = training_data()
    skops.io.dump(LinearRegression().fit(x, y.astype(np.float64)), path)
    return path


def xgboost_model(path: Path, *, classes: int = 0) -> Path:
    import xgboost

    x, y = training_data()
    params: dict[str, Any] = {"max_depth": 2, "objective": "binary:logistic"}
    if classes:
        y = np.arange(len(y)) % classes
        params = {"max_depth": 2, "objective": "multi:softprob", "num_class": classes}
    booster = xgboost.train(params, xgboost.DMatrix(x, label=y), num_boost_round=2)
    booster.save_model(str(path))
    return path


def lightgbm_model(path: Path) -> Path:
    import lightgbm

    x, y = training_data(rows=60)
    booster = lightgbm.train({"objective": "binary", "num_leaves": 3, "verbose": -1,
                              "min_data_in_leaf": 2}, lightgbm.Dataset(x, label=y),
                             num_boost_round=2)
    booster.save_model(str(path))
    return path


def torchscript_model(path: Path) -> Path:
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(FEATURES, 3)

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return self.linear(features).softmax(dim=-1)

    torch.jit.save(torch.jit.script(Tiny()), str(path))
    return path


def exported_torch_model(path: Path) -> Path:
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(FEATURES, 3)

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return self.linear(features)

    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(Tiny(), (torch.zeros(2, FEATURES),),
                                  dynamic_shapes={"features": {0: batch}})
    torch.export.save(program, str(path))
    return path


def python_model(directory: Path) -> Path:
    """A package with a class that has load() and predict()."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "predictor.py").write_text(
        "class Model:\n"
        "    def load(self, path):\n"
        "        self.offset = float(open(path + '/offset.txt').read())\n"
        "    def predict(self, inputs):\n"
        "        return [value + self.offset for value in inputs]\n")
    (directory / "offset.txt").write_text("1.5\n")
    return directory
