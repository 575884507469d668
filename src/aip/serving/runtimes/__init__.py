"""Serving runtimes, one module per model flavor behind the ``ServingRuntime`` interface.

    runtime = runtime_for("onnx")        # unloaded; the framework is imported by load()
    runtime.load(model_dir, manifest, RuntimeOptions(threads=4))
"""

from aip.serving.runtimes.base import (
    RUNTIMES,
    RuntimeOptions,
    ServingRuntime,
    load_runtime,
    read_manifest,
    runtime_for,
)

__all__ = ["RUNTIMES", "RuntimeOptions", "ServingRuntime", "load_runtime", "read_manifest",
           "runtime_for"]
