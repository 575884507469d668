"""A tiny data-parallel PyTorch training run: a linear model on synthetic data, DDP over gloo
(or nccl when AIP_TORCH_BACKEND says so), rendezvous from the environment (env://).

AIP sets the variables (framework: pytorch); by hand, two processes on one host:

    MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 WORLD_SIZE=2 RANK=0 python ddp_train.py &
    MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 WORLD_SIZE=2 RANK=1 python ddp_train.py

or one replica of two processes: ``torchrun --nproc_per_node 2 ddp_train.py``.
Each rank saves its final weights to ``$AIP_OUTPUT_DIR/rank{RANK}.pt``; DDP keeps them equal.
Env: STEPS (default 5).
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def main() -> None:
    dist.init_process_group(backend=os.environ.get("AIP_TORCH_BACKEND", "gloo"))
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)  # the same initial weights everywhere (DDP broadcasts rank 0's anyway)
    model = DistributedDataParallel(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    data = torch.Generator().manual_seed(100 + rank)  # each rank its own shard
    true_weights = torch.tensor([[1.0, -2.0, 3.0, 0.5]])
    for step in range(int(os.environ.get("STEPS", "5"))):
        inputs = torch.randn(16, 4, generator=data)
        loss = torch.nn.functional.mse_loss(model(inputs), inputs @ true_weights.T)
        optimizer.zero_grad()
        loss.backward()  # gradients are averaged across ranks here
        optimizer.step()
        print(f"rank {rank}/{world} step {step} loss {loss.item():.4f}", flush=True)

    output = Path(os.environ.get("AIP_OUTPUT_DIR", "."))
    output.mkdir(parents=True, exist_ok=True)
    torch.save(model.module.state_dict(), output / f"rank{rank}.pt")
    dist.barrier()
    # DDP's reducer holds the process group and gloo's pending work: free them (DDP's hooks
    # make reference cycles, hence the collection) before the group goes, or their C++
    # threads can outlive it and abort the process at exit.
    del model, optimizer
    gc.collect()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
