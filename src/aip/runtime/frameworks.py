"""What each framework needs to form its cluster, computed from the placed gang: a pure function.

    runtime = replica_runtime(spec, members, me, runtime_dir="/var/aip/jobs/j1/runtime",
                              python=sys.executable)
    env = {**job_env, **runtime.env, **aip_env}
    argv = runtime.launch_argv(sys.executable)   # the launcher when needed, else the command

A ``Member`` is one replica as placed: role, index, global rank (roles in spec order, then
index), where it is reached and the ports the platform reserved for it on its node
(``PORTS_PER_REPLICA`` per framework; ``ports[0]`` is the one each framework listens on).

Variables per framework (all values strings):

- ``none``: nothing; the command is unchanged.
- ``pytorch``: ``MASTER_ADDR``/``MASTER_PORT`` (rank 0), ``WORLD_SIZE``, ``RANK``,
  ``LOCAL_RANK`` ("0"), ``LOCAL_WORLD_SIZE`` ("1"), ``NODE_RANK`` and ``AIP_TORCH_BACKEND``
  ("nccl" with GPUs, else "gloo"), so a script needs only::

      dist.init_process_group(backend=os.environ["AIP_TORCH_BACKEND"])   # env:// by default

  With ``nproc_per_replica > 1`` the replica runs torchrun (``python -m torch.distributed.run``
  with ``--nnodes/--node_rank/--nproc_per_node/--master_addr/--master_port``), which sets
  ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ... per process; AIP then sets only ``NODE_RANK``,
  ``AIP_TORCH_BACKEND`` and ``AIP_NPROC_PER_REPLICA``.
- ``tensorflow``: ``TF_CONFIG`` = {"cluster": {chief/worker/ps: ["addr:port", ...]},
  "task": {"type", "index"}}; an evaluator is left out of the cluster but gets its own task.
  Fits MultiWorkerMirroredStrategy (workers, or chief + workers) and ParameterServerStrategy
  (chief + worker + ps).
- ``jax``: ``JAX_COORDINATOR_ADDRESS`` (read by ``jax.distributed.initialize`` itself, also as
  ``AIP_JAX_COORDINATOR_ADDRESS``), ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``. jax reads no
  variable for the other two, so a script calls::

      jax.distributed.initialize(os.environ["JAX_COORDINATOR_ADDRESS"],
                                 int(os.environ["JAX_NUM_PROCESSES"]),
                                 int(os.environ["JAX_PROCESS_ID"]))

- ``mindspore`` (dynamic cluster): ``MS_ROLE`` (MS_SCHED, MS_WORKER, MS_PSERVER),
  ``MS_SCHED_HOST``, ``MS_SCHED_PORT``, ``MS_WORKER_NUM``, ``MS_SERVER_NUM``, and ``MS_NODE_ID``
  (the worker index) for workers.
- ``mxnet`` (ps-lite): ``DMLC_ROLE`` (scheduler, server, worker), ``DMLC_PS_ROOT_URI``,
  ``DMLC_PS_ROOT_PORT``, ``DMLC_NUM_SERVER``, ``DMLC_NUM_WORKER``, ``DMLC_NODE_HOST``.

  Both need one scheduler process. A ``scheduler`` role runs it; without one, the rank-0
  replica also runs the same command as a scheduler *sidecar* (the launcher starts it with
  ``MS_ROLE=MS_SCHED`` / ``DMLC_ROLE=scheduler``), listening on that replica's ``ports[0]``.
- ``mpi``: an OpenMPI ``hostfile`` (``addr slots=P`` in rank order, an address shared by
  several replicas listed once with their slots summed) and ``AIP_MPI_HOSTFILE``. The rank-0
  replica runs ``mpirun --hostfile H -np TOTAL --bind-to none ARGV`` (the launcher finds
  ``mpirun`` next to the interpreter, else on PATH, and writes ``mpi.done`` when it ends); the
  other replicas hold their resources until then. ``OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM)=1``.
  Across nodes, mpirun must be able to start processes there (ssh or a ``plm_rsh_agent``).

RDMA, for any framework but ``none``: a node advertises it by labels (``RDMA_DEVICES_LABEL``
"mlx5_0,mlx5_1", ``RDMA_INTERFACE_LABEL`` "ib0", optional ``RDMA_GID_INDEX_LABEL``); its
replicas then get ``NCCL_IB_HCA``, ``NCCL_SOCKET_IFNAME``, ``NCCL_IB_GID_INDEX`` and
``NCCL_IB_DISABLE=0``. ``TOPOLOGY_LABEL`` names the RDMA domain the scheduler keeps gangs in.

With a per-job ``environment`` the command keeps ``python`` as its interpreter and the
launcher swaps in the environment's interpreter once it is built.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from aip.runtime.launch import HOSTFILE, LaunchMode, LaunchPlan, is_python, wrap_command

if TYPE_CHECKING:
    from aip.spec.job import JobSpec

PORTS_PER_REPLICA: Final[dict[str, int]] = {
    "none": 1,
    "pytorch": 1,  # MASTER_PORT (rank 0)
    "tensorflow": 1,  # each member's gRPC server
    "jax": 1,  # coordinator (rank 0)
    "mindspore": 1,  # MS_SCHED_PORT (the scheduler's replica, or rank 0's sidecar)
    "mxnet": 1,  # DMLC_PS_ROOT_PORT (likewise)
    "mpi": 1,  # unused: OpenMPI picks its own ports
}
RDMA_DEVICES_LABEL: Final = "aip.io/rdma-devices"
RDMA_INTERFACE_LABEL: Final = "aip.io/rdma-interface"
RDMA_GID_INDEX_LABEL: Final = "aip.io/rdma-gid-index"
TOPOLOGY_LABEL: Final = "aip.io/rdma-domain"

TF_CLUSTER_ROLES: Final = ("chief", "worker", "ps")
MINDSPORE_ROLES: Final = {"scheduler": "MS_SCHED", "worker": "MS_WORKER", "server": "MS_PSERVER"}
SCHEDULER_ROLE: Final = "scheduler"


@dataclass(frozen=True)
class Member:
    """One replica of the gang, as placed."""

    role: str
    index: int  # within its role
    rank: int  # global: roles in spec order, then index
    node: str
    address: str  # host or IP where this replica is reached
    ports: tuple[int, ...]  # reserved for this replica on its node
    labels: Mapping[str, str] = field(default_factory=dict)  # its node's labels
    gpus: int = 0  # GPUs visible to this replica

    @property
    def endpoint(self) -> str:
        """"addr:port" of this member's first reserved port."""
        return f"{_host(self.address)}:{self.ports[0]}"


