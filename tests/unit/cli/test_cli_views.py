"""What the tables show: ages, GPU assignments, used/quota, and server text kept verbatim."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from aip.cli.job_views import events_table, final_line, job_detail, jobs_table
from aip.cli.jobs import exit_status
from aip.cli.nodes import gpus_summary, nodes_table
from aip.cli.output import age, gpu_assignment, human_bytes, short_duration
from aip.cli.queues import flatten_resources, queue_detail, queues_table, used_of

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def render(renderable: Any) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def make_job(state: str = "RUNNING", **changes: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "id": "train-7f3a", "name": "train", "queue": "team-a", "priority": 0,
        "state": state, "reason": None, "attempt": 1, "max_retries": 0, "preemptions": 0,
        "created_at": "2026-01-01T11:55:00+00:00", "started_at": "2026-01-01T11:58:30+00:00",
        "finished_at": None, "exit_code": None, "output_dir": "/aip/jobs/train-7f3a",
        "spec": {"replicas": {"worker": {"count": 2, "command": ["python", "-c", "x[0]"],
                                         "resources": {"cpu": 2.0, "memory": "4Gi",
                                                       "gpu": 0.25, "gpu_type": ["T4"]}}}},
        "replicas": [{"name": "worker-0", "role": "worker", "index": 0, "node": "n1",
                      "gpus": [0], "gpu_share": 0.25, "accelerators": {"tpu": [0, 1]},
                      "state": "RUNNING", "pid": 41, "exit_code": None,
                      "started_at": "2026-01-01T11:58:30+00:00", "finished_at": None}],
    }
    job.update(changes)
    return job


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (59, "59s"), (90, "1m30s"), (600, "10m"), (3 * 3600 + 120, "3h2m"),
    (2 * 86400 + 7 * 3600, "2d7h"), (12 * 86400, "12d")])
def test_durations_read_like_kubectl(seconds: float, text: str) -> None:
    assert short_duration(seconds) == text


def test_ages_are_relative_to_now_and_naive_times_are_utc() -> None:
    assert age("2026-01-01T11:55:00+00:00", NOW) == "5m"
    assert age("2026-01-01T11:59:00", NOW) == "1m"
    assert age(None, NOW) == "-"


@pytest.mark.parametrize(("gpus", "share", "text"), [
    ([0, 1], None, "0,1"), ([3], 0.25, "3 (0.25)"), ([], None, "-"), (None, None, "-")])
def test_gpu_assignments(gpus: list[int] | None, share: float | None, text: str) -> None:
    assert gpu_assignment(gpus, share) == text


@pytest.mark.parametrize(("value", "text"), [
    (16 * 2**30, "16Gi"), (1536 * 2**20, "1.5Gi"), (512, "512"), ("256Gi", "256Gi")])
def test_sizes_are_short_binary_units(value: object, text: str) -> None:
    assert human_bytes(value) == text


def test_the_job_list_shows_state_age_duration_and_the_reason_a_job_waits() -> None:
    waiting = make_job("PENDING", id="eval-1", started_at=None,
                       reason="queue team-a: gpu quota 4/4 in use [T4]")
    text = render(jobs_table([make_job(), waiting], now=NOW))
    assert "train-7f3a" in text and "RUNNING" in text and "1m30s" in text
    assert "queue team-a: gpu quota 4/4 in use [T4]" in text  # brackets are not markup
    wide = render(jobs_table([make_job()], wide=True, now=NOW))
    assert "2 cpu, 4Gi, 0.25 gpu T4" in wide


def test_the_job_detail_shows_where_each_replica_runs() -> None:
    text = render(job_detail(make_job(), now=NOW))
    assert "worker-0" in text and "0 (0.25)" in text and "tpu:0,1" in text
    assert "python -c x[0]" in text


def test_events_keep_server_text_verbatim() -> None:
    events = [{"time": "2026-01-01T11:59:00+00:00", "type": "Admitted",
               "message": "placed on n1 [gpu 0]"}]
    assert "placed on n1 [gpu 0]" in render(events_table(events, now=NOW))


@pytest.mark.parametrize(("job", "plain", "passthrough"), [
    (make_job("SUCCEEDED", exit_code=0), 0, 0),
    (make_job("FAILED", exit_code=3), 1, 3),
    (make_job("FAILED", exit_code=None, reason="node lost"), 1, 1),
    (make_job("CANCELLED", exit_code=-15), 1, 1),
])
def test_following_commands_exit_with_the_job_result(
        job: dict[str, Any], plain: int, passthrough: int) -> None:
    assert exit_status(job) == plain
    assert exit_status(job, passthrough=True) == passthrough


def test_the_final_line_says_why_a_job_failed() -> None:
    text, style = final_line(make_job("FAILED", exit_code=3, reason="worker-0 exited"))
    assert (text, style) == ("job train-7f3a FAILED (exit code 3): worker-0 exited", "red")


def test_node_gpus_are_summed_per_model_with_shares() -> None:
    gpus = [{"index": 0, "model": "T4", "allocated_milli": 250},
            {"index": 1, "model": "T4", "allocated_milli": 1000},
            {"index": 2, "model": "V100M32", "allocated_milli": 0}]
    assert gpus_summary(gpus) == "1.25/2 T4, 0/1 V100M32"
    node = {"name": "n1", "cpu": 16.0, "memory": 64 * 2**30, "gpus": gpus,
            "accelerators": {"tpu": 4}, "labels": {"zone": "a"}, "schedulable": False,
            "allocated": {"cpu": 4.5, "memory": 8 * 2**30, "gpu": 1.25,
                          "accelerators": {"tpu": 2}}}
    text = render(nodes_table([node], wide=True))
    for part in ("4.5/16", "8Gi/64Gi", "2/4 tpu", "Cordoned", "zone=a"):
        assert part in text


QUEUE: dict[str, Any] = {"name": "team-a", "cohort": "research", "pending": 3, "running": 1,
         "quota": {"cpu": 64, "memory": "256Gi", "gpu": {"T4": 8, "V100M32": 4},
                   "accelerators": {"tpu": 8}},
         "borrowing_limit": {"gpu": 4},
         "usage": {"cpu": 2.0, "memory": 4 * 2**30, "gpu": 1.0, "gpu/T4": 1.0}}


def test_quota_and_usage_flatten_to_the_same_keys() -> None:
    assert flatten_resources(QUEUE["quota"]) == {
        "cpu": 64, "memory": "256Gi", "gpu/T4": 8, "gpu/V100M32": 4, "gpu/*": 0, "acc/tpu": 8}
    assert used_of("gpu/T4", flatten_resources(QUEUE["usage"]),
                   flatten_resources(QUEUE["quota"])) == "1/8"
    assert used_of("gpu", {"gpu": 1.25}, {}) == "1.25/∞"


def test_queues_show_used_over_quota_per_gpu_model() -> None:
    text = render(queues_table([QUEUE]))
    assert "T4 1/8, V100M32 0/4" in text and "4Gi/256Gi" in text and "tpu 0/8" in text
    detail = render(queue_detail(QUEUE))
    assert "3 pending, 1 running" in detail and "gpu/V100M32" in detail
