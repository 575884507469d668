"""Pass ``quantize_static``: INT8 weights and activations, scales fixed by calibration.

Calibration runs the model on the user's ``calib_data`` and records each activation's range.
How that range is chosen matters per model, so several settings are tried and the one with
the best measured metric on the validation rows wins (ties go to the earlier, cheaper one):

    methods     MinMax, Entropy, Percentile   (options.calibration_methods)
    per-channel False, True                   (options.per_channel)

The model is first prepared with ``quant_pre_process`` (symbolic shape inference and basic
optimizations), as ONNX Runtime recommends, and quantized in QDQ format with unsigned 8-bit
activations and signed 8-bit weights, the combination ORT's CPU kernels run fastest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aip.optimize.data import Feeds, batches, rows, take
from aip.optimize.errors import first_line
from aip.optimize.passes.rewrites import drop_shape_annotations
from aip.optimize.pipeline import ModelState, PassContext, PassOutcome, ProgressEvent

METHOD_NAMES = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


def quantize_static_pass(state: ModelState, context: PassContext) -> PassOutcome:
    if context.target != "cpu":
        return PassOutcome.skipped("static INT8 (QDQ) needs TensorRT on GPUs; on cuda the "
                                   "fp16 pass applies")
    if context.calib is None:
        return PassOutcome.skipped("no calib_data: give calibration rows (--calib FILE.npz) "
                                   "to try static INT8")
    source = state.quantize_from or state.path
    assert source is not None
    prepared, prepare_note = _pre_process(source, context.workdir / "static_prepared.onnx")
    options = context.options
    calib = take(context.calib, 0, min(rows(context.calib), options.max_calib_rows))
    settings = [(method, per_channel) for method in options.calibration_methods
                for per_channel in options.per_channel]
    batch_count = -(-rows(calib) // options.calib_batch_size)
    context.progress(ProgressEvent("calibration_started", "quantize_static",
                                   total=batch_count * len(settings)))
    candidates: list[dict[str, Any]] = []
    best: tuple[float, Path, dict[str, Any]] | None = None
    def step() -> None:
        context.progress(ProgressEvent("calibration_step", "quantize_static"))

    try:
        for index, (method, per_channel) in enumerate(settings):
            out = context.workdir / f"quantize_static_{index}.onnx"
            quantize_with(prepared, out, calib, method=method, per_channel=per_channel,
                          batch_size=options.calib_batch_size, on_batch=step)
            verdict = context.verdict(out)
            candidate = {"method": method, "per_channel": per_channel,
                         "metric": verdict.metric}
            candidates.append(candidate)
            if best is None or verdict.metric > best[0]:
                best = (verdict.metric, out, candidate)
    finally:
        context.progress(ProgressEvent("calibration_finished", "quantize_static"))
    assert best is not None
    details = {"chosen": best[2], "candidates": candidates, "calibration_rows": rows(calib)}
    if prepare_note:
        details["pre_process"] = prepare_note
    return PassOutcome(state.moved_to(best[1], quantize_from=None), details=details)


def quantize_with(source: Path, out: Path, calib: Feeds, *, method: str, per_channel: bool,
                  batch_size: int, on_batch: Callable[[], None] = lambda: None) -> None:
    """One static quantization of ``source`` with one calibration setting."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    reader = make_reader(calib, batch_size, on_batch)
    quantize_static(str(source), str(out), reader, quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=per_channel,
                    calibrate_method=getattr(CalibrationMethod, METHOD_NAMES[method]))
    drop_shape_annotations(out)


def make_reader(calib: Feeds, batch_size: int, on_batch: Callable[[], None]) -> Any:
    """A ``CalibrationDataReader`` over ``calib`` in batches, calling ``on_batch`` per batch
    (the CLI's progress bar)."""
    from onnxruntime.quantization import CalibrationDataReader

    class FeedsReader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._batches: Iterator[Feeds] = batches(calib, batch_size)

        def get_next(self) -> Feeds | None:
            batch = next(self._batches, None)
            if batch is not None:
                on_batch()
            return batch

        def rewind(self) -> None:
            self._batches = batches(calib, batch_size)

    return FeedsReader()


def _pre_process(source: Path, out: Path) -> tuple[Path, str]:
    """``quant_pre_process`` when it succeeds; models it cannot infer shapes for are
    quantized as they are (ORT's quantizer still works, with fewer fusions)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(source), str(out), skip_symbolic_shape=False)
    except Exception as exc:
        return source, f"skipped: {type(exc).__name__}: {first_line(exc)}"
    return out, ""
