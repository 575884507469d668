"""The synthetic snapshot the control-plane bench times: deterministic and well-formed."""

from __future__ import annotations

from collections import Counter

from aip.scheduler import WaitReason, schedule
from aip.scheduler.bench import synthetic_snapshot

from .invariants import after_admits, assert_gangs_whole, assert_not_overallocated


def test_synthetic_snapshot_is_deterministic_and_mixed() -> None:
    snap = synthetic_snapshot(num_nodes=20, num_pending=400, seed=3)
    assert snap == synthetic_snapshot(num_nodes=20, num_pending=400, seed=3)
    assert len(snap.nodes) == 20 and len(snap.pending) == 400 and snap.running
    shapes = Counter(
        "shared" if r.request.gpu_shared else "whole" if r.request.gpu_milli else "cpu"
        for job in snap.pending for r in job.roles)
    assert min(shapes.values()) > 20
    assert any(len(job.roles) > 1 for job in snap.pending)


def test_one_cycle_over_it_is_consistent() -> None:
    snap = synthetic_snapshot(num_nodes=20, num_pending=400, seed=1)
    result = schedule(snap)
    assert_not_overallocated(snap, after_admits(snap, result))
    assert_gangs_whole(snap, result)
    codes = {wait.code for wait in result.waiting}
    assert {WaitReason.WAITING_FOR_QUOTA, WaitReason.QUEUE_NOT_FOUND} <= codes
