"""ONNX Runtime sessions for a target, and running them over data in batches.

Every pass is measured and checked through the same session factory, so the numbers in the
report are what ``OptimizeResult.session`` will give: default ORT settings (all graph
optimizations on) on the target's execution provider.

    session = open_session(path, "cpu")
    outputs = run_batched(session, feeds, batch_size=256)     # list of arrays, one per output
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aip.optimize.data import InputSpec, batches, concat
from aip.optimize.errors import OptimizeError, invalid
from aip.serving.runtimes.onnx import ORT_DTYPES

if TYPE_CHECKING:
    import onnxruntime

TARGETS = ("cpu", "cuda")

def providers_for(target: str) -> list[str]:
    """The execution providers for ``target``; cuda needs onnxruntime-gpu with CUDA present."""
    import onnxruntime

    if target == "cpu":
        return ["CPUExecutionProvider"]
    if target == "cuda":
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise invalid("target", "cuda was asked for but this onnxruntime has no "
                          "CUDAExecutionProvider",
                          "install onnxruntime-gpu on a machine with an NVIDIA GPU, or use "
                          "target='cpu'")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise invalid("target", f"unknown target {target!r}", f"use one of {', '.join(TARGETS)}")


def open_session(path: Path | str, target: str, *,
                 basic_only: bool = False) -> onnxruntime.InferenceSession:
    """A session with ORT's default (all) graph optimizations, or only the basic lossless
    ones for ``basic_only`` (the fp32 reference outputs are taken that way)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initializers are noise here
    if basic_only:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    providers = providers_for(target)
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph classes
        raise OptimizeError(f"ONNX Runtime cannot load {path}: {exc}",
                            fields={"model": "not a model ONNX Runtime can run"}) from exc


def input_specs(session: onnxruntime.InferenceSession) -> list[InputSpec]:
    """The session's inputs as ``InputSpec``: symbolic or missing dims become ``None``."""
    specs = []
    for item in session.get_inputs():
        if item.type not in ORT_DTYPES or item.type == "tensor(string)":
            raise invalid("model", f"input {item.name!r} has type {item.type}",
                          "aip optimize takes models whose inputs are tensors of numbers "
                          "or bools")
        dtype = np.dtype(ORT_DTYPES[item.type])
        shape = tuple(dim if isinstance(dim, int) and dim > 0 else None for dim in item.shape)
        specs.append(InputSpec(item.name, dtype, shape))
    return specs


def runner(session: onnxruntime.InferenceSession) -> Callable[[Mapping[str, np.ndarray]], Any]:
    """``run(feeds)`` for timing: feeds only the inputs the session declares (exporters drop
    inputs a model never reads)."""
    names = [item.name for item in session.get_inputs()]
    return lambda feeds: session.run(None, {name: feeds[name] for name in names})


def run_batched(session: onnxruntime.InferenceSession, feeds: Mapping[str, np.ndarray], *,
                batch_size: int = 256) -> list[np.ndarray]:
    """All outputs over all rows, run ``batch_size`` rows at a time to bound memory. Only
    the inputs the session declares are fed: exporters drop inputs a model never reads."""
    names = [item.name for item in session.get_inputs()]
    selected = {name: feeds[name] for name in names}
    parts = [session.run(None, part) for part in batches(selected, batch_size)]
    return concat([[np.asarray(array) for array in part] for part in parts])


def file_size(path: Path | str) -> int:
    """Bytes of the model file plus any external-data files next to it."""
    path = Path(path)
    total = path.stat().st_size
    for sibling in path.parent.glob(path.name + ".data"):
        total += sibling.stat().st_size
    return total

