"""Where one replica goes: the placement policy interface and the default best-fit policy.

A policy answers one question: given the cluster's free capacity now, which node (and which
GPUs on it) should this replica take? It never changes the state; ``gang.place_gang`` applies
its choice, so one policy serves the live control plane and the trace simulator alike.

* ``PlacementPolicy`` is the whole interface: ``choose(state, request, models)``.
* ``ScoredPolicy`` turns any ``score(state, request, choice)`` into a policy by taking the
  lowest score over ``candidates`` (every feasible choice); random, best-fit, GPU packing,
  dot-product or FGD (Weng et al., ATC'23) policies only need to write ``score``.
* ``BestFitPolicy`` (the default) reaches the same answer as scoring every candidate with
  ``best_fit_score``, but walks the free-capacity indexes from the tightest fit upwards and
  stops early, so it does not look at every node.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from aip.scheduler.model import ReplicaPlacement, ReplicaRequest
from aip.scheduler.resources import FULL, ClusterState, Holding, NodeState

# A free GPU counts as stranded when its node keeps less than this much CPU or memory per free
# GPU: nobody can use it, so placing there wastes a GPU.
STRANDING_CPU_MILLI_PER_GPU = 1000
STRANDING_MEMORY_BYTES_PER_GPU = 2**30

Score = tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Choice:
    """One feasible spot for a replica: a node, and for GPU requests the model and slots."""

    node: NodeState
    gpu_model: str | None = None
    gpu_slots: tuple[int, ...] = ()
    gpu_milli_each: int = 0


class PlacementPolicy(Protocol):
    """Chooses a node (and devices) for one replica.

    Contract: ``choose`` is pure with respect to ``state`` (it must not change it), returns a
    choice that fits the free capacity right now, or None when nothing fits. ``models`` is the
    set of GPU models the replica may use (None: any); it already includes the quota's limits.
    When ``state.only`` is set, the choice must be one of those node positions (enumerating
    through ``candidates``, ``NodeTable.candidates`` or the state's index readers does that).
    It runs once per replica, often thousands of times per cycle: keep it well under 1 ms.
    """

    name: str

    def choose(self, state: ClusterState, request: ReplicaRequest,
               models: frozenset[str] | None) -> Choice | None: ...


def candidates(state: ClusterState, request: ReplicaRequest,
               models: frozenset[str] | None) -> Iterator[Choice]:
    """Every feasible choice: one per node for CPU-only requests, one per (node, model) for
    whole GPUs (the lowest free slots), one per distinct (model, free level) GPU on a node for
    shares (GPUs with equal free share are interchangeable). Only nodes in ``state.only``
    when it is set."""
    milli = request.gpu_milli
    whole = request.whole_gpus
    only = state.only
    for node in state.nodes if only is None else [state.nodes[p] for p in sorted(only)]:
        if not node.fits_host(request):
            continue
        if milli == 0:
            yield Choice(node)
        elif whole:
            for model, count in sorted(node.whole_free.items()):
                if count >= whole and (models is None or model in models):
                    yield Choice(node, model, node.free_whole_slots(model, whole), FULL)
        else:
            seen: set[tuple[str, int]] = set()
            for slot, free in enumerate(node.gpu_free):
                model = node.gpu_model[slot]
                if free >= milli and (models is None or model in models) \
                        and (model, free) not in seen:
                    seen.add((model, free))
                    yield Choice(node, model, (slot,), milli)


class ScoredPolicy(ABC):
    """Base for policies defined by a score: the candidate with the lowest score wins, ties go
    to the first candidate (lowest node position)."""

    name = "scored"

    @abstractmethod
    def score(self, state: ClusterState, request: ReplicaRequest, choice: Choice) -> Score:
        """Lower is better. Pure; called once per feasible candidate."""

    def choose(self, state: ClusterState, request: ReplicaRequest,
               models: frozenset[str] | None) -> Choice | None:
        best: Choice | None = None
        best_score: Score = ()
        for choice in candidates(state, request, models):
            score = self.score(state, request, choice)
            if best is None or score < best_score:
                best, best_score = choice, score
        return best


def stranded_gpus(node: NodeState, request: ReplicaRequest, choice: Choice) -> int:
    """How many of the node's free GPUs would be left without the CPU or memory to use them
    after placing ``request`` there."""
    return _stranded(node.gpu_free_total - choice.gpu_milli_each * len(choice.gpu_slots),
                     node.cpu_free - request.cpu_milli, node.memory_free - request.memory_bytes)


def best_fit_score(state: ClusterState, request: ReplicaRequest, choice: Choice) -> Score:
    """The default policy's preference, lowest first:

    1. strand as few GPUs as possible (a GPU left without CPU or memory is lost);
    2. whole GPUs: leave the fewest free GPUs of that model on the node (packing keeps big
       holes for big jobs); shares: the GPU whose free share is smallest but fits, then the
       node with the fewest fully free GPUs; CPU-only: nodes with the least free GPU capacity;
    3. the least CPU, then memory, left over; then the lowest node position and slot.
    """
    node = choice.node
    stranded = stranded_gpus(node, request, choice)
    cpu_after = node.cpu_free - request.cpu_milli
    memory_after = node.memory_free - request.memory_bytes
    if choice.gpu_model is None:
        return (stranded, node.gpu_free_total, 0, cpu_after, memory_after, node.position, 0)
    if choice.gpu_milli_each == FULL:
        left = node.whole_free[choice.gpu_model] - len(choice.gpu_slots)
        return (stranded, left, 0, cpu_after, memory_after, node.position, 0)
    slot = choice.gpu_slots[0]
    left = node.gpu_free[slot] - choice.gpu_milli_each
    whole = node.whole_free.get(choice.gpu_model, 0)
    return (stranded, left, whole, cpu_after, memory_after, node.position, slot)


class BestFitPolicy:
    """Default policy: the candidate with the lowest ``best_fit_score``, found through the
    free-capacity indexes instead of scoring every candidate: GPU requests walk their levels
    from the tightest fit up (whole GPUs: nodes by free GPUs of the model; shares: partly used
    GPUs by free share, then fully free GPUs by their node's free GPUs) and stop after the
    first level holding a choice that strands no GPU; CPU-only requests look at nodes without
    free GPU capacity first. The scores are inlined; the property tests check the answer is
    the same as ``ScoredPolicy`` with ``best_fit_score``. The index readers honour
    ``state.only``."""

    name = "best-fit"

    def choose(self, state: ClusterState, request: ReplicaRequest,
               models: frozenset[str] | None) -> Choice | None:
        if request.gpu_milli == 0:
            return self._cpu_only(state, request)
        best: tuple[Score, Choice] | None = None
        for model in state.allowed_models(models):
            found = (self._whole(state, request, model) if request.whole_gpus
                     else self._share(state, request, model))
            if found is not None and (best is None or found[0] < best[0]):
                best = found
        return None if best is None else best[1]

    def _cpu_only(self, state: ClusterState, request: ReplicaRequest) -> Choice | None:
        nodes, only = state.nodes, state.only
        quiet = state.no_free_gpu if only is None else [
            p for p in state.no_free_gpu if p in only]
        found = self._cpu_scan(state, request, (nodes[p] for p in quiet))
        if found is None:  # nodes with free GPU capacity only score worse
            found = self._cpu_scan(state, request,
                                   nodes if only is None else (nodes[p] for p in only))
        return found

    @staticmethod
    def _cpu_scan(state: ClusterState, request: ReplicaRequest,
                  nodes: Iterable[NodeState]) -> Choice | None:
        best_key: Score = ()
        best: NodeState | None = None
        for node in nodes:
            room = _room_after(node, request) if node.schedulable else None
            if room is None:
                continue
            cpu_after, memory_after = room
            key = (_stranded(node.gpu_free_total, cpu_after, memory_after),
                   node.gpu_free_total, 0, cpu_after, memory_after, node.position, 0)
            if best is None or key < best_key:
                best, best_key = node, key
        return None if best is None else Choice(best)

    @staticmethod
    def _whole(state: ClusterState, request: ReplicaRequest,
               model: str) -> tuple[Score, Choice] | None:
        count = request.whole_gpus
        taken = count * FULL
        nodes = state.nodes
        best_key: Score = ()
        best: NodeState | None = None
        for free, positions in state.nodes_with_whole(model, count):
            for position in positions:
                node = nodes[position]
                room = _room_after(node, request)
                if room is None:
                    continue
                cpu_after, memory_after = room
                key = (_stranded(node.gpu_free_total - taken, cpu_after, memory_after),
                       free - count, 0, cpu_after, memory_after, position, 0)
                if best is None or key < best_key:
                    best, best_key = node, key
            if best is not None and best_key[0] == 0:
                break  # later buckets leave more GPUs free: they cannot score lower
        if best is None:
            return None
        return best_key, Choice(best, model, best.free_whole_slots(model, count), FULL)

    @staticmethod
    def _share(state: ClusterState, request: ReplicaRequest,
               model: str) -> tuple[Score, Choice] | None:
        milli = request.gpu_milli
        nodes = state.nodes
        best_key: Score = ()
        best: tuple[NodeState, int] | None = None
        for level, gpus in state.shares_at_least(model, milli):
            if level == FULL:
                break  # fully free GPUs: walked below by their node's free GPU count
            for position, slot in gpus:
                node = nodes[position]
                room = _room_after(node, request)
                if room is None:
                    continue
                cpu_after, memory_after = room
                key = (_stranded(node.gpu_free_total - milli, cpu_after, memory_after),
                       level - milli, node.whole_free.get(model, 0), cpu_after, memory_after,
                       position, slot)
                if best is None or key < best_key:
                    best, best_key = (node, slot), key
            if best is not None and best_key[0] == 0:
                return best_key, Choice(best[0], model, (best[1],), milli)
        for free, positions in state.nodes_with_whole(model, 1):
            for position in positions:
                node = nodes[position]
                room = _room_after(node, request)
                if room is None:
                    continue
                cpu_after, memory_after = room
                key = (_stranded(node.gpu_free_total - milli, cpu_after, memory_after),
                       FULL - milli, free, cpu_after, memory_after, position, -1)
                if best is None or key < best_key:
                    best, best_key = (node, -1), key
            if best is not None and best_key[0] == 0:
                break  # later buckets hold nodes with more free GPUs: they score higher
        if best is None:
            return None
        node, slot = best
        if slot < 0:  # a fully free GPU: the lowest of its node, as the score's tie-break says
            slot = node.free_whole_slots(model, 1)[0]
            best_key = (*best_key[:-1], slot)
        return best_key, Choice(node, model, (slot,), milli)


def _room_after(node: NodeState, request: ReplicaRequest) -> tuple[int, int] | None:
    """Free CPU and memory left on ``node`` after ``request``; None when its host resources
    (CPU, memory, accelerators) do not fit."""
    cpu_after = node.cpu_free - request.cpu_milli
    memory_after = node.memory_free - request.memory_bytes
    if cpu_after < 0 or memory_after < 0 or (
            request.accelerators and not node.fits_host(request)):
        return None
    return cpu_after, memory_after


def _stranded(gpu_after: int, cpu_after: int, memory_after: int) -> int:
    """``stranded_gpus`` from the node's free values after placing."""
    free_gpus = gpu_after // FULL
    if free_gpus <= 0:
        return 0
    usable = min(free_gpus, cpu_after // STRANDING_CPU_MILLI_PER_GPU,
                 memory_after // STRANDING_MEMORY_BYTES_PER_GPU)
    return free_gpus - max(0, usable)


def apply_choice(state: ClusterState, request: ReplicaRequest, choice: Choice,
                 role: str, index: int) -> ReplicaPlacement:
    """Take ``choice`` for one replica and return its placement (devices by their ids)."""
    node = choice.node
    accelerators = {kind: node.free_accelerator_ids(kind, count)
                    for kind, count in request.accelerators}
    state.take(Holding(
        node.position, request.cpu_milli, request.memory_bytes,
        tuple((slot, choice.gpu_milli_each) for slot in choice.gpu_slots),
        tuple((kind, device) for kind, devices in accelerators.items() for device in devices)))
    return ReplicaPlacement(
        role=role, index=index, node=node.name, cpu_milli=request.cpu_milli,
        memory_bytes=request.memory_bytes,
        gpus=tuple(node.gpu_index[slot] for slot in choice.gpu_slots),
        gpu_milli_each=choice.gpu_milli_each, gpu_model=choice.gpu_model,
        accelerators=accelerators)
