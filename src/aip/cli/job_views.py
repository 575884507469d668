"""How jobs look in the terminal: the list table, the detail view, events, the final line."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aip.cli.output import (
    accelerator_assignment,
    add_row,
    age,
    elapsed,
    gpu_assignment,
    human_bytes,
    new_grid,
    new_table,
    number,
    styled_state,
)

Job = dict[str, Any]


def jobs_table(jobs: list[Job], *, wide: bool = False, now: datetime | None = None) -> Any:
    """ID, name, queue, state, age, duration, reason; ``wide`` adds priority and requests."""
    columns = ["ID", "NAME", "QUEUE", "STATE", "AGE", "DURATION", "REASON"]
    if wide:
        columns[3:3] = ["PRI", "REPLICAS", "REQUEST"]
    table = new_table(*columns, wrap=("REQUEST", "REASON"))
    for job in jobs:
        cells: list[Any] = [job["id"], job.get("name", ""), job.get("queue", "")]
        if wide:
            cells += [str(job.get("priority", 0)), str(replica_count(job)), request_summary(job)]
        cells += [
            styled_state(job["state"]), age(job.get("created_at"), now),
            elapsed(job.get("started_at"), job.get("finished_at"), now), outcome(job),
        ]
        add_row(table, *cells)
    return table


def job_detail(job: Job, now: datetime | None = None) -> Any:
    """A kubectl-describe-like view: the job's facts, then one row per replica."""
    from rich.console import Group
    from rich.text import Text

    facts = new_grid()
    state = styled_state(job["state"])
    if job.get("reason"):
        state.append(f"  {job['reason']}", style="")
    attempt = job.get("attempt", 0)
    retries = f"attempt {attempt}" if attempt else "not started"
    retries += f", {job.get('restarts') or 0} of {job.get('max_retries') or 0} restarts used"
    if job.get("preemptions"):
        retries += f", preempted {job['preemptions']}x"
    spec = job.get("spec") or {}
    rows: list[tuple[str, Any]] = [
        ("ID", job["id"]),
        ("Name", job.get("name", "")),
        ("Queue", f"{job.get('queue', '')} (priority {job.get('priority', 0)})"),
        ("State", state),
        ("Attempts", retries),
        *_distributed_facts(spec, job.get("domains")),
        ("Created", _time_and_age(job.get("created_at"), now)),
        ("Started", _time_and_age(job.get("started_at"), now)),
        ("Finished", _time_and_age(job.get("finished_at"), now)),
        ("Duration", elapsed(job.get("started_at"), job.get("finished_at"), now)),
        ("Exit code", number(job.get("exit_code"))),
        ("Output", job.get("output_dir") or "-"),
    ]
    for role, group in ((job.get("spec") or {}).get("replicas") or {}).items():
        command = " ".join(group.get("command") or [])
        rows.append((f"Role {role}", f"{group.get('count', 1)} x ({resources_summary(group)}): "
                                      f"{command}"))
    for label, value in rows:
        add_row(facts, label, value)
    replicas = job.get("replicas") or []
    if not replicas:
        return facts
    table = new_table("REPLICA", "STATE", "NODE", "GPUS", "ACCELERATORS", "PID", "EXIT",
                      "DURATION", wrap=("ACCELERATORS",))
    for replica in replicas:
        add_row(
            table, replica["name"], styled_state(replica.get("state") or "-"),
            replica.get("node") or "-",
            gpu_assignment(replica.get("gpus"), replica.get("gpu_share")),
            accelerator_assignment(replica.get("accelerators")),
            number(replica.get("pid")), number(replica.get("exit_code")),
            elapsed(replica.get("started_at"), replica.get("finished_at"), now),
        )
    return Group(facts, Text(""), table)


def _distributed_facts(spec: dict[str, Any], domains: int | None) -> list[tuple[str, str]]:
    """Framework, processes per replica, restart policy and topology, where set."""
    facts = []
    framework = spec.get("framework") or "none"
    if framework != "none":
        nproc = spec.get("nproc_per_replica") or 1
        facts.append(("Framework", framework + (f" ({nproc} processes per replica)"
                                                * (nproc > 1))))
    if spec.get("restart_policy", "gang") != "gang":
        facts.append(("Restarts", f"{spec['restart_policy']} by replica"))
    topology = spec.get("topology") or "none"
    if topology != "none" or domains:
        spans = "-" if domains is None else f"spans {domains} RDMA domain{'s' * (domains != 1)}"
        facts.append(("Topology", f"{topology}, {spans}" if topology != "none" else spans))
    if spec.get("environment"):
        env = spec["environment"]
        facts.append(("Environment", ", ".join(env.get("requirements") or [])
                      or env.get("python") or "-"))
    return facts


def events_table(events: list[dict[str, Any]], now: datetime | None = None) -> Any:
    table = new_table("AGE", "TYPE", "MESSAGE", wrap=("MESSAGE",))
    for event in events:
        add_row(table, age(event.get("time"), now), event.get("type", ""),
                event.get("message", ""))
    return table


def final_line(job: Job) -> tuple[str, str]:
    """The one-line outcome printed after following a job, and its style."""
    state = job["state"]
    text = f"job {job['id']} {state}"
    if job.get("exit_code") is not None and state != "SUCCEEDED":
        text += f" (exit code {job['exit_code']})"
    if job.get("reason") and state != "SUCCEEDED":
        text += f": {job['reason']}"
    return text, "green" if state == "SUCCEEDED" else "red"


def replica_count(job: Job) -> int:
    groups = ((job.get("spec") or {}).get("replicas") or {}).values()
    return sum(int(group.get("count", 1)) for group in groups) or len(job.get("replicas") or [])


def request_summary(job: Job) -> str:
    """One replica's request per role: "2 cpu, 4Gi, 1 gpu T4" (roles joined by "; ")."""
    groups = (job.get("spec") or {}).get("replicas") or {}
    parts = [resources_summary(group) for group in groups.values()]
    if len(groups) > 1:
        parts = [f"{role}: {part}" for role, part in zip(groups, parts, strict=True)]
    return "; ".join(parts) or "-"


def resources_summary(group: dict[str, Any]) -> str:
    resources = group.get("resources") or {}
    parts = [f"{number(resources.get('cpu', 1))} cpu", human_bytes(resources.get("memory"))]
    if resources.get("gpu"):
        gpu = f"{number(resources['gpu'])} gpu"
        if resources.get("gpu_type"):
            gpu += " " + "|".join(resources["gpu_type"])
        parts.append(gpu)
    parts.extend(f"{kind}:{count}" for kind, count in
                 sorted((resources.get("accelerators") or {}).items()))
    return ", ".join(parts)


def outcome(job: Job) -> str:
    """The reason a job waits or failed, or its exit code once it finished."""
    if job.get("reason"):
        return str(job["reason"])
    if job.get("exit_code") not in (None, 0):
        return f"exit code {job['exit_code']}"
    return ""


def _time_and_age(value: str | None, now: datetime | None) -> str:
    if not value:
        return "-"
    return f"{value} ({age(value, now)} ago)"
