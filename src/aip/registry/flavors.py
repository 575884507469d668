"""Model flavors on the client side: tell a model's flavor from its files, lay out the model
directory, infer its signature, and write the manifest (``aip-model.json``) into the tree that
is uploaded.

    prepared = prepare_model(Path("model.onnx"))                    # flavor and signature
    prepared = prepare_model(Path("clf.joblib"), "sklearn")         # unpickles: client only
    prepared = prepare_model(Path("scorer/"), "python", python_class="predictor:Model")
    prepared.manifest.signature, [file.path for file in prepared.files]

A file becomes a directory holding that file and the manifest (``path`` names the file). A
directory is uploaded as the model directory, and ``path`` names the model inside it: the
``*.onnx`` file, the folder with ``saved_model.pb``, or ``.`` for the python flavor. A
directory that already holds ``aip-model.json`` keeps it; flags given here override its fields.

The python flavor: ``python_class`` is ``module:Class``, importable from the model directory
(``path`` is ``.``). The serving runtime puts the directory on ``sys.path``, makes
``Class()``, calls ``load(model_dir)`` once, then ``predict(inputs)`` with a dict of arrays
(``aip.serving.runtimes.python``).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from aip.errors import InvalidSpec
from aip.registry.signatures import SignatureUnavailable, infer_signature
from aip.spec.model import FLAVORS, MANIFEST_FILE, ModelManifest, Signature
from aip.storage.tree import files_under

SUFFIX_FLAVORS: dict[str, str] = {
    ".onnx": "onnx",
    ".pt": "pytorch", ".pth": "pytorch", ".pt2": "pytorch", ".torchscript": "pytorch",
    ".joblib": "sklearn", ".pkl": "sklearn", ".pickle": "sklearn", ".skops": "sklearn",
    ".ubj": "xgboost", ".xgb": "xgboost", ".bst": "xgboost",
}
SNIFFED_SUFFIXES = frozenset({".json", ".txt", ".model", ".bin", ".lgb"})
SKIPPED_NAMES = frozenset({"__pycache__", ".git", ".ipynb_checkpoints", ".DS_Store"})
SAVED_MODEL_FILE = "saved_model.pb"
_PYTHON_CLASS = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:"
                           r"[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class TreeFile:
    """One file of the model directory: its path there (posix) and where it is read from."""

    path: str
    source: Path
    size: int


@dataclass(frozen=True)
class PreparedModel:
    """What gets uploaded: the manifest plus the files (the manifest is not among them)."""

    manifest: ModelManifest
    files: tuple[TreeFile, ...]
    notes: tuple[str, ...] = field(default=())  # e.g. why no signature was inferred

    def manifest_bytes(self) -> bytes:
        return manifest_bytes(self.manifest)


def prepare_model(
    path: Path,
    flavor: str | None = None,
    *,
    signature: Signature | Mapping[str, Any] | None = None,
    python_class: str | None = None,
    example_input: Any = None,
    metadata: Mapping[str, Any] | None = None,
    infer: bool = True,
) -> PreparedModel:
    """Lay out ``path`` (a file or a directory) as a model directory with its manifest.

    Runs the model's own loader to infer the signature (``infer=False`` skips it): for pickles
    that executes code from the file, which is why this happens in the client, on the
    machine of the person who registers, and never in the server.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidSpec(f"{path}: no such file or directory", fields={"path": "not found"})
    existing = _existing_manifest(path)
    flavor = check_flavor(flavor or (existing.flavor if existing else None) or
                          detect_flavor(path))
    files = tuple(collect_files(path))
    if path.is_dir():
        model_path = (existing.path if existing and existing.flavor == flavor
                      else locate_model(path, flavor))
    else:
        model_path = path.name
    python_class = python_class or (existing.python_class if existing else None)
    if flavor == "python":
        check_python_class(python_class, [file.path for file in files])
    elif python_class:
        raise InvalidSpec("python_class is only for the python flavor",
                          fields={"python_class": f"not used by the {flavor} flavor"})
    notes: list[str] = []
    given = _signature(signature) or (existing.signature if existing else None)
    inferred_metadata: dict[str, Any] = {}
    if given is None and infer:
        local_model = path / model_path if path.is_dir() else path
        try:
            inferred = infer_signature(flavor, local_model, example_input=example_input,
                                       allow_code=True)
            given, inferred_metadata = inferred.signature, inferred.metadata
        except SignatureUnavailable as exc:
            notes.append(f"no signature inferred: {exc}")
    manifest = ModelManifest(
        flavor=flavor,  # type: ignore[arg-type]  # checked against FLAVORS above
        path=model_path, signature=given, python_class=python_class,
        metadata={**(existing.metadata if existing else {}), **inferred_metadata,
                  **dict(metadata or {})})
    return PreparedModel(manifest, files, tuple(notes))


