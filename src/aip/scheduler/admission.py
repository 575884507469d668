"""Quota: what each queue uses, and whether a job's request fits its queue (with borrowing).

Kueue's rules on flat resource keys (``cpu``, ``memory``, ``gpu``, ``gpu/<MODEL>``, ``gpu/*``,
``acc/<kind>``):

* a key absent from a queue's ``nominal`` is unlimited for that queue;
* a queue without a cohort never exceeds its nominal quota;
* a queue in a cohort may go above nominal by at most its ``borrowing_limit[key]`` (if it sets
  one), and only while the cohort's usage of the key plus the request stays within the sum of
  nominal quota of the cohort's queues that define the key: it borrows idle quota, so a queue
  whose own quota was lent out gets it back by reclaiming (see ``preemption``);
* GPU usage is charged to ``gpu`` and to ``gpu/<MODEL>`` of the model actually used, or to
  ``gpu/*`` when the queue limits some models but not this one.

``QuotaBook`` is the mutable usage ledger of one cycle; ``gpu_models_allowed`` restricts a
job's roles to the GPU models whose quota can hold it, which is how quota steers placement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from aip.scheduler.model import Allocation, PendingJob, Queue, ReplicaPlacement, Snapshot

Amounts = dict[str, int]
Limit = Literal["nominal", "borrowing_limit", "cohort"]


@dataclass(frozen=True, slots=True)
class QuotaBlock:
    """One resource key of a queue that cannot hold a request."""

    queue: str
    key: str
    used: int
    nominal: int
    requested: int
    limit: Limit  # what stops it: own quota (no cohort), the borrowing limit, or the cohort
    cohort: str | None = None
    borrowing_limit: int | None = None
    cohort_used: int = 0
    cohort_nominal: int = 0
    held: int = 0  # part of ``used`` held this cycle for preempting jobs (of this queue)
    cohort_held: int = 0  # part of ``cohort_used`` held for preempting jobs


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """Which GPU models each role of a job may use under its queue's quota."""

    allowed: list[frozenset[str] | None]  # per role; None: any model
    blocks: list[QuotaBlock] = field(default_factory=list)  # some GPU role has no model left
    narrowed: bool = False  # quota ruled out some model a role could otherwise use


