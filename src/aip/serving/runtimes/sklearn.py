"""scikit-learn estimators (and pipelines): ``.skops`` files, or joblib/pickle files.

Outputs: ``predictions`` (``predict``) and, for classifiers, ``probabilities``
(``predict_proba``); a manifest signature that lists outputs picks which are computed.
Inputs: one 2-D input ``input`` [-1, n_features], or one 1-D input per column. An estimator
fitted on a DataFrame (it has ``feature_names_in_``) gets one input per column by default and
is called with a DataFrame, so rows may be ``{"age": 41, "income": 5200}``.

``.skops`` loads only types skops trusts, plus those the manifest lists in
``metadata.skops_trusted_types``; anything else is refused with the list of types to review.
Pickle and joblib files run code when loaded: serve only models from a registry you trust.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aip.serving.dtypes import dtype_name
from aip.serving.errors import ModelLoadError
from aip.serving.runtimes.base import (
    RuntimeOptions,
    ServingRuntime,
    import_framework,
    model_file,
    tabular_matrix,
)
from aip.spec.model import ModelManifest, Signature, TensorSpec

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


class SklearnRuntime(ServingRuntime):
    flavor = "sklearn"
    platform = "sklearn"

    def __init__(self) -> None:
        self._model: Any = None
        self._signature = Signature()
        self._outputs: list[str] = []
        self._frame_columns: list[str] | None = None

    def load(self, model_dir: Path, manifest: ModelManifest, options: RuntimeOptions) -> None:
        path = model_file(model_dir, manifest)
        self._model = _load_estimator(path, manifest)
        if not hasattr(self._model, "predict"):
            raise ModelLoadError(f"{path}: {type(self._model).__name__} has no predict()")
        self._signature = manifest.signature or _infer_signature(self._model)
        declared = [spec.name for spec in self._signature.outputs]
        self._outputs = declared or ["predictions"]
        feature_names = getattr(self._model, "feature_names_in_", None)
        names = [spec.name for spec in self._signature.inputs]
        if feature_names is not None and len(names) > 1 and set(names) == set(feature_names):
            self._frame_columns = [str(name) for name in feature_names]

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        features = self._features(inputs)
        outputs: dict[str, np.ndarray] = {}
        for name in self._outputs:
            if name == "probabilities":
                outputs[name] = np.asarray(self._model.predict_proba(features))
            else:
                outputs[name] = np.asarray(self._model.predict(features))
        return outputs

    def _features(self, inputs: dict[str, np.ndarray]) -> Any:
        if self._frame_columns is None:
            return tabular_matrix(inputs, self._signature)
        try:
            import pandas as pd
        except ImportError:  # the estimator only warns that the columns have no names
            return np.column_stack([inputs[name] for name in self._frame_columns])
        return pd.DataFrame({name: inputs[name] for name in self._frame_columns})


def _load_estimator(path: Path, manifest: ModelManifest) -> Any:
    if path.suffix == ".skops":
        skops_io: Any = import_framework("skops.io", "sklearn", "skops")
        trusted = [str(name) for name in manifest.metadata.get("skops_trusted_types", [])]
        untrusted = [name for name in skops_io.get_untrusted_types(file=path)
                     if name not in trusted]
        if untrusted:
            raise ModelLoadError(f"{path}: skops refuses types it does not trust: "
                                 f"{', '.join(untrusted)}; review them and list the safe ones "
                                 "in the manifest's metadata.skops_trusted_types")
        return skops_io.load(path, trusted=trusted or None)
    if path.suffix in PICKLE_SUFFIXES:
        joblib: Any = import_framework("joblib", "sklearn")
        return joblib.load(path)
    raise ModelLoadError(f"{path}: an sklearn model is a .skops file or a joblib/pickle file "
                         f"({', '.join(PICKLE_SUFFIXES)})", field="path")


def _infer_signature(model: Any) -> Signature:
    feature_names = getattr(model, "feature_names_in_", None)
    if feature_names is not None:
        inputs = [TensorSpec(name=str(name), dtype="float64", shape=[-1])
                  for name in feature_names]
    else:
        width = getattr(model, "n_features_in_", None)
        inputs = [TensorSpec(name="input", dtype="float64",
                             shape=[-1, int(width)] if width else [])]
    classes = getattr(model, "classes_", None)
    predictions = dtype_name(np.asarray(classes).dtype) if classes is not None else "float64"
    outputs = [TensorSpec(name="predictions", dtype=predictions, shape=[-1])]
    if classes is not None and hasattr(model, "predict_proba"):
        outputs.append(TensorSpec(name="probabilities", dtype="float64",
                                  shape=[-1, len(classes)]))
    return Signature(inputs=inputs, outputs=outputs)