@dataclass(frozen=True)
class Runtime:
    """What one replica runs with. ``plan`` is set exactly when ``needs_launcher`` is."""

    env: dict[str, str]  # merged over the job's env by the caller
    command: list[str]  # argv to run instead of the user's command (may equal it)
    files: dict[str, str]  # path relative to the runtime dir -> content, written at launch
    needs_launcher: bool  # command must run under `python -m aip.runtime.launch`
    plan: LaunchPlan | None = None

    def launch_argv(self, launcher_python: str) -> list[str]:
        """The argv to start: the command, wrapped in the launcher (run by
        ``launcher_python``, which must import aip) when it needs one."""
        if self.plan is None:
            return list(self.command)
        return wrap_command(self.plan, self.command, launcher_python)


def replica_runtime(spec: JobSpec, members: Sequence[Member], me: Member, *, runtime_dir: str,
                    python: str, environment_cache_dir: str | None = None) -> Runtime:
    """The framework wiring of replica ``me`` in the gang ``members``.

    ``runtime_dir`` is an absolute directory for files such as the MPI hostfile (and the MPI
    done-marker, tagged with ``$AIP_ATTEMPT``); ``python`` runs the user program, and ``python`` or
    ``python3`` as the first word of the user's command means it. ``environment_cache_dir``
    is where the node keeps built environments (None: the launcher's default, which it reads
    from ``AIP_ENV_CACHE``/``AIP_HOME`` in the replica's own environment). Raises
    ``ValueError`` naming the field when the gang does not fit the spec or the framework."""
    _check_gang(spec, members, me)
    interpreter = "python" if spec.environment is not None else python
    command = _user_command(spec.replicas[me.role].command, interpreter)
    wiring = _FRAMEWORKS[spec.framework](spec, members, me, command, runtime_dir, interpreter)
    env = dict(wiring.env)
    if spec.framework != "none":
        env.update(rdma_environment(me.labels))
    needs_launcher = wiring.mode != "exec" or wiring.sidecar_env is not None \
        or spec.environment is not None or bool(wiring.files)
    plan = LaunchPlan(
        mode=wiring.mode, runtime_dir=runtime_dir, files=dict(wiring.files),
        environment=spec.environment.model_dump() if spec.environment is not None else None,
        cache_dir=environment_cache_dir if spec.environment is not None else None,
        sidecar_env=wiring.sidecar_env, python=interpreter) if needs_launcher else None
    return Runtime(env=env, command=wiring.command, files=dict(wiring.files),
                   needs_launcher=needs_launcher, plan=plan)