def detect_flavor(path: Path) -> str:
    """The flavor a file or directory holds, from names and a peek at the first bytes; raises
    ``InvalidSpec`` (field ``flavor``) when it cannot tell."""
    if path.is_dir():
        existing = _existing_manifest(path)
        if existing is not None:
            return existing.flavor
        paths = [file.path for file in collect_files(path)]
        return detect_in_tree(paths, lambda relative: _head(path / relative), str(path))
    return detect_in_tree([path.name], lambda _name: _head(path), path.name)


def detect_in_tree(paths: Sequence[str], head: Callable[[str], bytes], what: str) -> str:
    """The flavor of a model directory given as its file paths; ``head(path)`` returns the
    first bytes of a file, for the formats that share a suffix (.json, .txt)."""
    if any(PurePosixPath(p).name == SAVED_MODEL_FILE for p in paths):
        return "tensorflow"
    found = {flavor for p in paths if (flavor := file_flavor(p, head)) is not None}
    if len(found) == 1:
        return found.pop()
    problem = (f"has files of several flavors ({', '.join(sorted(found))})" if found
               else "has no model file AIP recognizes")
    raise InvalidSpec(f"{what} {problem}: give the flavor with --flavor "
                      f"({', '.join(FLAVORS)})", fields={"flavor": "cannot detect"})


def file_flavor(path: str, head: Callable[[str], bytes]) -> str | None:
    """The flavor of one model file, or None if it is not one AIP recognizes."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in SUFFIX_FLAVORS:
        return SUFFIX_FLAVORS[suffix]
    if suffix not in SNIFFED_SUFFIXES:
        return None
    start = head(path)
    if start.startswith((b"tree\n", b"tree\r\n")):
        return "lightgbm"  # LightGBM's text format opens with "tree" then "version=v4"
    if suffix == ".json" and b'"learner"' in start:
        return "xgboost"
    return None


def check_flavor(flavor: str) -> str:
    if flavor in FLAVORS:
        return flavor
    close = difflib.get_close_matches(flavor, FLAVORS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise InvalidSpec(f"unknown flavor {flavor!r}: use one of {', '.join(FLAVORS)}{hint}",
                      fields={"flavor": f"unknown flavor {flavor!r}{hint}"})


def locate_model(directory: Path, flavor: str) -> str:
    """The manifest's ``path`` for a local model directory: where the model is inside it."""
    paths = [file.path for file in collect_files(directory)]
    return locate_in_tree(paths, flavor, lambda relative: _head(directory / relative),
                          str(directory))


def locate_in_tree(paths: Sequence[str], flavor: str, head: Callable[[str], bytes],
                   what: str) -> str:
    """The manifest's ``path`` for a model directory given as its file paths."""
    if flavor == "python":
        return "."
    if flavor == "tensorflow":
        found = sorted({PurePosixPath(p).parent.as_posix() for p in paths
                        if PurePosixPath(p).name == SAVED_MODEL_FILE})
        if len(found) != 1:
            problem = "no" if not found else "several"
            raise InvalidSpec(f"{what}: {problem} SavedModel ({SAVED_MODEL_FILE}) in it; give "
                              "the SavedModel directory itself",
                              fields={"path": f"{problem} {SAVED_MODEL_FILE}"})
        return found[0]
    candidates = [p for p in paths if file_flavor(p, head) == flavor]
    if len(candidates) == 1:
        return candidates[0]
    suffixes = ", ".join(f"*{s}" for s, f in SUFFIX_FLAVORS.items() if f == flavor) or "files"
    if not candidates:
        raise InvalidSpec(f"{what}: no {flavor} model file ({suffixes}) in it",
                          fields={"path": f"no {flavor} model file"})
    raise InvalidSpec(f"{what}: several {flavor} model files ({', '.join(candidates)}); "
                      "give the file itself, or add an aip-model.json naming it",
                      fields={"path": f"several {flavor} model files"})


