"""What the user handed over: a PyTorch module, a TorchScript file or an ONNX file.

``load_source`` recognises the model, names its inputs and derives their specs (dtype,
shape, which axes are dynamic) so that every later step (export, calibration, checks) speaks
of inputs by name. ``Source.outputs`` runs the model as given, which makes the fp32
reference the guard compares against, and ``Source.runner`` times it as given, which is the
report's ``source`` row.

Dynamic axes: axis 0 (batch) of every input; axis 1 (sequence) of 2-D integer inputs, the
shape of token ids and attention masks.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aip.optimize.data import Feeds, InputSpec, as_numpy, batches, concat, to_feeds
from aip.optimize.errors import invalid
from aip.optimize.sessions import file_size, input_specs, open_session, run_batched, runner

ONNX_SUFFIXES = (".onnx",)
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".jit")
ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class Source:
    """The model as given. ``kind`` is ``torch``, ``torchscript`` or ``onnx``."""

    kind: str
    description: str
    specs: list[InputSpec]
    example: Feeds
    module: Any = None
    onnx_path: Path | None = None
    # The basic-optimization session that read an ONNX source's inputs; the first reference
    # outputs run on it instead of loading the file again, then it is let go.
    reference_session: Any = field(default=None, repr=False)

    def outputs(self, feeds: Feeds, batch_size: int = 256) -> list[np.ndarray]:
        """The model's outputs as numpy arrays: the fp32 reference. ONNX models run with
        basic (lossless) graph optimizations only."""
        if self.kind == "onnx":
            assert self.onnx_path is not None
            session, self.reference_session = self.reference_session, None  # not held after
            if session is None:
                session = open_session(self.onnx_path, "cpu", basic_only=True)
            return run_batched(session, feeds, batch_size=batch_size)
        import torch

        parts = []
        with torch.inference_mode():
            for part in batches(feeds, batch_size):
                parts.append(flatten_outputs(self.module(*self.tensors(part))))
        return concat(parts)

    def runner(self, target: str) -> Callable[[Feeds], Any]:
        """A callable timing the model as given on ``target`` (inference mode for torch)."""
        if self.kind == "onnx":
            assert self.onnx_path is not None
            return runner(open_session(self.onnx_path, target))
        import torch

        device = "cuda" if target == "cuda" else "cpu"
        module = self.module.to(device)

        def run(feeds: Feeds) -> Any:
            with torch.inference_mode():
                result = module(*(tensor.to(device) for tensor in self.tensors(feeds)))
                if device == "cuda":
                    torch.cuda.synchronize()
                return result

        return run

    def tensors(self, feeds: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
        import torch

        return tuple(torch.from_numpy(np.ascontiguousarray(feeds[spec.name]))
                     for spec in self.specs)

    def size_bytes(self) -> int | None:
        if self.onnx_path is not None:
            return file_size(self.onnx_path)
        if self.module is not None and hasattr(self.module, "state_dict"):
            return sum(int(t.numel() * t.element_size())
                       for t in self.module.state_dict().values() if hasattr(t, "numel"))
        return None


def load_source(model: Any, example_inputs: Any) -> Source:
    """Recognise ``model`` (``nn.Module``, TorchScript path, ONNX path) and check the
    example inputs against it."""
    if isinstance(model, str | Path):
        return _from_path(Path(model).resolve(), example_inputs)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return _from_module(model.eval(), example_inputs, "torch",
                            f"PyTorch {type(model).__name__}")
    raise invalid("model", f"cannot optimize a {type(model).__name__}",
                  "give a torch.nn.Module with example_inputs, or the path of a TorchScript "
                  "(.pt) or ONNX (.onnx) file")


def flatten_outputs(result: Any) -> list[np.ndarray]:
    """Tensors of a module's result in the order the ONNX exporters flatten them."""
    if hasattr(result, "detach"):
        return [as_numpy(result)]
    if isinstance(result, Mapping):
        return [array for value in result.values() for array in flatten_outputs(value)]
    if hasattr(result, "to_tuple"):  # transformers' ModelOutput
        return flatten_outputs(result.to_tuple())
    if isinstance(result, list | tuple):
        return [array for value in result for array in flatten_outputs(value)]
    if result is None:
        return []
    return [np.asarray(result)]


