"""The Ray backend's replica handle: what the store keeps, versioned, and read back."""

from __future__ import annotations

from typing import Any

import pytest

from aip.executor.base import ReplicaHandle
from aip.executor.ray import RayReplicaHandle

HANDLE = RayReplicaHandle(
    replica_id="train-3f2a-worker-0-a1", actor_name="aip-replica-train-3f2a-worker-0-a1",
    node="node-a", node_id="090da35898c759d6164fa5aaa8f0b65df3c3269fdb2018d5bbe9554c",
    status_dir="/home/a/.aip/jobs/train-3f2a/status/worker-0-a1",
    log_path="/home/a/.aip/jobs/train-3f2a/logs/worker-0.log")


def test_a_handle_survives_the_round_trip_through_the_store() -> None:
    stored = HANDLE.to_dict()

    assert stored["version"] == 1 and stored["kind"] == "ray"
    assert stored["namespace"] == "aip"
    assert RayReplicaHandle.from_dict(stored) == HANDLE


@pytest.mark.parametrize(("data", "message"), [
    pytest.param(ReplicaHandle("r", 12, 1.0, "/s").to_dict(), "not made by the ray backend",
                 id="a local executor's handle"),
    pytest.param({**HANDLE.to_dict(), "version": 2}, "version 2 is not supported",
                 id="a newer version"),
    pytest.param({key: value for key, value in HANDLE.to_dict().items() if key != "node_id"},
                 "no 'node_id'", id="a missing field"),
])
def test_handles_it_cannot_read_are_refused_with_the_reason(
        data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RayReplicaHandle.from_dict(data)
