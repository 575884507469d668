"""``Workload``: the typical task shapes a cluster serves and how often each arrives.

Fragmentation only means something relative to the tasks that will come (Weng et al.,
ATC'23): free GPU capacity that no typical task can use is fragmented. Policies that look
ahead (FGD, AIP's default) take a ``Workload``; the trace simulator builds it from the trace,
the live platform from the jobs it has seen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from aip.scheduler.model import ReplicaRequest


@dataclass(frozen=True)
class Workload:
    """Task shapes with their share of arrivals (shares sum to 1)."""

    shapes: tuple[tuple[ReplicaRequest, float], ...]

    @classmethod
    def from_requests(cls, requests: Iterable[ReplicaRequest]) -> Workload:
        counts = Counter(requests)
        total = sum(counts.values())
        if not total:
            return cls(())
        return cls(tuple((request, count / total) for request, count in counts.most_common()))
