"""Free capacity of the cluster while one cycle runs: a mutable working copy of the snapshot.

``ClusterState.from_snapshot`` subtracts every running allocation from the nodes; the cycle
then ``take``s what it admits and, while it simulates preemption, ``give``s back what victims
hold. Indexes kept up to date on every change let placement policies find the tightest GPU
without scanning every node:

* ``whole_buckets[model][n]``: schedulable nodes with exactly ``n`` fully free GPUs of ``model``;
* ``share_levels[model]``: schedulable GPUs by free milli-GPU (1..1000), levels sorted;
* ``no_free_gpu``: schedulable nodes without free GPU capacity (where CPU-only work goes first).

Policies that keep their own derived index (``aip.scheduler.policies.table``) store it in
``caches`` and register a function in ``watchers``: every change to node ``p`` calls it with
``p``, so the index refreshes only the nodes that changed. ``copy`` starts both empty.

``only_on(positions)`` restricts placement to some nodes for a while (one RDMA domain, see
``aip.scheduler.topology``): while ``only`` is set, ``nodes_with_whole``, ``shares_at_least``
and every policy's candidate enumeration skip the other nodes. Unset (the common case), it
costs one ``is None`` check per lookup.

The trace simulator may keep one ``ClusterState`` alive across events and call ``take`` /
``give`` itself, instead of rebuilding it from a snapshot for every arrival.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from aip.scheduler.model import MILLI_PER_GPU, Allocation, Node, ReplicaPlacement, ReplicaRequest

FULL = MILLI_PER_GPU


@dataclass(frozen=True, slots=True)
class Holding:
    """Resources held on one node, in the state's own coordinates: node position, GPU slots
    (positions in ``Node.gpus``) and accelerator ids. The unit of ``take`` and ``give``."""

    node: int
    cpu_milli: int
    memory_bytes: int
    gpu_milli: tuple[tuple[int, int], ...] = ()  # (slot, milli)
    accelerators: tuple[tuple[str, int], ...] = ()  # (kind, device id)


class NodeState:
    """What is still free on one node."""

    __slots__ = (
        "acc_free", "acc_holders", "cpu_free", "gpu_free", "gpu_free_total", "gpu_holders",
        "gpu_index", "gpu_model", "memory_free", "models", "name", "node", "position",
        "schedulable", "slot_of_index", "whole_free",
    )

    def __init__(self, node: Node, position: int) -> None:
        self.node = node
        self.position = position
        self.name = node.name
        self.schedulable = node.schedulable
        self.cpu_free = node.cpu_milli
        self.memory_free = node.memory_bytes
        self.gpu_model = [gpu.model for gpu in node.gpus]
        self.gpu_index = [gpu.index for gpu in node.gpus]
        self.slot_of_index = {gpu.index: slot for slot, gpu in enumerate(node.gpus)}
        self.gpu_free = [FULL] * len(node.gpus)
        self.gpu_free_total = FULL * len(node.gpus)
        self.whole_free: dict[str, int] = {}
        for model in self.gpu_model:
            self.whole_free[model] = self.whole_free.get(model, 0) + 1
        self.models = frozenset(self.gpu_model)
        self.acc_holders = {kind: [0] * count for kind, count in node.accelerators.items()}
        self.acc_free = dict(node.accelerators)
        # Replicas holding GPUs here, by shape: 0 for a share of one GPU, n for n whole GPUs
        # (what GPU-clustering placement groups by).
        self.gpu_holders: dict[int, int] = {}

    def copy(self) -> NodeState:
        twin = NodeState.__new__(NodeState)
        for name in ("node", "position", "name", "schedulable", "cpu_free", "memory_free",
                     "gpu_model", "gpu_index", "slot_of_index", "gpu_free_total", "models"):
            setattr(twin, name, getattr(self, name))  # values, or lists never changed
        twin.gpu_free = list(self.gpu_free)
        twin.whole_free = dict(self.whole_free)
        twin.acc_holders = {kind: list(held) for kind, held in self.acc_holders.items()}
        twin.acc_free = dict(self.acc_free)
        twin.gpu_holders = dict(self.gpu_holders)
        return twin

    def fits_host(self, request: ReplicaRequest) -> bool:
        """CPU, memory and accelerators (not GPUs) are free for ``request``."""
        if not self.schedulable:
            return False
        if self.cpu_free < request.cpu_milli or self.memory_free < request.memory_bytes:
            return False
        return all(self.acc_free.get(kind, 0) >= count for kind, count in request.accelerators)

    def free_whole_slots(self, model: str, count: int) -> tuple[int, ...]:
        """The ``count`` lowest fully free GPU slots of ``model``."""
        slots: list[int] = []
        for slot, free in enumerate(self.gpu_free):
            if free == FULL and self.gpu_model[slot] == model:
                slots.append(slot)
                if len(slots) == count:
                    break
        return tuple(slots)

    def free_accelerator_ids(self, kind: str, count: int) -> tuple[int, ...]:
        holders = self.acc_holders.get(kind, [])
        return tuple([i for i, held in enumerate(holders) if held == 0][:count])


class _ShareLevels:
    """GPUs of one model bucketed by free milli-GPU; ``levels`` lists non-empty buckets."""

    __slots__ = ("buckets", "levels")

    def __init__(self) -> None:
        self.buckets: dict[int, dict[tuple[int, int], None]] = {}
        self.levels: list[int] = []

    def copy(self) -> _ShareLevels:
        twin = _ShareLevels()
        twin.buckets = {level: dict(gpus) for level, gpus in self.buckets.items()}
        twin.levels = list(self.levels)
        return twin

    def add(self, level: int, key: tuple[int, int]) -> None:
        bucket = self.buckets.get(level)
        if bucket is None:
            bucket = self.buckets[level] = {}
            insort(self.levels, level)
        bucket[key] = None

    def remove(self, level: int, key: tuple[int, int]) -> None:
        bucket = self.buckets[level]
        del bucket[key]
        if not bucket:
            del self.buckets[level]
            del self.levels[bisect_left(self.levels, level)]

    def at_least(self, milli: int) -> Iterator[tuple[int, dict[tuple[int, int], None]]]:
        """(level, GPUs) for every level >= ``milli``, smallest first."""
        levels = self.levels
        for level in levels[bisect_left(levels, milli):]:
            yield level, self.buckets[level]


class ClusterState:
    """Mutable free capacity of all nodes, with the indexes placement policies search."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes: list[NodeState] = []
        self.by_name: dict[str, NodeState] = {}
        for node in nodes:
            if node.name in self.by_name:
                continue  # a duplicate name cannot be addressed by placements; keep the first
            state = NodeState(node, len(self.nodes))
            self.nodes.append(state)
            self.by_name[node.name] = state
        self.models: set[str] = set()
        self.max_per_node: dict[str, int] = {}  # model -> most GPUs of it on one node
        self.whole_buckets: dict[str, dict[int, dict[int, None]]] = {}
        self.share_levels: dict[str, _ShareLevels] = {}
        self.no_free_gpu: dict[int, None] = {}  # schedulable nodes without free GPU capacity
        self.watchers: list[Callable[[int], None]] = []  # called with a node's position on change
        self.caches: dict[object, object] = {}  # derived indexes kept by placement policies
        self.only: frozenset[int] | None = None  # positions placement may use now; None: all
        for state in self.nodes:
            if not state.schedulable:
                continue
            if state.gpu_free_total <= 0:
                self.no_free_gpu[state.position] = None
            for model, count in state.whole_free.items():
                self.models.add(model)
                self.max_per_node[model] = max(self.max_per_node.get(model, 0), count)
                buckets = self.whole_buckets.setdefault(model, {})
                buckets.setdefault(count, {})[state.position] = None
            for slot, model in enumerate(state.gpu_model):
                levels = self.share_levels.setdefault(model, _ShareLevels())
                levels.add(FULL, (state.position, slot))

    def copy(self) -> ClusterState:
        """An independent copy (for a what-if state next to the working one)."""
        twin = ClusterState.__new__(ClusterState)
        twin.nodes = [node.copy() for node in self.nodes]
        twin.by_name = {name: twin.nodes[node.position] for name, node in self.by_name.items()}
        twin.models = set(self.models)
        twin.max_per_node = dict(self.max_per_node)
        twin.whole_buckets = {model: {count: dict(nodes) for count, nodes in buckets.items()}
                              for model, buckets in self.whole_buckets.items()}
        twin.share_levels = {model: levels.copy() for model, levels in self.share_levels.items()}
        twin.no_free_gpu = dict(self.no_free_gpu)
        twin.watchers = []
        twin.caches = {}
        twin.only = None
        return twin

    @classmethod
    def from_snapshot(cls, nodes: Sequence[Node], running: Iterable[Allocation]) -> ClusterState:
        state = cls(nodes)
        for allocation in running:
            for placement in allocation.placements:
                state.allocate(placement)
        return state

    # -- placements <-> holdings ------------------------------------------------------------

    def holding(self, placement: ReplicaPlacement) -> Holding | None:
        """``placement`` in this state's coordinates; None if its node is unknown. GPU indices
        or accelerator ids the node does not have are ignored (the inventory changed)."""
        node = self.by_name.get(placement.node)
        if node is None:
            return None
        gpus = tuple(
            (node.slot_of_index[index], placement.gpu_milli_each)
            for index in placement.gpus if index in node.slot_of_index)
        accelerators = tuple(
            (kind, device)
            for kind, devices in placement.accelerators.items()
            for device in devices if 0 <= device < len(node.acc_holders.get(kind, ())))
        return Holding(node.position, placement.cpu_milli, placement.memory_bytes, gpus,
                       accelerators)

    def allocate(self, placement: ReplicaPlacement) -> None:
        holding = self.holding(placement)
        if holding is not None:
            self.take(holding)

    def release(self, placement: ReplicaPlacement) -> None:
        holding = self.holding(placement)
        if holding is not None:
            self.give(holding)

    # -- the two primitives ------------------------------------------------------------------

    def take(self, holding: Holding) -> None:
        self._shift(holding, -1)

    def give(self, holding: Holding) -> None:
        self._shift(holding, +1)

    def _shift(self, holding: Holding, sign: int) -> None:
        node = self.nodes[holding.node]
        node.cpu_free += sign * holding.cpu_milli
        node.memory_free += sign * holding.memory_bytes
        for slot, milli in holding.gpu_milli:
            self._set_gpu_free(node, slot, node.gpu_free[slot] + sign * milli)
        for kind, device in holding.accelerators:
            holders = node.acc_holders[kind]
            before = holders[device]
            holders[device] = before - sign
            if before == 0 and sign < 0:
                node.acc_free[kind] -= 1
            elif before == 1 and sign > 0:
                node.acc_free[kind] += 1
        if holding.gpu_milli:
            shape = 0 if any(milli < FULL for _slot, milli in holding.gpu_milli) \
                else len(holding.gpu_milli)
            count = node.gpu_holders.get(shape, 0) - sign
            if count > 0:
                node.gpu_holders[shape] = count
            else:
                node.gpu_holders.pop(shape, None)
        for watcher in self.watchers:
            watcher(holding.node)

    def _set_gpu_free(self, node: NodeState, slot: int, free: int) -> None:
        old = node.gpu_free[slot]
        if old == free:
            return
        node.gpu_free[slot] = free
        total = node.gpu_free_total
        node.gpu_free_total = total + free - old
        if not node.schedulable:
            return
        if (total <= 0) != (node.gpu_free_total <= 0):
            if total <= 0:
                del self.no_free_gpu[node.position]
            else:
                self.no_free_gpu[node.position] = None
        model = node.gpu_model[slot]
        levels = self.share_levels[model]
        key = (node.position, slot)
        if old > 0:
            levels.remove(old, key)
        if free > 0:
            levels.add(free, key)
        if (old == FULL) != (free == FULL):
            count = node.whole_free[model]
            new_count = count + (1 if free == FULL else -1)
            node.whole_free[model] = new_count
            buckets = self.whole_buckets[model]
            bucket = buckets[count]
            del bucket[node.position]
            if not bucket:
                del buckets[count]
            buckets.setdefault(new_count, {})[node.position] = None

    # -- restricting placement ---------------------------------------------------------------

    @contextmanager
    def only_on(self, positions: frozenset[int]) -> Iterator[None]:
        """Within the block, placement may use only the nodes at ``positions`` (policies honour
        ``only``; see ``PlacementPolicy``). Not nested: the previous value comes back after."""
        previous = self.only
        self.only = positions
        try:
            yield
        finally:
            self.only = previous

    # -- reading -----------------------------------------------------------------------------

    def nodes_with_whole(self, model: str, count: int) -> Iterator[tuple[int, Collection[int]]]:
        """(free count, node positions) with at least ``count`` fully free GPUs of ``model``,
        fewest free first; only positions in ``only`` when it is set."""
        buckets = self.whole_buckets.get(model)
        if not buckets:
            return
        only = self.only
        for free in range(count, self.max_per_node[model] + 1):
            bucket = buckets.get(free)
            if bucket and only is not None:
                bucket = _within(bucket, only)
            if bucket:
                yield free, bucket

    def shares_at_least(self, model: str,
                        milli: int) -> Iterator[tuple[int, Collection[tuple[int, int]]]]:
        """(free level, GPUs as (position, slot)) of ``model`` for every level >= ``milli``,
        smallest first; only GPUs of nodes in ``only`` when it is set."""
        levels = self.share_levels.get(model)
        if levels is None:
            return
        only = self.only
        for level, gpus in levels.at_least(milli):
            if only is not None:
                gpus = {gpu: None for gpu in gpus if gpu[0] in only}
                if not gpus:
                    continue
            yield level, gpus

    def allowed_models(self, models: frozenset[str] | None) -> list[str]:
        """Models present on schedulable nodes among ``models`` (None: any), in sorted order."""
        if models is None:
            return sorted(self.models)
        return sorted(model for model in models if model in self.models)

    def capture(self, positions: Iterable[int]) -> dict[int, NodeValues]:
        return {position: NodeValues.of(self.nodes[position]) for position in positions}