def dynamic_axes(spec_shape: tuple[int | None, ...], dtype: np.dtype) -> dict[int, str]:
    """Which axes of an input are dynamic, by name: batch always, sequence for 2-D ints."""
    axes = {0: "batch"}
    if len(spec_shape) == 2 and np.issubdtype(dtype, np.integer):
        axes[1] = "sequence"
    return axes


# -- helpers --------------------------------------------------------------------------------


def _from_path(path: Path, example_inputs: Any) -> Source:
    if not path.is_file():
        raise invalid("model", f"no such file: {path}",
                      "give the path of a TorchScript (.pt) or ONNX (.onnx) file")
    head = path.read_bytes()[:4]
    if path.suffix.lower() in ONNX_SUFFIXES or (
            path.suffix.lower() not in TORCHSCRIPT_SUFFIXES and head != ZIP_MAGIC):
        return _from_onnx(path, example_inputs)
    import torch

    try:
        module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise invalid("model", f"{path} is not a TorchScript file torch.jit.load can read "
                      f"({type(exc).__name__})",
                      "save it with torch.jit.save(torch.jit.script(model), path), or "
                      "give an .onnx file") from exc
    return _from_module(module.eval(), example_inputs, "torchscript", f"TorchScript {path.name}")


def _from_onnx(path: Path, example_inputs: Any) -> Source:
    session = open_session(path, "cpu", basic_only=True)
    specs = input_specs(session)
    example = (to_feeds(example_inputs, specs, field="example_inputs")
               if example_inputs is not None else _synthetic_example(specs))
    return Source("onnx", f"ONNX {path.name}", specs, example, onnx_path=path,
                  reference_session=session)


def _from_module(module: Any, example_inputs: Any, kind: str, description: str) -> Source:
    if example_inputs is None:
        raise invalid("example_inputs", "a PyTorch model needs example inputs to export",
                      "give example_inputs=tensor (or a tuple/dict of tensors) of one "
                      "realistic batch")
    names = _input_names(module, example_inputs)
    arrays = _as_list(example_inputs, names)
    specs = []
    for name, array in zip(names, arrays, strict=True):
        shape: tuple[int | None, ...] = tuple(array.shape)
        axes = dynamic_axes(shape, array.dtype)
        shape = tuple(None if axis in axes else dim for axis, dim in enumerate(shape))
        specs.append(InputSpec(name, array.dtype, shape))
    example = to_feeds(dict(zip(names, arrays, strict=True)), specs, field="example_inputs")
    return Source(kind, description, specs, example, module=module)


def _input_names(module: Any, example_inputs: Any) -> list[str]:
    if isinstance(example_inputs, Mapping):
        return [str(key) for key in example_inputs]
    count = len(example_inputs) if isinstance(example_inputs, list | tuple) else 1
    try:
        parameters = [p.name for p in inspect.signature(module.forward).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        parameters = []
    parameters = [name for name in parameters if name != "self"]
    if len(parameters) >= count and all(name.isidentifier() for name in parameters[:count]):
        return parameters[:count]
    return [f"input_{index}" for index in range(count)]


def _as_list(example_inputs: Any, names: list[str]) -> list[np.ndarray]:
    if isinstance(example_inputs, Mapping):
        values = list(example_inputs.values())
    elif isinstance(example_inputs, list | tuple):
        values = list(example_inputs)
    else:
        values = [example_inputs]
    arrays = []
    for name, value in zip(names, values, strict=True):
        array = np.asarray(as_numpy(value))
        if array.ndim == 0:
            raise invalid("example_inputs", f"input {name!r} is a scalar",
                          "give arrays whose axis 0 is the batch")
        arrays.append(array)
    return arrays


def _synthetic_example(specs: list[InputSpec]) -> Feeds:
    """One row of zeros (ints) or standard normals (floats) when every non-batch axis is
    known; otherwise example inputs are required."""
    unknown = [spec for spec in specs if any(dim is None for dim in spec.shape[1:])]
    if unknown:
        raise invalid("example_inputs", f"the model's input {unknown[0].describe()} has "
                      "dynamic axes beyond the batch",
                      "give example_inputs (--example-input FILE.npy|.npz) of one real batch")
    generator = np.random.default_rng(0)
    example = {}
    for spec in specs:
        shape = (1, *(int(dim) for dim in spec.shape[1:]))  # type: ignore[arg-type]
        if np.issubdtype(spec.dtype, np.floating):
            example[spec.name] = generator.standard_normal(shape).astype(spec.dtype)
        else:
            example[spec.name] = np.zeros(shape, dtype=spec.dtype)
    return example