class QuotaBook:
    """Usage per queue and per cohort, changed as the cycle admits and simulates preemption."""

    def __init__(self, queues: Iterable[Queue]) -> None:
        self.queues: dict[str, Queue] = {}
        for queue in queues:
            self.queues.setdefault(queue.name, queue)
        self.usage: dict[str, Amounts] = {name: {} for name in self.queues}
        self.held: dict[str, Amounts] = {}
        self.cohort_held: dict[str, Amounts] = {}
        self.cohort_members: dict[str, list[Queue]] = {}
        self.cohort_nominal: dict[str, Amounts] = {}
        self.cohort_usage: dict[str, Amounts] = {}
        for queue in self.queues.values():
            if queue.cohort is None:
                continue
            self.cohort_members.setdefault(queue.cohort, []).append(queue)
            totals = self.cohort_nominal.setdefault(queue.cohort, {})
            for key, amount in queue.nominal.items():
                totals[key] = totals.get(key, 0) + amount
            self.cohort_usage.setdefault(queue.cohort, {})
        self._peers = {
            queue.name: tuple(sorted(q.name for q in self.cohort_members[queue.cohort]
                                     if q.name != queue.name))
            for queue in self.queues.values() if queue.cohort is not None}
        self._has_model_keys = {
            name: any(key.startswith("gpu/") for key in queue.nominal)
            for name, queue in self.queues.items()}

    @classmethod
    def from_running(cls, queues: Iterable[Queue], running: Iterable[Allocation]) -> QuotaBook:
        book = cls(queues)
        for allocation in running:
            book.charge(allocation.queue, book.allocation_usage(allocation))
        return book

    def peers(self, queue: str) -> tuple[str, ...]:
        """The other queues of ``queue``'s cohort, sorted."""
        return self._peers.get(queue, ())

    def has_model_keys(self, queue: str) -> bool:
        """The queue limits GPUs per model, so quota decides which models a job may use."""
        return self._has_model_keys.get(queue, False)

    # -- what a job or allocation uses -------------------------------------------------------

    def model_key(self, queue: str, model: str) -> str:
        """The quota key charged for GPUs of ``model`` used by ``queue``."""
        key = f"gpu/{model}"
        definition = self.queues.get(queue)
        if definition is None or key in definition.nominal or "gpu/*" not in definition.nominal:
            return key
        return "gpu/*"

    def placements_usage(self, queue: str, placements: Iterable[ReplicaPlacement]) -> Amounts:
        usage: Amounts = {}
        for placement in placements:
            _add(usage, "cpu", placement.cpu_milli)
            _add(usage, "memory", placement.memory_bytes)
            gpu = placement.gpu_milli_each * len(placement.gpus)
            if gpu:
                _add(usage, "gpu", gpu)
                if placement.gpu_model is not None:
                    _add(usage, self.model_key(queue, placement.gpu_model), gpu)
            for kind, devices in placement.accelerators.items():
                _add(usage, f"acc/{kind}", len(devices))
        return usage

    def allocation_usage(self, allocation: Allocation) -> Amounts:
        return self.placements_usage(allocation.queue, allocation.placements)

    # -- the ledger --------------------------------------------------------------------------

    def charge(self, queue: str, amounts: Mapping[str, int], sign: int = 1) -> None:
        usage = self.usage.setdefault(queue, {})
        for key, amount in amounts.items():
            usage[key] = usage.get(key, 0) + sign * amount
        definition = self.queues.get(queue)
        if definition is None or definition.cohort is None:
            return
        cohort = self.cohort_usage[definition.cohort]
        for key, amount in amounts.items():
            if key in definition.nominal:
                cohort[key] = cohort.get(key, 0) + sign * amount

    def hold(self, queue: str, amounts: Mapping[str, int], released: Mapping[str, int]) -> None:
        """Charge what ``amounts`` uses beyond ``released`` (both of ``queue``): quota that a
        preemptor will need once its victims stop is kept from lower-priority jobs."""
        extra = {key: amount - released.get(key, 0) for key, amount in amounts.items()
                 if amount > released.get(key, 0)}
        self.charge(queue, extra)
        held = self.held.setdefault(queue, {})
        definition = self.queues.get(queue)
        cohort = None
        if definition is not None and definition.cohort is not None:
            cohort = self.cohort_held.setdefault(definition.cohort, {})
        for key, amount in extra.items():
            held[key] = held.get(key, 0) + amount
            if cohort is not None and definition is not None and key in definition.nominal:
                cohort[key] = cohort.get(key, 0) + amount

    # -- checks ------------------------------------------------------------------------------

    def check(self, queue: Queue, request: Mapping[str, int]) -> QuotaBlock | None:
        """The first key of ``request`` that ``queue`` cannot hold now, or None."""
        for key, amount in request.items():
            block = self.check_key(queue, key, amount)
            if block is not None:
                return block
        return None

    def check_key(self, queue: Queue, key: str, amount: int) -> QuotaBlock | None:
        nominal = queue.nominal.get(key)
        if nominal is None or amount <= 0:
            return None
        used = self.usage[queue.name].get(key, 0)
        if queue.cohort is None:
            if used + amount <= nominal:
                return None
            return QuotaBlock(queue.name, key, used, nominal, amount, "nominal",
                              held=self._held(queue.name, key))
        over = used + amount - nominal
        limits = queue.borrowing_limit
        if over > 0 and limits is not None and key in limits and over > limits[key]:
            return QuotaBlock(queue.name, key, used, nominal, amount, "borrowing_limit",
                              queue.cohort, borrowing_limit=limits[key],
                              held=self._held(queue.name, key))
        cohort_used = self.cohort_usage[queue.cohort].get(key, 0)
        cohort_nominal = self.cohort_nominal[queue.cohort][key]
        if cohort_used + amount <= cohort_nominal:
            return None
        return QuotaBlock(queue.name, key, used, nominal, amount, "cohort", queue.cohort,
                          cohort_used=cohort_used, cohort_nominal=cohort_nominal,
                          held=self._held(queue.name, key),
                          cohort_held=self.cohort_held.get(queue.cohort, {}).get(key, 0))

    def _held(self, queue: str, key: str) -> int:
        return self.held.get(queue, {}).get(key, 0)

    def within_nominal(self, queue: Queue, request: Mapping[str, int]) -> bool:
        """``request`` fits the queue's own nominal quota (no borrowing needed)."""
        usage = self.usage[queue.name]
        return all(usage.get(key, 0) + amount <= queue.nominal[key]
                   for key, amount in request.items() if key in queue.nominal)

    def borrowing(self, queue: str) -> bool:
        """``queue`` uses more than its nominal quota of some key."""
        definition = self.queues.get(queue)
        if definition is None:
            return False
        usage = self.usage[queue]
        return any(usage.get(key, 0) > nominal for key, nominal in definition.nominal.items())

    def gpu_models_allowed(
        self, queue: Queue, job: PendingJob, cluster_models: Iterable[str],
    ) -> ModelChoice:
        """Per role, the GPU models whose quota can hold the job (None: any model), and the
        blocks when some GPU role has no such model.

        Conservative: each model key must hold all the GPUs of every role that might use a
        model charged to it, so any way the gang splits over models stays within quota."""
        roles = job.roles
        if not self._has_model_keys.get(queue.name, False) or not any(
                role.request.gpu_milli for role in roles):
            return ModelChoice([role.request.gpu_types or None for role in roles])
        present = frozenset(cluster_models)
        options = [(role.request.gpu_types or present) & present for role in roles]
        demand: dict[str, int] = {}
        for role, models in zip(roles, options, strict=True):
            milli = role.request.gpu_milli * role.count
            if milli:
                for key in {self.model_key(queue.name, model) for model in models}:
                    demand[key] = demand.get(key, 0) + milli
        blocks = {key: block for key, amount in demand.items()
                  if (block := self.check_key(queue, key, amount)) is not None}
        allowed: list[frozenset[str] | None] = []
        failed: list[QuotaBlock] = []
        for role, models in zip(roles, options, strict=True):
            if not role.request.gpu_milli:
                allowed.append(None)
                continue
            if not models:  # no node has these models: placement explains that, not quota
                allowed.append(role.request.gpu_types or None)
                continue
            keep = frozenset(m for m in models if self.model_key(queue.name, m) not in blocks)
            if not keep:
                failed.extend(blocks[key] for key in sorted(
                    {self.model_key(queue.name, m) for m in models}))
            allowed.append(keep)
        return ModelChoice(allowed, _unique(failed), narrowed=bool(blocks))


