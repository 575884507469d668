"""The job state machine, as named transition rules (FROM_STATES -> TO_STATES).

```mermaid
stateDiagram-v2
    [*] --> PENDING: submit
    PENDING --> ADMITTED: scheduler admits and places the gang
    PENDING --> CANCELLED: cancel
    ADMITTED --> RUNNING: every replica started
    ADMITTED --> RETRYING: a replica failed to start, retries left
    ADMITTED --> FAILED: a replica failed to start, no retries left
    ADMITTED --> PREEMPTED: a higher-priority job needs the resources
    ADMITTED --> CANCELLED: cancel
    RUNNING --> SUCCEEDED: every replica exited 0
    RUNNING --> RETRYING: a replica failed, retries left
    RUNNING --> FAILED: a replica failed, no retries left / timeout
    RUNNING --> PREEMPTED: a higher-priority job needs the resources
    RUNNING --> CANCELLED: cancel (after SIGTERM, grace, SIGKILL)
    PREEMPTED --> PENDING: replicas stopped; requeued (not a failure)
    RETRYING --> PENDING: replicas stopped and backoff elapsed
    RETRYING --> CANCELLED: cancel
    RETRYING --> FAILED: gave up while stopping (server restarted past the last retry)
    PREEMPTED --> CANCELLED: cancel
    SUCCEEDED --> [*]
    FAILED --> [*]
    CANCELLED --> [*]
```

The docs (docs/architecture.md) carry the same diagram; a unit test checks that it matches
``TRANSITIONS``.
"""

from __future__ import annotations

from enum import StrEnum

from aip.errors import Conflict


class JobState(StrEnum):
    PENDING = "PENDING"
    ADMITTED = "ADMITTED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    PREEMPTED = "PREEMPTED"
    RETRYING = "RETRYING"


class ReplicaState(StrEnum):
    STARTING = "STARTING"  # row written, process not started yet
    RUNNING = "RUNNING"
    EXITED = "EXITED"
    LOST = "LOST"  # vanished without an exit status


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
LIVE_REPLICA_STATES = frozenset({ReplicaState.STARTING, ReplicaState.RUNNING})

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.ADMITTED, JobState.CANCELLED}),
    JobState.ADMITTED: frozenset({JobState.RUNNING, JobState.RETRYING, JobState.FAILED,
                                  JobState.CANCELLED, JobState.PREEMPTED}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.RETRYING, JobState.FAILED,
                                 JobState.PREEMPTED, JobState.CANCELLED}),
    JobState.PREEMPTED: frozenset({JobState.PENDING, JobState.CANCELLED}),
    JobState.RETRYING: frozenset({JobState.PENDING, JobState.CANCELLED, JobState.FAILED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


def check_transition(job_id: str, current: str, target: JobState) -> None:
    """Raise ``Conflict`` unless ``current -> target`` is a named rule."""
    if target not in TRANSITIONS[JobState(current)]:
        raise Conflict(f"job {job_id} cannot go from {current} to {target}")
