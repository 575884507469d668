"""Placement policies by name: the baselines of Weng et al. (ATC'23) and AIP's default.

    policy = make_policy("fgd", seed=42, workload=Workload.from_requests(...))

Every policy implements ``aip.scheduler.placement.PlacementPolicy`` and handles whole GPUs
and GPU shares, GPU model constraints, CPU and memory. The live platform and the trace
simulator use the same objects.

| name | what it prefers |
| --- | --- |
| ``random`` | a uniformly random feasible node |
| ``best-fit`` | the node with the least CPU and GPU left (the paper's BestFit) |
| ``gpu-packing`` | shared GPUs, then partly used nodes, then small idle nodes |
| ``gpu-clustering`` | nodes already holding the same GPU shape |
| ``dot-product`` | Tetris alignment of request and free (CPU, GPU) |
| ``fgd`` | least growth of fragmentation w.r.t. the workload (as the paper ran it) |
| ``aip`` | the default: least usable capacity lost (``policies.aip``) |
| ``aip-best-fit`` | AIP's earlier default (``placement.BestFitPolicy``), numpy-free |

The numpy-backed policies are imported on first use, so importing the scheduler stays light.
"""

from __future__ import annotations

from collections.abc import Callable

from aip.scheduler.placement import BestFitPolicy, PlacementPolicy
from aip.scheduler.workload import Workload

DEFAULT_POLICY = "aip"

PolicyFactory = Callable[[int, Workload | None], PlacementPolicy]


def _random(seed: int, workload: Workload | None) -> PlacementPolicy:
    from aip.scheduler.policies.baselines import RandomPolicy

    return RandomPolicy(seed)


def _best_fit(seed: int, workload: Workload | None) -> PlacementPolicy:
    from aip.scheduler.policies.baselines import PaperBestFitPolicy

    return PaperBestFitPolicy(seed)


def _gpu_packing(seed: int, workload: Workload | None) -> PlacementPolicy:
    from aip.scheduler.policies.baselines import GpuPackingPolicy

    return GpuPackingPolicy(seed)


def _gpu_clustering(seed: int, workload: Workload | None) -> PlacementPolicy:
    from aip.scheduler.policies.baselines import GpuClusteringPolicy

    return GpuClusteringPolicy(seed)


def _dot_product(seed: int, workload: Workload | None) -> PlacementPolicy:
    from aip.scheduler.policies.baselines import DotProductPolicy

    return DotProductPolicy(seed)


def _fgd(seed: int, workload: Workload | None) -> PlacementPolicy:
    from aip.scheduler.policies.fgd import FgdPolicy

    return FgdPolicy(workload, seed)


def _aip(seed: int, workload: Workload | None) -> PlacementPolicy:
    from aip.scheduler.policies.aip import AipPolicy

    return AipPolicy(workload)


# name -> factory(seed, workload); "aip" is the platform default.
_FACTORIES: dict[str, PolicyFactory] = {
    "random": _random,
    "best-fit": _best_fit,
    "gpu-packing": _gpu_packing,
    "gpu-clustering": _gpu_clustering,
    "dot-product": _dot_product,
    "fgd": _fgd,
    "aip": _aip,
    "aip-best-fit": lambda seed, workload: BestFitPolicy(),
}


def policy_names() -> list[str]:
    return list(_FACTORIES)


def make_policy(name: str = DEFAULT_POLICY, *, seed: int = 0,
                workload: Workload | None = None) -> PlacementPolicy:
    """The policy called ``name``; ``seed`` drives any randomness, ``workload`` is the target
    workload of look-ahead policies (they fall back to ``Workload.default()`` when None)."""
    factory = _FACTORIES.get(name)
    if factory is None:
        from aip.errors import InvalidSpec

        raise InvalidSpec(f"unknown placement policy {name!r}; known: {', '.join(_FACTORIES)}",
                          fields={"policy": f"unknown policy {name!r}"})
    return factory(seed, workload)
