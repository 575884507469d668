"""``JobSpec``: what a user submits. Replica groups by role, each with its own resources,
command (an argv list, never a shell string) and environment.

    name: train
    queue: default
    priority: 10
    max_retries: 2
    timeout: 1h
    replicas:
      worker:
        count: 2
        command: [python, train.py]
        resources: {cpu: 2, memory: 4Gi, gpu: 1, gpu_type: [T4]}
        env: {EPOCHS: "3"}

A job with one role may put ``command``, ``resources`` and ``env`` at the top level instead of
under ``replicas``; they become a single ``worker`` replica.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from aip.spec.quantities import parse_duration
from aip.spec.resources import Resources

API_VERSION: Final = "aip/v1"
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_REPLICAS_PER_ROLE = 1024

Duration = Annotated[float, BeforeValidator(parse_duration)]


def check_name(value: str, what: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-63 lower-case letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit")
    return value


def _check_env(env: dict[str, str]) -> dict[str, str]:
    for key in env:
        if not ENV_NAME_RE.match(key):
            raise ValueError(f"environment variable name {key!r} must match [A-Za-z_][A-Za-z0-9_]*")
    return env


def _stringify_env(value: object) -> object:
    if isinstance(value, dict):
        return {k: v if isinstance(v, str) else _env_value(v) for k, v in value.items()}
    return value


def _env_value(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value  # let pydantic reject lists, dicts and None with its own message


EnvMap = Annotated[dict[str, str], BeforeValidator(_stringify_env)]


class ReplicaGroup(BaseModel):
    """``count`` identical replicas of one role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(default=1, ge=1, le=MAX_REPLICAS_PER_ROLE)
    command: list[str] = Field(min_length=1, description="argv list, e.g. [python, train.py].")
    resources: Resources = Field(default_factory=Resources)
    env: EnvMap = Field(default_factory=dict)

    @field_validator("command")
    @classmethod
    def _non_empty_program(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("the first element of command must name a program")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_env(value)


class JobSpec(BaseModel):
    """A training or batch workload: a gang of replicas placed all together or not at all."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    shorthand_fields: ClassVar[tuple[str, ...]] = ("command", "resources", "count")

    api_version: Literal["aip/v1"] = API_VERSION
    kind: Literal["Job"] = "Job"
    name: str = Field(description="Human name; job ids are generated from it.")
    queue: str = "default"
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher runs first.")
    labels: dict[str, str] = Field(default_factory=dict)
    working_dir: str | None = Field(
        default=None, description="Directory the replicas start in; default: the job's output dir.")
    max_retries: int = Field(default=0, ge=0, le=100)
    timeout: Duration | None = Field(
        default=None, gt=0, description="Seconds (or 30m, 2h) of running before the job fails.")
    env: EnvMap = Field(default_factory=dict, description="Environment for every replica.")
    replicas: dict[str, ReplicaGroup] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _single_role_shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "command" not in data:
            return data
        if "replicas" in data:
            raise ValueError("give either replicas or a top-level command, not both")
        data = dict(data)
        group = {"command": data.pop("command")}
        for key in ("resources", "count"):
            if key in data:
                group[key] = data.pop(key)
        data["replicas"] = {"worker": group}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "job name")

    @field_validator("queue")
    @classmethod
    def _queue(cls, value: str) -> str:
        return check_name(value, "queue name")

    @field_validator("replicas")
    @classmethod
    def _roles(cls, value: dict[str, ReplicaGroup]) -> dict[str, ReplicaGroup]:
        for role in value:
            check_name(role, "role")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_env(value)

    @property
    def total_replicas(self) -> int:
        return sum(group.count for group in self.replicas.values())
