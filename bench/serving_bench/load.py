"""The serving benchmark's client: one asyncio load generator (aiohttp, keep-alive) and the
check that a server's answer matches the in-process one before its cells run."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np

from control_plane import _percentiles
from serving_bench.base import Target
from serving_bench.models import Model


async def load(target: Target, body: bytes, concurrency: int, seconds: float,
               warmup: float) -> dict[str, Any]:
    """``concurrency`` keep-alive connections, each sending its next request when the last
    is answered; every request answered within the measured window counts (the warm-up
    brings the server to a steady state first)."""
    import aiohttp

    headers = {**target.headers, "content-type": "application/json"}
    latencies: list[float] = []
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    begin = loop.time() + warmup
    end = begin + seconds
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def connection() -> None:
            while (start := loop.time()) < end:
                try:
                    async with session.post(target.url, data=body) as response:
                        await response.read()
                        failure = "" if response.status == 200 else f"HTTP {response.status}"
                except (aiohttp.ClientError, OSError) as exc:
                    failure = f"{type(exc).__name__}: {exc}"
                done = loop.time()
                if begin <= done <= end:  # in steady state, whenever it was sent
                    if failure:
                        errors.append(failure)
                    else:
                        latencies.append(done - start)

        await asyncio.gather(*(connection() for _ in range(concurrency)))
    percentiles = _percentiles(latencies) if latencies else {"p50_ms": 0.0, "p99_ms": 0.0}
    return {"requests_per_s": len(latencies) / seconds, "p50_ms": percentiles["p50_ms"],
            "p99_ms": percentiles["p99_ms"], "requests": len(latencies),
            "errors": len(errors), "first_error": errors[0] if errors else ""}


def check_answer(target: Target, model: Model) -> None:
    response = httpx.post(target.url, content=model.body, timeout=60,
                          headers={**target.headers, "content-type": "application/json"})
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    answer = np.asarray(target.answer(response.json()), dtype=np.float64)
    if answer.size != model.expected.size or not np.allclose(
            answer.reshape(model.expected.shape), model.expected, rtol=1e-4, atol=1e-5):
        raise RuntimeError(f"the answer differs from the in-process one: {response.text[:300]}")
