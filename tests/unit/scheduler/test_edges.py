"""Snapshots the control plane may hand over when the inventory changed under running jobs."""

from __future__ import annotations

from aip.scheduler import Node, Snapshot, WaitReason, schedule

from .builders import admitted, make_job, make_node, placed, queue, running, snapshot, waits


def test_a_running_job_on_a_node_that_left_still_counts_against_quota() -> None:
    snap = snapshot([make_node("n1", gpus=2)], [make_job("new", "team-a").gpu(1).build()],
                    [running("ghost", placed("gone", gpus=(0,)), queue="team-a")],
                    [queue("team-a", gpu=1)])
    assert waits(schedule(snap))["new"].code == WaitReason.WAITING_FOR_QUOTA


def test_a_running_job_holding_a_gpu_the_node_no_longer_has_is_ignored_there() -> None:
    snap = snapshot([make_node("n1", gpus=1)], [make_job("new").gpu(1).build()],
                    [running("old", placed("n1", gpus=(5,)))])
    assert admitted(schedule(snap))["new"][0].gpus == (0,)


def test_an_overcommitted_node_takes_nothing_more() -> None:
    snap = snapshot([make_node("n1", cpu=2)], [make_job("new").cpu(0.5).build()],
                    [running("a", placed("n1", cpu=2)), running("b", placed("n1", cpu=1))])
    assert waits(schedule(snap))["new"].code == WaitReason.INSUFFICIENT_RESOURCES


def test_a_duplicate_node_name_keeps_the_first_node() -> None:
    snap = snapshot([make_node("n1", cpu=1), make_node("n1", cpu=64)],
                    [make_job("big").cpu(8).build()])
    assert waits(schedule(snap))["big"].code == WaitReason.INSUFFICIENT_RESOURCES


def test_a_job_with_no_replicas_is_admitted_with_no_placements() -> None:
    job = make_job("empty").replicas(worker=0).build()
    assert admitted(schedule(snapshot([make_node("n1")], [job]))) == {"empty": ()}


def test_an_empty_cluster_and_queue_set() -> None:
    result = schedule(Snapshot((), (), (), (make_job("j").build(),)))
    assert result.waiting[0].code == WaitReason.QUEUE_NOT_FOUND
    result = schedule(snapshot([], [make_job("j").build()]))
    assert result.waiting[0].reason == "no schedulable node in the cluster"


def test_nodes_without_gpus_and_a_gpu_job() -> None:
    node: Node = make_node("cpu-only")
    wait = waits(schedule(snapshot([node], [make_job("j").gpu(1).build()])))["j"]
    assert (wait.code, wait.reason) == (WaitReason.NO_MATCHING_GPU_TYPE, "no node has a GPU")