@dataclass(frozen=True, slots=True)
class NodeValues:
    """A copy of one node's free values, to compute what a reservation must hold."""

    cpu_free: int
    memory_free: int
    gpu_free: tuple[int, ...]
    acc_holders: tuple[tuple[str, tuple[int, ...]], ...]

    @classmethod
    def of(cls, node: NodeState) -> NodeValues:
        return cls(node.cpu_free, node.memory_free, tuple(node.gpu_free),
                   tuple((kind, tuple(held)) for kind, held in node.acc_holders.items()))

    def excess_over(self, position: int, later: NodeValues) -> Holding | None:
        """What ``later`` uses beyond these values: the part that must be held so that free
        capacity becomes ``min(self, later)``. None when nothing."""
        cpu = max(0, self.cpu_free - later.cpu_free)
        memory = max(0, self.memory_free - later.memory_free)
        gpus = tuple(
            (slot, before - after)
            for slot, (before, after) in enumerate(zip(self.gpu_free, later.gpu_free, strict=True))
            if before > after)
        later_holders = dict(later.acc_holders)
        accelerators = tuple(
            (kind, device)
            for kind, held in self.acc_holders
            for device, count in enumerate(held) if later_holders[kind][device] > count)
        if not (cpu or memory or gpus or accelerators):
            return None
        return Holding(position, cpu, memory, gpus, accelerators)


