"""``Workload``: the typical task shapes a cluster serves and how often each arrives.

Fragmentation only means something relative to the tasks that will come (Weng et al.,
ATC'23): free GPU capacity that no typical task can use is fragmented. Policies that look
ahead (FGD, AIP's default) take a ``Workload``; the trace simulator builds it from the trace,
the live platform from the jobs it has seen (``from_snapshot``: what runs and waits now).

    workload = Workload.from_requests(task.request for task in tasks)
    classes = workload.typical(coverage=0.95, memory=False)   # FGD's "typical pods"
    make_policy("aip", workload=Workload.from_snapshot(snapshot))
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aip.scheduler.model import MILLI_PER_GPU, ReplicaRequest, Snapshot

GIB = 2**30
CORE = 1000


@dataclass(frozen=True)
class Workload:
    """Task shapes with their share of arrivals (shares sum to 1), most frequent first."""

    shapes: tuple[tuple[ReplicaRequest, float], ...]

    @classmethod
    def from_requests(cls, requests: Iterable[ReplicaRequest]) -> Workload:
        return cls.from_counts(Counter(requests))

    @classmethod
    def from_counts(cls, counts: Mapping[ReplicaRequest, float]) -> Workload:
        """Shapes weighted by ``counts`` (any non-negative weights)."""
        total = sum(counts.values())
        if total <= 0:
            return cls(())
        ordered = sorted(counts.items(), key=lambda item: (-item[1], _order(item[0])))
        return cls(tuple((request, count / total) for request, count in ordered if count > 0))

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> Workload:
        """The replicas that run and wait in ``snapshot``, one count per replica: what the live
        control plane should pass when it has nothing better (a window of recent jobs is
        better still: it keeps the shapes that already finished)."""
        counts: Counter[ReplicaRequest] = Counter()
        for allocation in snapshot.running:
            for placement in allocation.placements:
                milli = placement.gpu_milli_each * len(placement.gpus)
                counts[ReplicaRequest(placement.cpu_milli, placement.memory_bytes, milli)] += 1
        for job in snapshot.pending:
            for role in job.roles:
                counts[role.request] += role.count
        return cls.from_counts(counts) if counts else cls.default()

    @classmethod
    def default(cls) -> Workload:
        """A generic mix for a platform that has not seen its own jobs yet, shaped like Alibaba
        PAI's production trace (openb): about half the tasks take one whole GPU, a third take a
        share (often most of a GPU), one in seven needs no GPU, a few take 2, 4 or 8 GPUs.
        Per GPU: 8 cores and 32 GiB; shares scale that down."""
        mix = (  # (gpu milli, share of tasks)
            (0, 0.14), (250, 0.05), (500, 0.10), (750, 0.06), (800, 0.12),
            (1000, 0.45), (2000, 0.03), (4000, 0.03), (8000, 0.02),
        )
        shapes = []
        for milli, share in mix:
            gpus = milli / MILLI_PER_GPU
            cores = 4 if milli == 0 else max(2, round(8 * gpus))
            shapes.append((ReplicaRequest(cores * CORE, cores * 4 * GIB, milli), share))
        return cls(tuple(shapes))

    def typical(self, coverage: float = 0.95, *, memory: bool = True,
                limit: int | None = None) -> Workload:
        """The most frequent shapes that together make up ``coverage`` of arrivals (at most
        ``limit`` of them), renormalized; shapes that differ only in what is ignored merge
        first (memory when ``memory`` is False; accelerators always). This is FGD's "typical
        pods" (coverage 0.95, memory ignored, no limit)."""
        merged: dict[ReplicaRequest, float] = {}
        for request, share in self.shapes:
            key = dataclasses.replace(request, accelerators=(),
                                      memory_bytes=request.memory_bytes if memory else 0)
            merged[key] = merged.get(key, 0.0) + share
        ordered = sorted(merged.items(), key=lambda item: (-item[1], _order(item[0])))
        kept: dict[ReplicaRequest, float] = {}
        covered = 0.0
        for request, share in ordered:
            if covered >= coverage - 1e-12 or (limit is not None and len(kept) >= limit):
                break
            kept[request] = share
            covered += share
        return Workload.from_counts(kept)


def _order(request: ReplicaRequest) -> tuple[int, int, int, tuple[str, ...]]:
    """A stable tie-break between shapes of equal frequency."""
    return (request.cpu_milli, request.gpu_milli, request.memory_bytes,
            tuple(sorted(request.gpu_types)))
