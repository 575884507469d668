"""The working state of one scheduling cycle, shared by its phases.

``CycleContext`` holds the free capacity (``ClusterState``), the quota ledger (``QuotaBook``),
the placement policy, the preemption candidates, what preemptors hold, and the memos that
keep a cycle over thousands of pending jobs fast: within one cycle free capacity, idle quota
and preemption candidates only shrink, so a gang shape that found no room (or a preemption
search that found no victims) stays that way until the cycle ends.

Preemption searches simulate on the same working state (``stop`` / ``resume`` victims) and
leave it as they found it. Per (priority, reclaimable queues) a *bound* state, the working
state with every candidate stopped, answers "could preemption help at all?" in one try.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from aip.scheduler.admission import Amounts, QuotaBlock, QuotaBook, request_amounts
from aip.scheduler.gang import GangMiss, Misfits, Replica, release_all, replicas_of
from aip.scheduler.model import (
    Allocation,
    PendingJob,
    Queue,
    ReplicaPlacement,
    ReplicaRequest,
    Snapshot,
    WaitReason,
)
from aip.scheduler.placement import PlacementPolicy
from aip.scheduler.resources import ClusterState, Holding, could_hold
from aip.scheduler.topology import REQUIRED, domains_of, gang_topology, place_job

GangKey = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Hold:
    """Capacity held this cycle for a preemptor until its victims stop."""

    job_id: str
    priority: int
    holdings: list[Holding]


@dataclass(slots=True)
class _Bound:
    state: ClusterState
    members: set[int]  # id() of the allocations stopped in ``state``
    useful: dict[GangKey, frozenset[str]] = field(default_factory=dict)


@dataclass(slots=True)
class Fit:
    """The job's quota check passed for these per-role GPU models."""

    job: PendingJob
    role_models: list[frozenset[str] | None]
    key: GangKey
    _replicas: list[Replica] | None = None

    @property
    def replicas(self) -> list[Replica]:
        if self._replicas is None:
            self._replicas = replicas_of(self.job, self.role_models)
        return self._replicas

    @property
    def topology(self) -> str:
        return gang_topology(self.job)


