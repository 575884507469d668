"""PyTorch models: TorchScript (``torch.jit.save``) or torch.export programs (``.pt2``).

The model is called positionally with the inputs in the signature's order (a model without a
signature takes exactly one input), under ``torch.inference_mode``. Outputs: a tensor is
named by the signature's first output (else ``output``), a tuple by the signature's outputs
(else ``output_0``, ``output_1``...), a dict by its keys. ``threads`` sets
``torch.set_num_threads``; ``device`` ``auto`` runs on CUDA when torch sees a GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aip.serving.errors import InvalidInput, ModelLoadError
from aip.serving.runtimes.base import (
    RuntimeOptions,
    ServingRuntime,
    import_framework,
    model_file,
)
from aip.spec.model import ModelManifest, Signature


class TorchRuntime(ServingRuntime):
    flavor = "pytorch"
    platform = "pytorch_torchscript"

    def __init__(self) -> None:
        self._torch: Any = None
        self._module: Any = None
        self._device = "cpu"
        self._signature = Signature()

    def load(self, model_dir: Path, manifest: ModelManifest, options: RuntimeOptions) -> None:
        torch: Any = import_framework("torch", "pytorch")
        path = model_file(model_dir, manifest)
        torch.set_num_threads(options.resolved_threads())
        if options.device == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError("device cuda: torch sees no GPU; serve with --device cpu")
        use_cuda = options.device != "cpu" and torch.cuda.is_available()
        self._device = "cuda" if use_cuda else "cpu"
        try:
            if path.suffix == ".pt2":
                module = torch.export.load(str(path)).module()
            else:
                module = torch.jit.load(str(path), map_location=self._device)
        except Exception as exc:  # torch raises RuntimeError, ValueError, pickle errors...
            raise ModelLoadError(f"{path}: torch cannot load the model (TorchScript, or a "
                                 f"torch.export .pt2): {exc}") from None
        if path.suffix == ".pt2":
            module = module.to(self._device)
        elif hasattr(module, "eval"):
            module.eval()
        self._torch, self._module = torch, module
        self._signature = manifest.signature or Signature()

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            args = [self._tensor(array) for array in self._ordered(inputs)]
            result = self._module(*args)
        return self._outputs(result)

    def _ordered(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self._signature.inputs:
            return [inputs[spec.name] for spec in self._signature.inputs]
        if len(inputs) != 1:
            raise InvalidInput(f"inputs: the model has no signature, so it takes one input; "
                               f"got {', '.join(inputs)}", field="inputs")
        return list(inputs.values())

    def _tensor(self, array: np.ndarray) -> Any:
        # Binary inputs are read-only views of the request body; torch wants writable memory.
        if not array.flags.writeable:
            array = array.copy()
        tensor = self._torch.from_numpy(array)
        return tensor if self._device == "cpu" else tensor.to(self._device, non_blocking=True)

    def _outputs(self, result: Any) -> dict[str, np.ndarray]:
        names = [spec.name for spec in self._signature.outputs]
        if isinstance(result, dict):
            return {str(name): _to_numpy(value) for name, value in result.items()}
        if isinstance(result, tuple | list):
            if not names:
                names = [f"output_{index}" for index in range(len(result))]
            return {name: _to_numpy(value) for name, value in zip(names, result, strict=True)}
        return {names[0] if names else "output": _to_numpy(result)}


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return np.asarray(value.detach().cpu().numpy())
    return np.asarray(value)
