"""``aip optimize``: make a model faster and smaller for inference, with an accuracy guard.

    aip optimize model.onnx --val val.npz --metric accuracy --tolerance 0.01 --dest out/
    aip optimize model.pt --example-input x.npy --calib calib.npz --level o2
    aip optimize models:/fraud@production --val val.npz --metric auc   # registers a version
    aip optimize model.onnx --level o1 -o json                         # the report as JSON

Data files are numpy: ``.npy`` for a model with one input, ``.npz`` with one array per input
(named like the model's inputs, or in order) and, for ``--val``, a ``labels`` array.
The optimized model, report.json and report.md go to ``--dest`` (default: ./optimized).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from aip.cli.arrays import load_arrays
from aip.cli.output import OutputFormat, OutputOption, add_row, emit_json, new_table, note, stdout

DEFAULT_DEST = Path("optimized")
REGISTRY_SCHEME = "models:/"
FLAGS = {"calib_data": "--calib", "val_data": "--val", "example_inputs": "--example-input",
         "metric": "--metric", "tolerance": "--tolerance", "level": "--level",
         "target": "--target", "model": "MODEL", "options.prune": "--prune",
         "options.calibration_methods": "--calibration-methods"}


def optimize(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(
        metavar="MODEL", help="An .onnx file, a TorchScript .pt file, or models:/NAME@ALIAS.")],
    example_input: Annotated[Path | None, typer.Option(
        "--example-input", exists=True, dir_okay=False, metavar="FILE.npy|.npz",
        help="One realistic batch (required for TorchScript and for dynamic ONNX inputs).")
    ] = None,
    calib: Annotated[Path | None, typer.Option(
        "--calib", exists=True, dir_okay=False, metavar="FILE.npz",
        help="Calibration inputs for static INT8 (a few hundred rows).")] = None,
    val: Annotated[Path | None, typer.Option(
        "--val", exists=True, dir_okay=False, metavar="FILE.npz",
        help="Validation inputs, with a 'labels' array for accuracy and auc.")] = None,
    metric: Annotated[str | None, typer.Option(
        metavar="accuracy|auc|cosine", help="What the guard protects; default cosine to the "
        "fp32 outputs.")] = None,
    tolerance: Annotated[float | None, typer.Option(
        min=0.0, help="The metric drop o2 may spend (default 0.01).")] = None,
    level: Annotated[str, typer.Option(
        metavar="o1|o2", help="o1: lossless (export, graph fusions); o2: also INT8/fp16 "
        "within --tolerance.")] = "o2",
    target: Annotated[str, typer.Option(metavar="cpu|cuda", help="Where it will run.")] = "cpu",
    dest: Annotated[Path, typer.Option(
        "--dest", "-d", metavar="DIR", help="Directory for model.onnx and the report.")
    ] = DEFAULT_DEST,
    prune: Annotated[float | None, typer.Option(
        min=0.0, max=0.99, help="o2, PyTorch inputs: share of channels to prune per layer.")
    ] = None,
    methods: Annotated[str, typer.Option(
        "--calibration-methods", metavar="LIST",
        help="Static INT8 calibration methods to try.")] = "minmax,entropy,percentile",
    skip: Annotated[list[str] | None, typer.Option(
        "--skip", metavar="PASS", help="A pass not to run (repeatable): graph, "
        "quantize_dynamic, quantize_static, fp16, prune.")] = None,
    measure_seconds: Annotated[float, typer.Option(
        "--measure-seconds", min=0.0, help="Minimum timing per batch size and pass.")] = 0.5,
    name: Annotated[str | None, typer.Option(
        metavar="NAME", help="models:/ input: register the result under this name "
        "(default: the same model).")] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Export, fuse and quantize a model; keep each pass only if the metric holds."""
    from aip.optimize.api import OptimizeOptions
    from aip.optimize.measure import MeasureSettings

    options = OptimizeOptions(
        skip=tuple(skip or ()), prune=prune or None,
        calibration_methods=tuple(item.strip() for item in methods.split(",") if item.strip()),
        measure=MeasureSettings(min_seconds=measure_seconds))
    arguments: dict[str, Any] = {
        "example_inputs": load_arrays(example_input, "--example-input"),
        "calib_data": load_arrays(calib, "--calib"),
        "val_data": load_arrays(val, "--val"),
        "metric": metric, "tolerance": tolerance, "level": level, "target": target,
        "output_dir": dest, "options": options,
    }
    registered = None
    with _flag_names(), _PipelineProgress(enabled=output is not OutputFormat.json) as progress:
        if model.startswith(REGISTRY_SCHEME):
            from aip.cli.context import open_client
            from aip.optimize.registry import optimize_registered

            with open_client(ctx) as client:
                result, registered = optimize_registered(client, model, name=name,
                                                         progress=progress, **arguments)
        else:
            from aip.optimize.api import optimize as run_optimize

            result = run_optimize(model, progress=progress, **arguments)
    if output is OutputFormat.json:
        data = result.report.to_dict()
        if registered is not None:
            data["registered"] = registered
        emit_json(data)
        return
    _print_report(result.report)
    if registered is not None:
        stdout().print(f"registered {registered['uri']} (onnx)", style="green", markup=False)