@dataclass(slots=True)
class CycleContext:
    state: ClusterState
    book: QuotaBook
    policy: PlacementPolicy
    pool: list[Allocation]  # preemptible running allocations, cheapest victim first
    misfits: Misfits = field(default_factory=set)
    gang_misses: dict[GangKey, GangMiss] = field(default_factory=dict)
    quota_waits: dict[tuple[QuotaBlock, ...], str] = field(default_factory=dict)
    capacity_waits: dict[tuple[GangKey, int], tuple[WaitReason, str]] = field(default_factory=dict)
    # preemption searches that failed: per (queue, priority, reclaims?) the smallest amount
    # per quota key that stayed blocked with every candidate stopped, and gang shapes for
    # which stopping every candidate freed too little capacity
    quota_misses: dict[tuple[str, int, bool], dict[str, int]] = field(default_factory=dict)
    capacity_misses: set[tuple[object, ...]] = field(default_factory=set)
    victims: set[int] = field(default_factory=set)  # id() of allocations preempted this cycle
    holds: list[Hold] = field(default_factory=list)
    pool_priorities: list[int] = field(default_factory=list)
    pool_by_queue: dict[str, list[Allocation]] = field(default_factory=dict)
    bounds: dict[tuple[int, tuple[str, ...]], _Bound] = field(default_factory=dict)
    _usage: dict[int, Amounts] = field(default_factory=dict)
    _holdings: dict[int, list[Holding]] = field(default_factory=dict)

    @classmethod
    def build(cls, snapshot: Snapshot, policy: PlacementPolicy) -> CycleContext:
        pool = sorted((a for a in snapshot.running if a.preemptible), key=victim_order)
        ctx = cls(ClusterState.from_snapshot(snapshot.nodes, snapshot.running),
                  QuotaBook.from_running(snapshot.queues, snapshot.running), policy, pool)
        ctx.pool_priorities = [allocation.priority for allocation in pool]
        for allocation in pool:
            ctx.pool_by_queue.setdefault(allocation.queue, []).append(allocation)
        return ctx

    # -- quota and placement, as the cycle and the preemption search both use them ----------

    def quota_fit(self, job: PendingJob, queue: Queue,
                  amounts: Amounts | None = None) -> Fit | list[QuotaBlock]:
        block = self.book.check(queue, request_amounts(job) if amounts is None else amounts)
        if block is not None:
            return [block]
        choice = self.book.gpu_models_allowed(queue, job, self.state.models)
        if choice.blocks:
            return choice.blocks
        role_models = choice.allowed
        key = (gang_topology(job), *((role.request, role.count, models)
                                     for role, models in zip(job.roles, role_models, strict=True)))
        return Fit(job, role_models, key)

    def quota_ok(self, job: PendingJob, queue: Queue, amounts: Amounts) -> bool:
        """The quota part of ``quota_fit`` only, cheaper."""
        if self.book.check(queue, amounts) is not None:
            return False
        return not self.book.gpu_models_allowed(queue, job, self.state.models).blocks

    def place(self, fit: Fit) -> list[ReplicaPlacement] | GangMiss:
        """Place the gang for real (capacity stays taken), using and feeding the memos."""
        miss = self.gang_misses.get(fit.key)
        if miss is not None:
            return miss
        result = place_job(self.state, fit.replicas, self.policy, fit.topology, self.misfits)
        if isinstance(result, GangMiss):
            self.gang_misses[fit.key] = result
        return result

    def try_fit(self, job: PendingJob, queue: Queue,
                amounts: Amounts | None = None) -> list[ReplicaPlacement] | None:
        """Would the job pass quota and fit right now? Leaves state and ledger unchanged; no
        memos, since a simulation may run on capacity that victims gave back."""
        fit = self.quota_fit(job, queue, amounts)
        if not isinstance(fit, Fit):
            return None
        result = place_job(self.state, fit.replicas, self.policy, fit.topology)
        if isinstance(result, GangMiss):
            return None
        release_all(self.state, result)
        return result

    def fits_without_holds(self, fit: Fit) -> list[Hold]:
        """The preemptors whose held capacity keeps the gang out: empty if it would not fit
        even without any holds."""
        for hold in self.holds:
            for holding in hold.holdings:
                self.state.give(holding)
        result = place_job(self.state, fit.replicas, self.policy, fit.topology)
        if not isinstance(result, GangMiss):
            release_all(self.state, result)
        for hold in self.holds:
            for holding in hold.holdings:
                self.state.take(holding)
        if isinstance(result, GangMiss):
            return []
        nodes = {self.state.by_name[placement.node].position for placement in result}
        return [hold for hold in self.holds
                if any(holding.node in nodes for holding in hold.holdings)]

    def useful_nodes(self, fit: Fit, priority: int, reclaimable: list[str],
                     stopped: set[int]) -> frozenset[str] | None:
        """If every preemption candidate stopped at once (the preemptible jobs below
        ``priority`` and those of the ``reclaimable`` queues, less this cycle's victims), would
        the gang fit? None if not; else the nodes that could then hold one of its replicas:
        only victims there can help (for topology "required", only nodes of some domain).
        ``stopped``: candidates the caller has stopped already."""
        bound = self._bound(priority, reclaimable, stopped)
        result = place_job(bound.state, fit.replicas, self.policy, fit.topology)
        if isinstance(result, GangMiss):
            return None
        release_all(bound.state, result)
        # the bound only shrinks, so nodes found useful earlier are a valid (wider) filter
        nodes = bound.useful.get(fit.key)
        if nodes is None:
            shapes = {(replica.request, replica.models) for replica in fit.replicas}
            labelled = domains_of(bound.state).labelled if fit.topology == REQUIRED else None
            nodes = bound.useful[fit.key] = frozenset(
                node.name for node in bound.state.nodes
                if (labelled is None or node.position in labelled)
                and any(could_hold(node, request, models) for request, models in shapes))
        return nodes

    def _bound(self, priority: int, reclaimable: list[str], stopped: set[int]) -> _Bound:
        """The working state with every candidate stopped, built at first use (a copy of the
        working state, where ``stopped`` candidates are stopped already) and then kept in step
        with admissions and holds."""
        key = (priority, tuple(reclaimable))
        bound = self.bounds.get(key)
        if bound is None:
            others = set(reclaimable)
            members = [a for a in self.pool if id(a) not in self.victims
                       and (a.priority < priority or a.queue in others)]
            state = self.state.copy()
            for allocation in members:
                if id(allocation) not in stopped:
                    for holding in self.holdings_of(allocation):
                        state.give(holding)
            bound = self.bounds[key] = _Bound(state, {id(a) for a in members})
        return bound

    # -- decisions that change the working state ---------------------------------------------

    def admit(self, queue: Queue, placements: list[ReplicaPlacement]) -> None:
        """Charge an admitted job (its capacity is already taken in ``state``)."""
        self.book.charge(queue.name, self.book.placements_usage(queue.name, placements))
        for bound in self.bounds.values():
            for placement in placements:
                bound.state.allocate(placement)

    def hold(self, hold: Hold, victims: Iterable[Allocation]) -> None:
        """Take ``hold``'s capacity and mark ``victims`` as chosen (no longer candidates)."""
        victims = list(victims)
        self.holds.append(hold)
        self.victims.update(id(victim) for victim in victims)
        for holding in hold.holdings:
            self.state.take(holding)
        for bound in self.bounds.values():
            for holding in hold.holdings:
                bound.state.take(holding)
            for victim in victims:
                if id(victim) in bound.members:
                    bound.members.discard(id(victim))
                    for holding in self.holdings_of(victim):
                        bound.state.take(holding)

    # -- victims -----------------------------------------------------------------------------

    def usage_of(self, allocation: Allocation) -> Amounts:
        usage = self._usage.get(id(allocation))
        if usage is None:
            usage = self._usage[id(allocation)] = self.book.allocation_usage(allocation)
        return usage

    def holdings_of(self, allocation: Allocation) -> list[Holding]:
        holdings = self._holdings.get(id(allocation))
        if holdings is None:
            holdings = self._holdings[id(allocation)] = [
                holding for placement in allocation.placements
                if (holding := self.state.holding(placement)) is not None]
        return holdings

    def stop(self, allocation: Allocation) -> None:
        """Simulate ``allocation`` stopping: give back its capacity and quota."""
        self.stop_quota(allocation)
        self.stop_capacity(allocation)

    def resume(self, allocation: Allocation) -> None:
        """Undo ``stop``."""
        self.resume_quota(allocation)
        self.resume_capacity(allocation)

    def stop_quota(self, allocation: Allocation) -> None:
        self.book.charge(allocation.queue, self.usage_of(allocation), -1)

    def resume_quota(self, allocation: Allocation) -> None:
        self.book.charge(allocation.queue, self.usage_of(allocation))

    def stop_capacity(self, allocation: Allocation) -> None:
        for holding in self.holdings_of(allocation):
            self.state.give(holding)

    def resume_capacity(self, allocation: Allocation) -> None:
        for holding in self.holdings_of(allocation):
            self.state.take(holding)


def victim_order(allocation: Allocation) -> tuple[int, int]:
    """Cheapest victim first: lowest priority, then the most recently admitted."""
    return (allocation.priority, -allocation.seq)


def shape_key(job: PendingJob) -> tuple[str, tuple[tuple[ReplicaRequest, int], ...]]:
    """What decides where a gang fits: its topology and its roles' shapes."""
    return gang_topology(job), tuple((role.request, role.count) for role in job.roles)
