"""replica_runtime: the rendezvous each framework gets from a placed gang (pure, table-driven)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from aip.runtime.frameworks import (
    PORTS_PER_REPLICA,
    RDMA_DEVICES_LABEL,
    RDMA_GID_INDEX_LABEL,
    RDMA_INTERFACE_LABEL,
    Member,
    Runtime,
    hostfile,
    replica_runtime,
)
from aip.runtime.launch import LaunchPlan
from aip.spec.job import FRAMEWORKS, JobSpec

RUNTIME_DIR = "/var/aip/jobs/j1/runtime"
PY = "/opt/aip/bin/python"


@dataclass
class Gang:
    """A job and its placed members: one node per replica, 10.0.0.<rank>, port 2000 + rank."""

    spec: JobSpec
    members: list[Member]
    labels: Mapping[str, str] = field(default_factory=dict)

    def runtime(self, role: str, index: int = 0) -> Runtime:
        me = next(m for m in self.members if m.role == role and m.index == index)
        return replica_runtime(self.spec, self.members, me, runtime_dir=RUNTIME_DIR, python=PY)

    def env(self, role: str, index: int = 0) -> dict[str, str]:
        return self.runtime(role, index).env


def make_gang(framework: str, roles: Mapping[str, int] | None = None, *,
              command: list[str] | None = None, same_host: bool = False, gpus: int = 0,
              labels: Mapping[str, str] | None = None, **spec: Any) -> Gang:
    roles = roles or {"worker": 2}
    job = JobSpec.model_validate({
        "name": "train", "framework": framework, **spec,
        "replicas": {role: {"count": count, "command": command or ["python", "train.py", "--x"]}
                     for role, count in roles.items()}})
    members, rank = [], 0
    for role, count in roles.items():
        for index in range(count):
            address = "127.0.0.1" if same_host else f"10.0.0.{rank}"
            members.append(Member(role=role, index=index, rank=rank, node=f"node-{rank}",
                                  address=address, ports=(2000 + rank, 3000 + rank),
                                  labels=dict(labels or {}), gpus=gpus))
            rank += 1
    return Gang(job, members)


# -- every framework -------------------------------------------------------------------------

def test_every_framework_needs_at_least_one_port_and_no_more_than_two() -> None:
    assert set(PORTS_PER_REPLICA) == set(FRAMEWORKS)
    assert all(1 <= ports <= 2 for ports in PORTS_PER_REPLICA.values())


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_python_in_the_users_command_becomes_the_given_interpreter(framework: str) -> None:
    roles = {"mindspore": {"scheduler": 1, "worker": 2}, "mxnet": {"scheduler": 1, "server": 1,
             "worker": 1}}.get(framework, {"worker": 2})
    runtime = make_gang(framework, roles).runtime("worker")
    assert PY in runtime.command
    assert "train.py" in runtime.command


def test_framework_none_sets_nothing_and_keeps_the_command() -> None:
    runtime = make_gang("none", command=["bash", "run.sh"]).runtime("worker", 1)
    assert runtime == Runtime(env={}, command=["bash", "run.sh"], files={}, needs_launcher=False)
    assert runtime.launch_argv("/x/python") == ["bash", "run.sh"]


# -- pytorch ---------------------------------------------------------------------------------

def test_pytorch_gets_env_rendezvous_from_rank_zero() -> None:
    gang = make_gang("pytorch", {"master": 1, "worker": 2})

    assert gang.env("worker", 1) == {
        "MASTER_ADDR": "10.0.0.0", "MASTER_PORT": "2000", "WORLD_SIZE": "3", "RANK": "2",
        "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "NODE_RANK": "2",
        "AIP_TORCH_BACKEND": "gloo"}
    assert gang.runtime("worker", 1).command == [PY, "train.py", "--x"]
    assert not gang.runtime("worker", 1).needs_launcher


def test_pytorch_on_gpus_uses_nccl() -> None:
    assert make_gang("pytorch", gpus=1).env("worker")["AIP_TORCH_BACKEND"] == "nccl"


def test_pytorch_with_several_processes_per_replica_runs_torchrun() -> None:
    gang = make_gang("pytorch", {"worker": 3}, nproc_per_replica=4)
    runtime = gang.runtime("worker", 2)

    assert runtime.command == [
        PY, "-m", "torch.distributed.run", "--nnodes", "3", "--node_rank", "2",
        "--nproc_per_node", "4", "--master_addr", "10.0.0.0", "--master_port", "2000",
        "train.py", "--x"]
    assert runtime.env == {"NODE_RANK": "2", "AIP_TORCH_BACKEND": "gloo",
                           "AIP_NPROC_PER_REPLICA": "4"}  # torchrun sets RANK etc. per process
    assert runtime.needs_launcher
    assert runtime.plan is not None and runtime.plan.mode == "torchrun"


def test_torchrun_runs_a_program_that_is_not_python_with_no_python() -> None:
    runtime = make_gang("pytorch", nproc_per_replica=2, command=["./train.sh", "a"]).runtime(
        "worker")
    assert runtime.command[-4:] == ["2000", "--no-python", "./train.sh", "a"]


@pytest.mark.parametrize("program", ["python", "python3", "/usr/bin/python3.11"])
def test_torchrun_drops_any_spelling_of_python(program: str) -> None:
    runtime = make_gang("pytorch", nproc_per_replica=2, command=[program, "t.py"]).runtime(
        "worker")
    assert runtime.command[-1:] == ["t.py"] and "--no-python" not in runtime.command


# -- tensorflow ------------------------------------------------------------------------------

@pytest.mark.parametrize(("story", "roles", "me", "cluster"), [
    ("multi-worker mirrored, workers only", {"worker": 2}, ("worker", 1),
     {"worker": ["10.0.0.0:2000", "10.0.0.1:2001"]}),
    ("multi-worker mirrored with a chief", {"chief": 1, "worker": 2}, ("chief", 0),
     {"chief": ["10.0.0.0:2000"], "worker": ["10.0.0.1:2001", "10.0.0.2:2002"]}),
    ("parameter server strategy", {"chief": 1, "worker": 2, "ps": 2}, ("ps", 1),
     {"chief": ["10.0.0.0:2000"], "worker": ["10.0.0.1:2001", "10.0.0.2:2002"],
      "ps": ["10.0.0.3:2003", "10.0.0.4:2004"]}),
    ("the evaluator stays out of the cluster", {"chief": 1, "worker": 1, "evaluator": 1},
     ("evaluator", 0), {"chief": ["10.0.0.0:2000"], "worker": ["10.0.0.1:2001"]}),
])
def test_tensorflow_tf_config(story: str, roles: dict[str, int], me: tuple[str, int],
                              cluster: dict[str, list[str]]) -> None:
    env = make_gang("tensorflow", roles).env(*me)
    assert set(env) == {"TF_CONFIG"}
    assert json.loads(env["TF_CONFIG"]) == {
        "cluster": cluster, "task": {"type": me[0], "index": me[1]}}


def test_tensorflow_brackets_ipv6_addresses() -> None:
    gang = make_gang("tensorflow")
    members = [replace(m, address="fd00::1") for m in gang.members]
    runtime = replica_runtime(gang.spec, members, members[0], runtime_dir=RUNTIME_DIR, python=PY)
    assert json.loads(runtime.env["TF_CONFIG"])["cluster"]["worker"][0] == "[fd00::1]:2000"


# -- jax -------------------------------------------------------------------------------------

def test_jax_gets_the_coordinator_and_its_process_id() -> None:
    assert make_gang("jax", {"worker": 3}).env("worker", 2) == {
        "JAX_COORDINATOR_ADDRESS": "10.0.0.0:2000", "AIP_JAX_COORDINATOR_ADDRESS": "10.0.0.0:2000",
        "JAX_NUM_PROCESSES": "3", "JAX_PROCESS_ID": "2"}


# -- mindspore and mxnet ---------------------------------------------------------------------

def test_mindspore_with_a_scheduler_role() -> None:
    gang = make_gang("mindspore", {"scheduler": 1, "worker": 2})
    common = {"MS_SCHED_HOST": "10.0.0.0", "MS_SCHED_PORT": "2000", "MS_WORKER_NUM": "2",
              "MS_SERVER_NUM": "0"}

    assert gang.env("scheduler") == {**common, "MS_ROLE": "MS_SCHED"}
    assert gang.env("worker", 1) == {**common, "MS_ROLE": "MS_WORKER", "MS_NODE_ID": "1"}
    assert not gang.runtime("scheduler").needs_launcher


def test_mindspore_parameter_servers_are_pservers() -> None:
    gang = make_gang("mindspore", {"scheduler": 1, "server": 1, "worker": 1})
    assert gang.env("server")["MS_ROLE"] == "MS_PSERVER"
    assert gang.env("server")["MS_SERVER_NUM"] == "1"


def test_mindspore_without_a_scheduler_role_runs_one_beside_rank_zero() -> None:
    gang = make_gang("mindspore", {"worker": 2})

    first, second = gang.runtime("worker", 0), gang.runtime("worker", 1)

    assert first.env["MS_SCHED_HOST"] == "10.0.0.0" and first.env["MS_SCHED_PORT"] == "2000"
    assert first.env["MS_ROLE"] == "MS_WORKER"
    assert first.needs_launcher
    assert first.plan == LaunchPlan(mode="exec", runtime_dir=RUNTIME_DIR,
                                    sidecar_env={"MS_ROLE": "MS_SCHED"}, python=PY)
    assert second.env["MS_SCHED_PORT"] == "2000" and not second.needs_launcher


def test_mxnet_with_a_scheduler_role() -> None:
    gang = make_gang("mxnet", {"scheduler": 1, "server": 2, "worker": 2})
    assert gang.env("server", 1) == {
        "DMLC_ROLE": "server", "DMLC_PS_ROOT_URI": "10.0.0.0", "DMLC_PS_ROOT_PORT": "2000",
        "DMLC_NUM_SERVER": "2", "DMLC_NUM_WORKER": "2", "DMLC_NODE_HOST": "10.0.0.2"}
    assert gang.env("scheduler")["DMLC_ROLE"] == "scheduler"


def test_mxnet_without_a_scheduler_role_runs_one_beside_rank_zero() -> None:
    gang = make_gang("mxnet", {"server": 1, "worker": 2})
    server = gang.runtime("server")
    assert server.env["DMLC_PS_ROOT_URI"] == "10.0.0.0"
    assert server.plan is not None and server.plan.sidecar_env == {"DMLC_ROLE": "scheduler"}
    assert not gang.runtime("worker", 0).needs_launcher


def test_a_second_scheduler_is_refused_naming_the_field() -> None:
    gang = make_gang("mxnet", {"scheduler": 2, "server": 1, "worker": 1})
    with pytest.raises(ValueError, match=r"replicas\.scheduler\.count"):
        gang.runtime("worker")


# -- mpi -------------------------------------------------------------------------------------

def test_mpi_rank_zero_runs_mpirun_over_a_hostfile() -> None:
    gang = make_gang("mpi", {"launcher": 1, "worker": 2}, nproc_per_replica=2)

    runtime = gang.runtime("launcher")

    assert runtime.command == [
        "mpirun", "--hostfile", f"{RUNTIME_DIR}/hostfile", "-np", "6", "--bind-to", "none",
        PY, "train.py", "--x"]
    assert runtime.files == {"hostfile": "10.0.0.0 slots=2\n10.0.0.1 slots=2\n10.0.0.2 slots=2\n"}
    assert runtime.env == {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                           "AIP_MPI_HOSTFILE": f"{RUNTIME_DIR}/hostfile"}
    assert runtime.plan is not None and runtime.plan.mode == "mpirun"
    assert runtime.plan.files == runtime.files


def test_mpi_other_replicas_wait_for_rank_zero() -> None:
    runtime = make_gang("mpi").runtime("worker", 1)
    assert runtime.needs_launcher
    assert runtime.plan is not None and runtime.plan.mode == "mpi-wait"


def test_a_hostfile_lists_a_shared_address_once_with_the_slots_summed() -> None:
    gang = make_gang("mpi", {"worker": 3}, same_host=True)
    assert hostfile(gang.members, 4) == "127.0.0.1 slots=12\n"


# -- environment, RDMA, validation -----------------------------------------------------------

def test_a_job_environment_goes_through_the_launcher_which_picks_the_interpreter() -> None:
    gang = make_gang("jax", environment={"requirements": ["jax==0.4.30"]})
    runtime = gang.runtime("worker")

    assert runtime.command == ["python", "train.py", "--x"]  # the launcher swaps the python
    assert runtime.plan is not None
    assert runtime.plan.environment == {"requirements": ["jax==0.4.30"], "python": None,
                                        "system_site_packages": False}
    argv = runtime.launch_argv("/opt/aip/bin/python")
    assert argv[:5] == ["/opt/aip/bin/python", "-m", "aip.runtime.launch", "--plan",
                        runtime.plan.to_json()]
    assert argv[5:] == ["--", "python", "train.py", "--x"]


RDMA = {RDMA_DEVICES_LABEL: "mlx5_0,mlx5_1", RDMA_INTERFACE_LABEL: "ib0",
        RDMA_GID_INDEX_LABEL: "3"}


@pytest.mark.parametrize(("story", "framework", "labels", "expected"), [
    ("an RDMA node configures NCCL", "pytorch", RDMA,
     {"NCCL_IB_HCA": "mlx5_0,mlx5_1", "NCCL_SOCKET_IFNAME": "ib0", "NCCL_IB_GID_INDEX": "3",
      "NCCL_IB_DISABLE": "0"}),
    ("the gid index is optional", "jax", {RDMA_DEVICES_LABEL: "mlx5_0"},
     {"NCCL_IB_HCA": "mlx5_0", "NCCL_IB_DISABLE": "0"}),
    ("torchrun too", "pytorch-torchrun", RDMA,
     {"NCCL_IB_HCA": "mlx5_0,mlx5_1", "NCCL_SOCKET_IFNAME": "ib0", "NCCL_IB_GID_INDEX": "3",
      "NCCL_IB_DISABLE": "0"}),
    ("no labels, no NCCL settings", "pytorch", {}, {}),
    ("framework none sets nothing", "none", RDMA, {}),
])
def test_rdma_labels(story: str, framework: str, labels: dict[str, str],
                     expected: dict[str, str]) -> None:
    extra = {"nproc_per_replica": 2} if framework == "pytorch-torchrun" else {}
    env = make_gang(framework.removesuffix("-torchrun"), labels=labels, **extra).env("worker")
    assert {k: v for k, v in env.items() if k.startswith("NCCL_")} == expected


def test_members_without_enough_ports_are_refused_naming_the_field() -> None:
    gang = make_gang("tensorflow")
    members = [gang.members[0], replace(gang.members[1], ports=())]
    with pytest.raises(ValueError, match=r"members\[1\]\.ports: framework tensorflow needs 1"):
        replica_runtime(gang.spec, members, members[0], runtime_dir=RUNTIME_DIR, python=PY)


@pytest.mark.parametrize(("story", "change", "message"), [
    ("a missing replica", lambda ms: ms[:1], r"members: ranks must be 0\.\.1"),
    ("an unknown role", lambda ms: [ms[0], replace(ms[1], role="ps")],
     r"members\[1\]\.role: 'ps' is not a role"),
    ("an index outside the role", lambda ms: [ms[0], replace(ms[1], index=5)],
     r"members\[1\]\.index: 5"),
    ("one replica twice", lambda ms: [ms[0], replace(ms[1], index=0)], r"appears twice"),
    ("an empty address", lambda ms: [ms[0], replace(ms[1], address="")],
     r"members\[1\]\.address"),
])
def test_a_gang_that_does_not_fit_the_spec_is_refused(story: str, change: Any,
                                                       message: str) -> None:
    gang = make_gang("pytorch")
    members = change(gang.members)
    with pytest.raises(ValueError, match=message):
        replica_runtime(gang.spec, members, members[0], runtime_dir=RUNTIME_DIR, python=PY)


def test_me_must_be_one_of_the_members() -> None:
    gang = make_gang("pytorch")
    stranger = replace(gang.members[1], node="elsewhere")
    with pytest.raises(ValueError, match=r"me: replica worker\[1\]"):
        replica_runtime(gang.spec, gang.members, stranger, runtime_dir=RUNTIME_DIR, python=PY)


def test_the_launch_plan_survives_json() -> None:
    runtime = make_gang("mpi", environment={"python": "/opt/py/bin/python"}).runtime("worker")
    assert runtime.plan is not None
    assert LaunchPlan.from_json(runtime.plan.to_json()) == runtime.plan
