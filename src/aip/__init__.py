"""AIP: an open, self-hosted AI platform.

    import aip
    client = aip.Client()            # finds the local server and its token via AIP_HOME
    job = client.submit_job({...})

Inside a job:

    aip.heartbeat()                      # "still alive" for hang detection (hang_timeout)
    aip.log_metrics(step=10, loss=0.25)  # buffered, a microsecond or two (aip.tracking)
    aip.log_params(lr=3e-4)
    aip.log_artifact("model.pt")         # uploaded now: jobs/<job id>/model.pt in the store
    aip.flush()                          # optional: an exit hook sends what is left

Optimizing a model for inference (ONNX export, graph fusions, INT8; see docs/optimize.md):

    result = aip.optimize(model, example_inputs, level="o2", val_data=(x, y), metric="accuracy")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from aip.client import Client
    from aip.tracking import flush, log_artifact, log_metrics, log_params

__all__ = ["Client", "__version__", "flush", "heartbeat", "log_artifact", "log_metrics",
           "log_params", "optimize"]
_TRACKING = frozenset({"flush", "log_artifact", "log_metrics", "log_params"})


def heartbeat() -> None:
    """Tell AIP this replica is alive, for jobs with a ``hang_timeout`` whose replicas may
    print nothing for a long while. Cheap (one ``utime`` of a file); a no-op outside a job."""
    import os

    path = os.environ.get("AIP_HEARTBEAT_FILE")
    if not path:
        return
    try:
        os.utime(path)
    except FileNotFoundError:
        with open(path, "a"):
            pass


def __getattr__(name: str) -> Any:
    if name == "Client":  # lazy: `import aip` stays cheap for the CLI and for jobs
        from aip.client import Client

        return Client
    if name == "optimize":  # the package is callable: aip.optimize(model, ...); still lazy
        import importlib

        return importlib.import_module("aip.optimize")
    if name in _TRACKING:  # lazy too; kept as a module attribute, so the next call is direct
        from aip import tracking

        function = getattr(tracking, name)
        globals()[name] = function
        return function
    raise AttributeError(f"module 'aip' has no attribute {name!r}")
