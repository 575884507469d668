"""The pass pipeline: run each pass, measure it, let the guard keep it or roll it back.

A pass is a function ``(ModelState, PassContext) -> PassOutcome``: it reads the current
model and writes a new one (or says why it does not apply). The pipeline, not the pass,
decides what is kept, so no pass can slip an accuracy loss through:

    1. run the pass                    (skipped: the row says why; the model is unchanged)
    2. run the new model on the evaluation rows and ask the guard
    3. time it (latency p50 at batch 1, throughput at batch 32) and weigh the file
    4. keep it, or roll back to the model before it

``Alternatives`` are passes that each start from the same model (fp16, INT8 dynamic,
INT8 static): every one is measured, and the fastest that passes the guard is kept, if it
is faster than the model before it (or the smallest, with ``objective="size"``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aip.errors import AIPError
from aip.optimize.data import Feeds, InputSpec
from aip.optimize.errors import first_line
from aip.optimize.guard import Guard, Verdict
from aip.optimize.measure import MeasureSettings, Speed, measure_in_rounds, measure_speed
from aip.optimize.report import PassReport, Status
from aip.optimize.sessions import file_size, open_session, run_batched, runner

if TYPE_CHECKING:  # api and sources import this module
    from aip.optimize.api import OptimizeOptions
    from aip.optimize.sources import Source

HEAD_TO_HEAD_ROUNDS = 3
QUIET_LOGGERS = ("", "torch.onnx", "torch.export", "torch._dynamo", "onnxruntime",
                 "onnxscript", "onnx_ir", "onnxruntime.transformers")


@dataclass(frozen=True)
class ModelState:
    """The model between passes. ``quantize_from`` is the model quantizers should read:
    ORT's offline CPU fusions (FusedConv, FusedGemm) hide ops from the quantizer, so after
    a generic graph pass it stays the pre-fusion model (ORT re-applies those fusions online
    when the session loads). ``module`` is the PyTorch module, when there is one."""

    path: Path | None
    module: Any = None
    quantize_from: Path | None = None

    def moved_to(self, path: Path, **changes: Any) -> ModelState:
        return replace(self, path=path, **changes)


@dataclass(frozen=True)
class ProgressEvent:
    """What the pipeline is doing, for a progress bar: ``pass_started`` / ``pass_finished``
    (with the row), ``calibration_started`` (with ``total`` batches) / ``calibration_step``
    / ``calibration_finished``."""

    kind: str
    name: str
    total: int | None = None
    row: PassReport | None = None


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass
class PassContext:
    """What every pass may read: one object instead of a long argument list."""

    workdir: Path
    level: str
    target: str
    specs: list[InputSpec]
    example: Feeds
    eval_feeds: Feeds
    guard: Guard
    options: OptimizeOptions
    calib: Feeds | None = None
    source: Source | None = None
    progress: ProgressCallback = field(default=lambda event: None)
    verdicts: dict[tuple[str, int, bool], Verdict] = field(default_factory=dict, repr=False)

    @property
    def given(self) -> Source:
        """The model the user handed over (passes that read it run with one)."""
        if self.source is None:
            raise RuntimeError("this pass reads the source model: PassContext.source is unset")
        return self.source

    def verdict(self, path: Path, *, lossless: bool = False) -> Verdict:
        """The guard's verdict on ``path`` (passes that compare candidates of their own ask
        first; the pipeline's assessment of the one they return reuses the answer, keyed by
        the file and its modification time)."""
        key = (str(path), path.stat().st_mtime_ns, lossless)
        if key not in self.verdicts:
            session = open_session(path, self.target)
            self.verdicts[key] = self.guard.check(run_batched(session, self.eval_feeds),
                                                  lossless=lossless)
        return self.verdicts[key]


@dataclass(frozen=True)
class PassOutcome:
    """A pass's result: the new state, or ``None`` and the reason it was skipped."""

    state: ModelState | None
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def skipped(cls, reason: str, **details: Any) -> PassOutcome:
        return cls(None, reason, details)


@dataclass(frozen=True)
class Pass:
    """A named pass. ``lossless`` passes are held to 1e-3 of the reference outputs; the
    others to the metric tolerance. A failing ``optional`` pass is reported and skipped;
    a failing required one (export) stops the run."""

    name: str
    run: Callable[[ModelState, PassContext], PassOutcome]
    lossless: bool
    optional: bool = True


@dataclass(frozen=True)
class Alternatives:
    """Passes that compete from the same starting model. Of those within tolerance, the
    best by ``options.objective`` is kept, and only if it beats the model they started
    from: "speed" (default) compares latency at batch 1 times time per row at batch 32,
    re-timed head to head in alternating rounds; "size" compares bytes. A lossy pass that
    buys nothing is not worth its accuracy."""

    passes: tuple[Pass, ...]


Step = Pass | Alternatives


def run_pipeline(steps: Sequence[Step], state: ModelState, context: PassContext,
                 rows: list[PassReport]) -> ModelState:
    """Run ``steps`` in order, appending one report row per pass; return the final state."""
    for step in steps:
        if isinstance(step, Alternatives):
            state = _run_alternatives(step, state, context, rows)
        else:
            candidate, row = run_pass(step, state, context)
            rows.append(row)
            state = candidate if row.status is Status.kept else state
    return state


