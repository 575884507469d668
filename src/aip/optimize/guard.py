"""The accuracy guard: every pass's outputs are checked before the pass is kept.

A ``Guard`` holds the fp32 reference outputs of the source model on the evaluation rows,
the labels (if any), the metric and the tolerance. ``Guard.check(outputs, lossless=...)``
says whether a pass may be kept:

- lossless passes (export, graph optimizations) must reproduce the reference outputs within
  1e-3 (absolute and relative), and must not lower the metric;
- lossy passes (quantization, fp16, pruning) must keep the metric within ``tolerance`` of
  the reference's own score.

Metrics: ``"accuracy"`` and ``"auc"`` against labels, ``"cosine"`` (mean cosine similarity of
each row's outputs to the reference's; needs no labels) or a callable
``metric(outputs, labels) -> float`` on the model's first output, higher being better.
A metric that cannot be computed on the reference itself fails at once, naming ``metric``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aip.optimize.errors import invalid

LOSSLESS_ATOL = 1e-3
LOSSLESS_RTOL = 1e-3
DEFAULT_TOLERANCE = 0.01
METRICS = ("accuracy", "auc", "cosine")

MetricCallable = Callable[[np.ndarray, Any], float]


@dataclass(frozen=True)
class Verdict:
    """What the guard decided about one model: its metric, the change from the reference
    (negative: worse), the largest output difference, and why it failed (empty if it passed)."""

    metric: float
    delta: float
    max_abs_diff: float
    failure: str = ""

    @property
    def passed(self) -> bool:
        return not self.failure


class Guard:
    """Checks candidate outputs against the reference outputs; see the module docstring."""

    def __init__(self, metric: str | MetricCallable | None, tolerance: float | None,
                 reference: Sequence[np.ndarray], labels: np.ndarray | None) -> None:
        self.metric_name = metric if isinstance(metric, str) else (
            getattr(metric, "__name__", "custom") if metric is not None else "cosine")
        self._metric = _resolve(metric, labels)
        self.tolerance = DEFAULT_TOLERANCE if tolerance is None else _checked_tolerance(tolerance)
        self.reference = [_float(array) for array in reference]
        self.labels = labels
        self.baseline = self._score(self.reference)

    def check(self, outputs: Sequence[np.ndarray], *, lossless: bool) -> Verdict:
        """The verdict on ``outputs`` (same rows and order as the reference)."""
        outputs = [_float(array) for array in outputs]
        shapes = [array.shape for array in outputs]
        expected = [array.shape for array in self.reference]
        if shapes != expected:
            return Verdict(math.nan, math.nan, math.inf,
                           f"outputs have shapes {shapes}, the reference {expected}")
        max_diff = max(float(np.max(np.abs(out - ref), initial=0.0))
                       for out, ref in zip(outputs, self.reference, strict=True))
        score = self._score(outputs)
        delta = score - self.baseline
        if lossless:
            close = all(np.allclose(out, ref, rtol=LOSSLESS_RTOL, atol=LOSSLESS_ATOL)
                        for out, ref in zip(outputs, self.reference, strict=True))
            if not close:
                return Verdict(score, delta, max_diff,
                               f"outputs differ from the reference by up to {max_diff:.3g} "
                               f"(lossless allows {LOSSLESS_ATOL:g})")
            # float noise only: a lossless pass may not cost more than 1e-6 of the metric
            if delta < -1e-6:
                return Verdict(score, delta, max_diff,
                               f"{self.metric_name} fell by {-delta:.4g} in a lossless pass")
            return Verdict(score, delta, max_diff)
        if not math.isfinite(score) or delta < -self.tolerance:
            return Verdict(score, delta, max_diff,
                           f"{self.metric_name} {score:.4f} is below the reference "
                           f"{self.baseline:.4f} minus tolerance {self.tolerance:g}")
        return Verdict(score, delta, max_diff)

    def _score(self, outputs: Sequence[np.ndarray]) -> float:
        return self._metric(outputs, self.reference, self.labels)


# -- metrics --------------------------------------------------------------------------------


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose predicted class is the label: argmax of (N, C) class scores, or
    a 0.5 threshold on (N,) / (N, 1) probabilities."""
    predicted = _predicted_classes(np.asarray(scores))
    classes = _integer_labels(labels, "accuracy")
    if classes.ndim == 2:  # one-hot labels
        classes = classes.argmax(axis=1)
    scores = np.asarray(scores)
    if scores.ndim == 2 and scores.shape[1] > 1 and classes.max(initial=0) >= scores.shape[1]:
        raise invalid("metric", f"accuracy: label {int(classes.max())} but the model "
                      f"scores only {scores.shape[1]} classes",
                      "check the labels of val_data, or use metric='cosine'")
    return float(np.mean(predicted == classes))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied scores sharing their mean rank,
    which matters once quantization makes many scores equal)."""
    values = _binary_scores(np.asarray(scores))
    truth = _integer_labels(labels, "auc").reshape(-1)
    if not set(np.unique(truth).tolist()) <= {0, 1}:
        raise invalid("metric", "auc needs binary labels (0/1)",
                      "use metric='accuracy' for multi-class labels, or a callable")
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        raise invalid("metric", f"auc needs both classes in the labels; val_data has only "
                      f"class {int(truth[0])}", "give validation rows of both classes")
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    mean_rank = ends - (counts - 1) / 2.0  # 1-based mean rank of each distinct score
    ranks = mean_rank[inverse]
    rank_sum = float(ranks[truth == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def mean_cosine(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    """Mean over rows of the cosine similarity between a row's outputs (all outputs,
    flattened) and the reference row's. Two zero rows count as identical."""
    rows = outputs[0].shape[0]
    left = np.concatenate([np.asarray(a, np.float64).reshape(rows, -1) for a in outputs], 1)
    right = np.concatenate([np.asarray(a, np.float64).reshape(rows, -1) for a in reference],
                           1)
    dot = np.sum(left * right, axis=1)
    norms = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    both_zero = (np.linalg.norm(left, axis=1) == 0) & (np.linalg.norm(right, axis=1) == 0)
    cosine = np.where(norms > 0, dot / np.where(norms > 0, norms, 1.0), 0.0)
    return float(np.mean(np.where(both_zero, 1.0, cosine)))