def rdma_environment(labels: Mapping[str, str]) -> dict[str, str]:
    """NCCL's InfiniBand/RoCE settings from a node's RDMA labels; {} without them."""
    devices = labels.get(RDMA_DEVICES_LABEL, "").strip()
    if not devices:
        return {}
    env = {"NCCL_IB_HCA": devices, "NCCL_IB_DISABLE": "0"}
    interface = labels.get(RDMA_INTERFACE_LABEL, "").strip()
    if interface:
        env["NCCL_SOCKET_IFNAME"] = interface
    gid_index = labels.get(RDMA_GID_INDEX_LABEL, "").strip()
    if gid_index:
        env["NCCL_IB_GID_INDEX"] = gid_index
    return env


def hostfile(members: Sequence[Member], slots_per_replica: int) -> str:
    """OpenMPI hostfile: one ``addr slots=N`` line per address, in rank order."""
    slots: dict[str, int] = {}
    for member in sorted(members, key=lambda m: m.rank):
        slots[member.address] = slots.get(member.address, 0) + slots_per_replica
    return "".join(f"{address} slots={count}\n" for address, count in slots.items())


# -- per framework ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Wiring:
    env: dict[str, str]
    command: list[str]
    files: dict[str, str] = field(default_factory=dict)
    mode: LaunchMode = "exec"
    sidecar_env: dict[str, str] | None = None


def _none(spec: JobSpec, members: Sequence[Member], me: Member, command: list[str],
          runtime_dir: str, python: str) -> _Wiring:
    return _Wiring({}, command)


def _pytorch(spec: JobSpec, members: Sequence[Member], me: Member, command: list[str],
             runtime_dir: str, python: str) -> _Wiring:
    master = _rank_zero(members)
    backend = "nccl" if me.gpus else "gloo"
    if spec.nproc_per_replica == 1:
        return _Wiring({
            "MASTER_ADDR": master.address, "MASTER_PORT": str(master.ports[0]),
            "WORLD_SIZE": str(len(members)), "RANK": str(me.rank), "LOCAL_RANK": "0",
            "LOCAL_WORLD_SIZE": "1", "NODE_RANK": str(me.rank), "AIP_TORCH_BACKEND": backend,
        }, command)
    torchrun = [python, "-m", "torch.distributed.run", "--nnodes", str(len(members)),
                "--node_rank", str(me.rank), "--nproc_per_node", str(spec.nproc_per_replica),
                "--master_addr", master.address, "--master_port", str(master.ports[0])]
    if is_python(command[0]):
        torchrun += command[1:]  # torchrun runs the script with its own interpreter
    else:
        torchrun += ["--no-python", *command]
    return _Wiring({"NODE_RANK": str(me.rank), "AIP_TORCH_BACKEND": backend,
                    "AIP_NPROC_PER_REPLICA": str(spec.nproc_per_replica)},
                   torchrun, mode="torchrun")


def _tensorflow(spec: JobSpec, members: Sequence[Member], me: Member, command: list[str],
                runtime_dir: str, python: str) -> _Wiring:
    cluster: dict[str, list[str]] = {}
    for role in spec.replicas:
        if role in TF_CLUSTER_ROLES:
            cluster[role] = [m.endpoint for m in _in_role(members, role)]
    config = {"cluster": cluster, "task": {"type": me.role, "index": me.index}}
    return _Wiring({"TF_CONFIG": json.dumps(config, separators=(",", ":"))}, command)


def _jax(spec: JobSpec, members: Sequence[Member], me: Member, command: list[str],
         runtime_dir: str, python: str) -> _Wiring:
    coordinator = _rank_zero(members).endpoint
    return _Wiring({
        "JAX_COORDINATOR_ADDRESS": coordinator, "AIP_JAX_COORDINATOR_ADDRESS": coordinator,
        "JAX_NUM_PROCESSES": str(len(members)), "JAX_PROCESS_ID": str(me.rank),
    }, command)


def _mindspore(spec: JobSpec, members: Sequence[Member], me: Member, command: list[str],
               runtime_dir: str, python: str) -> _Wiring:
    scheduler = _scheduler(spec, members)
    env = {
        "MS_ROLE": MINDSPORE_ROLES[me.role],
        "MS_SCHED_HOST": scheduler.address, "MS_SCHED_PORT": str(scheduler.ports[0]),
        "MS_WORKER_NUM": str(_count(spec, "worker")), "MS_SERVER_NUM": str(_count(spec, "server")),
    }
    if me.role == "worker":
        env["MS_NODE_ID"] = str(me.index)
    sidecar = {"MS_ROLE": "MS_SCHED"} if _runs_scheduler_sidecar(spec, me) else None
    return _Wiring(env, command, sidecar_env=sidecar)