def run_pass(step: Pass, state: ModelState, context: PassContext
             ) -> tuple[ModelState, PassReport]:
    """One pass through steps 1-3 of the module docstring; the row says kept or not."""
    context.progress(ProgressEvent("pass_started", step.name))
    started = time.perf_counter()
    if step.name in context.options.skip:
        row = PassReport(step.name, Status.skipped, "disabled by options.skip")
        context.progress(ProgressEvent("pass_finished", step.name, row=row))
        return state, row
    try:
        # in the work directory: ORT's shape inference drops temporary files in the cwd
        with quiet_logs(), stdout_silenced(), contextlib.chdir(context.workdir):
            outcome = step.run(state, context)
    except AIPError:
        raise
    except Exception as exc:
        if not step.optional:
            raise
        outcome = PassOutcome.skipped(f"failed: {type(exc).__name__}: {first_line(exc)}")
    if outcome.state is None or outcome.state.path is None:
        row = PassReport(step.name, Status.skipped, outcome.reason,
                         seconds=time.perf_counter() - started, details=outcome.details)
        context.progress(ProgressEvent("pass_finished", step.name, row=row))
        return state, row
    new_state = outcome.state
    assert new_state.path is not None
    verdict, speed = assess(new_state.path, context, lossless=step.lossless)
    row = PassReport(
        step.name, Status.kept if verdict.passed else Status.rolled_back,
        reason=verdict.failure, latency_ms_p50=speed.latency_ms_p50,
        throughput=speed.throughput, size_bytes=file_size(new_state.path),
        metric=verdict.metric, metric_delta=verdict.delta, max_abs_diff=verdict.max_abs_diff,
        seconds=time.perf_counter() - started, details=outcome.details)
    context.progress(ProgressEvent("pass_finished", step.name, row=row))
    return new_state, row


def assess(path: Path, context: PassContext, *, lossless: bool) -> tuple[Verdict, Speed]:
    """The guard's verdict on ``path`` (computed once per file) and its speed."""
    verdict = context.verdict(path, lossless=lossless)
    speed = measure_speed(runner(open_session(path, context.target)), context.example,
                          _settings(context))
    return verdict, speed


@contextmanager
def quiet_logs() -> Iterator[None]:
    """Silence the exporters' and quantizers' advice while a pass runs ("consider
    pre-processing", "torchvision is not installed"): the report says what matters."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextmanager
def stdout_silenced() -> Iterator[None]:
    """Send stdout to /dev/null while a pass runs, at the file-descriptor level too: ORT's
    calibrators print progress and the TorchScript exporter prints failing graphs from C++,
    and stdout belongs to ``aip optimize -o json``."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:
        saved = -1
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(io.StringIO()):
            if saved >= 0:
                os.dup2(sink.fileno(), 1)
            yield
    finally:
        if saved >= 0:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


# -- helpers --------------------------------------------------------------------------------


def _run_alternatives(step: Alternatives, state: ModelState, context: PassContext,
                      rows: list[PassReport]) -> ModelState:
    current = next((row for row in reversed(rows)
                    if row.status in (Status.kept, Status.reference)), None)
    results = [run_pass(candidate, state, context) for candidate in step.passes]
    passed = [(candidate, row) for candidate, row in results if row.status is Status.kept]
    objective = _objective(context)
    best = min(passed, key=lambda item: objective(item[1]), default=None)
    if best is not None and current is not None and state.path is not None \
            and context.options.objective == "speed" and best[0].path is not None:
        current = _head_to_head(state.path, current, best[0].path, best[1], context)
    if best is not None and current is not None and current.latency_ms_p50 is not None \
            and objective(best[1]) >= objective(current):
        best = None  # lossy and no better than what we had: keep what we had
    for _, row in results:
        if row.status is Status.kept and (best is None or row is not best[1]):
            row.status = Status.skipped  # within tolerance, but not the one kept
            if best is not None:
                row.reason = (f"within tolerance, but {best[1].name} is {_goal(context)} "
                              f"({_compared(best[1], row)})")
            elif current is not None:
                row.reason = (f"within tolerance, but no {_goal(context)} than "
                              f"{current.name} ({_compared(row, current)})")
        rows.append(row)
    return best[0] if best is not None else state


def _head_to_head(current_path: Path, current: PassReport, candidate_path: Path,
                  candidate: PassReport, context: PassContext) -> PassReport:
    """Time the current model and the chosen candidate in alternating rounds and take
    medians, so a busy neighbour on a shared machine cannot decide for us; the candidate's
    row gets the new numbers, and a copy of the current row is returned for comparison."""
    against, chosen = measure_in_rounds(
        [runner(open_session(path, context.target)) for path in (current_path, candidate_path)],
        context.example, _settings(context), HEAD_TO_HEAD_ROUNDS)
    candidate.latency_ms_p50, candidate.throughput = chosen.latency_ms_p50, chosen.throughput
    candidate.details["head_to_head"] = {
        "rounds": HEAD_TO_HEAD_ROUNDS, "against": current.name,
        "against_latency_ms_p50": against.latency_ms_p50,
        "against_throughput": against.throughput}
    return replace(current, latency_ms_p50=against.latency_ms_p50,
                   throughput=against.throughput)


def _objective(context: PassContext) -> Callable[[PassReport], float]:
    if context.options.objective == "size":
        return lambda row: float(row.size_bytes or float("inf"))
    return _cost


def _goal(context: PassContext) -> str:
    return "smaller" if context.options.objective == "size" else "faster overall"


def _compared(better: PassReport, other: PassReport) -> str:
    return (f"p50 {better.latency_ms_p50 or 0:.3f} vs {other.latency_ms_p50 or 0:.3f} ms, "
            f"{better.throughput or 0:,.0f} vs {other.throughput or 0:,.0f} rows/s, "
            f"{better.size_bytes or 0:,} vs {other.size_bytes or 0:,} bytes")


def _cost(row: PassReport) -> float:
    latency = row.latency_ms_p50 or float("inf")
    throughput = row.throughput or 1e-12
    return latency / throughput


def _settings(context: PassContext) -> MeasureSettings:
    settings: MeasureSettings = context.options.measure
    return settings
