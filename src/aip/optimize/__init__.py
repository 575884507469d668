"""``aip.optimize``: compress and accelerate a trained model for inference (the Blade of AIP).

    import aip
    result = aip.optimize(model, example_inputs, level="o2", val_data=(x, y),
                          metric="accuracy", tolerance=0.01)

The package is itself callable, so ``aip.optimize(...)`` works however the package was
first imported (``import aip.optimize.report`` would otherwise replace a function of that
name on ``aip`` with the package). Importing it is cheap: torch, onnx and onnxruntime are
imported by the passes that use them, when they run. See ``aip.optimize.api`` for the
phases of a run and docs/optimize.md for the guide.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aip.optimize.api import OptimizeOptions, OptimizeResult
    from aip.optimize.measure import MeasureSettings
    from aip.optimize.report import OptimizeReport

__all__ = ["MeasureSettings", "OptimizeOptions", "OptimizeReport", "OptimizeResult",
           "optimize"]

_LAZY = {
    "OptimizeOptions": "aip.optimize.api",
    "OptimizeResult": "aip.optimize.api",
    "MeasureSettings": "aip.optimize.measure",
    "OptimizeReport": "aip.optimize.report",
}


def optimize(*args: Any, **kwargs: Any) -> OptimizeResult:
    """See ``aip.optimize.api.optimize``."""
    from aip.optimize.api import optimize as run

    return run(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aip.optimize' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """Makes ``aip.optimize(...)`` call ``optimize``."""

    def __call__(self, *args: Any, **kwargs: Any) -> OptimizeResult:
        return optimize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
