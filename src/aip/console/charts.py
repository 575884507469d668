"""Line charts as plain numbers for an inline SVG template (``macros.html``: ``line_chart``).

Why server-side: the chart is part of the page's HTML, so the live refresh that updates the
page updates the chart too, no chart library ships, and the browser runs no drawing code.
Long series are thinned to at most ``MAX_POINTS`` (every k-th point, keeping the last) so a
job that logged 100,000 steps still renders a small page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_POINTS = 400
WIDTH, HEIGHT = 560, 180
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 10, 26  # margins for the axis labels


@dataclass(frozen=True)
class Chart:
    title: str
    points: str  # "x,y x,y ..." for <polyline points=...>
    x_ticks: list[tuple[float, str]]  # (pixel x, label)
    y_ticks: list[tuple[float, str]]  # (pixel y, label)
    last: str  # the newest value, as text
    count: int  # points in the series (before thinning)
    last_point: tuple[float, float] | None = None  # pixels: marked, so one point shows too
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom_y: int = HEIGHT - BOTTOM
    right_x: int = WIDTH - RIGHT


def line_chart(title: str, series: Sequence[tuple[float, float]], unit: str = "",
               x_range: tuple[float, float] | None = None,
               y_floor: float | None = None) -> Chart:
    """A chart of (x, y) pairs sorted by x; an empty series gives an empty chart.

    ``x_range`` fixes the x axis (a time window such as the last minute) instead of fitting
    it to the points; it widens to take in any point outside it. ``y_floor``: the y axis
    starts at or below it (0 for rates and latencies, so a small change looks small)."""
    finite = [(x, y) for x, y in series if y == y and abs(y) != float("inf")]
    if not finite:
        return Chart(title, "", [], [], "—", 0)
    step = max(1, -(-len(finite) // MAX_POINTS))
    kept = list(finite[::step])
    if kept[-1] != finite[-1]:
        kept.append(finite[-1])
    xs = [x for x, _ in kept]
    x_low, x_high = _span(xs if x_range is None else [*xs, *x_range])
    ys = [y for _, y in kept]
    y_low, y_high = _span(ys if y_floor is None else [*ys, min(y_floor, *ys)])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def py(y: float) -> float:
        return TOP + (1 - (y - y_low) / (y_high - y_low)) * plot_h

    points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in kept)
    x_ticks = [(px(v), _label(v)) for v in _ticks(x_low, x_high)]
    y_ticks = [(py(v), _label(v)) for v in _ticks(y_low, y_high)]
    return Chart(title, points, x_ticks, y_ticks, _label(finite[-1][1]) + unit, len(finite),
                 last_point=(px(kept[-1][0]), py(kept[-1][1])))


def _span(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if high == low:  # a flat line: centre it
        pad = abs(low) * 0.1 or 1.0
        return low - pad, high + pad
    return low, high


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    return [low + (high - low) * i / count for i in range(count + 1)]


def _label(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 10_000:
        return f"{value:.3g}"
    if magnitude >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.3g}"
