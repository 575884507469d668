"""Signature inference, one function per flavor: input and output names, dtypes and shapes.

    inferred = infer_signature("onnx", Path("model.onnx"))
    inferred.signature.inputs[0]   # TensorSpec(name="x", dtype="float32", shape=[-1, 4])

``allow_code`` says whether the model's own loader may run code from the file. Pickles
(``.joblib``, ``.pkl``) and TorchScript run code when loaded, so they are inferred only with
``allow_code=True``, in the client of the person registering. The server infers with
``allow_code=False`` (and in a child process, ``python -m aip.registry.signatures``), which
reads ONNX graphs, XGBoost and LightGBM model files, SavedModel protobufs and skops files
whose types all pass skops' trusted-type check.

Shapes use -1 for a size that varies; inferred from an example input, the first dimension
is taken as the batch and becomes -1.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aip.errors import InvalidSpec
from aip.spec.model import DTYPES, Signature, TensorSpec

INFER_TIMEOUT_SECONDS = 300
_TENSOR_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")  # as aip.spec.model checks names


class SignatureUnavailable(Exception):
    """No signature can be inferred here (a library is missing, the flavor needs an example,
    or loading would run code); the model itself may be fine."""


@dataclass(frozen=True)
class Inferred:
    signature: Signature | None
    metadata: dict[str, Any] = field(default_factory=dict)


def infer_signature(flavor: str, path: Path, *, example_input: Any = None,
                    allow_code: bool = False) -> Inferred:
    """The signature of the model at ``path`` (the manifest's ``path`` on local disk).

    Raises ``SignatureUnavailable`` when it cannot be known here, and ``InvalidSpec`` (field
    ``path``) when the file is not a model of that flavor at all.
    """
    inferrer = INFERRERS.get(flavor)
    if inferrer is None:
        raise SignatureUnavailable(f"the {flavor} flavor has no automatic signature: give one "
                                   "with --signature")
    try:
        return inferrer(path, example_input, allow_code)
    except ValidationError as exc:
        raise SignatureUnavailable(f"the model's tensors do not fit a signature: "
                                   f"{exc.errors()[0]['msg']}") from None
    except ImportError as exc:
        raise SignatureUnavailable(f"{exc.name or exc} is not installed here") from None


def infer_in_subprocess(flavor: str, path: Path, timeout: float = INFER_TIMEOUT_SECONDS,
                        ) -> Inferred:
    """``infer_signature(allow_code=False)`` in a child Python, so the heavy libraries and
    any crash in a parser stay out of the control plane."""
    argv = [sys.executable, "-m", "aip.registry.signatures", flavor, str(path)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise SignatureUnavailable(f"reading the signature took over {timeout:g}s") from None
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SignatureUnavailable(f"the signature reader failed (exit {done.returncode}): "
                                   f"{done.stderr.strip()[-300:]}") from None
    if answer.get("invalid"):
        raise InvalidSpec(answer["invalid"], fields={"path": "not a valid model file"})
    if answer.get("unavailable"):
        raise SignatureUnavailable(answer["unavailable"])
    signature = answer.get("signature")
    return Inferred(Signature.model_validate(signature) if signature else None,
                    dict(answer.get("metadata") or {}))


def dtype_name(dtype: Any) -> str:
    """numpy or torch dtype -> the manifest's name (float32, int64, str, bytes ...)."""
    text = str(dtype).removeprefix("torch.")
    if text in DTYPES:
        return text
    import numpy as np

    try:
        numpy_dtype = np.dtype(dtype)
    except TypeError:
        raise SignatureUnavailable(f"dtype {dtype} has no signature name") from None
    if numpy_dtype.kind in ("U", "O"):
        return "str"
    if numpy_dtype.kind == "S":
        return "bytes"
    if numpy_dtype.name in DTYPES:
        return str(numpy_dtype.name)
    raise SignatureUnavailable(f"dtype {dtype} has no signature name")


def _invalid(path: Path, flavor: str, exc: BaseException) -> InvalidSpec:
    message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return InvalidSpec(f"{path.name} is not a valid {flavor} model: {message}",
                       fields={"path": f"not a {flavor} model"})


# -- one inferrer per flavor -------------------------------------------------------------------

def _onnx(path: Path, _example: Any, _allow_code: bool) -> Inferred:
    import onnx
    from onnx import helper

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise _invalid(path, "onnx", exc) from None
    graph = model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    skipped: list[str] = []

    def spec(value: Any) -> TensorSpec | None:
        if value.type.WhichOneof("value") != "tensor_type":
            skipped.append(value.name)  # sequences and maps (sklearn-onnx's ZipMap)
            return None
        tensor = value.type.tensor_type
        dims = [dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor.shape.dim]
        dtype = dtype_name(helper.tensor_dtype_to_np_dtype(tensor.elem_type))
        return TensorSpec(name=value.name, dtype=dtype, shape=dims)

    inputs = [s for v in graph.input if v.name not in initializers if (s := spec(v))]
    outputs = [s for v in graph.output if (s := spec(v))]
    metadata: dict[str, Any] = {
        "opset": {entry.domain or "ai.onnx": entry.version for entry in model.opset_import}}
    if model.producer_name:
        metadata["producer"] = f"{model.producer_name} {model.producer_version}".strip()
    if skipped:
        metadata["untyped_outputs"] = skipped
    return Inferred(Signature(inputs=inputs, outputs=outputs), metadata)


def _sklearn(path: Path, _example: Any, allow_code: bool) -> Inferred:
    estimator, serialization, untrusted = _load_sklearn(path, allow_code)
    import sklearn
    from sklearn.base import is_classifier

    features = getattr(estimator, "n_features_in_", None)
    names = getattr(estimator, "feature_names_in_", None)
    metadata: dict[str, Any] = {
        "estimator": f"{type(estimator).__module__}.{type(estimator).__qualname__}",
        "serialization": serialization, "sklearn_version": sklearn.__version__}
    if names is not None:
        metadata["feature_names"] = [str(name) for name in names]
    if untrusted:  # for review: serving loads them only once listed in skops_trusted_types
        metadata["skops_untrusted_types"] = untrusted
    inputs = _sklearn_inputs(metadata.get("feature_names"), features)
    # Output names as the sklearn serving runtime computes them: predictions, probabilities.
    outputs: list[TensorSpec] = []
    classes = getattr(estimator, "classes_", None) if is_classifier(estimator) else None
    if classes is not None:
        import numpy as np

        labels = np.asarray(classes)
        metadata["classes"] = labels.tolist()
        outputs.append(TensorSpec(name="predictions", dtype=dtype_name(labels.dtype),
                                  shape=[-1]))
        if hasattr(estimator, "predict_proba"):
            outputs.append(TensorSpec(name="probabilities", dtype="float64",
                                      shape=[-1, len(labels)]))
    elif hasattr(estimator, "predict"):
        targets = int(getattr(estimator, "n_outputs_", 1) or 1)
        shape = [-1] if targets == 1 else [-1, targets]
        outputs.append(TensorSpec(name="predictions", dtype="float64", shape=shape))
    return Inferred(Signature(inputs=inputs, outputs=outputs), metadata)


def _sklearn_inputs(names: list[str] | None, features: Any) -> list[TensorSpec]:
    """One input per column for an estimator fitted on a DataFrame (rows can then be sent as
    ``{"age": 41, ...}``); else one matrix ``input`` [-1, n_features]."""
    if names and all(_TENSOR_NAME.match(name) for name in names):
        return [TensorSpec(name=name, dtype="float64", shape=[-1]) for name in names]
    width = int(features) if features is not None else -1
    return [TensorSpec(name="input", dtype="float64", shape=[-1, width])]


def _load_sklearn(path: Path, allow_code: bool) -> tuple[Any, str, list[str]]:
    if path.suffix.lower() == ".skops":
        import skops.io

        try:
            untrusted = skops.io.get_untrusted_types(file=str(path))
        except Exception as exc:
            raise _invalid(path, "sklearn (skops)", exc) from None
        if untrusted and not allow_code:
            raise SignatureUnavailable(
                "the skops file holds types outside skops' trusted set "
                f"({', '.join(untrusted[:5])}); the server does not load it")
        try:
            return skops.io.load(str(path), trusted=untrusted), "skops", list(untrusted)
        except Exception as exc:
            raise _invalid(path, "sklearn (skops)", exc) from None
    if not allow_code:
        raise SignatureUnavailable("unpickling runs code from the file, so the signatures of "
                                   "pickled models are inferred by the client that registers "
                                   "them")
    import joblib

    try:
        return joblib.load(path), "pickle", []
    except ImportError:
        raise
    except Exception as exc:
        raise _invalid(path, "sklearn (joblib or pickle)", exc) from None


def _xgboost(path: Path, _example: Any, _allow_code: bool) -> Inferred:
    import xgboost

    try:
        booster = xgboost.Booster(model_file=str(path))
    except Exception as exc:
        raise _invalid(path, "xgboost", exc) from None
    learner = json.loads(booster.save_config())["learner"]
    objective = str(learner["objective"]["name"])
    params = learner.get("learner_model_param", {})
    classes = int(float(params.get("num_class", "0") or 0))
    targets = int(float(params.get("num_target", "1") or 1))
    width = classes if objective == "multi:softprob" else targets
    metadata: dict[str, Any] = {"objective": objective, "xgboost_version": xgboost.__version__}
    if booster.feature_names:
        metadata["feature_names"] = list(booster.feature_names)
    if classes > 1:
        metadata["num_class"] = classes
    signature = Signature(
        inputs=[TensorSpec(name="input", dtype="float32", shape=[-1, booster.num_features()])],
        outputs=[TensorSpec(name="predictions", dtype="float32",
                            shape=[-1] if width <= 1 else [-1, width])])
    return Inferred(signature, metadata)


def _lightgbm(path: Path, _example: Any, _allow_code: bool) -> Inferred:
    """From the header of LightGBM's text format (key=value lines before the first tree):
    no library needed, nothing run."""
    header: dict[str, str] = {}
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            first = handle.readline().strip()
            for line in handle:
                if not line.strip() or line.startswith("Tree="):
                    break
                key, _, value = line.strip().partition("=")
                header[key] = value
    except OSError as exc:
        raise _invalid(path, "lightgbm", exc) from None
    if first != "tree" or "max_feature_idx" not in header:
        raise InvalidSpec(f"{path.name} is not a LightGBM model in text format "
                          "(Booster.save_model)", fields={"path": "not a lightgbm model"})
    features = int(header["max_feature_idx"]) + 1
    classes = int(header.get("num_class", "1") or 1)
    metadata: dict[str, Any] = {"objective": header.get("objective", "").split(" ")[0],
                                "format_version": header.get("version", "")}
    if header.get("feature_names"):
        metadata["feature_names"] = header["feature_names"].split(" ")
    if classes > 1:
        metadata["num_class"] = classes
    signature = Signature(
        inputs=[TensorSpec(name="input", dtype="float64", shape=[-1, features])],
        outputs=[TensorSpec(name="predictions", dtype="float64",
                            shape=[-1] if classes == 1 else [-1, classes])])
    return Inferred(signature, metadata)


def _tensorflow(path: Path, _example: Any, _allow_code: bool) -> Inferred:
    from aip.registry.saved_model import SERVING_DEFAULT, NotASavedModel, read_signatures

    pb = path / "saved_model.pb" if path.is_dir() else path
    try:
        signatures = read_signatures(pb.read_bytes())
    except (OSError, NotASavedModel) as exc:
        raise _invalid(pb, "tensorflow SavedModel", exc) from None
    if not signatures:
        raise SignatureUnavailable("the SavedModel has no signatures (export it with "
                                   "tf.saved_model.save(model, dir, signatures=...))")
    key = SERVING_DEFAULT if SERVING_DEFAULT in signatures else sorted(signatures)[0]
    return Inferred(signatures[key], {"signature_key": key, "signature_keys": sorted(signatures)})


def _pytorch(path: Path, example: Any, allow_code: bool) -> Inferred:
    if not allow_code:
        raise SignatureUnavailable("loading TorchScript or torch.export files runs code; the "
                                   "client infers their signature")
    import torch

    if path.suffix.lower() == ".pt2":
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise _invalid(path, "pytorch (torch.export)", exc) from None
        return _exported_program(program, torch.__version__)
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated, and still what many ship
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    except Exception as jit_error:
        try:
            return _exported_program(torch.export.load(str(path)), torch.__version__)
        except Exception:
            raise _invalid(path, "pytorch (TorchScript via torch.jit.save, or torch.export "
                           "as .pt2; a state_dict cannot be served)", jit_error) from None
    names = [argument.name for argument in module.forward.schema.arguments[1:]]
    metadata: dict[str, Any] = {"format": "torchscript", "torch_version": torch.__version__,
                                "input_names": names}
    if example is None:
        raise SignatureUnavailable("a TorchScript signature needs an example input "
                                   "(--example-input FILE.npy, or example_input=)")
    inputs = example if isinstance(example, tuple | list) else (example,)
    tensors = [torch.as_tensor(item) for item in inputs]
    with torch.no_grad():
        result = module(*tensors)
    input_specs = [_tensor_spec(names[i] if i < len(names) else f"input_{i}", tensor)
                   for i, tensor in enumerate(tensors)]
    return Inferred(Signature(inputs=input_specs, outputs=_output_specs(result)), metadata)


def _exported_program(program: Any, torch_version: str) -> Inferred:
    signature = program.graph_signature
    nodes = {node.name: node for node in program.graph.nodes}
    inputs = [_fake_spec(name, nodes[name].meta.get("val")) for name in signature.user_inputs]
    output_node = next(node for node in program.graph.nodes if node.op == "output")
    values = [getattr(arg, "meta", {}).get("val") for arg in output_node.args[0]]
    user_values = values[-len(signature.user_outputs):] if signature.user_outputs else []
    outputs = [_fake_spec("output" if len(user_values) == 1 else f"output_{i}", value)
               for i, value in enumerate(user_values)]
    return Inferred(Signature(inputs=[s for s in inputs if s], outputs=[s for s in outputs if s]),
                    {"format": "torch.export", "torch_version": torch_version})


def _fake_spec(name: str, value: Any) -> TensorSpec | None:
    if value is None or not hasattr(value, "shape"):
        return None
    shape = [dim if isinstance(dim, int) else -1 for dim in value.shape]
    return TensorSpec(name=name, dtype=dtype_name(value.dtype), shape=shape)


def _tensor_spec(name: str, tensor: Any) -> TensorSpec:
    shape = [int(dim) for dim in tensor.shape]
    if shape:
        shape[0] = -1  # the batch
    return TensorSpec(name=name, dtype=dtype_name(tensor.dtype), shape=shape)


def _output_specs(result: Any) -> list[TensorSpec]:
    if isinstance(result, dict):
        return [_tensor_spec(str(key), value) for key, value in result.items()]
    if isinstance(result, tuple | list):
        return [_tensor_spec(f"output_{i}", value) for i, value in enumerate(result)]
    return [_tensor_spec("output", result)]


INFERRERS: dict[str, Callable[[Path, Any, bool], Inferred]] = {
    "onnx": _onnx, "sklearn": _sklearn, "xgboost": _xgboost, "lightgbm": _lightgbm,
    "tensorflow": _tensorflow, "pytorch": _pytorch,
}


def main(argv: list[str]) -> int:
    """``python -m aip.registry.signatures FLAVOR PATH``: one JSON line on stdout."""
    flavor, path = argv
    try:
        inferred = infer_signature(flavor, Path(path), allow_code=False)
        answer: dict[str, Any] = {
            "signature": inferred.signature.model_dump() if inferred.signature else None,
            "metadata": inferred.metadata}
    except SignatureUnavailable as exc:
        answer = {"unavailable": str(exc)}
    except InvalidSpec as exc:
        answer = {"invalid": exc.message}
    print(json.dumps(answer, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
