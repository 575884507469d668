"""LightGBM boosters (the text model ``Booster.save_model`` writes).

Output: ``predictions`` (``Booster.predict``: probabilities for binary and multiclass
objectives). Input: one 2-D float64 input ``input`` [-1, num_feature], or one column per
input.
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


class LightGBMRuntime(ServingRuntime):
    flavor = "lightgbm"
    platform = "lightgbm"

    def __init__(self) -> None:
        self._booster: Any = None
        self._signature = Signature()
        self._threads = 1

    def load(self, model_dir: Path, manifest: ModelManifest, options: RuntimeOptions) -> None:
        lgb: Any = import_framework("lightgbm", "lightgbm")
        path = model_file(model_dir, manifest)
        try:
            self._booster = lgb.Booster(model_file=str(path))
        except lgb.basic.LightGBMError as exc:
            raise ModelLoadError(f"{path}: LightGBM cannot load the booster: {exc}") from None
        self._threads = options.resolved_threads()
        self._signature = manifest.signature or Signature(
            inputs=[TensorSpec(name="input", dtype="float64",
                               shape=[-1, int(self._booster.num_feature())])],
            outputs=[TensorSpec(name="predictions", dtype="float64", shape=[])])

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        features = tabular_matrix(inputs, self._signature)
        predictions = self._booster.predict(features, num_threads=self._threads)
        return {"predictions": np.asarray(predictions)}