# -- helpers --------------------------------------------------------------------------------


def _resolve(metric: str | MetricCallable | None, labels: np.ndarray | None
             ) -> Callable[[Sequence[np.ndarray], Sequence[np.ndarray], Any], float]:
    if metric is None or metric == "cosine":
        return lambda outputs, reference, _labels: mean_cosine(outputs, reference)
    if callable(metric):
        return lambda outputs, _reference, given: _call_user_metric(metric, outputs[0], given)
    if metric not in METRICS:
        import difflib

        close = difflib.get_close_matches(str(metric), METRICS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(METRICS)}"
        raise invalid("metric", f"unknown metric {metric!r}", hint + " or pass a callable")
    if labels is None:
        raise invalid("metric", f"{metric} needs labels",
                      "give val_data=(inputs, labels), or use metric='cosine'")
    function = accuracy if metric == "accuracy" else auc
    return lambda outputs, _reference, given: function(outputs[0], given)


def _call_user_metric(metric: MetricCallable, outputs: np.ndarray, labels: Any) -> float:
    try:
        value = float(metric(outputs, labels))
    except Exception as exc:
        raise invalid("metric", f"the metric callable raised {type(exc).__name__}: {exc}",
                      "it is called as metric(first_output_array, labels) and must "
                      "return a float, higher being better") from exc
    if not math.isfinite(value):
        raise invalid("metric", f"the metric callable returned {value}",
                      "return a finite float, higher being better")
    return value


def _predicted_classes(scores: np.ndarray) -> np.ndarray:
    if scores.ndim == 2 and scores.shape[1] > 1:
        return np.asarray(scores.argmax(axis=1))
    if scores.ndim in (1, 2) and (scores.ndim == 1 or scores.shape[1] == 1):
        flat = scores.reshape(-1)
        if flat.size and (flat.min() < 0.0 or flat.max() > 1.0):
            raise invalid("metric", "accuracy needs class scores, but the model's single "
                          f"output column holds values in [{flat.min():.3g}, "
                          f"{flat.max():.3g}], not probabilities",
                          "output probabilities, or use metric='auc', 'cosine' or a callable")
        return (flat >= 0.5).astype(np.int64)
    raise invalid("metric", f"accuracy needs class scores of shape (N, C) or (N,), but the "
                  f"model's first output has shape {scores.shape}",
                  "use metric='cosine' for embeddings or a callable for other outputs")


def _binary_scores(scores: np.ndarray) -> np.ndarray:
    if scores.ndim == 1 or (scores.ndim == 2 and scores.shape[1] == 1):
        return scores.reshape(-1).astype(np.float64)
    if scores.ndim == 2 and scores.shape[1] == 2:
        return scores[:, 1].astype(np.float64)
    raise invalid("metric", f"auc needs one score per row, but the model's first output has "
                  f"shape {scores.shape}", "use metric='accuracy', 'cosine' or a callable")


def _integer_labels(labels: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(labels)
    if array.dtype == np.bool_:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.mod(array, 1) == 0):
        raise invalid("metric", f"{name} needs integer class labels, got {array.dtype.name} "
                      "values that are not whole numbers",
                      "give class ids as labels, or use metric='cosine' or a callable")
    return array.astype(np.int64)


def _checked_tolerance(tolerance: float) -> float:
    if not isinstance(tolerance, int | float) or not math.isfinite(tolerance) or tolerance < 0:
        raise invalid("tolerance", f"got {tolerance!r}",
                      "give a metric drop >= 0, e.g. 0.01 for one accuracy point")
    return float(tolerance)


def _float(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    return array.astype(np.float32) if array.dtype == np.float16 else array