def collect_files(path: Path) -> list[TreeFile]:
    """The files to upload, sorted by path. Symbolic links are followed while they stay
    inside the directory; one that leads out of it is refused (``aip.storage.tree``). Caches
    (``__pycache__``, ``.git``) and the manifest itself are left out."""
    if path.is_file():
        return [TreeFile(path.name, path, path.stat().st_size)]
    files = [TreeFile(relative, source, source.stat().st_size)
             for relative, source in files_under(path)
             if relative != MANIFEST_FILE and not relative.endswith(".pyc")
             and not SKIPPED_NAMES.intersection(relative.split("/"))]
    if not files:
        raise InvalidSpec(f"{path} holds no files", fields={"path": "empty directory"})
    return files


def check_python_class(python_class: str | None, paths: Iterable[str] | None = None) -> str:
    """``module:Class``; with ``paths`` (the model directory's files), the module must be
    among them."""
    if not python_class:
        raise InvalidSpec("the python flavor needs python_class, module:Class with load() "
                          "and predict()", fields={"python_class": "required"})
    if not _PYTHON_CLASS.match(python_class):
        raise InvalidSpec(f"python_class {python_class!r} must be module:Class "
                          "(e.g. predictor:Model)", fields={"python_class": "not module:Class"})
    if paths is not None:
        module = python_class.partition(":")[0].replace(".", "/")
        present = set(paths)
        if f"{module}.py" not in present and f"{module}/__init__.py" not in present:
            raise InvalidSpec(f"python_class {python_class!r}: no {module}.py in the model "
                              "directory", fields={"python_class": f"{module}.py not found"})
    return python_class


def manifest_bytes(manifest: ModelManifest) -> bytes:
    return (manifest.model_dump_json(indent=2) + "\n").encode()


def write_manifest(directory: Path, manifest: ModelManifest) -> Path:
    """Write ``aip-model.json`` into a model directory (for a directory prepared by hand)."""
    target = directory / MANIFEST_FILE
    target.write_bytes(manifest_bytes(manifest))
    return target


def read_manifest(directory: Path) -> ModelManifest:
    target = directory / MANIFEST_FILE
    try:
        return parse_manifest(target.read_bytes(), source=str(target))
    except FileNotFoundError:
        raise InvalidSpec(f"{directory} has no {MANIFEST_FILE}",
                          fields={"path": f"no {MANIFEST_FILE}"}) from None


def parse_manifest(data: bytes, source: str = MANIFEST_FILE) -> ModelManifest:
    try:
        return ModelManifest.model_validate_json(data)
    except ValidationError as exc:
        fields = {f"manifest.{'.'.join(str(p) for p in error['loc'])}":
                  str(error["msg"]).removeprefix("Value error, ") for error in exc.errors()}
        raise InvalidSpec(f"{source} is not a valid model manifest", fields=fields) from None


def _existing_manifest(path: Path) -> ModelManifest | None:
    if path.is_dir() and (path / MANIFEST_FILE).is_file():
        return read_manifest(path)
    return None


def _signature(value: Signature | Mapping[str, Any] | None) -> Signature | None:
    if value is None or isinstance(value, Signature):
        return value
    try:
        return Signature.model_validate(dict(value))
    except ValidationError as exc:
        fields = {f"signature.{'.'.join(str(p) for p in error['loc'])}":
                  str(error["msg"]).removeprefix("Value error, ") for error in exc.errors()}
        raise InvalidSpec("the signature is not valid", fields=fields) from None


def _head(path: Path, size: int = 4096) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def signature_from_json(text: str, field_name: str = "signature") -> Signature:
    """A signature given as JSON text (an API query parameter, a CLI flag)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidSpec(f"{field_name} is not JSON: {exc}",
                          fields={field_name: "not JSON"}) from None
    if not isinstance(data, dict):
        raise InvalidSpec(f"{field_name} must be an object with inputs and outputs",
                          fields={field_name: "not an object"})
    signature = _signature(data)
    assert signature is not None
    return signature
