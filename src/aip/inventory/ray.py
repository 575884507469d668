"""Nodes from a Ray cluster: what ``aip node list`` shows and the scheduler places on when the
control plane runs with ``--backend ray``.

    source = RayNodeSource(ray.nodes)     # any callable returning ray.nodes()-shaped dicts
    source()                              # the alive nodes as scheduler Nodes, at most 1 s old
    source.node_id("node-a")              # the Ray node id behind an AIP node name

How one Ray node becomes a ``Node`` (``node_from_ray``):

- CPU, memory and GPU count are the node's Ray resources ``CPU``, ``memory`` (bytes) and
  ``GPU``. The GPU model comes from the ``accelerator_type:<X>`` resource, shortened as
  detected GPUs are (``"A100-80G"`` -> ``"A100"``, see ``short_gpu_model``).
- Every other resource is a declared accelerator, lower-cased, counted in whole devices
  (``{"tpu": 4}``), except Ray's own: ``object_store_memory``, ``node:*``, ``accelerator_type:*``
  and the per-placement-group copies (``CPU_group_<id>``, ``bundle_group_<id>``).
- Ray labels become node labels, except Ray's reserved ``ray.io/*`` ones. AIP adds
  ``aip.dev/hostname``, ``aip.dev/gpu-type`` (as the local inventory does) and
  ``aip.dev/ray-node-id``.
- The name is the label ``aip.io/node-name`` when the node sets one (``ray start --labels
  aip.io/node-name=gpu-7``), else ``ray-<first 8 hex digits of the node id>``; the address is
  the node's IP. Dead nodes are left out, so a node that leaves disappears from the list and
  the scheduler stops placing on it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aip.inventory.config import GPU_TYPE_LABEL, HOSTNAME_LABEL
from aip.inventory.detect import short_gpu_model
from aip.scheduler.model import Gpu, Node

log = logging.getLogger(__name__)

NODE_NAME_LABEL = "aip.io/node-name"
RAY_NODE_ID_LABEL = "aip.dev/ray-node-id"
RAY_LABEL_PREFIX = "ray.io/"
ACCELERATOR_TYPE_PREFIX = "accelerator_type:"
RAY_OWN_RESOURCES = frozenset({"CPU", "GPU", "memory", "object_store_memory"})
# Placement groups add copies of the resources they reserve: CPU_group_<pg id>,
# CPU_group_0_<pg id>, bundle_group_<pg id>.
_PLACEMENT_GROUP_RESOURCE_RE = re.compile(r"_group_(\d+_)?[0-9a-f]{16,}$")
_ACCELERATOR_KIND_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
_RAY_GPU_MEMORY_SUFFIX_RE = re.compile(r"-(\d+)G$", re.IGNORECASE)  # "A100-80G"
DEFAULT_MAX_AGE = 1.0  # seconds a node list is reused before Ray is asked again


def nodes_from_ray(records: Iterable[Mapping[str, Any]]) -> list[Node]:
    """The alive nodes of ``ray.nodes()`` as scheduler nodes, with unique names, by name.

    A name two nodes claim (the same ``aip.io/node-name`` label) goes to the first; the
    other gets ``<name>-<8 hex digits of its id>``."""
    nodes: list[Node] = []
    taken: set[str] = set()
    for record in records:
        if not _alive(record):
            continue
        node = node_from_ray(record)
        if node.name in taken:
            unique = f"{node.name[:54]}-{_short_id(record)}"
            log.warning("Ray nodes %s both call themselves %r; naming the second %r",
                        _node_id(record), node.name, unique)
            node = _renamed(node, unique)
        taken.add(node.name)
        nodes.append(node)
    return sorted(nodes, key=lambda node: node.name)  # Ray's order changes between calls


def node_from_ray(record: Mapping[str, Any]) -> Node:
    """One ``ray.nodes()`` entry as a scheduler node (see the module docstring)."""
    resources: Mapping[str, float] = record.get("Resources") or {}
    ray_labels: Mapping[str, str] = record.get("Labels") or {}
    labels = {key: str(value) for key, value in ray_labels.items()
              if not key.startswith(RAY_LABEL_PREFIX)}
    gpu_model = _gpu_model(resources)
    gpus = tuple(Gpu(index=index, model=gpu_model)
                 for index in range(int(resources.get("GPU", 0))))
    hostname = str(record.get("NodeManagerHostname") or record.get("NodeManagerAddress") or "")
    if hostname:
        labels[HOSTNAME_LABEL] = hostname
    if gpus:
        labels[GPU_TYPE_LABEL] = gpu_model
    labels[RAY_NODE_ID_LABEL] = _node_id(record)
    return Node(
        name=_node_name(record, ray_labels),
        cpu_milli=round(float(resources.get("CPU", 0)) * 1000),
        memory_bytes=int(resources.get("memory", 0)),
        gpus=gpus,
        accelerators=_accelerators(resources),
        labels=labels,
        address=str(record.get("NodeManagerAddress") or "127.0.0.1"),
    )


class RayNodeSource:
    """The cluster's alive nodes, asked of Ray at most once per ``max_age`` seconds.

    Calling the source returns the nodes (the control plane's ``Platform.nodes``). When Ray
    cannot be asked, the last list is kept and the failure logged: a control plane that lost
    its connection for a moment must not think every node left. Thread-safe: the API and the
    reconciler call it."""

    def __init__(self, list_nodes: Callable[[], Sequence[Mapping[str, Any]]], *,
                 max_age: float = DEFAULT_MAX_AGE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._list_nodes = list_nodes
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._nodes: tuple[Node, ...] = ()
        self._ids: dict[str, str] = {}  # node name -> Ray node id
        self._fetched_at: float | None = None

    def __call__(self) -> Sequence[Node]:
        return self.nodes()

    def nodes(self, *, max_age: float | None = None) -> Sequence[Node]:
        """The alive nodes, refreshed when the list is older than ``max_age`` (default: the
        source's own; 0 asks Ray now)."""
        limit = self._max_age if max_age is None else max_age
        with self._lock:
            now = self._clock()
            if self._fetched_at is None or now - self._fetched_at >= limit:
                self._refresh(now)
            return self._nodes

    def node_id(self, name: str, *, max_age: float | None = None) -> str | None:
        """The Ray node id of the alive node called ``name``, or None."""
        self.nodes(max_age=max_age)
        with self._lock:
            return self._ids.get(name)

    def is_alive(self, node_id: str, *, max_age: float | None = None) -> bool:
        self.nodes(max_age=max_age)
        with self._lock:
            return node_id in self._ids.values()

    def _refresh(self, now: float) -> None:
        try:
            records = list(self._list_nodes())
        except Exception as exc:  # GCS unreachable for a moment: keep what we knew
            log.warning("cannot list the Ray cluster's nodes (keeping the last list): %s", exc)
            self._fetched_at = now
            return
        nodes = nodes_from_ray(records)
        self._nodes = tuple(nodes)
        self._ids = {node.name: node.labels[RAY_NODE_ID_LABEL] for node in nodes}
        self._fetched_at = now


def ray_node_name(node_id: str) -> str:
    """The name AIP gives a Ray node that sets no ``aip.io/node-name`` label."""
    return f"ray-{node_id[:8].lower()}"


# -- helpers, in call order ------------------------------------------------------------------


def _alive(record: Mapping[str, Any]) -> bool:
    return bool(record.get("Alive", record.get("alive", False)))


def _node_id(record: Mapping[str, Any]) -> str:
    return str(record.get("NodeID") or "")


def _short_id(record: Mapping[str, Any]) -> str:
    return _node_id(record)[:8].lower()


def _renamed(node: Node, name: str) -> Node:
    return Node(name=name, cpu_milli=node.cpu_milli, memory_bytes=node.memory_bytes,
                gpus=node.gpus, accelerators=node.accelerators, labels=node.labels,
                schedulable=node.schedulable, address=node.address)


def _gpu_model(resources: Mapping[str, float]) -> str:
    for key in resources:
        if key.startswith(ACCELERATOR_TYPE_PREFIX):
            # Ray writes memory variants as "A100-80G"; the shortener knows "80GB".
            ray_type = _RAY_GPU_MEMORY_SUFFIX_RE.sub(r"-\1GB", key[len(ACCELERATOR_TYPE_PREFIX):])
            return short_gpu_model(ray_type)
    return "GPU"


def _accelerators(resources: Mapping[str, float]) -> dict[str, int]:
    accelerators: dict[str, int] = {}
    for key, amount in resources.items():
        if (key in RAY_OWN_RESOURCES or key.startswith(("node:", ACCELERATOR_TYPE_PREFIX))
                or _PLACEMENT_GROUP_RESOURCE_RE.search(key)):
            continue
        kind, count = key.lower(), int(amount)
        if count <= 0 or not _ACCELERATOR_KIND_RE.match(kind):
            log.debug("Ray resource %r (%s) is not an accelerator AIP can schedule", key, amount)
            continue
        accelerators[kind] = accelerators.get(kind, 0) + count
    return accelerators


def _node_name(record: Mapping[str, Any], ray_labels: Mapping[str, str]) -> str:
    declared = str(ray_labels.get(NODE_NAME_LABEL, "")).lower()
    if declared and _NAME_RE.match(declared):
        return declared
    if declared:
        log.warning("Ray node %s: label %s=%r is not a valid node name (1-63 lower-case "
                    "letters, digits, '-', '_' or '.'); using its id", _node_id(record),
                    NODE_NAME_LABEL, declared)
    return ray_node_name(_node_id(record))
