"""The endpoint controller: keeps every endpoint's replicas, the router's table and the
autoscaler in step. Level-triggered, one thread, every ``period`` seconds:

1. read the endpoints, their replica jobs (label ``aip.io/endpoint``) and the router's stats;
2. probe replicas that run but were not ready yet (``/v2/health/ready``);
3. ask the autoscaler (``aip.serving.autoscaler``) how many replicas the load wants;
4. plan (``aip.serving.plan``): start replica jobs, drain, stop — a rolling update drains an
   old replica only when a new one is ready;
5. push the routing table to the router when it changed.

Replicas are ordinary jobs, so the scheduler places them like any job (GPU shares included),
the reconciler restarts them, and a control-plane restart loses none. The router is a child
process (``python -m aip.serving.router``) started with the first endpoint.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from aip.control import endpoints as endpoint_service
from aip.control import jobs as job_service
from aip.control.states import FINAL_STATES, JobState, ReplicaState
from aip.processes import stop_process
from aip.scheduler import Node
from aip.serving.autoscaler import AutoscalePolicy, Observation, ScaleState, decide
from aip.serving.plan import ReplicaView, VersionPlan, plan_replicas
from aip.spec import JobSpec
from aip.spec.endpoint import EndpointSpec
from aip.store.endpoint_tables import EndpointRow
from aip.store.tables import JobRow, ReplicaRow

log = logging.getLogger("aip.endpoints")

LIVE_JOB_STATES = tuple(s for s in JobState if s not in FINAL_STATES)


@dataclass
class RouterProcess:
    """The gateway child process."""

    port: int
    host: str
    token_file: Path
    log_file: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    def ensure(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        with open(self.log_file, "ab") as log_out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "aip.serving.router", "--host", self.host,
                 "--port", str(self.port), "--admin-token-file", str(self.token_file)],
                stdout=log_out, stderr=subprocess.STDOUT, start_new_session=True)
        log.info("router started on %s (pid %d)", self.url, self.process.pid)

    def stop(self) -> None:
        stop_process(self.process)


@dataclass
class _EndpointMemory:
    scale: ScaleState = field(default_factory=ScaleState)
    last_requests: int | None = None
    last_time: float | None = None


@dataclass(frozen=True)
class ReplicaJob:
    job_id: str
    version: str
    state: str  # the job's
    url: str | None  # where it listens, once running


class EndpointController:
    def __init__(self, sessions: sessionmaker[Session], nodes: Callable[[], Sequence[Node]],
                 router: RouterProcess, admin_token: Callable[[], str], *,
                 replica_command: Callable[[EndpointRow, str, dict[str, Any]], list[str]],
                 wake_scheduler: Callable[[], None], period: float = 0.5,
                 clock: Callable[[], float] = time.time) -> None:
        self.sessions = sessions
        self.nodes = nodes
        self.router = router
        self.admin_token = admin_token
        self.replica_command = replica_command
        self.wake_scheduler = wake_scheduler
        self.period = period
        self.clock = clock
        self.ready: set[str] = set()  # replica jobs that answered ready
        self.draining: set[str] = set()
        self.memory: dict[str, _EndpointMemory] = {}
        self._table: str | None = None
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=1.0)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aip-endpoints", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.router.stop()
        self._http.close()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self.reconcile_once()
            except Exception:  # keep going; the next pass starts from the store again
                log.exception("endpoint pass failed")
            self._wake.wait(self.period)
            self._wake.clear()

    # -- one pass -----------------------------------------------------------------------

    def reconcile_once(self) -> None:
        with self.sessions() as session:
            rows = endpoint_service.list_all(session)
        if not rows and self.router.process is None:
            return
        self.router.ensure()
        stats = self._router_stats()
        now = self.clock()
        table = []
        changed = False
        jobs_of = {row.name: self.replica_jobs(row.name) for row in rows}
        live = {job.job_id for jobs in jobs_of.values() for job in jobs}
        self.ready &= live
        self.draining &= live
        for row in rows:
            jobs = jobs_of[row.name]
            if row.state == endpoint_service.DELETING:
                changed |= self._delete(row, jobs, now)
                continue
            self._probe(jobs)
            entry, started = self._reconcile_endpoint(row, jobs, stats.get(row.name, {}), now)
            table.append(entry)
            changed |= started
        if changed:
            self.wake_scheduler()
        self._push({"version": str(now), "endpoints": table})

    def _reconcile_endpoint(self, row: EndpointRow, jobs: list[ReplicaJob],
                            stats: dict[str, Any], now: float) -> tuple[dict[str, Any], bool]:
        spec = endpoint_service.spec_of(row)
        versions: dict[str, dict[str, Any]] = json.loads(row.versions)
        memory = self.memory.setdefault(row.name, _EndpointMemory())
        views = [ReplicaView(j.job_id, j.version, self.view_state(j),
                             int(stats.get("replicas", {}).get(j.job_id, {}).get(
                                 "outstanding", 0))) for j in jobs]
        serving = sum(1 for v in views if v.state != "draining")
        decision = decide(_policy(spec), memory.scale, Observation(
            time=now, replicas=serving, in_flight=float(stats.get("in_flight", 0)),
            qps=self._qps(memory, stats, now)))
        memory.scale = decision.state
        plan = plan_replicas([VersionPlan(label, v["weight"], v["shadow_percent"] > 0)
                              for label, v in versions.items()], decision.replicas, views)
        with self.sessions.begin() as session:
            endpoint = session.get(EndpointRow, row.name)
            if endpoint is not None and (endpoint.replicas != decision.replicas
                                         or endpoint.reason != decision.reason):
                endpoint.replicas, endpoint.reason = decision.replicas, decision.reason
                endpoint.updated_at = now
            for label in plan.start:
                self._start_replica(session, row, label, versions[label], now)
            for job_id in plan.stop:
                self.draining.discard(job_id)
                self._cancel(session, job_id, now)
        self.draining.update(plan.drain)
        by_version: dict[str, list[dict[str, Any]]] = {label: [] for label in versions}
        for job in jobs:
            if job.url and job.job_id in self.ready and job.job_id not in plan.stop:
                state = "draining" if job.job_id in self.draining else "ready"
                by_version.setdefault(job.version, []).append(
                    {"id": job.job_id, "url": job.url, "state": state})
        entry = {
            "name": row.name, "token_hashes": json.loads(row.token_hashes), "retry": spec.retry,
            "max_body_bytes": spec.max_body, "cold_start_timeout": spec.cold_start_timeout,
            "max_in_flight_per_replica": spec.max_in_flight_per_replica,
            "versions": [{"name": label, "weight": versions.get(label, {}).get("weight", 0),
                          "shadow_percent": versions.get(label, {}).get("shadow_percent", 0),
                          "replicas": replicas}
                         for label, replicas in by_version.items()]}
        return entry, bool(plan.start or plan.stop)

    # -- replicas -----------------------------------------------------------------------

    def replica_jobs(self, endpoint: str) -> list[ReplicaJob]:
        nodes = {node.name: node for node in self.nodes()}
        with self.sessions() as session:
            rows = session.scalars(select(JobRow).where(
                JobRow.state.in_(LIVE_JOB_STATES),
                JobRow.labels.contains(f'"{endpoint_service.ENDPOINT_LABEL}": "{endpoint}"')))
            result = []
            for job in rows:
                labels = json.loads(job.labels)
                if labels.get(endpoint_service.ENDPOINT_LABEL) != endpoint:
                    continue
                url = None
                if job.state == JobState.RUNNING:
                    replicas = job_service.replicas_of(session, job)
                    live = [r for r in replicas if r.state == ReplicaState.RUNNING]
                    if live:
                        url = _url(live[0], nodes)
                result.append(ReplicaJob(job.id, labels.get(endpoint_service.VERSION_LABEL, ""),
                                         job.state, url))
        return result

    def view_state(self, job: ReplicaJob) -> Any:
        """starting, ready or draining: as the router sees the replica."""
        if job.job_id in self.draining:
            return "draining"
        return "ready" if job.job_id in self.ready and job.url else "starting"

    def _probe(self, jobs: list[ReplicaJob]) -> None:
        for job in jobs:
            if job.url is None:
                self.ready.discard(job.job_id)
            elif job.job_id not in self.ready:
                try:
                    if self._http.get(job.url + "/v2/health/ready",
                                      timeout=0.5).status_code == 200:
                        self.ready.add(job.job_id)
                except httpx.HTTPError:
                    pass

    def _start_replica(self, session: Session, row: EndpointRow, label: str,
                       version: dict[str, Any], now: float) -> None:
        spec = endpoint_service.spec_of(row)
        job = JobSpec.model_validate({
            "name": _job_name(row.name, label), "queue": spec.queue, "priority": spec.priority,
            "max_restarts": 3,
            "labels": {endpoint_service.ENDPOINT_LABEL: row.name,
                       endpoint_service.VERSION_LABEL: label,
                       "aip.io/endpoint-revision": str(row.revision)},
            "replicas": {"replica": {"command": self.replica_command(row, label, version),
                                     "resources": spec.resources.model_dump(
                                         exclude_defaults=True)}}})
        created = job_service.submit(session, job, self.nodes(), now)
        log.info("endpoint %s: started replica %s of %s", row.name, created.id, label)

    def _cancel(self, session: Session, job_id: str, now: float) -> None:
        job = session.scalar(select(JobRow).where(JobRow.id == job_id))
        if job is not None and job.state not in FINAL_STATES:
            job_service.request_cancel(session, job_id, now)
            self.wake_scheduler()

    def _delete(self, row: EndpointRow, jobs: list[ReplicaJob], now: float) -> bool:
        with self.sessions.begin() as session:
            for job in jobs:
                self._cancel(session, job.job_id, now)
            if not jobs:
                endpoint = session.get(EndpointRow, row.name)
                if endpoint is not None:
                    session.delete(endpoint)
                self.memory.pop(row.name, None)
        return bool(jobs)

    # -- the router ---------------------------------------------------------------------

    def _router_stats(self) -> dict[str, Any]:
        try:
            response = self._http.get(self.router.url + "/-/stats", headers=self._admin())
            if response.status_code == 200:
                return dict(response.json().get("endpoints", {}))
        except httpx.HTTPError:
            pass
        self._table = None  # the router may have restarted: push the table again
        return {}

    def _push(self, table: dict[str, Any]) -> None:
        content = json.dumps(table["endpoints"], sort_keys=True)
        if content == self._table:
            return
        try:
            response = self._http.put(self.router.url + "/-/routes", json=table,
                                      headers=self._admin())
            if response.status_code == 200:
                self._table = content
        except httpx.HTTPError:
            pass

    def _admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token()}"}

    @staticmethod
    def _qps(memory: _EndpointMemory, stats: dict[str, Any], now: float) -> float:
        requests = int(stats.get("requests", 0))
        qps = 0.0
        if memory.last_requests is not None and memory.last_time is not None and (
                now > memory.last_time):
            qps = max(0, requests - memory.last_requests) / (now - memory.last_time)
        memory.last_requests, memory.last_time = requests, now
        return qps


def _policy(spec: EndpointSpec) -> AutoscalePolicy:
    in_flight, qps = spec.autoscaling.target()
    return AutoscalePolicy(min_replicas=spec.min_replicas, max_replicas=spec.max_replicas,
                           target_in_flight=in_flight, target_qps=qps,
                           scale_in_cooldown=spec.autoscaling.scale_in_cooldown,
                           scale_to_zero_after=spec.autoscaling.scale_to_zero_after)


def _url(replica: ReplicaRow, nodes: dict[str, Node]) -> str | None:
    ports = json.loads(replica.ports or "[]")
    if not ports:
        return None
    node = nodes.get(replica.node)
    return f"http://{node.address if node else '127.0.0.1'}:{ports[0]}"


def _job_name(endpoint: str, label: str) -> str:
    return f"{endpoint}-{label}"[:56].rstrip("-._")
