"""``aip.optimize``: hand over a trained model, get back a faster, smaller ONNX model, a
ready session and a report of what each pass bought and what it cost.

    import aip
    result = aip.optimize(model, example_inputs, level="o2",
                          calib_data=x_train[:256], val_data=(x_val, y_val),
                          metric="accuracy", tolerance=0.01)
    result.path                       # the optimized .onnx
    result.session.run(None, feeds)   # an onnxruntime.InferenceSession on the target
    print(result.report.to_markdown())

Levels: ``o1`` is lossless (export and graph optimizations; outputs within 1e-3 of the
original); ``o2`` adds what trades accuracy for speed (INT8 on the CPU, fp16 on GPUs, and
pruning when asked for) within ``tolerance`` of the metric. The run, in phases:

    1. recognise the source; name and check example, calibration and validation inputs
    2. reference: the source's own outputs on the validation rows (the guard's yardstick)
    3. measure the source as given (the report's first row)
    4. run the passes of the level; the guard keeps or rolls back each one
    5. copy the final model to ``output_dir/model.onnx``; write report.json and report.md
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aip.optimize.data import Feeds, rows, split_labeled, take, to_feeds
from aip.optimize.errors import OptimizeError, invalid
from aip.optimize.guard import Guard, MetricCallable
from aip.optimize.measure import MeasureSettings, measure_speed
from aip.optimize.pipeline import (
    Alternatives,
    ModelState,
    Pass,
    PassContext,
    ProgressCallback,
    Step,
    run_pipeline,
)
from aip.optimize.report import OptimizeReport, PassReport, Status
from aip.optimize.sessions import (
    TARGETS,
    input_specs,
    open_session,
    providers_for,
    run_batched,
)
from aip.optimize.sources import Source, load_source

if TYPE_CHECKING:
    import onnxruntime

LEVELS = ("o1", "o2")
MODEL_FILE = "model.onnx"


@dataclass(frozen=True)
class OptimizeOptions:
    """Knobs most users leave alone.

    ``skip``: pass names not to run. ``prune``: share of channels to zero per layer (o2,
    PyTorch modules); ``fine_tune(module)`` trains the pruned module. Static calibration
    tries every ``calibration_methods`` x ``per_channel`` setting on at most
    ``max_calib_rows`` rows. ``max_eval_rows`` bounds the rows the guard runs.
    ``dynamic_per_channel``: weight scales tried in order by INT8 dynamic (first accepted wins).
    ``transformer``: force (True) or forbid (False) the transformer fusions; None detects.
    ``keep_intermediate``: keep every pass's model under ``output_dir/passes``.
    ``objective``: what o2's lossy alternatives must improve to be kept, "speed" (latency
    at batch 1 and throughput at batch 32) or "size" (bytes)."""

    skip: tuple[str, ...] = ()
    prune: float | None = None
    fine_tune: Callable[[Any], Any] | None = None
    calibration_methods: tuple[str, ...] = ("minmax", "entropy", "percentile")
    per_channel: tuple[bool, ...] = (False, True)
    calib_batch_size: int = 32
    max_calib_rows: int = 512
    max_eval_rows: int = 4096
    dynamic_per_channel: tuple[bool, ...] = (False, True)
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    opset: int | None = None
    transformer: bool | None = None
    num_heads: int = 0
    hidden_size: int = 0
    keep_intermediate: bool = False
    objective: str = "speed"


@dataclass
class OptimizeResult:
    """The optimized model: ``path``, a ``session`` made on first use, the ``report``."""

    path: Path
    report: OptimizeReport
    target: str = "cpu"

    @cached_property
    def session(self) -> onnxruntime.InferenceSession:
        return open_session(self.path, self.target)

    def predict(self, inputs: Any) -> list[np.ndarray]:
        """Run the optimized model on inputs given like ``example_inputs``."""
        feeds = to_feeds(inputs, input_specs(self.session), field="inputs")
        return run_batched(self.session, feeds)


def optimize(
    model: Any,
    example_inputs: Any = None,
    *,
    level: str = "o2",
    target: str = "cpu",
    calib_data: Any = None,
    val_data: Any = None,
    metric: str | MetricCallable | None = None,
    tolerance: float | None = None,
    output_dir: str | Path | None = None,
    options: OptimizeOptions | None = None,
    progress: ProgressCallback | None = None,
) -> OptimizeResult:
    """Optimize ``model`` (``nn.Module`` + ``example_inputs``, or a TorchScript/ONNX path).

    ``calib_data``: inputs for static INT8 calibration. ``val_data``: ``(inputs, labels)``
    for the guard (labels may be None for ``metric="cosine"``). ``metric``: "accuracy",
    "auc", "cosine" (default) or ``callable(first_output, labels) -> float``, higher being
    better. ``tolerance``: the metric drop o2 may spend (default 0.01)."""
    options = options or OptimizeOptions()
    _check_choices(level, target, options)
    started = time.perf_counter()
    # 1. the source and its data
    source = load_source(model, example_inputs)
    calib = to_feeds(calib_data, source.specs, field="calib_data") if calib_data is not None \
        else None
    eval_feeds, labels = _evaluation_rows(source, calib, val_data, metric, options)
    # 2. the reference outputs and the guard
    reference = source.outputs(eval_feeds)
    guard = Guard(metric, tolerance, reference, labels)
    # 3. the source as given
    directory = (Path(output_dir) if output_dir is not None else Path(
        tempfile.mkdtemp(prefix="aip-optimize-"))).resolve()
    workdir = directory / "passes"
    workdir.mkdir(parents=True, exist_ok=True)
    report = OptimizeReport(source=source.description, level=level, target=target,
                            metric=guard.metric_name, tolerance=guard.tolerance,
                            baseline_metric=guard.baseline)
    report.passes.append(_source_row(source, target, guard, options))
    # 4. the passes
    context = PassContext(workdir=workdir, level=level, target=target, specs=source.specs,
                          example=source.example, eval_feeds=eval_feeds, guard=guard,
                          options=options, calib=calib, source=source,
                          progress=progress or (lambda event: None))
    final = run_pipeline(steps_for(level), ModelState(path=None, module=source.module),
                         context, report.passes)
    # 5. the result
    if final.path is None:  # the export failed the guard (or was skipped): say why
        export = next(row for row in report.passes if row.name == "export")
        raise OptimizeError(f"no pass produced an ONNX model: export {export.status.value}: "
                            f"{export.reason}", fields={"model": export.reason})
    out = directory / MODEL_FILE
    shutil.copyfile(final.path, out)
    report.path = str(out)
    report.passes[0].details["total_seconds"] = round(time.perf_counter() - started, 3)
    report.write(directory)
    if not options.keep_intermediate:
        shutil.rmtree(workdir, ignore_errors=True)
    return OptimizeResult(path=out, report=report, target=target)


def steps_for(level: str) -> list[Step]:
    """The passes of a level, in order (see the module docstring)."""
    from aip.optimize.passes.export import export_pass
    from aip.optimize.passes.fp16 import fp16_pass
    from aip.optimize.passes.graph import graph_pass
    from aip.optimize.passes.prune import prune_pass
    from aip.optimize.passes.quantize_dynamic import quantize_dynamic_pass
    from aip.optimize.passes.quantize_static import quantize_static_pass

    lossless: list[Step] = [Pass("export", export_pass, lossless=True, optional=False),
                            Pass("graph", graph_pass, lossless=True)]
    if level == "o1":
        return lossless
    return [lossless[0], Pass("prune", prune_pass, lossless=False), lossless[1],
            Alternatives((Pass("fp16", fp16_pass, lossless=False),
                          Pass("quantize_dynamic", quantize_dynamic_pass, lossless=False),
                          Pass("quantize_static", quantize_static_pass, lossless=False)))]


# -- helpers --------------------------------------------------------------------------------


def _check_choices(level: str, target: str, options: OptimizeOptions) -> None:
    if level not in LEVELS:
        raise invalid("level", f"unknown level {level!r}",
                      "use o1 (lossless) or o2 (quantized within tolerance)")
    if target not in TARGETS:
        raise invalid("target", f"unknown target {target!r}", f"use one of {', '.join(TARGETS)}")
    providers_for(target)  # fails early, before any export, when CUDA is absent
    if options.prune is not None and not 0.0 < options.prune < 1.0:
        raise invalid("options.prune", f"got {options.prune}", "give a share in (0, 1)")
    if options.prune and level == "o1":
        raise invalid("options.prune", "pruning loses accuracy, o1 is lossless",
                      "use level='o2' to prune")
    if options.objective not in ("speed", "size"):
        raise invalid("options.objective", f"got {options.objective!r}", "use speed or size")
    unknown = sorted(set(options.calibration_methods) - {"minmax", "entropy", "percentile"})
    if unknown or not options.calibration_methods:
        raise invalid("options.calibration_methods", f"got {options.calibration_methods}",
                      "use a non-empty subset of minmax, entropy, percentile")
    for name in ("per_channel", "dynamic_per_channel"):
        if not getattr(options, name):
            raise invalid(f"options.{name}", "is empty",
                          "give the weight scales to try, e.g. (False, True)")


def _evaluation_rows(source: Source, calib: Feeds | None, val_data: Any,
                     metric: Any, options: OptimizeOptions) -> tuple[Feeds, np.ndarray | None]:
    """The rows the guard runs: validation inputs, else calibration rows, else the example."""
    if val_data is not None:
        feeds, labels = split_labeled(val_data, source.specs, field="val_data")
        limit = min(rows(feeds), options.max_eval_rows)
        return take(feeds, 0, limit), labels[:limit] if labels is not None else None
    if metric not in (None, "cosine") and not callable(metric):
        raise invalid("metric", f"{metric} needs labelled validation data",
                      "give val_data=(inputs, labels), or use metric='cosine'")
    if callable(metric):
        raise invalid("val_data", "a metric callable needs validation data",
                      "give val_data=(inputs, labels)")
    feeds = calib if calib is not None else source.example
    return take(feeds, 0, min(rows(feeds), options.max_eval_rows)), None


def _source_row(source: Source, target: str, guard: Guard,
                options: OptimizeOptions) -> PassReport:
    """The model as given, timed on the target: the row every ratio is taken against."""
    started = time.perf_counter()
    speed = measure_speed(source.runner(target), source.example, options.measure)
    runtime = "onnxruntime" if source.kind == "onnx" else "pytorch eager"
    return PassReport("source", Status.reference, reason=f"{source.description} ({runtime})",
                      latency_ms_p50=speed.latency_ms_p50, throughput=speed.throughput,
                      size_bytes=source.size_bytes(), metric=guard.baseline, metric_delta=0.0,
                      max_abs_diff=0.0, seconds=time.perf_counter() - started,
                      details={"inputs": [spec.describe() for spec in source.specs],
                               "eval_rows": int(guard.reference[0].shape[0])})
