"""How a replica runs on its node: the framework wiring (``frameworks``: rendezvous variables,
torchrun, MPI hostfiles, scheduler sidecars; a pure function of the placed gang) and the
on-node launcher (``launch``: runtime files, per-job environments, sidecars, mpirun) that
``python -m aip.runtime.launch`` runs inside the replica.

The names below are re-exported lazily: importing the package must not import
``aip.runtime.launch`` before ``python -m`` runs it as ``__main__``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aip.runtime.frameworks import (
        PORTS_PER_REPLICA,
        RDMA_DEVICES_LABEL,
        RDMA_GID_INDEX_LABEL,
        RDMA_INTERFACE_LABEL,
        TOPOLOGY_LABEL,
        Member,
        Runtime,
        rdma_environment,
        replica_runtime,
    )
    from aip.runtime.launch import EXIT_ENVIRONMENT, LaunchPlan, wrap_command

_EXPORTS = {
    **dict.fromkeys(("PORTS_PER_REPLICA", "RDMA_DEVICES_LABEL", "RDMA_GID_INDEX_LABEL",
                     "RDMA_INTERFACE_LABEL", "TOPOLOGY_LABEL", "Member", "Runtime",
                     "rdma_environment", "replica_runtime"), "aip.runtime.frameworks"),
    **dict.fromkeys(("EXIT_ENVIRONMENT", "LaunchPlan", "wrap_command"), "aip.runtime.launch"),
}

__all__ = [
    "EXIT_ENVIRONMENT",
    "PORTS_PER_REPLICA",
    "RDMA_DEVICES_LABEL",
    "RDMA_GID_INDEX_LABEL",
    "RDMA_INTERFACE_LABEL",
    "TOPOLOGY_LABEL",
    "LaunchPlan",
    "Member",
    "Runtime",
    "rdma_environment",
    "replica_runtime",
    "wrap_command",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aip.runtime' has no attribute {name!r}")
    return getattr(import_module(module), name)
