"""TensorFlow SavedModels, through their ``serving_default`` signature.

TensorFlow is imported when a model loads (it takes seconds). The signature is the manifest's,
else the SavedModel's own (input and output names, dtypes, shapes with None as -1).
``threads`` sets TensorFlow's intra-op parallelism when TensorFlow has not started yet.
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
)
from aip.spec.model import ModelManifest, Signature, TensorSpec

SIGNATURE_KEY = "serving_default"


class TensorFlowRuntime(ServingRuntime):
    flavor = "tensorflow"
    platform = "tensorflow_savedmodel"

    def __init__(self) -> None:
        self._tf: Any = None
        self._function: Any = None
        self._loaded: Any = None  # keeps the SavedModel's variables alive
        self._signature = Signature()

    def load(self, model_dir: Path, manifest: ModelManifest, options: RuntimeOptions) -> None:
        tf: Any = import_framework("tensorflow", "tensorflow", "tensorflow-cpu")
        path = model_file(model_dir, manifest)
        try:
            tf.config.threading.set_intra_op_parallelism_threads(options.resolved_threads())
        except RuntimeError:  # TensorFlow already initialized in this process
            pass
        try:
            self._loaded = tf.saved_model.load(str(path))
        except Exception as exc:  # OSError, ValueError, tf errors
            raise ModelLoadError(f"{path}: TensorFlow cannot load the SavedModel: "
                                 f"{str(exc).splitlines()[0]}") from None
        signatures = self._loaded.signatures
        if SIGNATURE_KEY not in signatures:
            raise ModelLoadError(f"{path}: the SavedModel has no {SIGNATURE_KEY!r} signature "
                                 f"(it has: {', '.join(signatures) or 'none'})")
        self._tf, self._function = tf, signatures[SIGNATURE_KEY]
        self._signature = manifest.signature or _signature_of(self._function)

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tf = self._tf
        result = self._function(**{name: tf.convert_to_tensor(array)
                                   for name, array in inputs.items()})
        return {name: np.asarray(value.numpy()) for name, value in result.items()}


def _signature_of(function: Any) -> Signature:
    _, keyword_specs = function.structured_input_signature
    return Signature(inputs=[_spec(name, spec) for name, spec in keyword_specs.items()],
                     outputs=[_spec(name, spec)
                              for name, spec in function.structured_outputs.items()])


def _spec(name: str, spec: Any) -> TensorSpec:
    dtype = "str" if spec.dtype.name == "string" else dtype_name(
        np.dtype(spec.dtype.as_numpy_dtype))
    dims = spec.shape.as_list() if spec.shape.rank is not None else []
    return TensorSpec(name=name, dtype=dtype, shape=[-1 if dim is None else dim for dim in dims])
