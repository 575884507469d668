"""The environment a replica sees, computed from its placement: a pure function.

    env = replica_environment(job_id=..., role="worker", index=1, placement=placement, ...)

Device isolation:
- ``CUDA_VISIBLE_DEVICES`` and ``NVIDIA_VISIBLE_DEVICES`` list the assigned GPU indices
  ("0,1"); a replica without GPUs gets "" so it cannot grab one. ``CUDA_DEVICE_ORDER`` is
  ``PCI_BUS_ID`` so CUDA numbers GPUs as NVML (and the inventory) does.
- A shared GPU (a share below one whole GPU) adds ``AIP_GPU_SHARE`` ("0.25").
- Each accelerator kind gets ``AIP_ACCELERATOR_<KIND>_IDS`` ("0,1"), plus the vendor's own
  variable where one is known (``VENDOR_VISIBLE_DEVICES`` below): tpu ``TPU_VISIBLE_CHIPS``,
  npu (Ascend) ``ASCEND_RT_VISIBLE_DEVICES``, mlu (Cambricon) ``MLU_VISIBLE_DEVICES``,
  dcu (Hygon) and rocm (AMD) ``HIP_VISIBLE_DEVICES``, xpu (Intel GPU) ``ZE_AFFINITY_MASK``,
  hpu (Intel Gaudi) ``HABANA_VISIBLE_MODULES``, neuron (AWS) ``NEURON_RT_VISIBLE_CORES``.
  Other kinds (fpga, ...) get only the AIP variable.

Identity: ``AIP_JOB_ID``, ``AIP_JOB_NAME``, ``AIP_ROLE``, ``AIP_REPLICA_INDEX``,
``AIP_NUM_REPLICAS`` (in the role), ``AIP_WORLD_SIZE``, ``AIP_RANK`` (global),
``AIP_ATTEMPT``, ``AIP_NODE``; where to write: ``AIP_OUTPUT_DIR``, ``AIP_CHECKPOINT_DIR``;
``AIP_SERVER`` when the SDK should report to a server.

``default_environment`` holds defaults a job's own ``env`` may override, so callers merge
``{**default_environment(p), **job_env, **replica_environment(...)}``:
``OMP_NUM_THREADS`` is the replica's whole CPU cores (at least 1), as Ray does, so replicas on
one host do not oversubscribe it; on a shared GPU, TensorFlow and JAX are told not to take all
GPU memory at start (``TF_FORCE_GPU_ALLOW_GROWTH=true``, ``XLA_PYTHON_CLIENT_PREALLOCATE=false``),
which would starve the replicas sharing it.
"""

from __future__ import annotations

from aip.scheduler.model import MILLI_PER_GPU, ReplicaPlacement

VENDOR_VISIBLE_DEVICES: dict[str, str] = {
    "tpu": "TPU_VISIBLE_CHIPS",
    "npu": "ASCEND_RT_VISIBLE_DEVICES",
    "mlu": "MLU_VISIBLE_DEVICES",
    "dcu": "HIP_VISIBLE_DEVICES",
    "rocm": "HIP_VISIBLE_DEVICES",
    "xpu": "ZE_AFFINITY_MASK",
    "hpu": "HABANA_VISIBLE_MODULES",
    "neuron": "NEURON_RT_VISIBLE_CORES",
}


def replica_environment(
    *,
    job_id: str,
    job_name: str,
    role: str,
    index: int,
    num_replicas_in_role: int,
    world_size: int,
    global_rank: int,
    attempt: int,
    placement: ReplicaPlacement,
    output_dir: str,
    checkpoint_dir: str,
    server_url: str | None,
) -> dict[str, str]:
    """What AIP defines for one replica and a job may not override: identity, directories
    and device visibility (see the module docstring)."""
    if not 0 <= index < num_replicas_in_role:
        raise ValueError(f"replica index {index} is outside role {role!r} of "
                         f"{num_replicas_in_role} replicas")
    if not 0 <= global_rank < world_size:
        raise ValueError(f"rank {global_rank} is outside a world of {world_size} replicas")
    env = {
        "AIP_JOB_ID": job_id,
        "AIP_JOB_NAME": job_name,
        "AIP_ROLE": role,
        "AIP_REPLICA_INDEX": str(index),
        "AIP_NUM_REPLICAS": str(num_replicas_in_role),
        "AIP_WORLD_SIZE": str(world_size),
        "AIP_RANK": str(global_rank),
        "AIP_ATTEMPT": str(attempt),
        "AIP_NODE": placement.node,
        "AIP_OUTPUT_DIR": output_dir,
        "AIP_CHECKPOINT_DIR": checkpoint_dir,
    }
    if server_url:
        env["AIP_SERVER"] = server_url
    env.update(gpu_environment(placement))
    env.update(accelerator_environment(placement))
    return env


def default_environment(placement: ReplicaPlacement) -> dict[str, str]:
    """Defaults for one replica that the job's own ``env`` may override."""
    env = {"OMP_NUM_THREADS": str(max(1, placement.cpu_milli // 1000))}
    if placement.gpus and 0 < placement.gpu_milli_each < MILLI_PER_GPU:
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return env


def gpu_environment(placement: ReplicaPlacement) -> dict[str, str]:
    visible = ",".join(str(gpu) for gpu in placement.gpus)
    env = {
        "CUDA_VISIBLE_DEVICES": visible,
        "NVIDIA_VISIBLE_DEVICES": visible,
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    if placement.gpus and placement.gpu_model:
        env["AIP_GPU_MODEL"] = placement.gpu_model
    if placement.gpus and 0 < placement.gpu_milli_each < MILLI_PER_GPU:
        env["AIP_GPU_SHARE"] = f"{placement.gpu_milli_each / MILLI_PER_GPU:g}"
    return env


def accelerator_environment(placement: ReplicaPlacement) -> dict[str, str]:
    env: dict[str, str] = {}
    for kind, ids in sorted(placement.accelerators.items()):
        if not ids:
            continue
        visible = ",".join(str(device) for device in ids)
        env[f"AIP_ACCELERATOR_{_variable_part(kind)}_IDS"] = visible
        vendor = VENDOR_VISIBLE_DEVICES.get(kind.lower())
        if vendor:
            env[vendor] = visible
    return env


def _variable_part(kind: str) -> str:
    """"rdma-nic" -> "RDMA_NIC": an accelerator kind as part of a variable name."""
    return "".join(ch if ch.isalnum() else "_" for ch in kind.upper())
