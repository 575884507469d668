"""Pass ``export``: PyTorch (eager or TorchScript) to ONNX, with dynamic batch and sequence.

The dynamo exporter (``torch.onnx.export(dynamo=True)``, built on ``torch.export``) goes
first: it is the supported path and captures more of Python. A 2-D integer input gets a
dynamic sequence axis; where the model fixes that axis (CTR ids: a set number of feature
fields, flattened into a linear layer) the exporter specializes it to the example's length
and keeps the batch axis dynamic. Where dynamo fails (data-dependent control flow, an op it
cannot translate, a TorchScript module), the TorchScript exporter gets a go. When both fail
the error names the operator and the usual workarounds, instead of two pages of exporter
traceback.

    exporter = export_module(module, example_feeds, specs, out_path)   # "dynamo", ...
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aip.optimize.data import Feeds, InputSpec, tile
from aip.optimize.errors import ExportFailed, first_line
from aip.optimize.pipeline import ModelState, PassContext, PassOutcome, stdout_silenced
from aip.optimize.sources import dynamic_axes

EXPORT_BATCH = 2  # torch.export specializes axes of size 0 and 1; 2 keeps batch symbolic

_OPERATOR_PATTERNS = (
    re.compile(r"operator '([\w.:]+)'"),
    re.compile(r"\b(aten::\w+(?:\.\w+)?)"),
    re.compile(r"\b(aten\.\w+\.\w+)"),
    re.compile(r"\b((?!torch\b|onnx\b|aten\b)[a-z_]\w*::\w+)"),
    re.compile(r"\b((?!torch\b|onnx\b|aten\b)[a-z_]\w*\.\w+\.default)\b"),
)


def export_pass(state: ModelState, context: PassContext) -> PassOutcome:
    """Export the source module; an ONNX source needs no export."""
    source = context.given
    if source.kind == "onnx":
        return PassOutcome(ModelState(path=source.onnx_path, quantize_from=source.onnx_path),
                           "", {"exporter": "none (the input is ONNX)"})
    path = context.workdir / "export.onnx"
    exporter = export_module(source.module, context.example, context.specs, path,
                             opset=context.options.opset)
    return PassOutcome(ModelState(path=path, module=source.module, quantize_from=path),
                       details={"exporter": exporter})


def export_module(module: Any, example: Feeds, specs: Sequence[InputSpec], path: Path, *,
                  opset: int | None = None) -> str:
    """Write ``module`` as ONNX to ``path``; return which exporter succeeded."""
    import torch

    feeds = tile(example, max(EXPORT_BATCH, next(iter(example.values())).shape[0]))
    args = tuple(torch.from_numpy(feeds[spec.name]) for spec in specs)
    names = [spec.name for spec in specs]
    axes = {spec.name: _present_axes(spec, feeds) for spec in specs}
    path.parent.mkdir(parents=True, exist_ok=True)
    # The exporters print failing graphs on stdout (from C++), which belongs to
    # `aip optimize -o json`; what matters reaches the user through the error below.
    with stdout_silenced():
        try:
            _export_dynamo(module, args, names, axes, path, opset)
            return "dynamo"
        except Exception as dynamo_error:
            first_error = dynamo_error
        try:
            _export_torchscript(module, args, names, axes, path, opset)
            return "torchscript"
        except Exception as script_error:
            raise export_error(first_error, script_error) from script_error


def export_error(dynamo_error: BaseException, script_error: BaseException) -> ExportFailed:
    """A short error naming the operator neither exporter could translate."""
    operator = unsupported_operator(f"{script_error}\n{dynamo_error}")
    workaround = ("rewrite that part of forward() with supported ops, register a translation "
                  "(torch.onnx.export(..., custom_translation_table={op: onnxscript_fn})), "
                  "or export to ONNX yourself and optimize the .onnx file")
    if operator:
        message = (f"cannot export the model to ONNX: operator {operator} is not supported "
                   f"by the dynamo or the TorchScript exporter")
        return ExportFailed(f"{message}; {workaround}",
                            fields={"model": f"unsupported operator {operator}"})
    detail = first_line(script_error) or first_line(dynamo_error) or type(script_error).__name__
    return ExportFailed(f"cannot export the model to ONNX: {detail}; {workaround}",
                        fields={"model": "export failed (AIP_DEBUG=1 shows the traceback)"})


def unsupported_operator(text: str) -> str | None:
    """The first operator name an exporter message mentions (``aten::foo``, ``lib::op``)."""
    for pattern in _OPERATOR_PATTERNS:
        match = pattern.search(text)
        if match:
            return match.group(1)
    return None


# -- helpers --------------------------------------------------------------------------------


def _present_axes(spec: InputSpec, feeds: Feeds) -> dict[int, str]:
    """Dynamic axes of one input, less a sequence axis of length 1 (it would specialize)."""
    axes = dynamic_axes(spec.shape, spec.dtype)
    if 1 in axes and feeds[spec.name].shape[1] < 2:
        del axes[1]
    return axes


def _export_dynamo(module: Any, args: tuple[Any, ...], names: list[str],
                   axes: dict[str, dict[int, str]], path: Path, opset: int | None) -> None:
    import torch

    dims: dict[str, Any] = {}
    dynamic_shapes = tuple(
        {axis: dims.setdefault(label, torch.export.Dim(label)) for axis, label in item.items()}
        for item in axes.values())
    kwargs: dict[str, Any] = {"opset_version": opset} if opset else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, args, dynamo=True, input_names=names,
                                    dynamic_shapes=dynamic_shapes, external_data=False,
                                    verbose=False, report=False, **kwargs)
    if program is None:
        raise RuntimeError("the dynamo exporter returned no program")
    _drop_trace_metadata(program.model)
    program.save(str(path), external_data=False)


def _drop_trace_metadata(model: Any) -> None:
    """The exporter writes each node's Python stack trace and FX node into the model: the
    paths of the user's source files would ship with every deployed copy, and on a small
    model they weigh more than its INT8 weights' savings. Inference needs none of it."""
    from onnx_ir.traversal import RecursiveGraphIterator

    for node in RecursiveGraphIterator(model.graph):
        for key in [key for key in node.metadata_props
                    if key == "namespace" or key.startswith("pkg.torch.")]:
            del node.metadata_props[key]


def _export_torchscript(module: Any, args: tuple[Any, ...], names: list[str],
                        axes: dict[str, dict[int, str]], path: Path, opset: int | None) -> None:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=False, input_names=names,
                          dynamic_axes=axes, opset_version=opset or 17,
                          do_constant_folding=True)
