"""The endpoint autoscaler: a pure function from what was observed to how many replicas an
endpoint should have. No clock, no I/O: the caller passes the time and keeps the state.

    state = ScaleState()
    decision = decide(policy, state, Observation(time=now, replicas=2, in_flight=37, qps=410))
    state = decision.state        # keep it for the next call
    decision.replicas             # what to run now; decision.reason says why

Rules (Knative's KPA and Ray Serve's autoscaler work the same way):
- **Load** is in-flight requests (``target_in_flight`` per replica) or requests per second
  (``target_qps`` per replica); the wanted count is ``ceil(load / target)``, within
  ``[min_replicas, max_replicas]``.
- **Scale out at once**: a higher wanted count applies on the first observation that asks for
  it, so a surge gets replicas within one autoscaler period.
- **Scale in after a cooldown**: the count only drops to the highest wanted count seen during
  the last ``scale_in_cooldown`` seconds, so a short lull does not shed replicas that the next
  burst needs.
- **Scale to zero** (``min_replicas: 0``): after ``scale_to_zero_after`` seconds with no
  request at all, the endpoint goes to 0 replicas; a request that arrives then (it waits in
  the router, counted as in flight) brings it back to at least 1 at once: a cold start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class AutoscalePolicy:
    min_replicas: int = 1
    max_replicas: int = 1
    target_in_flight: float | None = 4.0  # requests in flight per replica
    target_qps: float | None = None  # requests per second per replica (instead)
    scale_in_cooldown: float = 30.0  # seconds a lower count must hold before scaling in
    scale_to_zero_after: float = 300.0  # idle seconds before 0 replicas (min_replicas 0)

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} and max_replicas "
                             f"{self.max_replicas}: need 0 <= min <= max")
        if self.max_replicas < 1:
            raise ValueError("max_replicas must be at least 1")
        targets = [t for t in (self.target_in_flight, self.target_qps) if t is not None]
        if len(targets) != 1 or targets[0] <= 0:
            raise ValueError("give exactly one of target_in_flight and target_qps, above 0")
        if self.scale_in_cooldown < 0 or self.scale_to_zero_after < 0:
            raise ValueError("scale_in_cooldown and scale_to_zero_after are seconds >= 0")


@dataclass(frozen=True)
class Observation:
    time: float  # seconds, any monotonic origin
    replicas: int  # replicas running or starting now
    in_flight: float  # requests in flight over all replicas, plus those waiting in the router
    qps: float = 0.0  # requests per second recently


@dataclass(frozen=True)
class ScaleState:
    # (time, wanted) of recent observations, newest last, within the cooldown window
    recent: tuple[tuple[float, int], ...] = ()
    last_request_at: float | None = None
    replicas: int | None = None  # what the last decision asked for


@dataclass(frozen=True)
class Decision:
    replicas: int
    reason: str
    state: ScaleState = field(repr=False)


def decide(policy: AutoscalePolicy, state: ScaleState, observed: Observation) -> Decision:
    """How many replicas to run after ``observed``; see the module docstring."""
    now = observed.time
    busy = observed.in_flight > 0 or observed.qps > 0
    last_request_at = now if busy else state.last_request_at
    wanted = _wanted(policy, observed)
    recent = tuple((t, w) for t, w in state.recent if now - t <= policy.scale_in_cooldown)
    if state.replicas is None:  # first look: what runs counts as wanted until the cooldown
        recent += ((now, observed.replicas),)
    recent += ((now, wanted),)
    current = state.replicas if state.replicas is not None else observed.replicas
    floor = max(w for _, w in recent)  # the most any moment of the cooldown window wanted
    if wanted > current:
        target, why = wanted, f"scale out: load {_load(policy, observed)} wants {wanted}"
    elif floor < current:
        target, why = floor, (f"scale in: at most {floor} wanted for "
                              f"{policy.scale_in_cooldown:g}s")
    else:
        target, why = current, "steady"
    bounded = max(policy.min_replicas, min(policy.max_replicas, target))
    if bounded != target:  # say what held it, not a scaling that does not happen
        bound = "max_replicas" if target > bounded else "min_replicas"
        why = f"{'steady' if bounded == current else why} (held at {bound} {bounded})"
        target = bounded
    if policy.min_replicas == 0:
        idle_since = last_request_at if last_request_at is not None else recent[0][0]
        if busy and target == 0:
            target, why = 1, "cold start: a request is waiting"
        elif not busy and now - idle_since >= policy.scale_to_zero_after:
            target, why = 0, f"scale to zero: no request for {now - idle_since:.0f}s"
        elif not busy and target == 0 and current > 0:
            target, why = 1, (f"idle: one replica until {policy.scale_to_zero_after:g}s "
                              "without requests")
    else:
        target = max(target, 1)
    new_state = replace(state, recent=recent, last_request_at=last_request_at, replicas=target)
    return Decision(target, why, new_state)


def _wanted(policy: AutoscalePolicy, observed: Observation) -> int:
    if policy.target_qps is not None:
        return math.ceil(observed.qps / policy.target_qps - 1e-9)
    assert policy.target_in_flight is not None
    return math.ceil(observed.in_flight / policy.target_in_flight - 1e-9)


def _load(policy: AutoscalePolicy, observed: Observation) -> str:
    if policy.target_qps is not None:
        return f"{observed.qps:.1f} req/s at {policy.target_qps:g} per replica"
    return f"{observed.in_flight:g} in flight at {policy.target_in_flight:g} per replica"
