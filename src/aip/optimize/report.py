"""The optimization report: one row per pass, what it bought and what it cost.

Each row has the speed and size of the model after the pass (latency p50 at batch 1,
throughput at batch 32, bytes), its metric and the change from the reference, and a status:
``kept``, ``rolled_back`` (it broke the tolerance; the model before it was kept) or
``skipped`` (with the reason). The first row, ``source``, measures the model as it was given
(PyTorch eager for a module), so the summary's ratios answer "how much faster than what I had".

    report.to_json()            # versioned, for scripts and the registry
    report.to_markdown()        # for docs and pull requests
    report.write(directory)     # report.json and report.md
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

REPORT_VERSION = 1


class Status(StrEnum):
    reference = "reference"
    kept = "kept"
    rolled_back = "rolled_back"
    skipped = "skipped"


@dataclass
class PassReport:
    """One row of the report. Speed and metric are ``None`` for a skipped pass."""

    name: str
    status: Status
    reason: str = ""
    latency_ms_p50: float | None = None
    throughput: float | None = None
    size_bytes: int | None = None
    metric: float | None = None
    metric_delta: float | None = None
    max_abs_diff: float | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = str(self.status)
        return {key: _plain(value) for key, value in data.items()}


@dataclass
class OptimizeReport:
    """Everything a run measured; ``path`` is the optimized model that was written."""

    source: str
    level: str
    target: str
    metric: str
    tolerance: float
    baseline_metric: float
    passes: list[PassReport] = field(default_factory=list)
    path: str | None = None
    version: int = REPORT_VERSION

    @property
    def final(self) -> PassReport | None:
        """The row of the model that was written: the last kept pass (or the source)."""
        rows = [row for row in self.passes if row.status in (Status.kept, Status.reference)]
        return rows[-1] if rows else None

    def summary(self) -> dict[str, float | None]:
        """Speed-up, throughput gain and size reduction of the result over the source."""
        source = next((row for row in self.passes if row.status is Status.reference), None)
        final = self.final
        if source is None or final is None:
            return {"speedup_batch1": None, "throughput_gain": None, "size_reduction": None}
        return {
            "speedup_batch1": _ratio(source.latency_ms_p50, final.latency_ms_p50),
            "throughput_gain": _ratio(final.throughput, source.throughput),
            "size_reduction": _ratio(source.size_bytes, final.size_bytes),
            "metric_delta": final.metric_delta,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "source": self.source,
            "level": self.level,
            "target": self.target,
            "metric": self.metric,
            "tolerance": self.tolerance,
            "baseline_metric": _plain(self.baseline_metric),
            "path": self.path,
            "summary": {key: _plain(value) for key, value in self.summary().items()},
            "passes": [row.to_dict() for row in self.passes],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self) -> str:
        """A Markdown table, one row per pass, then the summary line."""
        lines = [
            f"# aip optimize: {self.source}",
            "",
            f"level {self.level}, target {self.target}, metric {self.metric} "
            f"(reference {format_number(self.baseline_metric)}, tolerance {self.tolerance:g})",
            "",
            "| pass | status | p50 batch 1 (ms) | throughput batch 32 (rows/s) | size | "
            f"{self.metric} | delta | note |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for row in self.passes:
            lines.append(
                f"| {row.name} | {row.status} | {format_number(row.latency_ms_p50, 3)} | "
                f"{format_rate(row.throughput)} | {format_size(row.size_bytes)} | "
                f"{format_number(row.metric)} | {format_delta(row.metric_delta)} | "
                f"{row.reason.replace('|', '/')} |")
        summary = self.summary()
        lines += ["", "Result: " + summary_text(summary) + (f" -> `{self.path}`"
                                                             if self.path else "")]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path | str) -> tuple[Path, Path]:
        """Write report.json and report.md into ``directory``; return both paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        json_path, markdown_path = directory / "report.json", directory / "report.md"
        json_path.write_text(self.to_json() + "\n")
        markdown_path.write_text(self.to_markdown())
        return json_path, markdown_path


def summary_text(summary: dict[str, float | None]) -> str:
    parts = []
    if summary.get("speedup_batch1") is not None:
        parts.append(f"{summary['speedup_batch1']:.2f}x faster at batch 1")
    if summary.get("throughput_gain") is not None:
        parts.append(f"{summary['throughput_gain']:.2f}x throughput at batch 32")
    if summary.get("size_reduction") is not None:
        parts.append(f"{summary['size_reduction']:.2f}x smaller")
    if summary.get("metric_delta") is not None:
        parts.append(f"metric {format_delta(summary['metric_delta'])}")
    return ", ".join(parts) or "nothing measured"


def format_number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.3g}"


def format_rate(value: float | None) -> str:
    """Rows per second with thousands separators: 1094597.1 -> "1,094,597"; 12.34 -> "12.3"."""
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def format_delta(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:+.4f}"


def format_size(value: int | None) -> str:
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.1f} {unit}" if unit != "B" else f"{int(amount)} B"
        amount /= 1024
    return str(value)  # pragma: no cover


def report_from_dict(data: dict[str, Any]) -> OptimizeReport:
    """Read back what ``to_dict`` wrote (the registry stores reports as JSON)."""
    rows = [PassReport(**{**row, "status": Status(row["status"])}) for row in data["passes"]]
    return OptimizeReport(source=data["source"], level=data["level"], target=data["target"],
                          metric=data["metric"], tolerance=data["tolerance"],
                          baseline_metric=data["baseline_metric"], passes=rows,
                          path=data.get("path"), version=data.get("version", REPORT_VERSION))


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return float(numerator) / float(denominator)


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and infinity become null, numpy scalars plain numbers."""
    if hasattr(value, "item") and not isinstance(value, list | dict):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
