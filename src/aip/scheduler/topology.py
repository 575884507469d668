"""Network topology: keeping a gang within one RDMA domain.

Nodes name their network domain with the ``aip.io/rdma-domain`` label (``TOPOLOGY_LABEL``);
a job's ``topology`` says how much its gang cares:

* ``none``: replicas go anywhere (``gang.place_gang``);
* ``preferred``: within one domain when some domain has room, else anywhere, as ``none``;
* ``required``: within one domain or not at all: the job waits (``WaitReason.TOPOLOGY``), and
  preemption only frees room that lets the gang fit in one domain, since every what-if
  placement of the cycle and of the preemption search goes through ``place_job`` too.

A job with a single replica cannot span domains, so topology does not apply to it: it is
placed as ``none``, on any node. Nodes without the label (or with an empty value) belong to no
domain: only ``preferred`` fallbacks and jobs without topology use them. Unknown values of
``topology`` count as ``none``.

Domain order (``place_job``), a best fit across domains: domains whose free GPU, CPU or memory
in total is below the gang's are skipped; the others are tried from the least free GPU (then
CPU, memory, name) up, each with the job's own placement policy restricted to the domain's
nodes (``ClusterState.only_on``), and the first domain that holds the whole gang wins. Filling
the tightest domain that fits keeps the roomier ones for bigger gangs, as best fit does per
node; it costs one trial placement per domain tried, not one per domain.

    placements = place_job(state, replicas, policy, gang_topology(job), misfits)
    spans = domains_spanned(nodes, (p.node for p in placements))   # shown by `aip job get`
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from aip.scheduler.gang import GangMiss, Misfits, Replica, place_gang, release_all
from aip.scheduler.model import TOPOLOGY_LABEL, Node, PendingJob, ReplicaPlacement
from aip.scheduler.placement import PlacementPolicy
from aip.scheduler.resources import ClusterState

NONE = "none"
PREFERRED = "preferred"
REQUIRED = "required"


@dataclass(frozen=True, slots=True)
class Domains:
    """The RDMA domains of a state's schedulable nodes."""

    members: Mapping[str, frozenset[int]]  # domain -> node positions, domains sorted by name
    labelled: frozenset[int]  # positions of every node in some domain


def gang_topology(job: PendingJob) -> str:
    """The topology that applies to ``job``'s gang: its own, or "none" when it has one replica
    (or an unknown value)."""
    topology = job.topology
    if topology not in (PREFERRED, REQUIRED) or job.replica_count < 2:
        return NONE
    return topology


def node_domain(node: Node) -> str | None:
    """The node's RDMA domain; None when it has no (or an empty) ``TOPOLOGY_LABEL``."""
    return node.labels.get(TOPOLOGY_LABEL) or None


def domains_spanned(nodes: Sequence[Node], node_names: Iterable[str]) -> int:
    """How many RDMA domains the nodes called ``node_names`` cover: the distinct values of
    ``TOPOLOGY_LABEL`` among them. Nodes without the label, and names not in ``nodes``, are not
    counted, so replicas only on unlabelled nodes span 0 domains."""
    domain_of = {node.name: node_domain(node) for node in nodes}
    return len({domain for name in node_names if (domain := domain_of.get(name)) is not None})


def domains_of(state: ClusterState) -> Domains:
    """``state``'s domains, computed once per state (nodes never change within one)."""
    cached = state.caches.get(Domains)
    if isinstance(cached, Domains):
        return cached
    groups: dict[str, list[int]] = {}
    for node in state.nodes:
        domain = node_domain(node.node) if node.schedulable else None
        if domain is not None:
            groups.setdefault(domain, []).append(node.position)
    found = Domains({name: frozenset(groups[name]) for name in sorted(groups)},
                    frozenset(position for group in groups.values() for position in group))
    state.caches[Domains] = found
    return found


def place_job(state: ClusterState, replicas: Sequence[Replica], policy: PlacementPolicy,
              topology: str, misfits: Misfits | None = None) -> list[ReplicaPlacement] | GangMiss:
    """``gang.place_gang`` that honours ``topology`` (from ``gang_topology``): the whole gang in
    one domain for "preferred" and "required", falling back to any nodes for "preferred".
    Same contract as ``place_gang``: on success the capacity stays taken."""
    if topology not in (PREFERRED, REQUIRED) or len(replicas) < 2:
        return place_gang(state, replicas, policy, misfits)
    placed = _place_in_one_domain(state, replicas, policy, misfits)
    if isinstance(placed, GangMiss) and topology == PREFERRED:
        return place_gang(state, replicas, policy, misfits)
    return placed


def domain_room(state: ClusterState, replicas: Sequence[Replica],
                policy: PlacementPolicy) -> list[tuple[str, int]]:
    """Per domain (by name), how many of ``replicas`` the policy places there before one finds
    no room: the "room for k" of a wait reason. Leaves ``state`` unchanged."""
    rooms: list[tuple[str, int]] = []
    for name, positions in domains_of(state).members.items():
        with state.only_on(positions):
            result = place_gang(state, replicas, policy)
        if isinstance(result, GangMiss):
            rooms.append((name, result.placed))
        else:
            release_all(state, result)
            rooms.append((name, len(result)))
    return rooms


def _place_in_one_domain(state: ClusterState, replicas: Sequence[Replica],
                         policy: PlacementPolicy,
                         misfits: Misfits | None) -> list[ReplicaPlacement] | GangMiss:
    """The whole gang on the nodes of one domain, tried in best-fit order (module docstring)."""
    if misfits:  # a shape with no room on any node has none in a domain either
        for replica in replicas:
            if (replica.request, replica.models) in misfits:
                return GangMiss(replica, 0, len(replicas), within_domain=True)
    best: GangMiss | None = None
    for positions in _tightest_first(state, replicas):
        with state.only_on(positions):
            result = place_gang(state, replicas, policy)  # no misfits: they are cluster-wide
        if isinstance(result, GangMiss):
            if best is None or result.placed > best.placed:
                best = result
            continue
        if all(state.by_name[placement.node].position in positions for placement in result):
            return result
        release_all(state, result)  # a policy that ignores ``state.only``: never span
    if best is None:
        return GangMiss(replicas[0], 0, len(replicas), within_domain=True)
    return GangMiss(best.replica, best.placed, best.total, within_domain=True)


def _tightest_first(state: ClusterState, replicas: Sequence[Replica]) -> list[frozenset[int]]:
    """The domains whose free totals could hold the gang, least free GPU (CPU, memory) first."""
    gpu_needed = sum(replica.request.gpu_milli for replica in replicas)
    cpu_needed = sum(replica.request.cpu_milli for replica in replicas)
    memory_needed = sum(replica.request.memory_bytes for replica in replicas)
    nodes = state.nodes
    fitting: list[tuple[int, int, int, str, frozenset[int]]] = []
    for name, positions in domains_of(state).members.items():
        gpu = cpu = memory = 0
        for position in positions:
            node = nodes[position]
            gpu += max(0, node.gpu_free_total)
            cpu += max(0, node.cpu_free)
            memory += max(0, node.memory_free)
        if gpu >= gpu_needed and cpu >= cpu_needed and memory >= memory_needed:
            fitting.append((gpu, cpu, memory, name, positions))
    fitting.sort(key=lambda domain: domain[:4])
    return [domain[4] for domain in fitting]
