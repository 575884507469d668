"""How ``aip job metrics`` / ``artifacts`` / ``download`` present tracking: summaries,
sparklines and where downloaded files land."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from aip.cli.tracking_views import (
    download_targets,
    metric_value,
    metrics_table,
    sparkline,
    summarize,
)


def point(key: str, step: int, value: float | None, rank: int = 0) -> dict[str, object]:
    return {"key": key, "step": step, "value": value, "time": 1.0, "rank": rank}


@pytest.mark.parametrize(("values", "expected"), [
    pytest.param([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], "▁▂▃▄▅▆▇█", id="rising"),
    pytest.param([3.0, 2.0, 1.0], "█▅▁", id="falling"),
    pytest.param([5.0, 5.0], "▄▄", id="flat sits in the middle"),
    pytest.param([1.0, None, 2.0], "▁ █", id="a gap for NaN"),
    pytest.param([], "", id="nothing"),
])
def test_sparkline(values: list[float | None], expected: str) -> None:
    assert sparkline(values) == expected


def test_a_long_series_is_averaged_into_the_width() -> None:
    line = sparkline([float(n) for n in range(1000)], width=10)
    assert len(line) == 10 and line[0] == "▁" and line[-1] == "█"


def test_a_summary_per_key_and_rank_skips_nan_in_min_and_max() -> None:
    points = [point("loss", 2, 0.5), point("loss", 0, 2.0), point("loss", 1, None),
              point("loss", 0, 3.0, rank=1), point("acc", 0, 0.1)]
    acc, loss, loss1 = summarize(points)
    assert (acc.key, acc.steps, acc.last) == ("acc", 1, 0.1)
    assert (loss.steps, loss.first_step, loss.last_step) == (3, 0, 2)
    assert (loss.last, loss.low, loss.high) == (0.5, 0.5, 2.0)
    assert (loss1.rank, loss1.last) == (1, 3.0)


def test_the_table_shows_replicas_only_when_several_logged() -> None:
    from rich.console import Console

    def render(points: list[dict[str, object]]) -> str:
        console = Console(width=200, record=True)
        console.print(metrics_table(points))
        return console.export_text()

    single = render([point("loss", 0, 1.0), point("loss", 1, 0.25)])
    assert "REPLICA" not in single and "0.25" in single and "LAST STEP" in single
    several = render([point("loss", 0, 1.0), point("loss", 0, 1.0, rank=1)])
    assert "REPLICA" in several and "rank 1" in several


def test_metric_values_are_short_and_nan_is_named() -> None:
    assert metric_value(0.123456789) == "0.123457"
    assert metric_value(None) == "nan"
    assert metric_value(math.pi * 1e9) == "3.14159e+09"


def test_a_file_lands_in_the_directory_and_a_directory_keeps_its_name(tmp_path: Path) -> None:
    [(_, file_target)] = download_targets([{"path": "best/model.bin"}], "best/model.bin",
                                          tmp_path)
    assert file_target == tmp_path / "model.bin"
    targets = download_targets([{"path": "ckpt/a.bin"}, {"path": "ckpt/sub/b.bin"}], "ckpt/",
                               tmp_path)
    assert [target for _, target in targets] == [tmp_path / "ckpt" / "a.bin",
                                                 tmp_path / "ckpt" / "sub" / "b.bin"]
