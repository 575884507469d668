"""ONNX models on ONNX Runtime: one session, tuned for serving.

Session: ``intra_op_num_threads`` from ``RuntimeOptions`` (the replica's CPUs by default),
one inter-op thread, sequential execution (one request at a time runs on all intra-op
threads), every graph optimization (``ORT_ENABLE_ALL``); the CUDA provider first when
onnxruntime-gpu sees a GPU and the device is not ``cpu``. The signature is the manifest's,
else the graph's inputs and outputs (symbolic dimensions become -1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np

from aip.serving.errors import InvalidInput, ModelLoadError
from aip.serving.runtimes.base import (
    RuntimeOptions,
    ServingRuntime,
    import_framework,
    model_file,
)
from aip.spec.model import ModelManifest, Signature, TensorSpec

ORT_DTYPES: Final[dict[str, str]] = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int8)": "int8", "tensor(int16)": "int16", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(uint8)": "uint8", "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32", "tensor(uint64)": "uint64", "tensor(bool)": "bool",
    "tensor(string)": "str",
}


class OnnxRuntime(ServingRuntime):
    flavor = "onnx"
    platform = "onnxruntime_onnx"

    def __init__(self) -> None:
        self._session: Any = None
        self._signature = Signature()
        self._output_names: list[str] = []
        self._invalid_argument: type[Exception] = Exception

    def load(self, model_dir: Path, manifest: ModelManifest, options: RuntimeOptions) -> None:
        ort: Any = import_framework("onnxruntime", "onnx")
        path = model_file(model_dir, manifest)
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = options.resolved_threads()
        session_options.inter_op_num_threads = 1
        session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ["CPUExecutionProvider"]
        has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        if options.device == "cuda" and not has_cuda:
            raise ModelLoadError("device cuda: this onnxruntime has no CUDAExecutionProvider; "
                                 "install onnxruntime-gpu, or serve with --device cpu")
        if options.device != "cpu" and has_cuda:
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self._session = ort.InferenceSession(str(path), session_options,
                                                 providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise ModelLoadError(f"{path}: ONNX Runtime cannot load the model: {exc}") from None
        self._signature = manifest.signature or Signature(
            inputs=[_tensor_spec(arg) for arg in self._session.get_inputs()],
            outputs=[_tensor_spec(arg) for arg in self._session.get_outputs()])
        self._output_names = [arg.name for arg in self._session.get_outputs()]
        from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument
        self._invalid_argument = InvalidArgument

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            outputs = self._session.run(self._output_names, inputs)
        except self._invalid_argument as exc:
            raise InvalidInput(f"inputs: ONNX Runtime refused them: {exc}",
                               field="inputs") from None
        return dict(zip(self._output_names, outputs, strict=True))

    def close(self) -> None:
        self._session = None


def _tensor_spec(arg: Any) -> TensorSpec:
    dtype = ORT_DTYPES.get(arg.type)
    if dtype is None:
        raise ModelLoadError(f"ONNX input/output {arg.name!r} has type {arg.type}, which the "
                             "replica cannot serve (tensors of numbers, bools or strings)")
    shape = [dim if isinstance(dim, int) and dim >= 0 else -1 for dim in (arg.shape or [])]
    try:
        return TensorSpec(name=arg.name, dtype=dtype, shape=shape)
    except ValueError as exc:
        raise ModelLoadError(f"ONNX input/output {arg.name!r}: {exc}; give the model a "
                             "signature in its manifest") from None
