"""A realistic synthetic snapshot to time one scheduling cycle.

    from aip.scheduler import schedule
    from aip.scheduler.bench import synthetic_snapshot
    snapshot = synthetic_snapshot(num_nodes=100, num_pending=10_000, seed=0)
    schedule(snapshot)   # the control plane's target: well under 0.3 s

The cluster mixes CPU-only nodes (8..96 cores), 8-GPU V100 nodes and 4-GPU T4/A10 nodes, a few
with FPGAs, a few cordoned. Eight queues: two cohorts (one with per-model GPU quota and a
borrowing limit) and unaffiliated queues, one without quota. The running set is what the
scheduler itself admitted from a first batch on the empty cluster (so it is consistent and
fills the cluster), and the pending jobs mix CPU-only, GPU shares, whole GPUs and multi-role
gangs over three priorities, with a few jobs naming a queue that does not exist.
Deterministic for a given seed.
"""

from __future__ import annotations

import random

from aip.scheduler.cycle import schedule
from aip.scheduler.model import (
    Allocation,
    Gpu,
    Node,
    PendingJob,
    Queue,
    ReplicaRequest,
    RoleRequest,
    Snapshot,
)

GI = 2**30
CORE = 1000
GPU = 1000

QUEUES = (
    Queue("research-a", "research", {"cpu": 400 * CORE, "gpu": 80 * GPU}, {"gpu": 40 * GPU}),
    Queue("research-b", "research", {"cpu": 400 * CORE, "gpu": 80 * GPU}),
    Queue("research-c", "research", {"gpu/V100M32": 40 * GPU, "gpu/T4": 40 * GPU, "gpu/*": 0}),
    Queue("prod-serving", "prod", {"gpu": 60 * GPU, "memory": 4096 * GI}),
    Queue("prod-batch", "prod", {"gpu": 60 * GPU, "acc/fpga": 4}),
    Queue("interns", None, {"cpu": 64 * CORE, "gpu": 4 * GPU}),
    Queue("platform", None, {"cpu": 200 * CORE}),
    Queue("best-effort", None, {}),
)
PRIORITIES = (0, 0, 0, 10, 10, 10, 10, 10, 100, 100)


def synthetic_snapshot(num_nodes: int = 100, num_pending: int = 10_000,
                       seed: int = 0) -> Snapshot:
    rng = random.Random(seed)
    nodes = tuple(_node(rng, i) for i in range(num_nodes))
    first = tuple(_job(rng, i, i) for i in range(num_nodes * 12))
    result = schedule(Snapshot(nodes, QUEUES, (), first))
    jobs = {job.job_id: job for job in first}
    running = tuple(
        Allocation(admit.job_id, jobs[admit.job_id].queue, jobs[admit.job_id].priority, seq,
                   admit.placements, preemptible=rng.random() < 0.8)
        for seq, admit in enumerate(result.admitted))
    offset = len(first)
    pending = tuple(_job(rng, offset + i, offset + i) for i in range(num_pending))
    return Snapshot(nodes, QUEUES, running, pending)


def _node(rng: random.Random, i: int) -> Node:
    kind = rng.random()
    accelerators = {"fpga": 2} if i % 25 == 7 else {}
    schedulable = i % 50 != 49
    if kind < 0.3:
        cores = rng.choice((8, 16, 32, 64, 96))
        return Node(f"cpu-{i:04d}", cores * CORE, cores * 4 * GI, (), accelerators,
                    {"zone": f"z{i % 3}"}, schedulable)
    if kind < 0.7:
        model = rng.choice(("V100M32", "V100M16"))
        gpus = tuple(Gpu(g, model, 32768 if model == "V100M32" else 16384) for g in range(8))
        return Node(f"v100-{i:04d}", 96 * CORE, 768 * GI, gpus, accelerators,
                    {"zone": f"z{i % 3}"}, schedulable)
    model = rng.choice(("T4", "A10"))
    cores = rng.choice((32, 64))
    gpus = tuple(Gpu(g, model, 16384 if model == "T4" else 24576) for g in range(4))
    return Node(f"{model.lower()}-{i:04d}", cores * CORE, cores * 4 * GI, gpus, accelerators,
                {"zone": f"z{i % 3}"}, schedulable)


def _job(rng: random.Random, i: int, seq: int) -> PendingJob:
    queue = "ghost" if rng.random() < 0.005 else rng.choice(QUEUES).name
    return PendingJob(f"job-{i:05d}", queue, rng.choice(PRIORITIES), seq, _roles(rng))


def _roles(rng: random.Random) -> tuple[RoleRequest, ...]:
    kind = rng.random()
    types = _gpu_types(rng)
    if kind < 0.3:
        cores = rng.choice((1, 2, 4, 8, 16))
        return (RoleRequest("main", 1, ReplicaRequest(cores * CORE, cores * 4 * GI)),)
    if kind < 0.55:
        share = rng.choice((250, 500, 500, 750))
        return (RoleRequest("main", 1, ReplicaRequest(
            rng.choice((2, 4)) * CORE, 8 * GI, share, types)),)
    if kind < 0.75:
        return (RoleRequest("main", 1, ReplicaRequest(8 * CORE, 32 * GI, GPU, types)),)
    if kind < 0.9:
        count = rng.choice((2, 4, 8))
        return (RoleRequest("main", 1, ReplicaRequest(
            count * 8 * CORE, count * 48 * GI, count * GPU, types)),)
    workers = rng.choice((2, 4, 8))
    gpus = rng.choice((1, 2, 4, 8))
    roles = [RoleRequest("worker", workers, ReplicaRequest(
        gpus * 8 * CORE, gpus * 48 * GI, gpus * GPU, types))]
    if rng.random() < 0.5:
        roles.append(RoleRequest("ps", rng.choice((1, 2)), ReplicaRequest(4 * CORE, 16 * GI)))
    if rng.random() < 0.1:
        roles.append(RoleRequest("fpga", 1, ReplicaRequest(
            2 * CORE, 8 * GI, accelerators=(("fpga", 1),))))
    return tuple(roles)


def _gpu_types(rng: random.Random) -> frozenset[str]:
    draw = rng.random()
    if draw < 0.7:
        return frozenset()
    if draw < 0.85:
        return frozenset({"V100M32", "V100M16"})
    return frozenset({rng.choice(("V100M32", "T4", "A10"))})
