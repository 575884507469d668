"""The reconcile loop: level-triggered, it compares what the store wants with what runs.

One pass, in phases:
    1. observe   poll every live replica through the Executor; record exits
    2. advance   move jobs along the state machine (success, failure, retry, timeout)
    3. stop      carry out stops in progress: SIGTERM, then SIGKILL after the grace period,
                 then finalize (cancelled, requeued after preemption, retry backoff)
    4. schedule  snapshot -> ``aip.scheduler.schedule`` -> launch, preempt, explain waits

It runs in one thread beside the API and is woken by every change (submit, cancel, new
queue); otherwise it ticks. Everything it knows is in the store, so a restarted control plane
picks up where the last one stopped (``recover`` re-adopts replicas that kept running).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from aip.control import jobs as job_service
from aip.control import queues as queue_service
from aip.control.launch import Launcher, heartbeat_path
from aip.control.snapshot import allocations, build_snapshot, role_requests
from aip.control.states import LIVE_REPLICA_STATES, JobState, ReplicaState
from aip.executor.base import Executor
from aip.scheduler import Node, PendingJob, Preempt, RoleRequest, Wait, schedule
from aip.scheduler.model import Snapshot
from aip.scheduler.policies import make_policy
from aip.scheduler.workload import Workload
from aip.spec import JobSpec
from aip.store.tables import EventRow, JobRow, ReplicaRow

log = logging.getLogger("aip.reconciler")

HANG_CHECK_INTERVAL = 1.0  # seconds between looks for hung replicas
HUNG = "hung:"  # how a hung replica's reason starts
WORKLOAD_MIN_REPLICAS = 50  # below this, the policy's built-in workload is a better guess
ACTIVE_STATES = (JobState.ADMITTED, JobState.RUNNING, JobState.PREEMPTED, JobState.RETRYING)


@dataclass(frozen=True)
class ReconcileOptions:
    stop_grace_period: float = 10.0  # seconds between SIGTERM and SIGKILL
    retry_backoff_base: float = 1.0  # first retry waits this long, doubling up to the max
    retry_backoff_max: float = 60.0
    tick: float = 0.2  # how often replicas are polled when nothing wakes the loop
    resync_interval: float = 2.0  # schedule at least this often, even with no change
    placement_policy: str = "aip"  # a name from aip.scheduler.policies


class Reconciler:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        executor: Executor,
        nodes: Callable[[], Sequence[Node]],
        launcher: Launcher,
        options: ReconcileOptions | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessions = sessions
        self.executor = executor
        self.nodes = nodes
        self.launcher = launcher
        self.options = options or ReconcileOptions()
        self.clock = clock
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._dirty = True
        self._last_schedule = 0.0
        self._next_pass_at = 0.0
        self._next_full_at = 0.0
        self._new_jobs = False
        self._seen_seq = 0  # the newest job a scheduling pass has looked at
        self._roles_cache: dict[str, tuple[tuple[RoleRequest, ...], str]] = {}  # roles, topology
        self._specs: dict[str, JobSpec] = {}  # parsed specs of active jobs
        self._next_hang_check = 0.0
        self.policy = make_policy(self.options.placement_policy)  # built once: it has tables
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._run, name="aip-reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def wake(self, *, new_jobs_only: bool = False) -> None:
        """Ask for a pass soon. ``new_jobs_only`` (a submission) lets the pass consider just
        the jobs submitted since the last full pass; anything else may have freed capacity
        or quota, so every pending job is looked at again."""
        if new_jobs_only:
            self._new_jobs = True
        else:
            self._dirty = True
        self._wake.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            timeout = self.options.tick
            if self._dirty:  # a full pass is held back by its duty cycle: come back in time
                timeout = min(timeout, max(0.0, self._next_full_at - self.clock()))
            self._wake.wait(timeout)
            pause = self._next_pass_at - self.clock()
            if pause > 0:
                self._stopped.wait(pause)
            self._wake.clear()
            try:
                self.reconcile_once()
            except Exception:  # keep the loop alive; the next pass retries from the store
                log.exception("reconcile pass failed")
                time.sleep(self.options.tick)

    # -- one pass ------------------------------------------------------------------------

    def reconcile_once(self) -> None:
        """One pass. The loop gets at most half the CPU: the next pass waits as long as this
        one took, and the next *full* scheduling pass as long as the last full one took, so a
        flood of submissions is batched and the API keeps its share. Incremental passes for
        new jobs are not held back by a long full pass."""
        started = time.perf_counter()
        try:
            full = self._reconcile(self.clock())
        finally:
            elapsed = time.perf_counter() - started
            self._next_pass_at = self.clock() + (0.0 if full else elapsed)
            if full:
                self._next_full_at = self.clock() + elapsed

    def _reconcile(self, now: float) -> bool:
        with self.sessions.begin() as session:
            changed = self._observe(session, now)
            changed |= self._advance(session, now)
            changed |= self._carry_out_stops(session, now)
        if changed:
            self._dirty = True
        full = (self._dirty or now - self._last_schedule >= self.options.resync_interval) and (
            now >= self._next_full_at)
        if not full and not self._new_jobs:
            return False
        self._new_jobs = False
        if full:
            self._dirty = False
            self._last_schedule = now
        self._schedule(now, full=full)
        return full

    def recover(self) -> None:
        """After a restart: finish launching jobs that were admitted when the last control
        plane died. Launching is idempotent per replica, so a replica whose process did start
        is adopted, not started twice. Replicas that kept running are simply polled."""
        now = self.clock()
        with self.sessions.begin() as session:
            for job in session.scalars(select(JobRow).where(JobRow.state == JobState.ADMITTED)):
                log.info("finishing the launch of %s after a restart", job.id)
                self.launcher.launch(session, job, now, nodes=self._node_index())
            live = session.scalars(select(ReplicaRow).where(
                ReplicaRow.state == ReplicaState.RUNNING)).all()
            if live:
                log.info("re-adopting %d replicas that outlived the last control plane", len(live))

    def _node_index(self) -> dict[str, Node]:
        return {node.name: node for node in self.nodes()}

    # -- phase 1: observe ----------------------------------------------------------------

    def _observe(self, session: Session, now: float) -> bool:
        changed = False
        activity: dict[str, float | None] = {}
        for replica in session.scalars(
                select(ReplicaRow).where(ReplicaRow.state == ReplicaState.RUNNING)):
            if replica.handle is None:
                continue
            try:
                handle = self.executor.load_handle(json.loads(replica.handle))
            except ValueError as exc:  # e.g. launched by another backend before a switch
                replica.state, replica.reason = ReplicaState.LOST, f"cannot follow it: {exc}"
                replica.finished_at = now
                changed = True
                continue
            status = self.executor.poll(handle)
            if status.state == "running":
                activity[replica.id] = status.last_activity
                continue
            hung = (replica.reason or "").startswith(HUNG)
            replica.state = ReplicaState.LOST if hung or status.state == "lost" else (
                ReplicaState.EXITED)
            replica.exit_code = status.exit_code
            replica.reason = replica.reason if hung else status.reason
            replica.finished_at = now
            changed = True
        if activity and now >= self._next_hang_check:
            self._next_hang_check = now + HANG_CHECK_INTERVAL
            self._kill_hung(session, activity, now)
        return changed

    def _kill_hung(self, session: Session, activity: dict[str, float | None],
                   now: float) -> None:
        """Replicas of jobs with a ``hang_timeout`` that showed no life for that long (no log
        output, no heartbeat file touched, nothing the executor saw) are killed; the reason is
        recorded now and the exit, once polled, fails the replica as hung, and the job's
        restart policy takes it from there."""
        rows = session.execute(select(ReplicaRow, JobRow.spec).join(
            JobRow, JobRow.id == ReplicaRow.job_id).where(
            ReplicaRow.id.in_(list(activity)),
            ~JobRow.spec.contains('"hang_timeout":null'))).all()
        for replica, spec_text in rows:
            limit = self._spec_of(replica.job_id, spec_text).hang_timeout
            if limit is None or (replica.reason or "").startswith(HUNG):
                continue
            last = max(filter(None, (activity[replica.id], replica.started_at,
                                     _mtime(replica.log_path),
                                     _mtime(heartbeat_path(replica.status_dir)))))
            if now - last <= limit:
                continue
            self._signal(replica, kill=True)
            replica.reason = (f"{HUNG} no log output and no heartbeat for {now - last:.0f}s "
                              f"(hang_timeout {limit:g}s); killed")

    # -- phase 2: advance ----------------------------------------------------------------

    def _advance(self, session: Session, now: float) -> bool:
        changed = False
        for job in session.scalars(select(JobRow).where(
                JobRow.state.in_((JobState.ADMITTED, JobState.RUNNING)),
                JobRow.stop_reason.is_(None))):
            replicas = job_service.replicas_of(session, job)
            failed = [r for r in replicas if r.state == ReplicaState.LOST or (
                r.state == ReplicaState.EXITED and r.exit_code != 0)]
            if failed:
                if not self._restart_alone(session, job, failed, now):
                    self._fail_attempt(session, job, failed[0], now)
                changed = True
            elif replicas and all(r.state == ReplicaState.EXITED for r in replicas):
                job_service.finish(job, JobState.SUCCEEDED, None, now, exit_code=0)
                job_service.add_event(session, job.id, "Succeeded", "every replica exited 0", now)
                changed = True
            elif self._timed_out(job, now):
                message = f"timed out after {self._timeout_of(job):g}s"
                job_service.finish(job, JobState.FAILED, message, now)
                self._begin_stop(job, "timeout", message)
                job_service.add_event(session, job.id, "TimedOut", message, now)
                changed = True
        for job in session.scalars(select(JobRow).where(
                JobRow.state == JobState.RETRYING, JobRow.stop_reason.is_(None),
                JobRow.next_attempt_at <= now)):
            job.state = JobState.PENDING
            job.reason = (f"waiting to be scheduled (restart {job.restarts} of "
                          f"{job.max_retries})")
            job.updated_at = now
            job_service.add_event(session, job.id, "Requeued", "retry backoff elapsed", now)
            changed = True
        return changed

    def _timed_out(self, job: JobRow, now: float) -> bool:
        if job.state != JobState.RUNNING or job.started_at is None:
            return False
        timeout = self._timeout_of(job)
        return timeout is not None and now - job.started_at > timeout

    def _timeout_of(self, job: JobRow) -> float | None:
        return self._spec_of(job.id, job.spec).timeout

    def _spec_of(self, job_id: str, text: str) -> JobSpec:
        """The job's spec, parsed once, not on every tick."""
        spec = self._specs.get(job_id)
        if spec is None:
            if len(self._specs) > 10_000:
                self._specs.clear()
            spec = self._specs[job_id] = JobSpec.model_validate_json(text)
        return spec

    def _restart_alone(self, session: Session, job: JobRow, failed: Sequence[ReplicaRow],
                       now: float) -> bool:
        """``restart_policy: replica``: start the failed replicas again where they were, the
        others running on. Not possible (the gang policy applies) when the restarts are used
        up, the job is not running yet, or a failed replica's node has left the cluster."""
        spec = self._spec_of(job.id, job.spec)
        if (spec.restart_policy != "replica" or job.state != JobState.RUNNING
                or job.restarts + len(failed) > job.max_retries):
            return False
        nodes = {node.name for node in self.nodes()}
        if any(replica.node not in nodes for replica in failed):
            return False
        fresh = []
        for replica in failed:
            job.restarts += 1
            name = f"{replica.role}-{replica.index}"
            what = replica.reason or f"exited with code {replica.exit_code}"
            job_service.add_event(session, job.id, "Restarting", (
                f"replica {name} {what}; restarting it alone on {replica.node} "
                f"(restart {job.restarts} of {job.max_retries})"), now)
            fresh.append(self.launcher.next_generation(session, replica))
        session.flush()
        self.launcher.launch(session, job, now, nodes=self._node_index(), replicas=fresh)
        return True

    def _fail_attempt(self, session: Session, job: JobRow, replica: ReplicaRow,
                      now: float) -> None:
        name = f"{replica.role}-{replica.index}"
        what = replica.reason or f"exited with code {replica.exit_code}"
        if job.restarts < job.max_retries:
            job.restarts += 1
            delay = min(self.options.retry_backoff_base * 2 ** (job.restarts - 1),
                        self.options.retry_backoff_max)
            message = (f"replica {name} {what}; restarting the gang in {delay:g}s "
                       f"(restart {job.restarts} of {job.max_retries})")
            job.state = JobState.RETRYING
            job.reason = message
            job.exit_code = replica.exit_code
            job.next_attempt_at = now + delay
            job.updated_at = now
            job_service.add_event(session, job.id, "Retrying", message, now)
        else:
            message = f"replica {name} {what}"
            if job.max_retries:
                message += (f" (after {job.max_retries} restarts: max_restarts "
                            f"{job.max_retries} exceeded)")
            job_service.finish(job, JobState.FAILED, message, now, exit_code=replica.exit_code)
            job_service.add_event(session, job.id, "Failed", message, now)
        self._begin_stop(job, "failed", message)

    @staticmethod
    def _begin_stop(job: JobRow, why: str, message: str) -> None:
        job.stop_reason = why
        job.stop_message = message
        job.stop_requested_at = None
        job.kill_sent = False

    # -- phase 3: stops ------------------------------------------------------------------

    def _carry_out_stops(self, session: Session, now: float) -> bool:
        changed = False
        for job in session.scalars(select(JobRow).where(JobRow.stop_reason.is_not(None))):
            live = [r for r in job_service.replicas_of(session, job)
                    if r.state in LIVE_REPLICA_STATES]
            if live and job.stop_requested_at is None:
                for replica in live:
                    self._signal(replica, kill=False)
                job.stop_requested_at = now
            elif live and not job.kill_sent and (
                    now - (job.stop_requested_at or now) >= self.options.stop_grace_period):
                for replica in live:
                    self._signal(replica, kill=True)
                job.kill_sent = True
                job_service.add_event(session, job.id, "Killed", (
                    f"replicas still alive {self.options.stop_grace_period:g}s after SIGTERM; "
                    "sent SIGKILL"), now)
            elif not live:
                self._finalize_stop(session, job, now)
                changed = True
        return changed

    def _signal(self, replica: ReplicaRow, *, kill: bool) -> None:
        if replica.handle is None:
            return
        handle = self.executor.load_handle(json.loads(replica.handle))
        if kill:
            self.executor.kill(handle)
        else:
            self.executor.terminate(handle)

    def _finalize_stop(self, session: Session, job: JobRow, now: float) -> None:
        why, message = job.stop_reason, job.stop_message or ""
        job.stop_reason = job.stop_message = job.stop_requested_at = None
        job.kill_sent = False
        job.updated_at = now
        if why == "cancel":
            job_service.finish(job, JobState.CANCELLED, message, now)
            job_service.add_event(session, job.id, "Cancelled", message, now)
        elif why == "preempt":
            job.state = JobState.PENDING
            job.preemptions += 1
            job.reason = f"requeued after preemption ({message})"
            job_service.add_event(session, job.id, "Requeued", job.reason, now)

    # -- phase 4: schedule ---------------------------------------------------------------

    def _schedule(self, now: float, *, full: bool) -> None:
        """One scheduling pass. A full pass looks at every pending job. An incremental pass
        (only submissions since the last pass) looks at the new jobs alone: nothing was freed
        meanwhile, so the jobs that waited before still cannot run; a full pass follows
        within ``resync_interval`` to refresh their reasons."""
        with self.sessions.begin() as session:
            query = select(JobRow.seq, JobRow.id, JobRow.queue, JobRow.priority, JobRow.reason,
                           JobRow.reason_code).where(JobRow.state == JobState.PENDING)
            if not full:
                query = query.where(JobRow.seq > self._seen_seq)
            pending = session.execute(query).all()
            if not pending:
                if full:
                    self._roles_cache.clear()
                return
            self._seen_seq = max(self._seen_seq, max(row.seq for row in pending))
            live = session.scalars(select(ReplicaRow).where(
                ReplicaRow.state.in_(tuple(LIVE_REPLICA_STATES)))).all()
            holders = {r.job_id for r in live}
            jobs_by_id = {j.id: j for j in session.scalars(
                select(JobRow).where(JobRow.id.in_(holders)))} if holders else {}
            snapshot = build_snapshot(
                self.nodes(), queue_service.list_all(session), allocations(jobs_by_id, live),
                self._pending_jobs(session, pending))
            if full:
                self._refresh_policy(snapshot)
            result = schedule(snapshot, self.policy)
            self._explain(session, {row.id: row for row in pending}, result.waiting, now)
            for preempt in result.preempted:
                self._preempt(session, jobs_by_id[preempt.job_id], preempt, now)
            admitted_rows = {j.id: j for j in session.scalars(select(JobRow).where(
                JobRow.id.in_([a.job_id for a in result.admitted])))}
            admitted = [(admitted_rows[a.job_id], a) for a in result.admitted]
            if admitted:
                nodes = self._node_index()
                ports_in_use = self.launcher.ports_in_use(session)
            for job, admit in admitted:
                self.launcher.admit(session, job, admit, now, policy=self.policy.name,
                                    nodes=nodes, ports_in_use=ports_in_use)
        # Launch after the admission is committed: a crash in between leaves ADMITTED rows
        # that ``recover`` launches, never a process the store does not know about.
        if admitted:
            with self.sessions.begin() as session:
                for job, _ in admitted:
                    self.launcher.launch(session, session.merge(job), self.clock(), nodes=nodes)

    def _refresh_policy(self, snapshot: Snapshot) -> None:
        """Look-ahead policies place against the workload the platform actually serves:
        once enough replicas run or wait, their shapes replace the built-in generic mix."""
        replicas = sum(len(a.placements) for a in snapshot.running) + sum(
            job.replica_count for job in snapshot.pending)
        if replicas >= WORKLOAD_MIN_REPLICAS:
            self.policy = make_policy(self.options.placement_policy,
                                      workload=Workload.from_snapshot(snapshot))

    def _pending_jobs(self, session: Session, pending: Sequence[Any]) -> list[PendingJob]:
        """Scheduler view of the pending rows; a job's parsed spec is cached while it waits."""
        missing = [row.id for row in pending if row.id not in self._roles_cache]
        for job_id, spec in (session.execute(select(JobRow.id, JobRow.spec).where(
                JobRow.id.in_(missing))).all() if missing else ()):
            parsed = JobSpec.model_validate_json(spec)
            self._roles_cache[job_id] = (role_requests(parsed), parsed.topology)
        if len(self._roles_cache) > 2 * len(pending) + 1000:
            keep = {row.id for row in pending}
            self._roles_cache = {k: v for k, v in self._roles_cache.items() if k in keep}
        return [PendingJob(job_id=row.id, queue=row.queue, priority=row.priority, seq=row.seq,
                           roles=self._roles_cache[row.id][0],
                           topology=self._roles_cache[row.id][1]) for row in pending]

    @staticmethod
    def _explain(session: Session, rows: dict[str, Any], waits: Sequence[Wait],
                 now: float) -> None:
        """Store each waiting job's reason; an event only when the kind of reason changes."""
        changes, events = [], []
        for wait in waits:
            row = rows[wait.job_id]
            if row.reason == wait.reason:
                continue
            if row.reason_code != wait.code:
                events.append({"job_id": wait.job_id, "time": now, "type": "Pending",
                               "message": wait.reason})
            changes.append({"seq": row.seq, "reason": wait.reason, "reason_code": str(wait.code),
                            "updated_at": now})
        if changes:
            session.execute(update(JobRow), changes)
        if events:
            session.execute(insert(EventRow), events)

    def _preempt(self, session: Session, victim: JobRow, preempt: Preempt, now: float) -> None:
        victim.state = JobState.PREEMPTED
        victim.reason = preempt.reason
        victim.updated_at = now
        self._begin_stop(victim, "preempt", preempt.reason)
        job_service.add_event(session, victim.id, "Preempted", preempt.reason, now)
        self._dirty = True


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