def _mxnet(spec: JobSpec, members: Sequence[Member], me: Member, command: list[str],
           runtime_dir: str, python: str) -> _Wiring:
    scheduler = _scheduler(spec, members)
    env = {
        "DMLC_ROLE": me.role,
        "DMLC_PS_ROOT_URI": scheduler.address, "DMLC_PS_ROOT_PORT": str(scheduler.ports[0]),
        "DMLC_NUM_SERVER": str(_count(spec, "server")),
        "DMLC_NUM_WORKER": str(_count(spec, "worker")), "DMLC_NODE_HOST": me.address,
    }
    sidecar = {"DMLC_ROLE": "scheduler"} if _runs_scheduler_sidecar(spec, me) else None
    return _Wiring(env, command, sidecar_env=sidecar)


def _mpi(spec: JobSpec, members: Sequence[Member], me: Member, command: list[str],
         runtime_dir: str, python: str) -> _Wiring:
    hostfile_path = os.path.join(runtime_dir, HOSTFILE)
    env = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "AIP_MPI_HOSTFILE": hostfile_path}
    files = {HOSTFILE: hostfile(members, spec.nproc_per_replica)}
    if me.rank != 0:
        return _Wiring(env, command, files, mode="mpi-wait")
    total_slots = len(members) * spec.nproc_per_replica
    mpirun = ["mpirun", "--hostfile", hostfile_path, "-np", str(total_slots),
              "--bind-to", "none", *command]  # replicas share hosts: no pinning to cores
    return _Wiring(env, mpirun, files, mode="mpirun")


_FRAMEWORKS = {
    "none": _none, "pytorch": _pytorch, "tensorflow": _tensorflow, "jax": _jax,
    "mindspore": _mindspore, "mxnet": _mxnet, "mpi": _mpi,
}


# -- helpers ---------------------------------------------------------------------------------

def _check_gang(spec: JobSpec, members: Sequence[Member], me: Member) -> None:
    ranks = sorted(member.rank for member in members)
    if ranks != list(range(spec.total_replicas)):
        raise ValueError(f"members: ranks must be 0..{spec.total_replicas - 1}, one per replica "
                         f"of the job, got {ranks}")
    if me not in members:
        raise ValueError(f"me: replica {me.role}[{me.index}] (rank {me.rank}) is not one of "
                         "the members")
    needed = PORTS_PER_REPLICA[spec.framework]
    seen: set[tuple[str, int]] = set()
    for position, member in enumerate(members):
        group = spec.replicas.get(member.role)
        if group is None:
            raise ValueError(f"members[{position}].role: {member.role!r} is not a role of the "
                             f"job (roles: {', '.join(spec.replicas)})")
        if not 0 <= member.index < group.count:
            raise ValueError(f"members[{position}].index: {member.index} is outside role "
                             f"{member.role!r} of {group.count} replicas")
        if (member.role, member.index) in seen:
            raise ValueError(f"members[{position}]: {member.role}[{member.index}] appears twice")
        seen.add((member.role, member.index))
        if len(member.ports) < needed:
            raise ValueError(f"members[{position}].ports: framework {spec.framework} needs "
                             f"{needed} port(s) per replica, {member.role}[{member.index}] "
                             f"has {len(member.ports)}")
        if not member.address:
            raise ValueError(f"members[{position}].address: must not be empty")


def _user_command(command: Sequence[str], python: str) -> list[str]:
    if is_python(command[0]):
        return [python, *command[1:]]
    return list(command)


def _rank_zero(members: Sequence[Member]) -> Member:
    return next(member for member in members if member.rank == 0)


def _in_role(members: Sequence[Member], role: str) -> list[Member]:
    return sorted((m for m in members if m.role == role), key=lambda m: m.index)


def _count(spec: JobSpec, role: str) -> int:
    group = spec.replicas.get(role)
    return group.count if group is not None else 0


def _scheduler(spec: JobSpec, members: Sequence[Member]) -> Member:
    """The member that runs the parameter-server scheduler: the scheduler role's, else rank 0."""
    if SCHEDULER_ROLE in spec.replicas:
        if spec.replicas[SCHEDULER_ROLE].count != 1:
            raise ValueError(f"replicas.{SCHEDULER_ROLE}.count: {spec.framework} runs exactly "
                             f"one scheduler, not {spec.replicas[SCHEDULER_ROLE].count}")
        return _in_role(members, SCHEDULER_ROLE)[0]
    return _rank_zero(members)


def _runs_scheduler_sidecar(spec: JobSpec, me: Member) -> bool:
    return SCHEDULER_ROLE not in spec.replicas and me.rank == 0


def _host(address: str) -> str:
    """IPv6 literals need brackets before ":port"."""
    return f"[{address}]" if ":" in address and not address.startswith("[") else address
