"""Python models: a class in the model directory, named by the manifest's ``python_class``.

    # model_dir/my_model.py            aip-model.json: {"flavor": "python", "path": ".",
    class Scorer:                      #                "python_class": "my_model:Scorer"}
        def load(self, model_dir): ...
        def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

The model directory is put first on ``sys.path`` and the module imported; the class is made
with no arguments and ``load(model_dir)`` called once. The signature is the manifest's, else
the class's ``signature`` attribute if it is a ``Signature``, else unknown.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

from aip.serving.errors import ModelLoadError
from aip.serving.runtimes.base import RuntimeOptions, ServingRuntime
from aip.spec.model import ModelManifest, Signature


class PythonRuntime(ServingRuntime):
    flavor = "python"
    platform = "python"

    def __init__(self) -> None:
        self._model: Any = None
        self._signature = Signature()

    def load(self, model_dir: Path, manifest: ModelManifest, options: RuntimeOptions) -> None:
        target = manifest.python_class or ""
        module_name, _, class_name = target.partition(":")
        if not module_name or not class_name:
            raise ModelLoadError(f"python_class {target!r}: the python flavor needs "
                                 "'module:Class', the module a file in the model directory",
                                 field="python_class")
        directory = str(model_dir.resolve())
        if directory not in sys.path:
            sys.path.insert(0, directory)
        try:
            model_class = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise ModelLoadError(f"python_class {target!r} cannot be imported from "
                                 f"{model_dir}: {exc}", field="python_class") from None
        model = model_class()
        if not callable(getattr(model, "predict", None)):
            raise ModelLoadError(f"python_class {target!r} has no predict(inputs) method",
                                 field="python_class")
        if callable(getattr(model, "load", None)):
            model.load(model_dir)
        self._model = model
        declared = getattr(model, "signature", None)
        self._signature = manifest.signature or (
            declared if isinstance(declared, Signature) else Signature())

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._model.predict(inputs)
        if not isinstance(outputs, dict):
            raise TypeError(f"{type(self._model).__name__}.predict returned "
                            f"{type(outputs).__name__}; it must return a dict of arrays")
        return {str(name): np.asarray(value) for name, value in outputs.items()}