def request_amounts(job: PendingJob) -> Amounts:
    """The job's quota request on the keys that do not depend on where it lands."""
    amounts: Amounts = {}
    for role in job.roles:
        request = role.request
        _add(amounts, "cpu", request.cpu_milli * role.count)
        _add(amounts, "memory", request.memory_bytes * role.count)
        _add(amounts, "gpu", request.gpu_milli * role.count)
        for kind, count in request.accelerators:
            _add(amounts, f"acc/{kind}", count * role.count)
    return {key: amount for key, amount in amounts.items() if amount}


def queue_usage(snapshot: Snapshot) -> dict[str, Amounts]:
    """Per queue, every quota key it defines (0 when unused) plus every key its running
    allocations use, in the units of ``Queue.nominal``: what to show next to the quota."""
    book = QuotaBook.from_running(snapshot.queues, snapshot.running)
    out: dict[str, Amounts] = {}
    for name, usage in book.usage.items():
        keys = dict.fromkeys(book.queues[name].nominal, 0) if name in book.queues else {}
        keys.update({key: amount for key, amount in usage.items() if amount})
        out[name] = keys
    return out


def _add(amounts: Amounts, key: str, amount: int) -> None:
    amounts[key] = amounts.get(key, 0) + amount


def _unique(blocks: list[QuotaBlock]) -> list[QuotaBlock]:
    return list(dict.fromkeys(blocks))
