"""``JobSpec``: what a user submits. Replica groups by role, each with its own resources,
command (an argv list, never a shell string) and environment.

    name: train
    queue: default
    priority: 10
    framework: pytorch        # wires the rendezvous: see aip.runtime.frameworks
    nproc_per_replica: 2      # pytorch: torchrun processes per replica; mpi: slots per replica
    environment:              # optional per-job Python environment, built once and cached
      requirements: [numpy==1.26.4]
    restart_policy: gang      # a failed replica restarts the whole gang, or (replica) itself
    max_restarts: 2
    hang_timeout: 10m         # no log output and no heartbeat this long counts as a failure
    topology: preferred       # keep the gang within one RDMA domain
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
    AliasChoices,
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


Framework = Literal["none", "pytorch", "tensorflow", "jax", "mindspore", "mxnet", "mpi"]
FRAMEWORKS: Final[tuple[str, ...]] = (
    "none", "pytorch", "tensorflow", "jax", "mindspore", "mxnet", "mpi")
# Roles a framework understands; None: any role names (ranks follow the role order).
FRAMEWORK_ROLES: Final[dict[str, tuple[str, ...] | None]] = {
    "none": None,
    "pytorch": None,
    "jax": None,
    "mpi": None,
    "tensorflow": ("chief", "worker", "ps", "evaluator"),
    "mindspore": ("scheduler", "worker", "server"),
    "mxnet": ("scheduler", "server", "worker"),
}
REQUIREMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\[\],<>=!~;:@/+ '\"*-]*$")


class EnvironmentSpec(BaseModel):
    """A per-job Python environment: pip ``requirements`` installed into a virtual environment
    that AIP builds once per content hash and reuses, or an existing ``python`` interpreter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requirements: list[str] = Field(
        default_factory=list, description="pip requirement lines, e.g. numpy==1.26.4.")
    python: str | None = Field(
        default=None, description="An existing interpreter to run the job with, e.g. "
        "/opt/py39/bin/python; or the base interpreter of the built environment.")
    system_site_packages: bool = Field(
        default=False, description="Let the built environment see the base interpreter's "
        "packages (pip installs only what is missing or different).")

    @field_validator("requirements")
    @classmethod
    def _requirements(cls, value: list[str]) -> list[str]:
        for line in value:
            text = line.strip()
            if not text or text.startswith("-") or not REQUIREMENT_RE.match(text):
                raise ValueError(
                    f"requirement {line!r} is not a pip requirement like 'numpy==1.26.4' "
                    "(pip options and shell syntax are not accepted)")
        return [line.strip() for line in value]

    @model_validator(mode="after")
    def _something(self) -> EnvironmentSpec:
        if not self.requirements and not self.python:
            raise ValueError("give requirements (a list of pip requirements), python "
                             "(an existing interpreter), or both")
        return self


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
    framework: Framework = Field(
        default="none", description="Wires the framework's rendezvous into every replica: "
        "pytorch, tensorflow, jax, mindspore, mxnet, mpi; none sets only AIP_* variables.")
    nproc_per_replica: int = Field(
        default=1, ge=1, le=256, description="pytorch: processes per replica, run under "
        "torchrun; mpi: MPI slots per replica.")
    environment: EnvironmentSpec | None = Field(
        default=None, description="A per-job Python environment (pip requirements or an "
        "existing interpreter); default: the platform's own interpreter.")
    restart_policy: Literal["gang", "replica"] = Field(
        default="gang", description="When a replica fails: restart the whole gang (gang) or "
        "only the failed replica (replica), up to max_restarts times.")
    max_restarts: int = Field(
        default=0, ge=0, le=100, validation_alias=AliasChoices("max_restarts", "max_retries"),
        description="Restarts after failures before the job fails (max_retries is accepted).")
    hang_timeout: Duration | None = Field(
        default=None, gt=0, description="A replica with no log output and no heartbeat for "
        "this long (seconds, or 10m) is failed as hung.")
    topology: Literal["none", "preferred", "required"] = Field(
        default="none", description="Place the gang within one network domain "
        "(node label aip.io/rdma-domain): when possible (preferred) or always (required).")
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

    @model_validator(mode="after")
    def _framework_roles(self) -> JobSpec:
        allowed = FRAMEWORK_ROLES[self.framework]
        if allowed is not None:
            unknown = [role for role in self.replicas if role not in allowed]
            if unknown:
                raise ValueError(
                    f"framework {self.framework} knows the roles {', '.join(allowed)}; "
                    f"rename role {unknown[0]!r} to one of them")
        if self.nproc_per_replica > 1 and self.framework not in ("pytorch", "mpi"):
            raise ValueError("nproc_per_replica > 1 needs framework pytorch (torchrun) or mpi")
        return self

    @property
    def max_retries(self) -> int:
        """The earlier name of ``max_restarts``."""
        return self.max_restarts

    @property
    def total_replicas(self) -> int:
        return sum(group.count for group in self.replicas.values())
