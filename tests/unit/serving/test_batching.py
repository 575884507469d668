"""The batcher: concurrent requests share predict calls, each gets its own rows back, a batch
closes when full or ``max_wait_ms`` after its first request (waiting only while waiting
gains rows), and one bad request fails alone.

The fake model runs on the event loop (no thread) and records each batch's size; waits are
tens to a few hundred milliseconds of the loop's own clock, never sleeps. Where a test tells a
wait from no wait by time, the wait is long enough that a loaded CPU's stalls cannot pass for
one."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

import numpy as np
import pytest

from aip.serving.batching import Batcher, concatenate, split

Tensors = dict[str, np.ndarray]


def in_loop(test: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())  # type: ignore[arg-type]
    return run


class FakeModel:
    """y = 2x; refuses negative rows; ``gate``: batches wait for it to open; ``seconds``: each
    batch takes that long (on the loop's clock)."""

    def __init__(self, output: Callable[[np.ndarray], Tensors] | None = None) -> None:
        self.batches: list[int] = []
        self.gate: asyncio.Event | None = None
        self.seconds = 0.0
        self._output = output or (lambda x: {"y": x * 2})

    async def __call__(self, inputs: Tensors) -> Tensors:
        if self.gate is not None:
            await self.gate.wait()
        if self.seconds:
            await asyncio.sleep(self.seconds)
        x = inputs["x"]
        self.batches.append(len(x))
        if (x < 0).any():
            raise ValueError("negative rows")
        return self._output(x)


def rows(*values: float) -> Tensors:
    return {"x": np.array(values, dtype=np.float32).reshape(-1, 1)}


async def _submit_all(batcher: Batcher, requests: list[Tensors]) -> list[Tensors | BaseException]:
    return await asyncio.gather(*(batcher.submit(request) for request in requests),
                                return_exceptions=True)


@in_loop
async def test_concurrent_requests_share_one_batch_and_get_their_own_rows_back() -> None:
    model = FakeModel()
    batcher = Batcher(model, max_batch_size=8, max_wait_ms=10_000)  # full before the wait
    requests = [rows(1), rows(2, 3), rows(4), rows(5, 6, 7), rows(8)]

    results = await _submit_all(batcher, requests)

    assert model.batches == [8]
    for request, result in zip(requests, results, strict=True):
        assert isinstance(result, dict)
        np.testing.assert_array_equal(result["y"], request["x"] * 2)
    await batcher.close()


@in_loop
async def test_batches_hold_at_most_max_batch_size_rows() -> None:
    model = FakeModel()
    batcher = Batcher(model, max_batch_size=4, max_wait_ms=20)

    results = await _submit_all(batcher, [rows(index) for index in range(10)])

    assert model.batches == [4, 4, 2]
    assert [float(result["y"][0, 0]) for result in results] == [  # type: ignore[index]
        2.0 * index for index in range(10)]
    await batcher.close()


@in_loop
async def test_a_lone_request_waits_max_wait_ms_for_company_then_runs() -> None:
    loop = asyncio.get_running_loop()
    model = FakeModel()
    batcher = Batcher(model, max_batch_size=32, max_wait_ms=40)

    started = loop.time()
    await batcher.submit(rows(1))
    waited = loop.time() - started

    assert 0.040 <= waited < 0.040 + 0.5
    assert model.batches == [1]
    await batcher.close()


@in_loop
async def test_a_lone_client_stops_paying_the_wait_once_waiting_gains_nothing() -> None:
    loop = asyncio.get_running_loop()
    model = FakeModel()
    # The batcher learns per wait, not per millisecond; a long wait keeps a request that a
    # loaded CPU stalls for a few tens of milliseconds from passing for one that waited.
    batcher = Batcher(model, max_batch_size=32, max_wait_ms=200)
    waits = []
    for value in range(40):  # one client: the next request only after the answer
        started = loop.time()
        await batcher.submit(rows(value))
        waits.append(loop.time() - started >= 0.200)

    learning = waits.index(False)
    assert 1 <= learning <= 5  # a few waits that gained no row
    assert not any(waits[learning:])  # then none: no request ever met another
    assert set(model.batches) == {1}
    await batcher.close()


@in_loop
async def test_the_wait_comes_back_when_concurrent_requests_would_join() -> None:
    model = FakeModel()
    # A wait far longer than a trickle: sleeps that overshoot on a loaded CPU still land in
    # the same batch. A full batch (4 rows) closes at once, so no test pays the whole wait.
    batcher = Batcher(model, max_batch_size=4, max_wait_ms=200)
    for value in range(10):  # learn that waiting gains nothing
        await batcher.submit(rows(value))
    model.batches.clear()
    model.seconds = 0.010  # from now on requests arrive while others run

    async def trickle(count: int) -> list[Tensors | BaseException]:
        requests = []
        for value in range(count):  # a request every 5 ms, each batch 10 ms: they overlap
            requests.append(asyncio.ensure_future(batcher.submit(rows(value))))
            await asyncio.sleep(0.005)
        return await asyncio.gather(*requests)

    for _ in range(6):
        await trickle(4)

    assert max(model.batches) > 1
    # waiting pays again, so every batch waits: each trickle's first request, alone in the
    # batcher when it arrives, waits for the 3 that follow it
    assert model.batches[-4:] == [4, 4, 4, 4]
    await batcher.close()


@in_loop
async def test_requests_that_queued_during_a_batch_run_next_without_waiting_again() -> None:
    loop = asyncio.get_running_loop()
    model = FakeModel()
    model.gate = asyncio.Event()
    batcher = Batcher(model, max_batch_size=2, max_wait_ms=0)
    first = asyncio.ensure_future(_submit_all(batcher, [rows(1), rows(2)]))
    await asyncio.sleep(0)  # the first batch is running, held by the gate
    later = asyncio.ensure_future(_submit_all(batcher, [rows(3), rows(4), rows(5)]))
    await asyncio.sleep(0)

    model.gate.set()
    started = loop.time()
    await asyncio.gather(first, later)

    assert model.batches == [2, 2, 1]
    assert loop.time() - started < 0.5
    await batcher.close()


@in_loop
async def test_a_request_larger_than_max_batch_size_runs_alone() -> None:
    model = FakeModel()
    batcher = Batcher(model, max_batch_size=2, max_wait_ms=5)

    result = await batcher.submit(rows(1, 2, 3))

    assert model.batches == [3]
    assert result["y"].shape == (3, 1)
    await batcher.close()


@in_loop
async def test_a_failing_request_fails_alone_and_its_batch_mates_succeed() -> None:
    model = FakeModel()
    batcher = Batcher(model, max_batch_size=3, max_wait_ms=10_000)

    good, bad, other = await _submit_all(batcher, [rows(1), rows(-1), rows(2)])

    assert isinstance(bad, ValueError)
    assert float(good["y"][0, 0]) == 2.0  # type: ignore[index]
    assert float(other["y"][0, 0]) == 4.0  # type: ignore[index]
    assert model.batches == [3, 1, 1, 1]  # the batch, then each request alone
    await batcher.close()


@in_loop
async def test_requests_of_different_trailing_shapes_run_one_by_one() -> None:
    model = FakeModel()
    batcher = Batcher(model, max_batch_size=8, max_wait_ms=10_000)
    wide = {"x": np.ones((1, 3), np.float32)}

    results = await _submit_all(batcher, [rows(1)] * 5 + [wide] * 3)
    narrow_result, wide_result = results[0], results[5]

    assert narrow_result["y"].shape == (1, 1)  # type: ignore[index]
    assert wide_result["y"].shape == (1, 3)  # type: ignore[index]
    assert model.batches == [1] * 8
    await batcher.close()


@in_loop
async def test_outputs_not_batched_along_dim_0_make_each_request_run_alone() -> None:
    model = FakeModel(output=lambda x: {"total": np.asarray(x.sum())})
    batcher = Batcher(model, max_batch_size=2, max_wait_ms=10_000)

    first, second = await _submit_all(batcher, [rows(1), rows(2)])

    assert float(first["total"]) == 1.0  # type: ignore[index]
    assert float(second["total"]) == 2.0  # type: ignore[index]
    assert model.batches == [2, 1, 1]
    await batcher.close()


@in_loop
async def test_a_cancelled_request_leaves_its_batch() -> None:
    model = FakeModel()
    model.gate = asyncio.Event()
    batcher = Batcher(model, max_batch_size=2, max_wait_ms=0)
    running = asyncio.ensure_future(batcher.submit(rows(1)))
    await asyncio.sleep(0)
    gone = asyncio.ensure_future(batcher.submit(rows(2)))
    kept = asyncio.ensure_future(batcher.submit(rows(3)))
    await asyncio.sleep(0)
    gone.cancel()

    model.gate.set()
    await asyncio.gather(running, kept)

    assert model.batches == [1, 1]
    assert float(kept.result()["y"][0, 0]) == 6.0
    await batcher.close()


@in_loop
async def test_closing_cancels_what_is_still_queued() -> None:
    model = FakeModel()
    batcher = Batcher(model, max_batch_size=32, max_wait_ms=10_000)
    waiting = asyncio.ensure_future(batcher.submit(rows(1)))
    await asyncio.sleep(0)

    await batcher.close()

    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert batcher.queued == 0


def test_concatenate_refuses_requests_that_cannot_share_a_batch() -> None:
    assert concatenate([rows(1), {"z": np.ones((1, 1), np.float32)}]) is None
    assert concatenate([rows(1), {"x": np.ones((1, 1), np.float64)}]) is None
    assert concatenate([{"x": np.ones((2, 1)), "w": np.ones((3, 1))}]) is None
    merged = concatenate([rows(1), rows(2, 3)])
    assert merged is not None and merged["x"].shape == (3, 1)


def test_split_hands_out_views_in_request_order() -> None:
    outputs = {"y": np.arange(6).reshape(3, 2)}

    parts = split(outputs, [1, 2])

    assert parts is not None
    assert parts[0]["y"].tolist() == [[0, 1]]
    assert parts[1]["y"].tolist() == [[2, 3], [4, 5]]
    assert np.shares_memory(parts[1]["y"], outputs["y"])
