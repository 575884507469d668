"""XGBoost boosters (``.json`` or ``.ubj``, as ``Booster.save_model`` writes them).

Predicts with ``inplace_predict`` (no DMatrix per request); the output is ``predictions``
(probabilities for ``binary:logistic``, one column per class for ``multi:softprob``).
Input: one 2-D float32 input ``input`` [-1, num_features], or one column per input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aip.serving.errors import ModelLoadError
from aip.serving.runtimes.base import (
    RuntimeOptions,
    ServingRuntime,
    import_framework,
    model_file,
    tabular_matrix,
)
from aip.spec.model import ModelManifest, Signature, TensorSpec


class XGBoostRuntime(ServingRuntime):
    flavor = "xgboost"
    platform = "xgboost"

    def __init__(self) -> None:
        self._booster: Any = None
        self._signature = Signature()

    def load(self, model_dir: Path, manifest: ModelManifest, options: RuntimeOptions) -> None:
        xgb: Any = import_framework("xgboost", "xgboost")
        path = model_file(model_dir, manifest)
        booster = xgb.Booster()
        try:
            booster.load_model(str(path))
        except xgb.core.XGBoostError as exc:
            raise ModelLoadError(f"{path}: XGBoost cannot load the booster: "
                                 f"{str(exc).splitlines()[0]}") from None
        booster.set_param({"nthread": options.resolved_threads()})
        if options.device == "cuda":  # trees rarely gain from a GPU at serving batch sizes
            booster.set_param({"device": "cuda"})
        self._booster = booster
        self._signature = manifest.signature or Signature(
            inputs=[TensorSpec(name="input", dtype="float32",
                               shape=[-1, int(booster.num_features())])],
            outputs=[TensorSpec(name="predictions", dtype="float32", shape=[])])

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        features = tabular_matrix(inputs, self._signature)
        return {"predictions": np.asarray(self._booster.inplace_predict(features))}

