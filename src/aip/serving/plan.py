"""What an endpoint's replicas should do next: a pure function of the endpoint's versions, the
replica count the autoscaler wants, and the replicas that exist.

    plan = plan_replicas(versions, wanted=3, replicas=[...])
    plan.start      # version labels to start one replica of, each
    plan.drain      # replicas to take out of the router (no new requests)
    plan.stop       # replicas to stop now (drained and idle, surplus, or not yet serving)

- The serving versions share ``wanted`` by weight, each at least one replica while the endpoint
  runs at all (a 90/10 canary of 1 wanted runs 1 + 1: the router splits the traffic by
  weight, not by replica count). A shadow version runs one replica.
- A version that left the spec (a rolling update) keeps serving until the new versions have
  ready replicas: each new ready replica lets one old replica drain, so capacity never dips
  and no request fails.
- Surplus replicas that are not serving yet stop first; serving ones drain (least busy
  first) and stop once nothing is outstanding on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

ReplicaState = Literal["starting", "ready", "draining"]


@dataclass(frozen=True)
class VersionPlan:
    label: str  # e.g. "3"
    weight: float = 100.0
    shadow: bool = False


@dataclass(frozen=True)
class ReplicaView:
    id: str
    version: str
    state: ReplicaState
    outstanding: int = 0


@dataclass(frozen=True)
class Plan:
    wanted: dict[str, int]  # replicas wanted by version label
    start: list[str] = field(default_factory=list)
    drain: list[str] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)


def share(versions: Sequence[VersionPlan], wanted: int) -> dict[str, int]:
    """Replicas per version for ``wanted`` serving replicas in all."""
    if wanted <= 0:
        return {v.label: 0 for v in versions}
    serving = [v for v in versions if not v.shadow and v.weight > 0]
    total = sum(v.weight for v in serving)
    counts = {v.label: 0 for v in versions}
    for version in serving:
        counts[version.label] = max(1, round(wanted * version.weight / total))
    for version in versions:
        if version.shadow:
            counts[version.label] = 1
    return counts


def plan_replicas(versions: Sequence[VersionPlan], wanted: int,
                  replicas: Sequence[ReplicaView]) -> Plan:
    counts = share(versions, wanted)
    current = set(counts)
    start: list[str] = []
    drain: list[str] = []
    stop: list[str] = []
    for replica in replicas:  # drained and idle: done
        if replica.state == "draining" and replica.outstanding == 0:
            stop.append(replica.id)
    for version in versions:
        mine = [r for r in replicas if r.version == version.label and r.state != "draining"]
        missing = counts[version.label] - len(mine)
        if missing > 0:
            start += [version.label] * missing
        elif missing < 0:
            surplus = sorted(mine, key=lambda r: (r.state == "ready", r.outstanding))[:-missing]
            stop += [r.id for r in surplus if r.state == "starting"]
            drain += [r.id for r in surplus if r.state == "ready"]
    ready_new = sum(1 for r in replicas if r.version in current and r.state == "ready")
    wanted_new = sum(counts[v.label] for v in versions if not v.shadow)
    old = [r for r in replicas if r.version not in current and r.state != "draining"]
    keep = max(0, wanted_new - ready_new)  # old replicas still needed for capacity
    old_ready = sorted((r for r in old if r.state == "ready"), key=lambda r: r.outstanding)
    stop += [r.id for r in old if r.state == "starting"]
    drain += [r.id for r in old_ready[:max(0, len(old_ready) - keep)]]
    return Plan(wanted=counts, start=start, drain=drain, stop=stop)
