"""Placement policies by name: the baselines of Weng et al. (ATC'23) and AIP's default.

    policy = make_policy("fgd", seed=42, workload=Workload.from_requests(...))

Every policy implements ``aip.scheduler.placement.PlacementPolicy`` and handles whole GPUs
and GPU shares. The live platform and the trace simulator use the same objects.
"""

from __future__ import annotations

from collections.abc import Callable

from aip.scheduler.placement import BestFitPolicy, PlacementPolicy
from aip.scheduler.workload import Workload

DEFAULT_POLICY = "aip"

PolicyFactory = Callable[[int, Workload | None], PlacementPolicy]

# name -> factory(seed, workload). Filled in as policies land; "aip" is the platform default.
_FACTORIES: dict[str, PolicyFactory] = {
    "aip": lambda seed, workload: BestFitPolicy(),
}


def policy_names() -> list[str]:
    return list(_FACTORIES)


def make_policy(name: str = DEFAULT_POLICY, *, seed: int = 0,
                workload: Workload | None = None) -> PlacementPolicy:
    """The policy called ``name``; ``seed`` drives any randomness, ``workload`` is the target
    workload of look-ahead policies (they fall back to a built-in one when it is None)."""
    factory = _FACTORIES.get(name)
    if factory is None:
        from aip.errors import InvalidSpec

        raise InvalidSpec(f"unknown placement policy {name!r}; known: {', '.join(_FACTORIES)}",
                          fields={"policy": f"unknown policy {name!r}"})
    return factory(seed, workload)
