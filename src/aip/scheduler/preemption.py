"""Preemption: which running jobs to stop so that a waiting job can run.

Victims are preemptible running allocations, cheapest first (lowest priority, then the most
recently admitted, which loses the least work), drawn from:

1. the job's own queue, strictly lower priority;
2. any queue, strictly lower priority, for capacity on nodes;
3. reclaim: when the job fits its queue's *nominal* quota, jobs (any priority) of the other
   queues of its cohort, while those queues still borrow.

The search simulates on the cycle's working state, in phases:

* *quota*: stop candidates that return quota (1 and 3) until the job's quota check passes;
* *bound*: would the gang fit with every candidate stopped at once? If not, give up;
* *placement*: stop further candidates that hold capacity on nodes where one of the job's
  replicas could then go (or, when quota narrows its GPU models, that return quota), checking
  the gang at 1, 2, 4, 8… stopped victims, until it fits;
* *minimize*: the shortest prefix of the stopped victims that still fits (binary search),
  then a reverse pass restoring, latest first and in halving chunks, every victim the job
  turns out not to need.

Everything is restored before returning; ``reserve`` then holds what the plan needs.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from heapq import merge

from aip.scheduler.admission import Amounts
from aip.scheduler.context import CycleContext, Fit, Hold, shape_key, victim_order
from aip.scheduler.model import Allocation, PendingJob, Queue, ReplicaPlacement


@dataclass(frozen=True, slots=True)
class PreemptionPlan:
    """Stop ``victims``, then the job goes to ``placements``. No victims: the job fits now
    (the greedy gang placement found room the cycle's memo had ruled out)."""

    victims: tuple[Allocation, ...]
    placements: tuple[ReplicaPlacement, ...]


def find_preemption(ctx: CycleContext, job: PendingJob, queue: Queue,
                    amounts: Amounts) -> PreemptionPlan | None:
    """Victims whose stopping lets ``job`` fit, and where it would go; None if none do.

    Failures are remembered for the rest of the cycle (victims and free capacity only get
    scarcer): a later job of the same queue and priority asking at least as much of a quota
    key that stayed blocked, or with the same gang shape, is answered without a search."""
    search = _Search(ctx, job, queue, amounts)
    if not search.has_candidates():
        return None
    quota_key = (queue.name, job.priority, bool(search.reclaimable))
    misses = ctx.quota_misses.get(quota_key, {})
    if any(search.amounts.get(key, 0) >= least for key, least in misses.items()):
        return None
    capacity_key = (job.priority, tuple(search.reclaimable), shape_key(job),
                    queue.name if ctx.book.has_model_keys(queue.name) else None)
    if capacity_key in ctx.capacity_misses:
        return None
    try:
        if not search.free_quota():
            block = ctx.book.check(queue, search.amounts)
            if block is not None:
                least = ctx.quota_misses.setdefault(quota_key, {})
                least[block.key] = min(least.get(block.key, block.requested), block.requested)
            return None
        if not search.capacity_bound() or not search.free_capacity():
            ctx.capacity_misses.add(capacity_key)
            return None
        return search.minimize()
    finally:
        search.restore_all()


class _Search:
    def __init__(self, ctx: CycleContext, job: PendingJob, queue: Queue,
                 amounts: Amounts) -> None:
        self.ctx = ctx
        self.job = job
        self.queue = queue
        self.amounts = amounts
        self.stopped: list[Allocation] = []  # quota and capacity given back
        self.stopped_ids: set[int] = set()
        book = ctx.book
        peers = book.peers(queue.name)
        reclaim = bool(peers) and book.within_nominal(queue, amounts)
        self.reclaimable = list(peers) if reclaim else []
        self.lower = bisect_left(ctx.pool_priorities, job.priority)  # pool[:lower]: lower prio
        self.useful_nodes: frozenset[str] = frozenset()  # where stopping victims can help

    def has_candidates(self) -> bool:
        return self.lower > 0 or any(self.ctx.pool_by_queue.get(name)
                                     for name in self.reclaimable)

    def capacity_bound(self) -> bool:
        """Would the gang fit if every candidate stopped at once? Also notes the nodes where
        stopping victims can help. GPU models are not limited by quota here: more of them may
        be allowed once victims give their quota back."""
        any_model = Fit(self.job, [role.request.gpu_types or None for role in self.job.roles],
                        ("any-model", shape_key(self.job)))
        nodes = self.ctx.useful_nodes(any_model, self.job.priority, self.reclaimable,
                                      self.stopped_ids)
        self.useful_nodes = nodes or frozenset()
        return nodes is not None

    # -- phases --------------------------------------------------------------------------

    def free_quota(self) -> bool:
        """Give back the quota of same-queue and reclaimable victims until the job's quota
        check passes (checking at 1, 2, 4… victims), then their capacity too."""
        ctx, job, queue = self.ctx, self.job, self.queue
        if ctx.quota_ok(job, queue, self.amounts):
            return True
        check_at, count = 1, 0
        ok = False
        for victim in self._quota_candidates():
            if not self._returns_quota(victim):
                continue  # its queue no longer borrows: nothing left to reclaim from it
            ctx.stop_quota(victim)
            self.stopped.append(victim)
            self.stopped_ids.add(id(victim))
            count += 1
            if count == check_at:
                check_at *= 2
                if ctx.quota_ok(job, queue, self.amounts):
                    ok = True
                    break
        else:
            ok = count > 0 and ctx.quota_ok(job, queue, self.amounts)
        for victim in self.stopped:
            ctx.stop_capacity(victim)
        return ok

    def free_capacity(self) -> bool:
        """Stop candidates holding capacity the job could use until the gang fits."""
        ctx = self.ctx
        fit = ctx.quota_fit(self.job, self.queue, self.amounts)
        if not isinstance(fit, Fit):
            return False
        if self.stopped and ctx.try_fit(self.job, self.queue, self.amounts) is not None:
            return True  # the quota victims free enough capacity too
        nodes = self.useful_nodes
        # quota that rules out GPU models may rule out the ones with room: then victims that
        # give such quota back help wherever they run
        narrowed = ctx.book.gpu_models_allowed(self.queue, self.job, ctx.state.models).narrowed
        check_at, count = 1, 0
        checked = True
        for victim in self._capacity_candidates():
            if id(victim) in self.stopped_ids:
                continue
            if not any(placement.node in nodes for placement in victim.placements) and not (
                    narrowed and self._returns_quota(victim)):
                continue
            if victim.priority >= self.job.priority and not ctx.book.borrowing(victim.queue):
                continue  # a reclaim victim whose queue no longer borrows
            self._stop(victim)
            count += 1
            checked = False
            if count == check_at:
                check_at *= 2
                checked = True
                if ctx.try_fit(self.job, self.queue, self.amounts) is not None:
                    return True
        return not checked and ctx.try_fit(self.job, self.queue, self.amounts) is not None

    def minimize(self) -> PreemptionPlan | None:
        """The fewest victims that still let the job fit: first the shortest prefix of the
        stopped victims (binary search), then a reverse pass restoring, latest first, each
        victim the job turns out not to need."""
        ctx = self.ctx
        victims = self.stopped
        low, high = 0, len(victims)  # the prefix of length ``high`` fits
        stopped = high
        while low < high:
            middle = (low + high) // 2
            stopped = self._stop_prefix(middle, stopped)
            if ctx.try_fit(self.job, self.queue, self.amounts) is not None:
                high = middle
            else:
                low = middle + 1
        stopped = self._stop_prefix(high, stopped)
        kept = victims[:high]
        # reverse pass over all but the last (needed, or the prefix would be shorter), in
        # halving chunks so that long runs of unneeded victims go back in one try
        size = max(1, (len(kept) - 1) // 2)
        while kept:
            end = len(kept) - 1
            while end > 0:
                start = max(0, end - size)
                chunk = kept[start:end]
                for victim in reversed(chunk):
                    ctx.resume(victim)
                if ctx.try_fit(self.job, self.queue, self.amounts) is not None:
                    del kept[start:end]
                else:
                    for victim in chunk:
                        ctx.stop(victim)
                end = start
            if size == 1:
                break
            size = max(1, size // 2)
        self.stopped = kept
        self.stopped_ids = {id(victim) for victim in kept}
        placements = ctx.try_fit(self.job, self.queue, self.amounts)
        if placements is None:
            return None
        return PreemptionPlan(tuple(kept), tuple(placements))

    def _stop_prefix(self, length: int, stopped: int) -> int:
        """Make exactly ``self.stopped[:length]`` stopped, given ``[:stopped]`` are now."""
        for victim in reversed(self.stopped[length:stopped]):
            self.ctx.resume(victim)
        for victim in self.stopped[stopped:length]:
            self.ctx.stop(victim)
        return length

    def restore_all(self) -> None:
        for victim in reversed(self.stopped):
            self.ctx.resume(victim)
        self.stopped = []
        self.stopped_ids.clear()

    # -- helpers -------------------------------------------------------------------------

    def _stop(self, victim: Allocation) -> None:
        self.ctx.stop(victim)
        self.stopped.append(victim)
        self.stopped_ids.add(id(victim))

    def _returns_quota(self, victim: Allocation) -> bool:
        """Stopping ``victim`` gives back quota the job may use: it is of the job's queue and
        of lower priority, or of a queue of the cohort that still borrows."""
        if victim.queue == self.queue.name:
            return victim.priority < self.job.priority
        return victim.queue in self.reclaimable and self.ctx.book.borrowing(victim.queue)

    def _quota_candidates(self) -> Iterator[Allocation]:
        """Same-queue lower-priority and reclaimable allocations, cheapest first."""
        taken = self.ctx.victims
        same = takewhile_lower(self.ctx.pool_by_queue.get(self.queue.name, []), self.job.priority)
        others = [self.ctx.pool_by_queue.get(name, []) for name in self.reclaimable]
        for victim in merge(same, *others, key=victim_order):
            if id(victim) not in taken:
                yield victim

    def _capacity_candidates(self) -> Iterator[Allocation]:
        """Lower-priority allocations of any queue, then higher ones that reclaim may take."""
        taken = self.ctx.victims
        pool = self.ctx.pool
        for victim in pool[:self.lower]:
            if id(victim) not in taken:
                yield victim
        priority = self.job.priority
        others = [(v for v in self.ctx.pool_by_queue.get(name, []) if v.priority >= priority)
                  for name in self.reclaimable]
        for victim in merge(*others, key=victim_order):
            if id(victim) not in taken:
                yield victim


def takewhile_lower(victims: Iterable[Allocation], priority: int) -> Iterator[Allocation]:
    for victim in victims:
        if victim.priority >= priority:
            return
        yield victim


def reserve(ctx: CycleContext, job: PendingJob, queue: Queue, plan: PreemptionPlan) -> None:
    """Keep what ``plan`` needs for ``job`` from the rest of this cycle.

    The victims still run, so their capacity and quota stay taken; on top of that, the part of
    the job's future placement that is free now is held, and so is the quota it will charge
    beyond what its own queue's victims return. Lower-priority jobs can thus not slip into
    what the preemptor waits for, and the victims cannot be chosen again."""
    state = ctx.state
    placements = [*plan.placements, *(p for victim in plan.victims for p in victim.placements)]
    touched = {state.by_name[p.node].position for p in placements if p.node in state.by_name}
    before = state.capture(touched)
    for victim in plan.victims:
        ctx.stop(victim)
    for placement in plan.placements:
        state.allocate(placement)
    after = state.capture(touched)
    for placement in plan.placements:
        state.release(placement)
    for victim in plan.victims:
        ctx.resume(victim)
    holdings = [holding for position in sorted(touched)
                if (holding := before[position].excess_over(position, after[position]))]
    returned: dict[str, int] = {}
    for victim in plan.victims:
        if victim.queue == queue.name:
            for key, amount in ctx.usage_of(victim).items():
                returned[key] = returned.get(key, 0) + amount
    ctx.book.hold(queue.name, ctx.book.placements_usage(queue.name, plan.placements), returned)
    ctx.hold(Hold(job.job_id, job.priority, holdings), plan.victims)
