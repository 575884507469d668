"""Dynamic batching: concurrent requests share one ``predict`` call.

    batcher = Batcher(run_batch, max_batch_size=32, max_wait_ms=5)
    outputs = await batcher.submit({"x": rows})     # this request's rows of the batch's outputs

A batch closes when it holds ``max_batch_size`` rows, or ``max_wait_ms`` after its first
request arrived, whichever comes first; requests that queued while the previous batch ran
have waited already, so they go at once. The wait is adaptive: the batcher keeps a moving
average of how many rows joined while it waited, and stops waiting while that is below half a
row; a request that arrives while another is queued or running (concurrent traffic) makes it
wait again. So a lone client (whose next request only follows this answer) does not pay
``max_wait_ms`` per request for company that cannot come, not even now and then.
Inputs are concatenated along dim 0, ``run_batch`` runs once (in the replica's inference
thread), and each request gets a view of its own rows. A request larger than
``max_batch_size`` runs alone.

Requests that cannot share a batch (different input names, trailing shapes or dtypes), a
model whose outputs are not batched along dim 0, or a batch that fails run one by one, so an
error is reported to the request that caused it and to no other.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

Tensors = dict[str, np.ndarray]
RunBatch = Callable[[Tensors], Awaitable[Tensors]]


@dataclass(slots=True)
class _Pending:
    inputs: Tensors
    rows: int
    future: asyncio.Future[Tensors]
    arrived: float


class Batcher:
    def __init__(self, run_batch: RunBatch, *, max_batch_size: int, max_wait_ms: float) -> None:
        if max_batch_size < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size must be >= 1 and max_wait_ms >= 0")
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self._run_batch = run_batch
        self._pending: deque[_Pending] = deque()
        self._pending_rows = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._joining = 1.0  # moving average of the rows that joined during a wait
        self._running = False  # a batch is in the model now

    @property
    def queued(self) -> int:
        """Requests waiting for a batch (not counting the one running)."""
        return len(self._pending)

    async def submit(self, inputs: Tensors) -> Tensors:
        """Queue one request's inputs; return its rows of the batch's outputs, or raise what
        running it alone raised."""
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = loop.create_task(self._collect(), name="aip-batcher")
        rows = batch_rows(inputs)
        future: asyncio.Future[Tensors] = loop.create_future()
        if self._pending or self._running:  # concurrent traffic: company can come
            self._joining = max(self._joining, 1.0)
        self._pending.append(_Pending(inputs, rows, future, loop.time()))
        self._pending_rows += rows
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        """Stop batching; requests still queued are cancelled."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._pending:
            self._pending.popleft().future.cancel()
        self._pending_rows = 0

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            deadline = self._pending[0].arrived + self.max_wait
            if (self._pending_rows < self.max_batch_size and loop.time() < deadline
                    and self._joining >= 0.5):  # recent waits gained rows
                rows_before = self._pending_rows
                while self._pending_rows < self.max_batch_size and loop.time() < deadline:
                    self._wakeup.clear()
                    timer = loop.call_at(deadline, self._wakeup.set)
                    try:
                        await self._wakeup.wait()
                    finally:
                        timer.cancel()
                joined = max(0, self._pending_rows - rows_before)
                self._joining = 0.8 * self._joining + 0.2 * joined
            batch = self._take()
            if batch:
                self._running = True
                try:
                    await self._execute(batch)
                finally:
                    self._running = False

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        rows = 0
        while self._pending:
            item = self._pending[0]
            if not item.future.done() and batch and rows + item.rows > self.max_batch_size:
                break
            self._pending.popleft()
            self._pending_rows -= item.rows
            if not item.future.done():  # done: its client went away
                batch.append(item)
                rows += item.rows
        return batch

    async def _execute(self, batch: list[_Pending]) -> None:
        try:
            if len(batch) == 1:
                await self._run_alone(batch[0])
                return
            merged = concatenate([item.inputs for item in batch])
            parts = None
            if merged is not None:
                try:
                    parts = split(await self._run_batch(merged), [item.rows for item in batch])
                except Exception:
                    parts = None  # rerun one by one below: the error goes to its request
            if parts is None:
                for item in batch:
                    await self._run_alone(item)
                return
            for item, part in zip(batch, parts, strict=True):
                if not item.future.done():
                    item.future.set_result(part)
        except asyncio.CancelledError:
            for item in batch:
                item.future.cancel()
            raise

    async def _run_alone(self, item: _Pending) -> None:
        try:
            result = await self._run_batch(item.inputs)
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(exc)
            return
        if not item.future.done():
            item.future.set_result(result)


def batch_rows(inputs: Tensors) -> int:
    """Rows in a request: dim 0 of its first input (a scalar counts as one)."""
    first = next(iter(inputs.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


def concatenate(requests: list[Tensors]) -> Tensors | None:
    """One batch from several requests, or ``None`` when they cannot share one."""
    names = requests[0].keys()
    for request in requests:
        if request.keys() != names:
            return None
        rows = batch_rows(request)
        if any(array.ndim == 0 or array.shape[0] != rows for array in request.values()):
            return None
    merged: Tensors = {}
    for name in names:
        arrays = [request[name] for request in requests]
        head = arrays[0]
        if any(array.dtype != head.dtype or array.shape[1:] != head.shape[1:]
               for array in arrays):
            return None
        merged[name] = np.concatenate(arrays)
    return merged


def split(outputs: Tensors, sizes: list[int]) -> list[Tensors] | None:
    """Each request's rows of the batch's outputs (views), or ``None`` when an output is not
    batched along dim 0."""
    total = sum(sizes)
    if any(array.ndim == 0 or array.shape[0] != total for array in outputs.values()):
        return None
    parts: list[Tensors] = []
    start = 0
    for size in sizes:
        parts.append({name: array[start:start + size] for name, array in outputs.items()})
        start += size
    return parts