# -- views --------------------------------------------------------------------------------


def _print_report(report: Any) -> None:
    from rich.text import Text

    from aip.optimize.report import (
        format_delta,
        format_number,
        format_rate,
        format_size,
        summary_text,
    )

    table = new_table("PASS", "STATUS", "P50 B1 (ms)", "B32 (rows/s)", "SIZE",
                      report.metric.upper(), "DELTA", "NOTE", wrap=("NOTE",))
    styles = {"kept": "green", "rolled_back": "bold red", "skipped": "dim",
              "reference": "cyan"}
    for row in report.passes:
        add_row(table, row.name, Text(str(row.status), style=styles.get(str(row.status), "")),
                format_number(row.latency_ms_p50, 3),
                format_rate(row.throughput),
                format_size(row.size_bytes), format_number(row.metric),
                format_delta(row.metric_delta), row.reason)
    console = stdout()
    console.print(table)
    console.print(f"{summary_text(report.summary())}", style="bold", markup=False)
    directory = Path(report.path).parent if report.path else None
    if directory is not None:
        note(f"wrote {report.path}, {directory / 'report.json'}, {directory / 'report.md'}")


class _PipelineProgress:
    """A spinner naming the running pass and, while calibrating, a bar of batches; on
    stderr and only on a terminal, like the transfer bars."""

    def __init__(self, *, enabled: bool) -> None:
        from aip.cli.output import stderr

        self._console = stderr()
        self._enabled = enabled and self._console.is_terminal
        self._progress: Any = None
        self._pass_task: Any = None
        self._calibration_task: Any = None

    def __enter__(self) -> _PipelineProgress:
        if self._enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"),
                                      BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                      console=self._console, transient=True)
            self._progress.__enter__()
            self._pass_task = self._progress.add_task("loading the model", total=None)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc_info)

    def __call__(self, event: Any) -> None:
        if self._progress is None:
            return
        if event.kind == "pass_started":
            self._progress.update(self._pass_task, description=f"pass {event.name}")
        elif event.kind == "pass_finished" and event.row is not None:
            self._progress.console.print(f"  {event.name}: {event.row.status}", style="dim",
                                         markup=False)
        elif event.kind == "calibration_started":
            self._calibration_task = self._progress.add_task("calibrating", total=event.total)
        elif event.kind == "calibration_step" and self._calibration_task is not None:
            self._progress.advance(self._calibration_task)
        elif event.kind == "calibration_finished" and self._calibration_task is not None:
            self._progress.remove_task(self._calibration_task)
            self._calibration_task = None


# -- helpers --------------------------------------------------------------------------------


@contextmanager
def _flag_names() -> Iterator[None]:
    """Errors of the Python API name its arguments (``calib_data``); say ``--calib`` here."""
    from aip.errors import AIPError

    try:
        yield
    except AIPError as exc:
        fields = {FLAGS.get(path, path): text for path, text in exc.fields.items()}
        message = exc.message
        for argument, flag in FLAGS.items():
            if message.startswith(f"{argument}:"):
                message = flag + message[len(argument):]
        renamed = type(exc)(message, fields=fields)
        raise renamed from exc
