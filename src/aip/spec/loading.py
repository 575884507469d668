"""Loading specs from YAML or dicts, with errors a person can act on.

Malformed YAML reports its line and column. A validation error names each field path
(``replicas.worker.resources.gpu``), the YAML line it came from, and for an unknown key the
closest known one ("did you mean 'resources'?").
"""

from __future__ import annotations

import difflib
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from aip.errors import DOCUMENT, InvalidSpec

Model = TypeVar("Model", bound=BaseModel)
Path = tuple[str | int, ...]


def load_yaml(text: str, model: type[Model], *, source: str = "spec") -> Model:
    """Parse YAML text into ``model``; raise ``InvalidSpec`` naming the line and field."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    if not isinstance(data, dict):
        raise InvalidSpec(
            f"{source}: expected a mapping of fields (name, replicas, ...) at the top")
    lines = _key_lines(node) if node is not None else {}
    return validate(data, model, source=source, lines=lines)


def validate(
    data: Any, model: type[Model], *, source: str = "spec", lines: dict[Path, int] | None = None
) -> Model:
    """Validate a mapping into ``model``; raise ``InvalidSpec`` with one entry per bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_spec_from(exc, model, source=source, lines=lines or {}) from None


def invalid_spec_from(
    exc: ValidationError, model: type[BaseModel], *, source: str, lines: dict[Path, int]
) -> InvalidSpec:
    fields: dict[str, str] = {}
    field_lines: dict[str, int] = {}
    for error in exc.errors(include_url=False):
        loc = _clean_loc(error["loc"])
        path = ".".join(str(part) for part in loc) or "(top level)"
        if path in fields:
            continue
        fields[path] = _error_text(error, loc, model)
        line = _nearest_line(loc, lines)
        if line is not None:
            fields[path] += f" (line {line})"
            field_lines[path] = line
    summary = "; ".join(f"{path}: {text}" for path, text in fields.items())
    return InvalidSpec(f"invalid {source}: {summary}", fields=fields, lines=field_lines)


def _yaml_error(exc: yaml.YAMLError, source: str) -> InvalidSpec:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return InvalidSpec(f"{source} is not valid YAML: {problem}")
    message = (f"{source} is not valid YAML at line {mark.line + 1}, column {mark.column + 1}: "
               f"{problem}")
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None and context_mark.line != mark.line:
        message += f" ({context} started at line {context_mark.line + 1}, column " \
                   f"{context_mark.column + 1})"
    return InvalidSpec(message, lines={DOCUMENT: mark.line + 1})


def _clean_loc(loc: tuple[Any, ...]) -> Path:
    """Drop pydantic's internal steps (union branches, validator names) from a location."""
    cleaned: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        cleaned.append(part)
    return tuple(cleaned)


def _error_text(error: Any, loc: Path, model: type[BaseModel]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_fields(model, loc[:-1])
        key = str(loc[-1]) if loc else ""
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(known)}"
        return f"unknown field {key!r}; {hint}"
    if kind == "missing":
        return "is required"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _known_fields(model: type[BaseModel], loc: Path) -> list[str]:
    """Field names of the model that sits at ``loc`` inside ``model``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None:
            return []
        if part in fields:
            current = _inner_model(fields[part].annotation)
        else:  # a mapping key such as a role name: the value type is the next model
            continue
    fields = getattr(current, "model_fields", None)
    shorthand = getattr(current, "shorthand_fields", ())
    return [*fields, *shorthand] if fields else []


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _key_lines(node: yaml.Node, path: Path = ()) -> dict[Path, int]:
    lines: dict[Path, int] = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            lines[(*path, key)] = key_node.start_mark.line + 1
            for sub_path, line in _key_lines(value_node, (*path, key)).items():
                lines.setdefault(sub_path, line)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_key_lines(item, (*path, index)))
    return lines


def _nearest_line(loc: Path, lines: dict[Path, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        found = lines.get(tuple(loc[:end]))
        if found is not None and (end or loc == ()):
            return found
    return None
