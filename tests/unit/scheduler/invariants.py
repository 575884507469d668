"""Checks every cycle result must pass: nothing over-allocated, gangs whole, quota kept."""

from __future__ import annotations

from collections import Counter, defaultdict

from aip.scheduler import Allocation, CycleResult, QuotaBook, Snapshot


def after_admits(snap: Snapshot, result: CycleResult) -> list[Allocation]:
    """The running set once the admitted jobs start (preempted jobs still run)."""
    jobs = {job.job_id: job for job in snap.pending}
    return [*snap.running, *(
        Allocation(a.job_id, jobs[a.job_id].queue, jobs[a.job_id].priority, 10**9 + i,
                   a.placements) for i, a in enumerate(result.admitted))]


def assert_not_overallocated(snap: Snapshot, allocations: list[Allocation]) -> None:
    nodes = {node.name: node for node in snap.nodes}
    cpu: Counter[str] = Counter()
    memory: Counter[str] = Counter()
    gpu: Counter[tuple[str, int]] = Counter()
    whole: dict[tuple[str, int], int] = defaultdict(int)
    shared: dict[tuple[str, int], int] = defaultdict(int)
    devices: Counter[tuple[str, str, int]] = Counter()
    for allocation in allocations:
        for p in allocation.placements:
            node = nodes[p.node]
            cpu[p.node] += p.cpu_milli
            memory[p.node] += p.memory_bytes
            models = {g.index: g.model for g in node.gpus}
            assert len(set(p.gpus)) == len(p.gpus), f"{allocation.job_id}: a GPU twice"
            for index in p.gpus:
                assert index in models, f"{allocation.job_id}: no GPU {index} on {p.node}"
                assert p.gpu_model == models[index], f"{allocation.job_id}: wrong model"
                gpu[(p.node, index)] += p.gpu_milli_each
                if p.gpu_milli_each == 1000:
                    whole[(p.node, index)] += 1
                else:
                    shared[(p.node, index)] += 1
            for kind, ids in p.accelerators.items():
                for device in ids:
                    assert 0 <= device < node.accelerators.get(kind, 0), \
                        f"{allocation.job_id}: no {kind} {device} on {p.node}"
                    devices[(p.node, kind, device)] += 1
    for name, used in cpu.items():
        assert used <= nodes[name].cpu_milli, f"cpu over-allocated on {name}"
    for name, used in memory.items():
        assert used <= nodes[name].memory_bytes, f"memory over-allocated on {name}"
    for key, used in gpu.items():
        assert used <= 1000, f"GPU {key} over-allocated: {used} milli"
        assert whole[key] <= 1 and not (whole[key] and shared[key]), f"GPU {key} not exclusive"
    for held, holders in devices.items():
        assert holders == 1, f"accelerator {held} given {holders} times"


def assert_gangs_whole(snap: Snapshot, result: CycleResult) -> None:
    jobs = {job.job_id: job for job in snap.pending}
    for admit in result.admitted:
        job = jobs[admit.job_id]
        expected = sorted((role.role, index) for role in job.roles for index in range(role.count))
        got = sorted((p.role, p.index) for p in admit.placements)
        assert got == expected, f"{job.job_id}: placements {got} != replicas {expected}"
        requests = {role.role: role.request for role in job.roles}
        for p in admit.placements:
            request = requests[p.role]
            assert p.cpu_milli == request.cpu_milli and p.memory_bytes == request.memory_bytes
            assert len(p.gpus) * p.gpu_milli_each == request.gpu_milli
            if request.gpu_types:
                assert p.gpu_model in request.gpu_types
            assert {k: len(v) for k, v in p.accelerators.items()} == dict(request.accelerators)
    decided = [a.job_id for a in result.admitted] + [w.job_id for w in result.waiting]
    assert sorted(decided) == sorted(jobs), "every pending job is admitted or waits, once"


def assert_quota_kept(snap: Snapshot, result: CycleResult) -> None:
    """No queue ends above what its quota and borrowing allow, unless it already was."""
    before = QuotaBook.from_running(snap.queues, snap.running)
    after = QuotaBook.from_running(snap.queues, after_admits(snap, result))
    admitted_queues = {job.queue for job in snap.pending
                       if job.job_id in {a.job_id for a in result.admitted}}
    for name, queue in after.queues.items():
        if name not in admitted_queues:
            continue
        for key, nominal in queue.nominal.items():
            used = after.usage[name].get(key, 0)
            grew = used > before.usage[name].get(key, 0)
            if not grew:
                continue
            if queue.cohort is None:
                assert used <= nominal, f"{name}: {key} {used} > nominal {nominal}"
                continue
            limit = (queue.borrowing_limit or {}).get(key)
            if limit is not None:
                assert used - nominal <= limit, f"{name}: {key} borrows beyond its limit"
            cohort_used = after.cohort_usage[queue.cohort].get(key, 0)
            cohort_nominal = after.cohort_nominal[queue.cohort][key]
            assert cohort_used <= cohort_nominal, f"cohort {queue.cohort}: {key} over"
