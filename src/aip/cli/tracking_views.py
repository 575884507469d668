"""How a job's tracking looks in the terminal: a summary per metric with a sparkline, the
points of one metric, the artifact list, and where downloads land."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from aip.cli.output import add_row, age, human_bytes, new_table

SPARK_BARS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 24

Point = dict[str, Any]


@dataclass(frozen=True)
class MetricSummary:
    key: str
    rank: int
    steps: int  # points logged
    first_step: int
    last_step: int
    last: float | None
    low: float | None
    high: float | None
    trend: str


def summarize(points: list[Point]) -> list[MetricSummary]:
    """One summary per (key, rank), in key then rank order. Values of None (NaN or ±inf)
    count as steps but not in last/min/max."""
    series: dict[tuple[str, int], list[Point]] = {}
    for point in points:
        series.setdefault((point["key"], int(point.get("rank", 0))), []).append(point)
    summaries = []
    for (key, rank), group in sorted(series.items()):
        group.sort(key=lambda p: p["step"])
        values = [p["value"] for p in group if _finite(p["value"])]
        summaries.append(MetricSummary(
            key=key, rank=rank, steps=len(group), first_step=group[0]["step"],
            last_step=group[-1]["step"], last=group[-1]["value"],
            low=min(values) if values else None, high=max(values) if values else None,
            trend=sparkline([p["value"] for p in group])))
    return summaries


def sparkline(values: list[float | None], width: int = SPARK_WIDTH) -> str:
    """Values as at most ``width`` bars (buckets averaged); a gap for buckets without a
    number."""
    if not values:
        return ""
    buckets: list[float | None] = []
    size = max(1, math.ceil(len(values) / width))
    for start in range(0, len(values), size):
        numbers = [float(v) for v in values[start:start + size] if v is not None and _finite(v)]
        buckets.append(sum(numbers) / len(numbers) if numbers else None)
    known = [b for b in buckets if b is not None]
    if not known:
        return " " * len(buckets)
    low, high = min(known), max(known)
    span = high - low
    top = len(SPARK_BARS) - 1
    return "".join(
        " " if b is None else SPARK_BARS[round((b - low) / span * top) if span else top // 2]
        for b in buckets)


def metrics_table(points: list[Point]) -> Any:
    """KEY, STEPS, LAST STEP, LAST, MIN, MAX, TREND; a REPLICA column (rank) when more than
    one replica logged."""
    summaries = summarize(points)
    ranks = {s.rank for s in summaries}
    columns = ["KEY", "STEPS", "LAST STEP", "LAST", "MIN", "MAX", "TREND"]
    if len(ranks) > 1:
        columns.insert(1, "REPLICA")
    table = new_table(*columns)
    for summary in summaries:
        cells: list[Any] = [summary.key]
        if len(ranks) > 1:
            cells.append(f"rank {summary.rank}")
        cells += [str(summary.steps), str(summary.last_step), metric_value(summary.last),
                  metric_value(summary.low), metric_value(summary.high), summary.trend]
        add_row(table, *cells)
    return table


def points_table(points: list[Point]) -> Any:
    """Every point: STEP, VALUE (and RANK when several replicas logged)."""
    several = len({p.get("rank", 0) for p in points}) > 1
    table = new_table("KEY", *(["RANK"] if several else []), "STEP", "VALUE")
    for point in points:
        add_row(table, point["key"], *([str(point.get("rank", 0))] if several else []),
                str(point["step"]), metric_value(point["value"]))
    return table


def artifacts_table(items: list[dict[str, Any]]) -> Any:
    table = new_table("PATH", "SIZE", "SHA256", "AGE")
    for item in items:
        add_row(table, item["path"], human_bytes(item["size"]), item["sha256"][:12],
                age(item.get("time")))
    return table


def metric_value(value: float | None) -> str:
    """Six significant digits; "nan" for a value stored as None."""
    return "nan" if value is None else f"{value:.6g}"


def download_targets(items: list[dict[str, Any]], path: str,
                     directory: Path) -> list[tuple[dict[str, Any], Path]]:
    """Where each artifact of a download lands: the artifact ``path`` itself as
    ``directory/<its name>``; the files under a directory ``path`` below
    ``directory/<its last name>/``, keeping their relative paths."""
    base = PurePosixPath(path.strip("/"))
    targets = []
    for item in items:
        relative = PurePosixPath(item["path"])
        if relative == base:
            target = PurePosixPath(base.name)
        else:
            target = PurePosixPath(base.name) / relative.relative_to(base)
        targets.append((item, directory.joinpath(*target.parts)))
    return targets


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
