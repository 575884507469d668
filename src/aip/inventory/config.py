"""The node inventory section of AIP's config file, and the ``Node`` list built from it.

With no inventory section the control plane schedules onto one node: this host, as detected,
named after its hostname. ``node:`` adds what detection cannot see (accelerators, labels) or
overrides it; ``nodes:`` replaces the host with several *virtual* nodes that all run on this
host, so multi-node placement can be developed and tested without a cluster::

    node:                                  # extras for the detected local node
      name: my-box
      labels: {zone: a}
      accelerators: {fpga: 1, tpu: 4}      # cannot be detected: declared
      gpus: {count: 4, model: T4, memory: 16Gi}   # declared GPUs replace detected ones
      cpu: 8                               # optional override
      memory: 32Gi                         # optional override
    nodes:                                 # or: virtual nodes on this host
      - name: node-a
        cpu: 8                             # default: this host's CPUs
        memory: 32Gi                       # default: this host's memory
        gpus: {count: 4, model: V100M32}   # or [T4, T4, V100M32]; default: none
        accelerators: {tpu: 4}
        labels: {rdma-domain: r1}

Every node gets the labels ``aip.dev/hostname`` (the real host) and, when it has GPUs,
``aip.dev/gpu-type`` (its GPU models, comma-separated). Labels under ``aip.dev/`` are AIP's.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from aip.errors import InvalidSpec
from aip.inventory.detect import HostFacts, detect_host
from aip.scheduler.model import Gpu, Node
from aip.spec.job import check_name
from aip.spec.loading import load_yaml, validate
from aip.spec.resources import Cpu, Memory

INVENTORY_KEYS = ("node", "nodes")
HOSTNAME_LABEL = "aip.dev/hostname"
GPU_TYPE_LABEL = "aip.dev/gpu-type"
RESERVED_LABEL_PREFIX = "aip.dev/"
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_KIND_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _check_model(model: str) -> str:
    if not _MODEL_RE.match(model):
        raise ValueError(f"GPU model {model!r} must be letters, digits, '.', '-' or '_' "
                         "with no spaces, e.g. T4 or V100M32")
    return model


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be > 0")
    return value


PositiveInt = Annotated[int, AfterValidator(_positive)]
PositiveCpu = Annotated[Cpu, AfterValidator(_positive)]
PositiveMemory = Annotated[Memory, AfterValidator(_positive)]
GpuModel = Annotated[str, AfterValidator(_check_model)]


class GpuDeclaration(BaseModel):
    """``count`` identical GPUs: ``{count: 4, model: T4, memory: 16Gi}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: PositiveInt = Field(description="Number of GPUs.")
    model: GpuModel = Field(description="Short model name as jobs ask for it: T4, V100M32, H100.")
    memory: PositiveMemory | None = Field(default=None, description="Memory of each GPU.")


GpuField = GpuDeclaration | list[GpuModel]
_GPU_MODELS: TypeAdapter[list[str]] = TypeAdapter(list[GpuModel])


