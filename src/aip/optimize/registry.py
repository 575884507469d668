"""Optimize a registered model and register the result as its next version.

    result, version = optimize_registered(client, "models:/fraud@production", val_data=...)
    version["uri"]    # models:/fraud/4, flavor onnx, report.json and report.md among its files

The new version is an ordinary ``onnx`` model directory, so the serving runtime deploys it
unchanged. Its manifest metadata records the lineage (``optimized_from``: the source
version's URI, and the summary of the report); the full report travels as files.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aip.optimize.errors import invalid

if TYPE_CHECKING:
    from aip.client import Client
    from aip.optimize.api import OptimizeResult

OPTIMIZABLE_FLAVORS = ("onnx", "pytorch")


def optimize_registered(client: Client, uri: str, *, name: str | None = None,
                        output_dir: str | Path | None = None, **arguments: Any
                        ) -> tuple[OptimizeResult, dict[str, Any]]:
    """Download ``uri``, optimize it (``arguments`` as for ``aip.optimize``), register the
    optimized model under ``name`` (default: the source's name); return both."""
    from aip.optimize.api import optimize
    from aip.registry.flavors import locate_model, prepare_model

    version = client.resolve_model(uri)
    flavor = version.get("flavor")
    if flavor not in OPTIMIZABLE_FLAVORS:
        raise invalid("model", f"{version['uri']} has flavor {flavor}",
                      "aip optimize reads onnx and pytorch (TorchScript) versions")
    with tempfile.TemporaryDirectory(prefix="aip-optimize-source-") as scratch:
        source_dir = Path(scratch) / "source"
        client.download_model(version, source_dir)
        manifest_path = (version.get("manifest") or {}).get("path")
        model_path = source_dir / (manifest_path or locate_model(source_dir, flavor))
        result = optimize(model_path, output_dir=output_dir, **arguments)
    directory = result.path.parent
    metadata = {"optimized_from": version["uri"], "optimize_level": result.report.level,
                "optimize_target": result.report.target,
                "optimize_summary": result.report.to_dict()["summary"]}
    prepared = prepare_model(directory, "onnx", metadata=metadata)
    registered = client.upload_model(
        name or version["name"], prepared,
        description=f"aip optimize {result.report.level} of {version['uri']}")
    return result, registered
