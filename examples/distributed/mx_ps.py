"""MXNet parameter-server training step: workers push a tensor to a ``dist_sync`` kvstore and
pull back the aggregate (ps-lite: one scheduler, servers, workers).

AIP sets the DMLC_* variables (framework: mxnet); the scheduler and server processes run this
same script, whose ``import mxnet`` serves their role and exits. By hand, on one host:

    export DMLC_PS_ROOT_URI=127.0.0.1 DMLC_PS_ROOT_PORT=9091 DMLC_NUM_SERVER=1 DMLC_NUM_WORKER=2
    DMLC_ROLE=scheduler python mx_ps.py & DMLC_ROLE=server python mx_ps.py &
    DMLC_ROLE=worker python mx_ps.py & DMLC_ROLE=worker python mx_ps.py

Worker k pushes a tensor of (k + 1)s; each pulls the sum 1 + ... + n, checks it and writes it
to ``$AIP_OUTPUT_DIR/mx-sum-{worker rank}.txt``. Needs mxnet 1.9 (with numpy < 1.24).
"""

from __future__ import annotations

import os
from pathlib import Path

import mxnet as mx  # a scheduler or server serves here and exits

SHAPE = (2, 3)
KEY = 3


def main() -> None:
    store = mx.kv.create("dist_sync")
    rank, workers = store.rank, store.num_workers
    store.init(KEY, mx.nd.zeros(SHAPE))
    store.push(KEY, mx.nd.ones(SHAPE) * (rank + 1))
    pulled = mx.nd.zeros(SHAPE)
    store.pull(KEY, out=pulled)
    total = float(pulled.asnumpy()[0, 0])
    expected = workers * (workers + 1) / 2
    print(f"worker {rank}/{workers}: pulled the aggregate {total}", flush=True)
    assert (pulled.asnumpy() == expected).all(), (pulled.asnumpy(), expected)

    output = Path(os.environ.get("AIP_OUTPUT_DIR", "."))
    output.mkdir(parents=True, exist_ok=True)
    (output / f"mx-sum-{rank}.txt").write_text(f"{total:g}\n", encoding="utf-8")


if __name__ == "__main__":
    main()
