"""MindSpore dynamic cluster on CPU: every worker all-reduces its rank, then takes one
data-parallel training step whose gradients are all-reduced.

AIP sets the MS_* variables (framework: mindspore; a scheduler role, or a scheduler sidecar
beside rank 0 that runs this same script with MS_ROLE=MS_SCHED). By hand, on one host:

    export MS_SCHED_HOST=127.0.0.1 MS_SCHED_PORT=8118 MS_WORKER_NUM=2
    MS_ROLE=MS_SCHED python ms_train.py &
    MS_ROLE=MS_WORKER MS_NODE_ID=0 python ms_train.py &
    MS_ROLE=MS_WORKER MS_NODE_ID=1 python ms_train.py

Each worker checks the sum and writes it to ``$AIP_OUTPUT_DIR/ms-sum-{rank}.txt``.
Needs mindspore 2.x with numpy<2 (its wheels are built against numpy 1; with numpy 2 the
workers never unregister and the scheduler fails them after its heartbeat timeout).
"""

from __future__ import annotations

import os
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn, ops
from mindspore.communication import get_group_size, get_rank, init, release


def main() -> None:
    ms.set_device("CPU")
    init()  # the scheduler serves the cluster here
    if os.environ.get("MS_ROLE") == "MS_SCHED":
        return
    rank, size = get_rank(), get_group_size()
    total = float(ops.AllReduce()(ms.Tensor(np.array([rank], dtype=np.float32))).asnumpy()[0])
    print(f"worker {rank}/{size}: all-reduced ranks {total}", flush=True)
    assert total == size * (size - 1) / 2, total

    model = nn.Dense(4, 1)
    optimizer = nn.SGD(model.trainable_params(), learning_rate=0.05)
    loss_fn = nn.MSELoss()
    grad_reducer = nn.DistributedGradReducer(optimizer.parameters, mean=True, degree=size)

    def forward(inputs: ms.Tensor, targets: ms.Tensor) -> ms.Tensor:
        return loss_fn(model(inputs), targets)

    gradient_of = ms.value_and_grad(forward, None, optimizer.parameters)
    rng = np.random.default_rng(rank)
    inputs = ms.Tensor(rng.normal(size=(16, 4)).astype(np.float32))
    targets = ms.Tensor(rng.normal(size=(16, 1)).astype(np.float32))
    for step in range(3):
        loss, gradients = gradient_of(inputs, targets)
        optimizer(grad_reducer(gradients))
        print(f"worker {rank}: step {step} loss {float(loss.asnumpy()):.4f}", flush=True)

    output = Path(os.environ.get("AIP_OUTPUT_DIR", "."))
    output.mkdir(parents=True, exist_ok=True)
    (output / f"ms-sum-{rank}.txt").write_text(f"{total:g}\n", encoding="utf-8")
    release()  # tell the scheduler this worker is done


if __name__ == "__main__":
    main()
