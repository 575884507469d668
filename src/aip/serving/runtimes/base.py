"""The ``ServingRuntime`` interface: what a replica needs from a model of any flavor.

    manifest, runtime = load_runtime(Path("models/mlp"), RuntimeOptions(threads=4))
    runtime.signature                         # inputs/outputs (manifest, else the model's)
    runtime.predict({"x": batch})             # {"y": ...}, batched along dim 0

``runtime_for(flavor)`` returns an unloaded runtime; each flavor's module imports its
framework inside ``load``, so importing this module (or the replica) stays cheap.
"""

from __future__ import annotations

import importlib
import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final, Literal

import numpy as np
from pydantic import ValidationError

from aip.serving.errors import ModelLoadError
from aip.serving.validation import did_you_mean
from aip.spec.model import MANIFEST_FILE, ModelManifest, Signature

Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class RuntimeOptions:
    """How a runtime should run its model. ``threads``: intra-op threads of the framework
    (``None``: ``OMP_NUM_THREADS``, else the CPUs this process may use); ``device``: ``auto``
    takes a GPU when the framework sees one."""

    threads: int | None = None
    device: Device = "auto"

    def resolved_threads(self) -> int:
        if self.threads:
            return self.threads
        from_env = os.environ.get("OMP_NUM_THREADS", "")
        if from_env.isdigit() and int(from_env) > 0:
            return int(from_env)
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)


class ServingRuntime(ABC):
    """One model of one flavor, loaded in this process.

    The replica calls ``load`` once, from its inference thread, then ``predict`` from that
    same thread only (never concurrently, never on the event loop), so implementations
    need no locking. ``predict`` takes inputs that already passed ``conform_inputs`` against
    ``signature`` (when the signature lists inputs).
    """

    flavor: ClassVar[str]
    platform: ClassVar[str]  # the OIP metadata ``platform``, e.g. ``onnxruntime_onnx``

    @abstractmethod
    def load(self, model_dir: Path, manifest: ModelManifest, options: RuntimeOptions) -> None:
        """Load the model from ``model_dir / manifest.path``. Blocking, may take seconds;
        raises ``ModelLoadError`` saying what to fix (a missing file or framework)."""

    @property
    @abstractmethod
    def signature(self) -> Signature:
        """The model's inputs and outputs: the manifest's signature, else what the model
        declares (ONNX, SavedModel, fitted feature counts). No inputs listed: unknown, and
        requests go to ``predict`` unchecked. Valid after ``load``; cheap."""

    @abstractmethod
    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on one batch (dim 0 of every input and output is the batch).
        Blocking; raises ``InvalidInput`` for inputs the model refuses, anything else is
        reported as an inference failure."""

    def close(self) -> None:  # noqa: B027  (optional: most runtimes hold nothing to free)
        """Free what ``load`` took (sessions, GPU memory). Idempotent."""


RUNTIMES: Final[dict[str, str]] = {
    "onnx": "aip.serving.runtimes.onnx:OnnxRuntime",
    "pytorch": "aip.serving.runtimes.pytorch:TorchRuntime",
    "sklearn": "aip.serving.runtimes.sklearn:SklearnRuntime",
    "xgboost": "aip.serving.runtimes.xgboost:XGBoostRuntime",
    "lightgbm": "aip.serving.runtimes.lightgbm:LightGBMRuntime",
    "tensorflow": "aip.serving.runtimes.tensorflow:TensorFlowRuntime",
    "python": "aip.serving.runtimes.python:PythonRuntime",
}


def runtime_for(flavor: str) -> ServingRuntime:
    """A new, unloaded runtime for ``flavor``; ``ModelLoadError`` for an unknown flavor."""
    target = RUNTIMES.get(flavor)
    if target is None:
        raise ModelLoadError(f"flavor {flavor!r} has no serving runtime (known: "
                             f"{', '.join(RUNTIMES)}){did_you_mean(flavor, list(RUNTIMES))}",
                             field="flavor")
    module_name, class_name = target.split(":")
    runtime_class: type[ServingRuntime] = getattr(importlib.import_module(module_name),
                                                  class_name)
    return runtime_class()


def read_manifest(model_dir: Path) -> ModelManifest:
    """The model directory's ``aip-model.json``; ``ModelLoadError`` saying what is wrong."""
    path = model_dir / MANIFEST_FILE
    try:
        return ModelManifest.model_validate(json.loads(path.read_text()))
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read the model manifest ({exc.strerror}); a "
                             f"model directory holds {MANIFEST_FILE}") from None
    except ValueError as exc:  # JSONDecodeError and pydantic's ValidationError
        detail = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()) if isinstance(exc, ValidationError) else str(exc)
        raise ModelLoadError(f"{path}: invalid manifest: {detail}") from None


def load_runtime(model_dir: Path, options: RuntimeOptions | None = None,
                 manifest: ModelManifest | None = None) -> tuple[ModelManifest, ServingRuntime]:
    """Read the manifest (unless given), pick the flavor's runtime and load the model."""
    manifest = manifest or read_manifest(model_dir)
    runtime = runtime_for(manifest.flavor)
    runtime.load(model_dir, manifest, options or RuntimeOptions())
    return manifest, runtime


def model_file(model_dir: Path, manifest: ModelManifest) -> Path:
    """``model_dir / manifest.path``, checked to exist."""
    path = model_dir / manifest.path
    if not path.exists():
        raise ModelLoadError(f"{path}: the model file named by {MANIFEST_FILE}'s path is "
                             "missing", field="path")
    return path


def import_framework(module: str, flavor: str, package: str | None = None) -> object:
    """Import a framework lazily, or raise ``ModelLoadError`` saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelLoadError(f"the {flavor} flavor needs {package or module}, which cannot "
                             f"be imported ({exc}); pip install 'aip[serving]'") from None


def tabular_matrix(inputs: dict[str, np.ndarray], signature: Signature) -> np.ndarray:
    """The feature matrix of a tabular model: its one input (a 1-D input is one feature),
    or one column per input in the signature's order."""
    if len(inputs) == 1:
        (matrix,) = inputs.values()
        return matrix.reshape(-1, 1) if matrix.ndim == 1 else matrix
    order = [spec.name for spec in signature.inputs] or list(inputs)
    return np.column_stack([inputs[name] for name in order])
