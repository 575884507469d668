"""The submit page's quick form: a few fields turned into a one-role job spec, and the
spec's field errors mapped back onto the form's inputs.

Why a mapping and not a second validator: the server's ``JobSpec`` is the only schema. The
form builds the same dict a YAML file would hold and lets ``JobSpec`` judge it; an error at
``replicas.worker.resources.gpu`` is then shown next to the GPU input.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, fields
from typing import Any

from aip.errors import InvalidSpec

ROLE = "worker"

# spec field path -> the form input it came from
FIELD_OF_PATH = {
    "name": "name", "queue": "queue", "priority": "priority", "command": "command",
    f"replicas.{ROLE}.count": "replicas", f"replicas.{ROLE}.command": "command",
    f"replicas.{ROLE}.resources.cpu": "cpu", f"replicas.{ROLE}.resources.memory": "memory",
    f"replicas.{ROLE}.resources.gpu": "gpu", f"replicas.{ROLE}.resources.gpu_type": "gpu_type",
    f"replicas.{ROLE}.resources": "cpu", "labels": "user", "labels.user": "user",
}

EXAMPLE_YAML = """\
# A job: edit and submit. Errors show as you type, next to their line.
name: hello
queue: default
replicas:
  worker:
    count: 1
    command: [python, -c, "print('hello from AIP')"]
    resources: {cpu: 0.5, memory: 256Mi}
"""


@dataclass
class QuickForm:
    """The inputs, as typed (strings): shown again as they were when the spec is refused."""

    name: str = "quick"
    command: str = ""
    cpu: str = "1"
    memory: str = "1Gi"
    gpu: str = ""
    gpu_type: str = ""
    queue: str = "default"
    replicas: str = "1"
    priority: str = "0"
    user: str = ""

    @classmethod
    def from_form(cls, form: dict[str, str]) -> QuickForm:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v.strip() for k, v in form.items() if k in names})

    def to_spec(self) -> dict[str, Any]:
        """The job spec dict (not yet validated). A command that is not valid shell words
        (an open quote) is refused here, naming the command input."""
        try:
            argv = shlex.split(self.command)
        except ValueError as exc:
            raise InvalidSpec(f"command: {exc}", fields={"command": str(exc)}) from None
        resources: dict[str, Any] = {k: v for k, v in (
            ("cpu", self.cpu), ("memory", self.memory), ("gpu", self.gpu)) if v}
        if self.gpu_type:
            resources["gpu_type"] = [t.strip() for t in self.gpu_type.split(",") if t.strip()]
        group: dict[str, Any] = {"count": self.replicas or "1", "command": argv,
                                 "resources": resources}
        spec: dict[str, Any] = {"name": self.name, "queue": self.queue or "default",
                                "priority": self.priority or "0", "replicas": {ROLE: group}}
        if self.user:
            spec["labels"] = {"user": self.user}
        return spec

    def values(self) -> dict[str, str]:
        return asdict(self)


def form_errors(exc: InvalidSpec) -> dict[str, str]:
    """InvalidSpec's field errors keyed by form input; the rest together under ``form``."""
    errors: dict[str, str] = {}
    others: list[str] = []
    for path, message in exc.fields.items():
        field = FIELD_OF_PATH.get(path)
        if field is None:
            others.append(f"{path}: {message}")
        else:
            errors.setdefault(field, message)
    if others or not errors:
        errors["form"] = "; ".join(others) or exc.message
    return errors


def example_yaml() -> str:
    return EXAMPLE_YAML
