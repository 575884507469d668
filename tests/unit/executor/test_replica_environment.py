"""The pure environment functions, table-driven, and the handle's persisted form."""

from __future__ import annotations

from typing import Any

import pytest

from aip.executor.base import LaunchRequest, ReplicaHandle, ReplicaStatus
from aip.executor.environment import default_environment, replica_environment
from aip.scheduler.model import ReplicaPlacement


def placement(**overrides: Any) -> ReplicaPlacement:
    fields: dict[str, Any] = {"role": "worker", "index": 1, "node": "node-a",
                              "cpu_milli": 4000, "memory_bytes": 2**33}
    fields.update(overrides)
    return ReplicaPlacement(**fields)


def environment(where: ReplicaPlacement, server_url: str | None = None) -> dict[str, str]:
    return replica_environment(
        job_id="train-3f2a", job_name="train", role="worker", index=1, num_replicas_in_role=4,
        world_size=5, global_rank=2, attempt=2, placement=where, output_dir="/out",
        checkpoint_dir="/ckpt", server_url=server_url)


def test_identity_and_directories() -> None:
    env = environment(placement(), server_url="http://127.0.0.1:8080")

    assert {key: value for key, value in env.items() if key.startswith("AIP_")} == {
        "AIP_JOB_ID": "train-3f2a", "AIP_JOB_NAME": "train", "AIP_ROLE": "worker",
        "AIP_REPLICA_INDEX": "1", "AIP_NUM_REPLICAS": "4", "AIP_WORLD_SIZE": "5",
        "AIP_RANK": "2", "AIP_ATTEMPT": "2", "AIP_NODE": "node-a", "AIP_OUTPUT_DIR": "/out",
        "AIP_CHECKPOINT_DIR": "/ckpt", "AIP_SERVER": "http://127.0.0.1:8080"}


def test_no_server_means_no_aip_server_variable() -> None:
    assert "AIP_SERVER" not in environment(placement(), server_url=None)


@pytest.mark.parametrize(("where", "expected", "absent"), [
    pytest.param(placement(), {"CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": ""},
                 {"AIP_GPU_SHARE", "AIP_GPU_MODEL"},
                 id="a replica without GPUs is hidden from every GPU"),
    pytest.param(placement(gpus=(0, 3), gpu_milli_each=1000, gpu_model="V100M32"),
                 {"CUDA_VISIBLE_DEVICES": "0,3", "NVIDIA_VISIBLE_DEVICES": "0,3",
                  "CUDA_DEVICE_ORDER": "PCI_BUS_ID", "AIP_GPU_MODEL": "V100M32"},
                 {"AIP_GPU_SHARE"},
                 id="whole GPUs are listed by index in NVML order"),
    pytest.param(placement(gpus=(2,), gpu_milli_each=250, gpu_model="T4"),
                 {"CUDA_VISIBLE_DEVICES": "2", "AIP_GPU_SHARE": "0.25"}, set(),
                 id="a quarter of GPU 2 is shared"),
    pytest.param(placement(accelerators={"tpu": (0, 1), "fpga": (3,)}),
                 {"AIP_ACCELERATOR_TPU_IDS": "0,1", "TPU_VISIBLE_CHIPS": "0,1",
                  "AIP_ACCELERATOR_FPGA_IDS": "3"}, set(),
                 id="accelerators get AIP ids, and the vendor variable where one is known"),
    pytest.param(placement(accelerators={"npu": (4, 5), "rdma-nic": (0,)}),
                 {"ASCEND_RT_VISIBLE_DEVICES": "4,5", "AIP_ACCELERATOR_NPU_IDS": "4,5",
                  "AIP_ACCELERATOR_RDMA_NIC_IDS": "0"}, set(),
                 id="Ascend NPUs, and a kind whose name is not a valid variable name"),
    pytest.param(placement(accelerators={"tpu": ()}), {}, {"AIP_ACCELERATOR_TPU_IDS"},
                 id="a kind with no assigned device sets nothing"),
])
def test_device_visibility(where: ReplicaPlacement, expected: dict[str, str],
                           absent: set[str]) -> None:
    env = environment(where)

    assert {key: env.get(key) for key in expected} == expected
    assert absent.isdisjoint(env)


@pytest.mark.parametrize(("where", "expected"), [
    pytest.param(placement(cpu_milli=4000), {"OMP_NUM_THREADS": "4"}, id="whole cores"),
    pytest.param(placement(cpu_milli=500), {"OMP_NUM_THREADS": "1"},
                 id="half a core still gets one thread"),
    pytest.param(placement(cpu_milli=2000, gpus=(0,), gpu_milli_each=500),
                 {"OMP_NUM_THREADS": "2", "TF_FORCE_GPU_ALLOW_GROWTH": "true",
                  "XLA_PYTHON_CLIENT_PREALLOCATE": "false"},
                 id="a shared GPU keeps frameworks from preallocating all its memory"),
])
def test_overridable_defaults(where: ReplicaPlacement, expected: dict[str, str]) -> None:
    assert default_environment(where) == expected


@pytest.mark.parametrize(("index", "rank"), [(4, 2), (-1, 2), (1, 5)])
def test_inconsistent_ranks_are_rejected(index: int, rank: int) -> None:
    with pytest.raises(ValueError):
        replica_environment(
            job_id="j", job_name="j", role="worker", index=index, num_replicas_in_role=4,
            world_size=5, global_rank=rank, attempt=1, placement=placement(), output_dir="/o",
            checkpoint_dir="/c", server_url=None)


def test_a_handle_survives_its_json_form() -> None:
    handle = ReplicaHandle(replica_id="train-worker-0-a1", pid=4242, create_time=1700000000.25,
                           status_dir="/aip/jobs/train/status/worker-0-a1")

    assert ReplicaHandle.from_dict(handle.to_dict()) == handle
    assert handle.to_dict()["version"] == 1


@pytest.mark.parametrize("data", [
    pytest.param({"version": 99, "replica_id": "r", "pid": 1, "create_time": 0.0,
                  "status_dir": "/s"}, id="from a newer AIP"),
    pytest.param({"replica_id": "r", "create_time": 0.0, "status_dir": "/s"}, id="no pid"),
    pytest.param({"replica_id": "r", "pid": "x", "create_time": 0.0, "status_dir": "/s"},
                 id="pid is not a number"),
])
def test_malformed_handles_are_rejected(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ReplicaHandle.from_dict(data)


def test_a_launch_request_needs_an_argv_command() -> None:
    with pytest.raises(ValueError, match="argv"):
        LaunchRequest(replica_id="r", job_id="j", command=[], env={}, working_dir="/w",
                      log_path="/l", status_dir="/s")


def test_status_knows_whether_it_is_final() -> None:
    assert not ReplicaStatus("running").finished
    assert ReplicaStatus("exited", 0, "exited with code 0").finished
    assert ReplicaStatus("lost", None, "gone").finished
