"""The accuracy guard: metrics, their failure messages, and keep / roll back decisions."""

from __future__ import annotations

import numpy as np
import pytest

from aip.errors import InvalidSpec
from aip.optimize.guard import Guard, accuracy, auc, mean_cosine


def test_accuracy_takes_the_argmax_of_class_scores() -> None:
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert accuracy(scores, np.array([1, 0, 0])) == pytest.approx(2 / 3)


def test_accuracy_thresholds_a_single_probability_column_at_one_half() -> None:
    assert accuracy(np.array([[0.2], [0.7], [0.5]]), np.array([0, 1, 0])) == pytest.approx(2 / 3)


def test_accuracy_accepts_one_hot_labels() -> None:
    scores = np.array([[0.1, 0.9], [0.8, 0.2]])
    assert accuracy(scores, np.array([[0, 1], [0, 1]])) == 0.5


def test_auc_matches_scikit_learn_including_tied_scores() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    generator = np.random.default_rng(0)
    labels = generator.integers(0, 2, 500)
    scores = np.round(generator.random(500) + labels * 0.3, 1)  # rounding makes many ties
    assert auc(scores, labels) == pytest.approx(metrics.roc_auc_score(labels, scores))


def test_auc_reads_the_positive_column_of_two_class_scores() -> None:
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert auc(scores, np.array([0, 1, 0, 1])) == 1.0


def test_cosine_is_one_for_identical_rows_and_zero_for_orthogonal_ones() -> None:
    reference = [np.array([[1.0, 0.0], [0.0, 2.0]])]
    assert mean_cosine(reference, reference) == pytest.approx(1.0)
    assert mean_cosine([np.array([[0.0, 1.0], [3.0, 0.0]])], reference) == pytest.approx(0.0)


@pytest.mark.parametrize(("metric", "scores", "labels", "expected"), [
    pytest.param("auc", np.array([0.1, 0.4, 0.3]), np.array([1, 1, 1]),
                 "auc needs both classes", id="auc-with-one-class"),
    pytest.param("auc", np.ones((3, 4)), np.array([0, 1, 0]),
                 "auc needs one score per row", id="auc-on-four-class-scores"),
    pytest.param("accuracy", np.ones((3, 2, 2)), np.array([0, 1, 0]),
                 "accuracy needs class scores of shape", id="accuracy-on-3d-outputs"),
    pytest.param("accuracy", np.array([[3.0], [-2.0], [5.0]]), np.array([0, 1, 0]),
                 "not probabilities", id="accuracy-on-a-regression-output"),
    pytest.param("accuracy", np.ones((3, 2)), np.array([0.5, 1.0, 0.0]),
                 "integer class labels", id="accuracy-with-fractional-labels"),
    pytest.param("accuracy", np.ones((3, 2)), np.array([0, 5, 1]),
                 "scores only 2 classes", id="accuracy-with-a-label-out-of-range"),
])
def test_a_metric_that_cannot_be_computed_names_the_metric_field(
        metric: str, scores: np.ndarray, labels: np.ndarray, expected: str) -> None:
    with pytest.raises(InvalidSpec) as raised:
        Guard(metric, 0.01, [scores], labels)
    assert expected in str(raised.value)
    assert "metric" in raised.value.fields


def test_a_misspelt_metric_gets_a_suggestion() -> None:
    with pytest.raises(InvalidSpec, match="did you mean 'accuracy'"):
        Guard("accurcy", 0.01, [np.ones((2, 2))], np.array([0, 1]))


def test_a_labelled_metric_without_labels_says_what_to_give() -> None:
    with pytest.raises(InvalidSpec, match=r"val_data=\(inputs, labels\)"):
        Guard("accuracy", 0.01, [np.ones((2, 2))], None)


def test_a_metric_callable_that_raises_is_reported_with_its_error() -> None:
    def broken(outputs: np.ndarray, labels: np.ndarray) -> float:
        raise KeyError("oops")

    with pytest.raises(InvalidSpec, match="KeyError") as raised:
        Guard(broken, 0.01, [np.ones((2, 2))], np.array([0, 1]))
    assert raised.value.fields.keys() == {"metric"}


def test_a_negative_tolerance_is_refused() -> None:
    with pytest.raises(InvalidSpec, match="tolerance"):
        Guard("cosine", -0.1, [np.ones((2, 2))], None)


def test_a_lossless_pass_must_stay_within_one_thousandth() -> None:
    reference = np.linspace(-1, 1, 20, dtype=np.float32).reshape(10, 2)
    guard = Guard("cosine", 0.5, [reference], None)
    assert guard.check([reference + 5e-4], lossless=True).passed
    verdict = guard.check([reference + 5e-2], lossless=True)
    assert not verdict.passed
    assert "lossless allows 0.001" in verdict.failure
    assert verdict.max_abs_diff == pytest.approx(5e-2, rel=1e-3)


def test_a_lossy_pass_may_spend_the_tolerance_and_no_more() -> None:
    scores = np.eye(4)[[0, 1, 2, 3] * 25]  # 100 rows, 4 classes
    labels = scores.argmax(axis=1)
    guard = Guard("accuracy", 0.02, [scores], labels)
    one_wrong, three_wrong = scores.copy(), scores.copy()
    one_wrong[0] = np.roll(one_wrong[0], 1)
    three_wrong[:3] = np.roll(three_wrong[:3], 1, axis=1)
    assert guard.check([one_wrong], lossless=False).passed
    verdict = guard.check([three_wrong], lossless=False)
    assert not verdict.passed
    assert verdict.delta == pytest.approx(-0.03)


def test_tolerance_zero_rolls_back_any_change_of_cosine() -> None:
    reference = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    guard = Guard("cosine", 0.0, [reference], None)
    assert guard.check([reference], lossless=False).passed
    assert not guard.check([reference + 0.01], lossless=False).passed


def test_outputs_of_another_shape_fail_the_check() -> None:
    guard = Guard("cosine", 0.5, [np.ones((4, 3))], None)
    verdict = guard.check([np.ones((4, 2))], lossless=False)
    assert not verdict.passed
    assert "shapes" in verdict.failure
