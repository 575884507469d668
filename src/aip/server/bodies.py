"""Request bodies parsed by AIP's own spec loader, so errors name the field, suggest the
known key ("did you mean …?") and, for YAML bodies, give the line."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel

from aip.errors import DOCUMENT, InvalidSpec
from aip.spec import load_yaml, validate

Model = TypeVar("Model", bound=BaseModel)


async def parse_body(request: Request, model: type[Model], source: str) -> Model:
    return parse_text(await body_text(request), model, source, yaml_text=is_yaml(request))


async def body_text(request: Request) -> str:
    return (await request.body()).decode("utf-8", errors="replace")


def is_yaml(request: Request) -> bool:
    return "yaml" in request.headers.get("content-type", "")


def parse_text(text: str, model: type[Model], source: str, *, yaml_text: bool) -> Model:
    """``text`` (YAML, else JSON) as ``model``; ``InvalidSpec`` naming the field and line."""
    if yaml_text:
        return load_yaml(text, model, source=source)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSpec(f"{source} is not valid JSON: {exc}", fields={"body": str(exc)},
                          lines={DOCUMENT: exc.lineno}) from None
    return validate(data, model, source=source)


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for a route that reads its body itself."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema(
            ref_template="#/components/schemas/{model}")},
        "application/yaml": {"schema": {"type": "string"}},
    }}}
