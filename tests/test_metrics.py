import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, f1_score

from core import metrics, testing

RNG = np.random.default_rng(1)


@pytest.mark.parametrize("num_classes", [2, 5])
def test_macro_f1_matches_scikit_learn(num_classes):
    labels = RNG.integers(0, num_classes, size=200)
    scores = RNG.normal(size=(200, num_classes)).astype("float32")
    scores[np.arange(100), labels[:100]] += 2.0  # make it better than chance
    metric = metrics.MacroF1(num_classes)
    metric.update_state(labels, scores)
    expected = f1_score(labels, scores.argmax(-1), average="macro", labels=range(num_classes), zero_division=0)
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-5)
    np.testing.assert_array_equal(
        np.asarray(metric.confusion_matrix()), confusion_matrix(labels, scores.argmax(-1), labels=range(num_classes)))


def test_macro_f1_counts_absent_classes_as_zero_like_scikit_learn():
    labels, predictions = np.array([0, 0, 1]), np.array([0, 1, 1])
    metric = metrics.MacroF1(3)
    metric.update_state(labels, predictions)
    expected = f1_score(labels, predictions, average="macro", labels=[0, 1, 2], zero_division=0)
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-6)


def test_macro_f1_sample_weights_match_scikit_learn():
    labels = RNG.integers(0, 3, size=50)
    predictions = RNG.integers(0, 3, size=50)
    weights = RNG.uniform(size=50).astype("float32")
    metric = metrics.MacroF1(3)
    metric.update_state(labels, predictions, sample_weight=weights)
    expected = f1_score(labels, predictions, average="macro", sample_weight=weights)
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-5)


def test_macro_f1_protocol_and_serialization():
    labels = RNG.integers(0, 4, size=64)
    scores = RNG.normal(size=(64, 4)).astype("float32")
    testing.check_metric(metrics.MacroF1(4), labels, scores)
