"""PNG plots of simulator results (matplotlib, Agg, imported only when a plot is drawn).

* ``plot_fill``: allocated GPU % against arrived GPU %, one line per policy, with the ideal
  line (everything that arrives is allocated until the cluster is full), as in Weng et al.
  (ATC'23); a second panel zooms on the end, where policies differ.
* ``plot_replay``: allocated and waiting GPU % over time, one line per policy.

matplotlib comes with the ``sim`` extra: ``pip install 'aip[sim]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aip.errors import AIPError

if TYPE_CHECKING:
    from aip.sim.replay import ReplayResult

# (label, arrived %, allocated %)
Curve = tuple[str, Sequence[float], Sequence[float]]

ZOOM_FROM_PCT = 80.0


def plot_fill(curves: Sequence[Curve], path: str | Path, *, inflation: float = 1.3,
              title: str = "") -> Path:
    """Write the fill-mode plot of ``curves`` to ``path`` (PNG) and return the path."""
    figure = _figure(figsize=(11, 4.6))
    full, zoom = figure.subplots(1, 2)
    end = 100 * inflation
    ideal_x, ideal_y = [0.0, 100.0, end], [0.0, 100.0, 100.0]
    low = 100.0
    for axes, zoomed in ((full, False), (zoom, True)):
        axes.plot(ideal_x, ideal_y, color="black", linestyle="--", linewidth=1, label="ideal")
        for label, arrived, allocated in curves:
            axes.plot(arrived, allocated, linewidth=1.4, label=label)
            if zoomed:
                low = min([low, *(y for x, y in zip(arrived, allocated, strict=True)
                                  if x >= ZOOM_FROM_PCT)])
        axes.set_xlabel("arrived GPU request (% of GPU capacity)")
        axes.set_ylabel("allocated GPU (% of GPU capacity)")
        axes.grid(True, alpha=0.3)
    full.set_xlim(0, end)
    full.set_ylim(0, 105)
    full.set_title("whole run")
    zoom.set_xlim(ZOOM_FROM_PCT, end)
    zoom.set_ylim(max(0.0, low - 2), 100.5)
    zoom.set_title(f"from {ZOOM_FROM_PCT:g}% arrived")
    zoom.legend(loc="lower right", fontsize="small")
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def plot_replay(results: Sequence[ReplayResult], path: str | Path, *, title: str = "") -> Path:
    """Write allocated and waiting GPU % over time to ``path``: hours from the first arrival
    to the last one (the tail, where long tasks drain, is left out)."""
    figure = _figure(figsize=(11, 4.6))
    allocated, waiting = figure.subplots(1, 2, sharex=True)
    until = 0.0
    for result in results:
        until = max(until, (result.last_arrival_time - result.start_time) / 3600)
        hours = [(moment - result.start_time) / 3600 for moment in result.times]
        allocated.step(hours, result.utilization_pct, where="post", linewidth=1,
                       label=result.policy)
        waiting.step(hours, result.pending_gpu_pct, where="post", linewidth=1,
                     label=result.policy)
    allocated.set_ylabel("allocated GPU (% of capacity)")
    waiting.set_ylabel("waiting GPU request (% of capacity)")
    for axes in (allocated, waiting):
        axes.set_xlabel("hours since the first arrival")
        axes.grid(True, alpha=0.3)
        axes.set_xlim(0, until or None)
    allocated.legend(loc="upper left", fontsize="small")
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def _figure(figsize: tuple[float, float]) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise AIPError("plots need matplotlib: pip install 'aip[sim]'",
                       fields={"plot": "matplotlib is not installed"}) from None
    return Figure(figsize=figsize, layout="constrained")


def _save(figure: Any, path: str | Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    target = Path(path)
    if target.parent and not target.parent.exists():
        raise AIPError(f"cannot write the plot: folder {target.parent} does not exist",
                       fields={"plot": str(target)})
    FigureCanvasAgg(figure)
    figure.savefig(target, format="png", dpi=120)
    return target
