"""The serving benchmark's models: each written to disk in the layout AIP registers, with the
request every server gets (one row, ``{"instances": [row]}``) and the in-process answer the
servers' answers are checked against.

- **mlp**: ONNX, 64 -> 256 -> 256 -> 10 (``replica_overhead.write_mlp``);
- **cnn**: ONNX, PaddleOCR's text-direction classifier shipped in the ``rapidocr-onnxruntime``
  wheel, one [3, 48, 192] image; skipped (with the reason) when the wheel is missing;
- **lgbm**: a LightGBM booster, 100 trees trained here on 28 synthetic features.

``load_predictor`` is how every server and the in-process baseline run a model.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from replica_overhead import LAYERS, write_mlp

MODELS = ("mlp", "cnn", "lgbm")
CNN_FILE = "ch_ppocr_mobile_v2.0_cls_infer.onnx"
CNN_SHAPE = (3, 48, 192)
LGBM_FEATURES, LGBM_TREES = 28, 100


@dataclass
class Model:
    """One model on disk, the request every server gets, and the in-process answer."""

    name: str
    flavor: str
    file: Path
    rows: np.ndarray
    body: bytes
    expected: np.ndarray = field(repr=False)


def build_models(directory: Path, names: list[str], threads: int,
                 skipped: dict[str, str]) -> dict[str, Model]:
    rng = np.random.default_rng(0)
    models: dict[str, Model] = {}
    for name in names:
        model_dir = directory / name
        if name == "mlp":
            file = write_mlp(model_dir) / "model.onnx"
            values = np.round(rng.normal(size=(1, LAYERS[0])), 4)
            flavor, dtype = "onnx", np.float32
        elif name == "cnn":
            spec = importlib.util.find_spec("rapidocr_onnxruntime")
            shipped = Path(spec.origin).parent / "models" / CNN_FILE if spec and spec.origin \
                else None
            if shipped is None or not shipped.exists():
                skipped["cnn"] = f"no {CNN_FILE}: pip install rapidocr-onnxruntime"
                continue
            model_dir.mkdir()
            file = model_dir / "model.onnx"
            shutil.copyfile(shipped, file)
            pixels = rng.integers(0, 256, size=(1, *CNN_SHAPE))
            values = np.round((pixels / 255 - 0.5) / 0.5, 4)  # as PaddleOCR normalizes
            flavor, dtype = "onnx", np.float32
        else:
            file = train_lightgbm(model_dir, rng)
            values = np.round(rng.normal(size=(1, LGBM_FEATURES)), 4)
            flavor, dtype = "lightgbm", np.float64
        (model_dir / "aip-model.json").write_text(json.dumps(
            {"format": 1, "flavor": flavor, "path": file.name}))
        rows = values.astype(dtype)
        expected = np.asarray(load_predictor(str(file), flavor, threads)(rows), np.float64)
        models[name] = Model(name, flavor, file, rows,
                             json.dumps({"instances": values.tolist()}).encode(), expected)
    return models


def train_lightgbm(model_dir: Path, rng: np.random.Generator) -> Path:
    import lightgbm

    features = rng.normal(size=(20_000, LGBM_FEATURES))
    labels = (features[:, :4].sum(axis=1) + 0.5 * features[:, 4] * features[:, 5] > 0)
    booster = lightgbm.train({"objective": "binary", "num_leaves": 31, "verbose": -1,
                              "num_threads": 2, "seed": 0},
                             lightgbm.Dataset(features, label=labels.astype(np.int64)),
                             num_boost_round=LGBM_TREES)
    model_dir.mkdir(parents=True)
    booster.save_model(str(model_dir / "model.txt"))
    return model_dir / "model.txt"


def load_predictor(path: str, flavor: str, threads: int) -> Callable[[Any], Any]:
    """The model as every server and the in-process baseline run it: rows in, the first
    output out. The session is tuned as AIP's ONNX runtime tunes it. (Self-contained: its
    source is copied into BentoML's service file.)"""
    import numpy as np

    if flavor == "lightgbm":
        import lightgbm

        booster = lightgbm.Booster(model_file=path)
        return lambda rows: np.asarray(booster.predict(rows, num_threads=threads))
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    return lambda rows: session.run(None, {input_name: rows})[0]
