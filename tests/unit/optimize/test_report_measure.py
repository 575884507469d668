"""The report's writers and the timing loop (with an injected clock)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from aip.optimize.measure import MeasureSettings, measure_in_rounds, measure_speed, time_calls
from aip.optimize.report import OptimizeReport, PassReport, Status, report_from_dict


def make_report() -> OptimizeReport:
    report = OptimizeReport(source="PyTorch Net", level="o2", target="cpu", metric="accuracy",
                            tolerance=0.01, baseline_metric=0.95)
    report.passes += [
        PassReport("source", Status.reference, "pytorch eager", 4.0, 1000.0, 4000, 0.95, 0.0),
        PassReport("export", Status.kept, "", 2.0, 2000.0, 4100, 0.95, 0.0, 1e-6),
        PassReport("quantize_static", Status.rolled_back, "accuracy 0.90 is below ...", 1.0,
                   4000.0, 1000, 0.90, -0.05, float("nan")),
        PassReport("quantize_dynamic", Status.kept, "", 1.6, 3200.0, 1100, 0.949, -0.001),
        PassReport("fp16", Status.skipped, "fp16 runs only with target=cuda"),
    ]
    return report


def test_the_summary_compares_the_last_kept_pass_with_the_source() -> None:
    summary = make_report().summary()
    assert summary["speedup_batch1"] == pytest.approx(2.5)
    assert summary["throughput_gain"] == pytest.approx(3.2)
    assert summary["size_reduction"] == pytest.approx(4000 / 1100)
    assert summary["metric_delta"] == pytest.approx(-0.001)


def test_json_is_plain_and_reads_back(tmp_path: Path) -> None:
    json_path, markdown_path = make_report().write(tmp_path)
    data = json.loads(json_path.read_text())
    assert data["version"] == 1
    assert data["passes"][2]["status"] == "rolled_back"
    assert data["passes"][2]["max_abs_diff"] is None  # NaN is not JSON
    again = report_from_dict(data)
    assert [row.status for row in again.passes] == [row.status for row in make_report().passes]
    assert "| quantize_static | rolled_back |" in markdown_path.read_text()


def test_markdown_has_one_row_per_pass_and_the_result_line() -> None:
    text = make_report().to_markdown()
    assert text.count("\n| ") == 2 + 5  # header, separator, five passes
    assert "2.50x faster at batch 1" in text
    assert "| fp16 | skipped | - |" in text


def test_time_calls_runs_at_least_min_runs_and_min_seconds() -> None:
    ticks = itertools.count(0.0, 0.1)  # every clock read advances 0.1 s
    calls: list[int] = []
    times = time_calls(lambda: calls.append(1), MeasureSettings(warmup=2, min_runs=3,
                                                               min_seconds=1.0),
                       clock=lambda: next(ticks))
    assert len(calls) == 2 + len(times)
    assert len(times) >= 3
    assert all(t == pytest.approx(0.1) for t in times)


def test_measure_speed_times_batch_one_and_batch_thirty_two() -> None:
    seen: list[int] = []
    ticks = itertools.count(0.0, 0.004)
    speed = measure_speed(lambda feeds: seen.append(feeds["x"].shape[0]),
                          {"x": np.zeros((1, 3), np.float32)},
                          MeasureSettings(warmup=0, min_runs=2, min_seconds=0.0),
                          clock=lambda: next(ticks))
    assert set(seen) == {1, 32}
    assert speed.latency_ms_p50 == pytest.approx(4.0)
    assert speed.throughput == pytest.approx(32 / 0.004)


def test_rounds_take_medians_so_one_burst_of_load_does_not_decide() -> None:
    now = [0.0]
    calls = itertools.count()

    def steady(_: object) -> None:  # 2 ms a call, every round
        now[0] += 0.002

    def faster_but_hit(_: object) -> None:  # 1 ms a call, 50 ms in its second round
        now[0] += 0.050 if 6 <= next(calls) < 12 else 0.001  # 6 calls a round: 3 + 3

    settings = MeasureSettings(warmup=0, min_runs=3, max_runs=3, min_seconds=0.0)
    fast, slow = measure_in_rounds([faster_but_hit, steady], {"x": np.zeros((1, 2))},
                                   settings, 3, clock=lambda: now[0])

    assert fast.latency_ms_p50 == pytest.approx(1.0)
    assert slow.latency_ms_p50 == pytest.approx(2.0)
    assert fast.throughput == pytest.approx(32 / 0.001)
    assert fast.latency_runs == slow.throughput_runs == 9