class _NodeFields(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    labels: dict[str, str] = Field(default_factory=dict)
    accelerators: dict[str, int] = Field(
        default_factory=dict, description='Declared devices by kind, e.g. {"tpu": 4}.')
    gpus: GpuField | None = Field(
        default=None,
        description="{count, model, memory} or a list of models; replaces detected GPUs. "
                    "An empty list declares no GPUs.")
    cpu: PositiveCpu | None = Field(default=None, description="CPU cores (default: detected).")
    memory: PositiveMemory | None = Field(default=None, description="Bytes (default: detected).")

    @field_validator("labels")
    @classmethod
    def _no_reserved_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key in labels:
            if key.startswith(RESERVED_LABEL_PREFIX):
                raise ValueError(f"label {key!r}: labels under {RESERVED_LABEL_PREFIX} are set "
                                 "by AIP; choose another name")
        return labels

    @field_validator("accelerators")
    @classmethod
    def _accelerator_counts(cls, accelerators: dict[str, int]) -> dict[str, int]:
        normalised: dict[str, int] = {}
        for kind, count in accelerators.items():
            if not _KIND_RE.match(kind.lower()):
                raise ValueError(f"accelerator kind {kind!r} must be letters, digits, - or _")
            if count <= 0:
                raise ValueError(f"accelerator {kind!r}: count must be > 0 (remove it instead)")
            normalised[kind.lower()] = count
        return normalised

    @field_validator("gpus", mode="wrap")
    @classmethod
    def _one_gpu_form(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> GpuField | None:
        # Validate the form the user wrote, so errors name its fields instead of listing
        # why each branch of the union failed.
        if value is None or isinstance(value, GpuDeclaration):
            return value
        if isinstance(value, list | tuple):
            return _GPU_MODELS.validate_python(list(value))
        if isinstance(value, dict):
            return GpuDeclaration.model_validate(value)
        raise ValueError("must be {count, model, memory} or a list of models such as [T4, T4]")


class LocalNodeConfig(_NodeFields):
    """Extras and overrides for the detected local node."""

    name: str | None = Field(default=None, description="Default: this host's name.")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str | None) -> str | None:
        return None if name is None else check_name(name, "node name")


class VirtualNodeConfig(_NodeFields):
    """One virtual node on this host."""

    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return check_name(name, "node name")


class InventoryConfig(BaseModel):
    """The ``node`` and ``nodes`` keys of the config file (other sections are not ours)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node: LocalNodeConfig | None = None
    nodes: list[VirtualNodeConfig] | None = None

    @field_validator("nodes")
    @classmethod
    def _unique_names(cls, nodes: list[VirtualNodeConfig] | None) -> list[VirtualNodeConfig] | None:
        if nodes is None:
            return None
        if not nodes:
            raise ValueError("lists no node; remove 'nodes' to use this host as the only node")
        first_index: dict[str, int] = {}
        for index, node in enumerate(nodes):
            if node.name in first_index:
                raise _field_error(cls.__name__, (index, "name"), node.name, (
                    f"node name {node.name!r} is already used by nodes.{first_index[node.name]}; "
                    "node names must be unique"))
            first_index[node.name] = index
        return nodes

    @model_validator(mode="after")
    def _not_both(self) -> InventoryConfig:
        if self.node is not None and self.nodes is not None:
            raise _field_error(type(self).__name__, ("node",), self.node, (
                "cannot be combined with 'nodes': 'node' describes this host as the only node, "
                "'nodes' replaces it with virtual nodes on this host"))
        return self

    @classmethod
    def from_config_mapping(
        cls, data: Mapping[str, Any] | None, *, source: str = "config"
    ) -> InventoryConfig:
        """The inventory from a whole parsed config file: picks ``node`` and ``nodes`` and
        ignores other sections, except near-misses of ours ("nodez": did you mean 'nodes'?)."""
        data = data or {}
        _reject_near_misses(data)
        picked = {key: data[key] for key in INVENTORY_KEYS if key in data}
        return validate(picked, cls, source=source)


def load_inventory_file(path: str | Path) -> InventoryConfig:
    """Read the inventory from a YAML config file; an empty file means all defaults.

    Raises ``InvalidSpec`` naming the file, line and field of a mistake."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidSpec(f"cannot read config file {source}: {exc.strerror or exc}") from None
    try:
        empty = yaml.safe_load(text) is None
    except yaml.YAMLError:
        empty = False  # load_yaml below reports the line and column
    if empty:
        return InventoryConfig()
    whole = load_yaml(text, _InventorySectionsOfFile, source=source)
    _reject_near_misses(whole.model_extra or {})
    return InventoryConfig(node=whole.node, nodes=whole.nodes)


def build_nodes(config: InventoryConfig, host: HostFacts | None = None) -> list[Node]:
    """The scheduler's nodes: this host (detected, plus ``node`` extras), or the virtual
    ``nodes``. ``host`` defaults to ``detect_host()``; tests pass their own facts."""
    host = host or detect_host()
    if config.nodes is None:
        local = config.node or LocalNodeConfig()
        name = local.name or _node_name_from_hostname(host.hostname)
        return [_node(local, name, host, detected_gpus=host.gpus)]
    # Virtual nodes share the host's CPUs and memory when they declare none, but never its
    # GPUs: two nodes must not hand out the same device.
    return [_node(virtual, virtual.name, host, detected_gpus=()) for virtual in config.nodes]


def _node(fields: _NodeFields, name: str, host: HostFacts,
          detected_gpus: tuple[Gpu, ...]) -> Node:
    gpus = detected_gpus if fields.gpus is None else _declared_gpus(fields.gpus)
    labels = {**fields.labels, HOSTNAME_LABEL: host.hostname}
    if gpus:
        labels[GPU_TYPE_LABEL] = ",".join(sorted({gpu.model for gpu in gpus}))
    cpu = fields.cpu if fields.cpu is not None else float(host.cpu_count)
    return Node(
        name=name,
        cpu_milli=round(cpu * 1000),
        memory_bytes=fields.memory if fields.memory is not None else host.memory_bytes,
        gpus=gpus,
        accelerators=dict(fields.accelerators),
        labels=labels,
    )


def _declared_gpus(gpus: GpuField) -> tuple[Gpu, ...]:
    if isinstance(gpus, GpuDeclaration):
        memory_mib = (gpus.memory or 0) // 2**20
        return tuple(Gpu(index=i, model=gpus.model, memory_mib=memory_mib)
                     for i in range(gpus.count))
    return tuple(Gpu(index=i, model=model) for i, model in enumerate(gpus))


def _node_name_from_hostname(hostname: str) -> str:
    """A valid node name from a hostname: "Build_Box.example.com" -> "build_box.example.com"."""
    name = re.sub(r"[^a-z0-9._-]+", "-", hostname.lower())[:63].strip("._-")
    return name or "local"


def _field_error(title: str, loc: tuple[str | int, ...], value: object,
                 message: str) -> ValidationError:
    """A validation error at ``loc`` below the field being validated (pydantic prefixes the
    field's own path), so the user sees ``nodes.1.name: ...`` rather than ``nodes: ...``."""
    return ValidationError.from_exception_data(title, [InitErrorDetails(
        type=PydanticCustomError("invalid_inventory", message), loc=loc, input=value)])


def _reject_near_misses(sections: Mapping[str, Any]) -> None:
    """Other sections of the config file are not ours, but "nodez" is surely a typo."""
    fields: dict[str, str] = {}
    for key, value in sections.items():
        if not isinstance(key, str) or key in INVENTORY_KEYS:
            continue
        if difflib.get_close_matches(key, INVENTORY_KEYS, n=1, cutoff=0.75):
            # "node" and "nodes" are close to each other: the value's shape tells which.
            meant = "nodes" if isinstance(value, list) else "node"
            fields[key] = f"unknown field {key!r}; did you mean {meant!r}?"
    if fields:
        summary = "; ".join(f"{path}: {text}" for path, text in fields.items())
        raise InvalidSpec(f"invalid config: {summary}", fields=fields)


class _InventorySectionsOfFile(InventoryConfig):
    """The whole config file as far as the inventory cares: other sections pass through."""

    model_config = ConfigDict(extra="allow", frozen=True)
