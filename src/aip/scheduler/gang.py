"""Gang placement: every replica of a job gets a place, or none does.

Replicas are placed one by one, biggest first (whole GPUs, then shares, accelerators, CPU,
memory), each by the placement policy on the free capacity left by the ones before it. If one
finds no room, everything placed so far is given back. Replicas may span nodes; keeping them
within one network domain is ``topology.place_job``'s job, on top of ``place_gang``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aip.scheduler.model import PendingJob, ReplicaPlacement, ReplicaRequest
from aip.scheduler.placement import PlacementPolicy, apply_choice
from aip.scheduler.resources import ClusterState

# (request, allowed GPU models) that found no room in this cycle; free capacity only shrinks
# within a cycle, so such a shape never fits later in the same cycle either.
Misfits = set[tuple[ReplicaRequest, frozenset[str] | None]]


@dataclass(frozen=True, slots=True)
class Replica:
    role: str
    index: int
    request: ReplicaRequest
    models: frozenset[str] | None  # allowed GPU models, None: any
    order: int  # position in the job's role order, to return placements in that order


@dataclass(frozen=True, slots=True)
class GangMiss:
    """The gang did not fit: ``replica`` found no room after ``placed`` others were placed.
    ``within_domain``: the gang had to stay within one RDMA domain (topology "required") and
    no domain held it; ``replica`` and ``placed`` then come from the domain that held most."""

    replica: Replica
    placed: int
    total: int
    within_domain: bool = False


def replicas_of(job: PendingJob, role_models: Sequence[frozenset[str] | None]) -> list[Replica]:
    """All replicas of ``job``, biggest first; ``role_models[i]`` applies to ``job.roles[i]``."""
    replicas: list[Replica] = []
    for role, models in zip(job.roles, role_models, strict=True):
        for index in range(role.count):
            replicas.append(Replica(role.role, index, role.request, models, len(replicas)))
    replicas.sort(key=lambda replica: size_key(replica.request))
    return replicas


def size_key(request: ReplicaRequest) -> tuple[int, int, int, int, int]:
    """Sort key putting the hardest replicas to place first."""
    return (-request.whole_gpus, -request.gpu_milli,
            -sum(count for _kind, count in request.accelerators),
            -request.cpu_milli, -request.memory_bytes)


def place_gang(state: ClusterState, replicas: Sequence[Replica], policy: PlacementPolicy,
               misfits: Misfits | None = None) -> list[ReplicaPlacement] | GangMiss:
    """Place all ``replicas`` (taking their capacity in ``state``) or none.

    On success the capacity stays taken; the caller gives it back with ``release_all`` when it
    only simulated. ``misfits`` (when given) is consulted and extended with replica shapes
    that found no room; pass None while simulating on a state with extra capacity.
    """
    placed: list[tuple[int, ReplicaPlacement]] = []
    for replica in replicas:
        shape = (replica.request, replica.models)
        choice = None
        if misfits is None or shape not in misfits:
            choice = policy.choose(state, replica.request, replica.models)
        if choice is None:
            if misfits is not None:
                misfits.add(shape)
            release_all(state, (placement for _order, placement in placed))
            return GangMiss(replica, len(placed), len(replicas))
        placement = apply_choice(state, replica.request, choice, replica.role, replica.index)
        placed.append((replica.order, placement))
    placed.sort(key=lambda item: item[0])
    return [placement for _order, placement in placed]


def release_all(state: ClusterState, placements: Iterable[ReplicaPlacement]) -> None:
    for placement in placements:
        state.release(placement)
