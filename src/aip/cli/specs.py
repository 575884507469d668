"""Pure builders that turn command-line flags into specs: ``aip run`` -> ``JobSpec`` and
``aip queue create`` -> ``QueueSpec``. No I/O, so they are tested table-driven.

Errors name the flag, not the spec path: ``--gpus: 1.5 GPUs is neither a whole count ...``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, TypeVar

from aip.errors import InvalidSpec

if TYPE_CHECKING:
    from pydantic import BaseModel

    from aip.spec import JobSpec, QueueSpec
    from aip.spec.endpoint import EndpointSpec

SpecModel = TypeVar("SpecModel", bound="BaseModel")

MAX_NAME_LENGTH = 63
# Programs that run a script: the job is better named after the script than "python".
_LAUNCHERS = re.compile(r"^(python[0-9.]*|pypy[0-9.]*|bash|sh|zsh|torchrun|deepspeed|uv|"
                        r"accelerate|mpirun|srun)$")
_SCRIPT_SUFFIXES = (".py", ".sh", ".ipynb")

# Where a spec error points, the flag that set it (longest prefix wins).
_JOB_FLAG_FOR_PATH = {
    "name": "--name",
    "queue": "--queue",
    "priority": "--priority",
    "labels": "--label",
    "working_dir": "--workdir",
    "max_restarts": "--max-restarts",
    "max_retries": "--max-restarts",
    "timeout": "--timeout",
    "framework": "--framework",
    "nproc_per_replica": "--nproc-per-replica",
    "environment.requirements": "--requirement",
    "environment.python": "--python",
    "environment": "--requirement",
    "restart_policy": "--restart-policy",
    "hang_timeout": "--hang-timeout",
    "topology": "--topology",
    "env": "--env",
    "replicas.worker.count": "--replicas",
    "replicas.worker.command": "COMMAND",
    "replicas.worker.resources.cpu": "--cpus",
    "replicas.worker.resources.memory": "--memory",
    "replicas.worker.resources.gpu": "--gpus",
    "replicas.worker.resources.gpu_type": "--gpu-type",
    "replicas.worker.resources.accelerators": "--accelerator",
}
_QUEUE_FLAG_FOR_PATH = {
    "name": "NAME",
    "cohort": "--cohort",
    "quota.cpu": "--cpu",
    "quota.memory": "--memory",
    "quota.gpu": "--gpu",
    "quota.accelerators": "--accelerator",
}


_ENDPOINT_FLAG_FOR_PATH = {
    "name": "NAME",
    "versions.0.model": "--model",
    "versions.1.model": "--canary/--shadow",
    "versions.2.model": "--shadow",
    "versions": "--model",
    "min_replicas": "--min-replicas",
    "max_replicas": "--max-replicas",
    "autoscaling.target_in_flight": "--target-in-flight",
    "autoscaling.target_qps": "--target-qps",
    "autoscaling.scale_in_cooldown": "--scale-in-cooldown",
    "autoscaling.scale_to_zero_after": "--scale-to-zero-after",
    "resources.cpu": "--cpus",
    "resources.memory": "--memory",
    "resources.gpu": "--gpus",
    "batching.max_batch_size": "--max-batch-size",
    "batching.max_wait_ms": "--max-wait-ms",
}


class InvalidFlags(InvalidSpec):
    """A spec built from command-line flags is invalid: a usage error (exit code 2)."""


@dataclass(frozen=True)
class RunRequest:
    """The flags of ``aip run``; None means "leave the spec default"."""

    command: Sequence[str]
    name: str | None = None
    queue: str | None = None
    priority: int | None = None
    cpus: str | None = None
    memory: str | None = None
    gpus: str | None = None
    gpu_types: Sequence[str] = ()
    accelerators: Sequence[str] = ()
    replicas: int = 1
    env: Sequence[str] = ()
    labels: Sequence[str] = ()
    max_retries: int | None = None
    timeout: str | None = None
    workdir: str | None = None
    framework: str | None = None
    nproc_per_replica: int | None = None
    requirements: Sequence[str] = ()
    python: str | None = None
    restart_policy: str | None = None
    hang_timeout: str | None = None
    topology: str | None = None


def build_job_spec(request: RunRequest) -> JobSpec:
    """The ``JobSpec`` of one ``aip run``: a single ``worker`` role with ``--replicas`` copies."""
    from aip.spec import JobSpec

    if not request.command:
        raise _flag_error("COMMAND", "is required: give it after the flags, e.g. "
                                     "`aip run --gpus 1 -- python train.py`")
    resources: dict[str, Any] = {}
    _put(resources, "cpu", request.cpus)
    _put(resources, "memory", request.memory)
    _put(resources, "gpu", request.gpus)
    gpu_types = [part.strip() for value in request.gpu_types for part in value.split("|")]
    if any(gpu_types):
        resources["gpu_type"] = [gpu_type for gpu_type in gpu_types if gpu_type]
    if request.accelerators:
        resources["accelerators"] = parse_counts(request.accelerators, "--accelerator")
    data: dict[str, Any] = {
        "name": request.name or default_job_name(request.command),
        "replicas": {"worker": {"count": request.replicas, "command": list(request.command),
                                "resources": resources}},
        "env": parse_pairs(request.env, "--env"),
        "labels": parse_pairs(request.labels, "--label"),
    }
    _put(data, "queue", request.queue)
    _put(data, "priority", request.priority)
    _put(data, "max_restarts", request.max_retries)
    _put(data, "timeout", request.timeout)
    _put(data, "working_dir", request.workdir)
    _put(data, "framework", request.framework)
    _put(data, "nproc_per_replica", request.nproc_per_replica)
    _put(data, "restart_policy", request.restart_policy)
    _put(data, "hang_timeout", request.hang_timeout)
    _put(data, "topology", request.topology)
    if request.requirements or request.python:
        environment: dict[str, Any] = {}
        if request.requirements:
            environment["requirements"] = list(request.requirements)
        _put(environment, "python", request.python)
        data["environment"] = environment
    return _validate_flags(data, JobSpec, _JOB_FLAG_FOR_PATH)


def build_endpoint_spec(base: Mapping[str, Any], *, name: str | None = None,
                        model: str | None = None, canary: str | None = None,
                        canary_weight: float = 10.0, shadow: str | None = None,
                        shadow_percent: float = 10.0, **flags: Any) -> EndpointSpec:
    """An ``EndpointSpec`` from ``aip serve deploy`` flags over ``base`` (a spec file)."""
    from aip.spec.endpoint import EndpointSpec

    data: dict[str, Any] = dict(base)
    _put(data, "name", name)
    if model is not None:
        data.pop("model", None)
        versions = [{"model": model, "weight": 100.0 - (canary_weight if canary else 0.0)}]
        if canary is not None:
            versions.append({"model": canary, "weight": canary_weight})
        if shadow is not None:
            versions.append({"model": shadow, "weight": 0.0, "shadow_percent": shadow_percent})
        data["versions"] = versions
    elif canary is not None or shadow is not None:
        raise _flag_error("--model", "is required with --canary or --shadow (the stable "
                                     "version)")
    for key in ("min_replicas", "max_replicas"):
        _put(data, key, flags.get(key))
    for section, keys in (("autoscaling", ("target_in_flight", "target_qps",
                                           "scale_in_cooldown", "scale_to_zero_after")),
                          ("batching", ("max_batch_size", "max_wait_ms"))):
        values = dict(data.get(section) or {})
        for key in keys:
            _put(values, key, flags.get(key))
        if values:
            data[section] = values
    resources = dict(data.get("resources") or {})
    for key, flag in (("cpu", "cpus"), ("memory", "memory"), ("gpu", "gpus")):
        _put(resources, key, flags.get(flag))
    if resources:
        data["resources"] = resources
    if "name" not in data:
        raise _flag_error("NAME", "is required: `aip serve deploy NAME --model URI`, or -f")
    if "max_replicas" not in data and data.get("min_replicas", 1) > 1:
        data["max_replicas"] = data["min_replicas"]
    return _validate_flags(data, EndpointSpec, _ENDPOINT_FLAG_FOR_PATH)


def build_queue_spec(
    name: str | None,
    *,
    cohort: str | None = None,
    cpu: str | None = None,
    memory: str | None = None,
    gpu: Sequence[str] = (),
    accelerators: Sequence[str] = (),
    base: Mapping[str, Any] | None = None,
) -> QueueSpec:
    """A ``QueueSpec`` from flags, laid over ``base`` (a spec loaded with ``-f``) if given."""
    from aip.spec import QueueSpec

    data: dict[str, Any] = dict(base or {})
    quota: dict[str, Any] = dict(data.get("quota") or {})
    _put(data, "name", name)
    _put(data, "cohort", cohort)
    _put(quota, "cpu", cpu)
    _put(quota, "memory", memory)
    if gpu:
        quota["gpu"] = parse_gpu_quota(gpu)
    if accelerators:
        quota["accelerators"] = parse_counts(accelerators, "--accelerator")
    if "name" not in data:
        raise _flag_error("NAME", "is required: `aip queue create NAME`, or -f queue.yaml")
    data["quota"] = quota
    return _validate_flags(data, QueueSpec, _QUEUE_FLAG_FOR_PATH)


def default_job_name(command: Sequence[str]) -> str:
    """A job name from the command: ``python train.py`` -> "train", ``./run-all`` -> "run-all"."""
    program = PurePath(command[0]).name
    stem = program
    if _LAUNCHERS.match(program):
        stem = _script_stem(command[1:]) or program
    return sanitize_name(stem)


def sanitize_name(text: str) -> str:
    """Fit any text to the name rule: lower-case letters, digits, '-', '_', '.'; 1-63 long."""
    name = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return name[:MAX_NAME_LENGTH].rstrip("-._") or "job"


def parse_pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    """``["A=1", "B=x=y"]`` -> ``{"A": "1", "B": "x=y"}``."""
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip():
            raise _flag_error(flag, f"takes KEY=VALUE, got {value!r}")
        pairs[key.strip()] = rest
    return pairs


def parse_counts(values: Sequence[str], flag: str) -> dict[str, int]:
    """``["tpu=4", "fpga"]`` -> ``{"tpu": 4, "fpga": 1}``."""
    counts: dict[str, int] = {}
    for value in values:
        kind, sep, amount = value.partition("=")
        try:
            counts[kind.strip()] = int(amount) if sep else 1
        except ValueError:
            raise _flag_error(flag, f"takes KIND=COUNT such as tpu=4, got {value!r}") from None
    return counts


def parse_gpu_quota(values: Sequence[str]) -> float | dict[str, float]:
    """``["8"]`` -> 8 GPUs of any type; ``["T4=4", "V100M32=2"]`` -> a quota per type."""
    if len(values) == 1 and "=" not in values[0]:
        return _gpu_amount(values[0], values[0])
    if any("=" not in value for value in values):
        raise _flag_error("--gpu", "give either N (all types together) or TYPE=N "
                                   "(repeatable), not both")
    per_type: dict[str, float] = {}
    for value in values:
        gpu_type, _, amount = value.partition("=")
        per_type[gpu_type.strip()] = _gpu_amount(amount, value)
    return per_type


def _gpu_amount(text: str, value: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _flag_error("--gpu", f"takes N or TYPE=N such as T4=4, got {value!r}") from None


def _script_stem(args: Sequence[str]) -> str | None:
    for index, arg in enumerate(args):
        if arg == "-m" and index + 1 < len(args):
            return args[index + 1].rsplit(".", 1)[-1]
        if arg.endswith(_SCRIPT_SUFFIXES) and not arg.startswith("-"):
            return PurePath(arg).stem
    return None


def _flag_error(flag: str, text: str) -> InvalidFlags:
    return InvalidFlags(f"invalid command line: {flag}: {text}", fields={flag: text})


def _put(target: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        target[key] = value


def _validate_flags(
    data: dict[str, Any], model: type[SpecModel], flags: Mapping[str, str]
) -> SpecModel:
    from aip.spec import validate

    try:
        return validate(data, model, source="command line")
    except InvalidSpec as exc:
        fields = {_flag_for(path, flags): text for path, text in exc.fields.items()}
        raise InvalidFlags("invalid command line", fields=fields) from None


def _flag_for(path: str, flags: Mapping[str, str]) -> str:
    for prefix in sorted(flags, key=len, reverse=True):
        if path == prefix or path.startswith(prefix + "."):
            suffix = path[len(prefix) + 1:]
            return f"{flags[prefix]} {suffix}" if suffix else flags[prefix]
    return path
