"""Multi-process JAX: every process contributes its process id to a psum over all devices of
all processes (CPU: one device per process, collectives over gloo).

AIP sets the variables (framework: jax); by hand, two processes on one host:

    JAX_COORDINATOR_ADDRESS=127.0.0.1:12345 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=0 \\
        python jax_psum.py &
    JAX_COORDINATOR_ADDRESS=127.0.0.1:12345 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=1 \\
        python jax_psum.py

Each process checks the sum (0 + 1 + ... + n-1) and writes it to
``$AIP_OUTPUT_DIR/psum-{process_id}.txt``.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # before jax is imported

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import PartitionSpec


def main() -> None:
    jax.distributed.initialize(os.environ["JAX_COORDINATOR_ADDRESS"],
                               int(os.environ["JAX_NUM_PROCESSES"]),
                               int(os.environ["JAX_PROCESS_ID"]))
    me, processes = jax.process_index(), jax.process_count()
    mesh = jax.make_mesh((jax.device_count(),), ("processes",))
    local = np.full((jax.local_device_count(),), me, dtype=np.int32)
    ids = multihost_utils.host_local_array_to_global_array(
        local, mesh, PartitionSpec("processes"))
    psum = jax.jit(jax.shard_map(lambda x: jax.lax.psum(x, "processes"), mesh=mesh,
                                 in_specs=PartitionSpec("processes"), out_specs=PartitionSpec()))
    total = int(psum(ids).addressable_data(0)[0])
    expected = jax.local_device_count() * sum(range(processes))
    print(f"process {me}/{processes}: psum of process ids {total}", flush=True)
    assert total == expected, (total, expected)

    output = Path(os.environ.get("AIP_OUTPUT_DIR", "."))
    output.mkdir(parents=True, exist_ok=True)
    (output / f"psum-{me}.txt").write_text(f"{total}\n", encoding="utf-8")
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
