"""The CLI's progress display: a line per finished pass and a calibration bar that comes and
goes, drawn on a (forced) terminal."""

from __future__ import annotations

import io

from rich.console import Console

from aip.cli.optimize import _PipelineProgress
from aip.optimize.pipeline import ProgressEvent
from aip.optimize.report import PassReport, Status


def test_the_progress_display_follows_the_pipeline_events() -> None:
    display = _PipelineProgress(enabled=True)
    sink = io.StringIO()
    display._console = Console(file=sink, force_terminal=True, width=100)
    display._enabled = True
    with display:
        display(ProgressEvent("pass_started", "export"))
        display(ProgressEvent("pass_finished", "export", row=PassReport("export", Status.kept)))
        display(ProgressEvent("calibration_started", "quantize_static", total=4))
        for _ in range(4):
            display(ProgressEvent("calibration_step", "quantize_static"))
        progress = display._progress
        assert progress.tasks[-1].completed == 4 and progress.tasks[-1].total == 4
        display(ProgressEvent("calibration_finished", "quantize_static"))
        assert len(progress.tasks) == 1  # the bar is gone, the pass spinner stays
    assert "export: kept" in sink.getvalue()


def test_without_a_terminal_the_display_does_nothing() -> None:
    display = _PipelineProgress(enabled=True)  # pytest's stderr is not a terminal
    with display:
        display(ProgressEvent("calibration_started", "quantize_static", total=4))
    assert display._progress is None
