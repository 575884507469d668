"""Speed and size of a model: latency p50 at batch 1, throughput at batch 32, bytes on disk.

The same timing loop measures an ONNX Runtime session, a PyTorch module or anything else
callable on feeds, so the report and ``bench/optimize.py`` compare like with like:

    settings = MeasureSettings(min_seconds=1.0)
    speed = measure_speed(lambda feeds: session.run(None, feeds), example_feeds, settings)
    speed.latency_ms_p50, speed.throughput       # ms at batch 1, rows/s at batch 32

Inputs for each batch size are made by repeating the example rows, so one example row is
enough. The clock is injectable for tests.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aip.optimize.data import Feeds, tile

LATENCY_BATCH = 1
THROUGHPUT_BATCH = 32


@dataclass(frozen=True)
class MeasureSettings:
    """How long to time each batch size: at least ``min_runs`` calls and ``min_seconds``,
    at most ``max_runs`` calls, after ``warmup`` untimed calls."""

    warmup: int = 3
    min_runs: int = 10
    min_seconds: float = 0.5
    max_runs: int = 2000
    latency_batch: int = LATENCY_BATCH
    throughput_batch: int = THROUGHPUT_BATCH


@dataclass(frozen=True)
class Speed:
    """Median latency of one call at the latency batch (ms), rows per second at the
    throughput batch, and how many timed calls each number rests on."""

    latency_ms_p50: float
    throughput: float
    latency_runs: int
    throughput_runs: int


def measure_speed(run: Callable[[Feeds], Any], example: Mapping[str, np.ndarray],
                  settings: MeasureSettings = MeasureSettings(), *,
                  clock: Callable[[], float] = time.perf_counter) -> Speed:
    """Time ``run`` at the latency batch and at the throughput batch."""
    single = tile(example, settings.latency_batch)
    many = tile(example, settings.throughput_batch)
    single_times = time_calls(lambda: run(single), settings, clock)
    many_times = time_calls(lambda: run(many), settings, clock)
    return Speed(
        latency_ms_p50=statistics.median(single_times) * 1000.0,
        throughput=settings.throughput_batch / statistics.median(many_times),
        latency_runs=len(single_times),
        throughput_runs=len(many_times),
    )


def measure_in_rounds(runs: Sequence[Callable[[Feeds], Any]], example: Mapping[str, np.ndarray],
                      settings: MeasureSettings, rounds: int, *,
                      clock: Callable[[], float] = time.perf_counter) -> list[Speed]:
    """Each of ``runs`` timed in a block (with its own warm-up, which absorbs the previous
    block's spinning threads), the blocks repeated ``rounds`` times; per run the medians of
    its rounds and the timed calls summed. A neighbour's burst of load on a shared machine
    then cannot decide a comparison."""
    samples: list[list[Speed]] = [[] for _ in runs]
    for _ in range(rounds):
        for sample, run in zip(samples, runs, strict=True):
            sample.append(measure_speed(run, example, settings, clock=clock))
    return [Speed(latency_ms_p50=statistics.median(s.latency_ms_p50 for s in sample),
                  throughput=statistics.median(s.throughput for s in sample),
                  latency_runs=sum(s.latency_runs for s in sample),
                  throughput_runs=sum(s.throughput_runs for s in sample))
            for sample in samples]


def time_calls(call: Callable[[], Any], settings: MeasureSettings,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Seconds per call, for at least ``min_runs`` calls and ``min_seconds`` in total."""
    for _ in range(settings.warmup):
        call()
    times: list[float] = []
    started = clock()
    while len(times) < settings.max_runs:
        before = clock()
        call()
        times.append(max(clock() - before, 1e-9))
        if len(times) >= settings.min_runs and clock() - started >= settings.min_seconds:
            break
    return times