def _within(bucket: dict[int, None], only: frozenset[int]) -> dict[int, None]:
    """The positions of ``bucket`` that are in ``only``, walking the smaller of the two."""
    if len(only) < len(bucket):
        return {position: None for position in only if position in bucket}
    return {position: None for position in bucket if position in only}


def fits_empty(node: Node, request: ReplicaRequest, models: frozenset[str] | None) -> bool:
    """``node``, with nothing running on it, could hold one replica of ``request``."""
    if not node.schedulable or node.cpu_milli < request.cpu_milli \
            or node.memory_bytes < request.memory_bytes:
        return False
    if any(node.accelerators.get(kind, 0) < count for kind, count in request.accelerators):
        return False
    if not request.gpu_milli:
        return True
    per_model: dict[str, int] = {}
    for gpu in node.gpus:
        if models is None or gpu.model in models:
            per_model[gpu.model] = per_model.get(gpu.model, 0) + 1
    return any(count >= max(1, request.whole_gpus) for count in per_model.values())


def could_hold(node: NodeState, request: ReplicaRequest, models: frozenset[str] | None) -> bool:
    """``node``'s free capacity now could hold one replica of ``request``."""
    if not node.fits_host(request):
        return False
    if request.whole_gpus:
        return any(count >= request.whole_gpus and (models is None or model in models)
                   for model, count in node.whole_free.items())
    if request.gpu_milli:
        return any(free >= request.gpu_milli and (models is None or node.gpu_model[slot] in models)
                   for slot, free in enumerate(node.gpu_free))
    return True
