"""Small clusters and traces for simulator tests.

    node("n0", gpus=1, cpu=4)
    task("t0", gpu=500, cpu=3, created=0, deleted=100)
"""

from __future__ import annotations

from pathlib import Path

from aip.scheduler.model import Gpu, Node, ReplicaRequest
from aip.sim.openb import Task

GI = 2**30
DATA = Path(__file__).resolve().parents[2] / "data"
TINY_NODES = DATA / "openb_tiny_nodes.csv"
TINY_PODS = DATA / "openb_tiny_pods.csv"
OPENB = Path(__file__).resolve().parents[4] / "shared" / "data" / "openb"
OPENB_NODES = OPENB / "openb_node_list_gpu_node.csv"
OPENB_PODS = OPENB / "openb_pod_list_default.csv"


def node(name: str, *, gpus: int = 1, cpu: float = 8, memory: int = 64,
         model: str = "T4") -> Node:
    """``cpu`` in cores, ``memory`` in GiB."""
    return Node(name, round(cpu * 1000), memory * GI,
                tuple(Gpu(index, model) for index in range(gpus)))


def task(name: str, *, gpu: int = 0, cpu: float = 1, memory: int = 1,
         models: tuple[str, ...] = (), created: int | None = None,
         deleted: int | None = None, scheduled: int | None = None) -> Task:
    """``gpu`` in milli-GPU (2000 = two whole GPUs), ``cpu`` in cores, ``memory`` in GiB."""
    return Task(name, ReplicaRequest(round(cpu * 1000), memory * GI, gpu, frozenset(models)),
                creation_time=created, deletion_time=deleted, scheduled_time=scheduled)
