"""The translation loss and token accuracy: Keras's own over the real tokens, and serializable."""

import keras
import numpy as np

from core import testing
from projects.transformer import losses, metrics


def _sequences():
    rng = np.random.default_rng(3)
    labels = rng.integers(1, 7, size=(4, 6))
    labels[0, 4:] = 0  # padding
    labels[2, 1:] = 0
    return labels, rng.normal(size=(4, 6, 7)).astype("float32")


def test_masked_crossentropy_is_keras_crossentropy_over_the_real_tokens_only():
    labels, logits = _sequences()
    real = labels != 0
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels[real], logits[real])
    np.testing.assert_allclose(float(losses.MaskedSparseCategoricalCrossentropy()(labels, logits)), float(expected),
                               rtol=1e-5)


def test_masked_crossentropy_smoothing_matches_keras_categorical_on_one_hot_labels():
    labels, logits = _sequences()
    real = labels != 0
    one_hot = np.eye(7, dtype="float32")[labels[real]]
    expected = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)(one_hot, logits[real])
    loss = losses.MaskedSparseCategoricalCrossentropy(label_smoothing=0.2)
    np.testing.assert_allclose(float(loss(labels, logits)), float(expected), rtol=1e-5)
    per_token = np.asarray(loss.call(labels, logits))
    assert per_token.shape == (4, 6) and np.all(per_token[~real] == 0) and np.all(per_token[real] > 0)


def test_masked_crossentropy_serializes():
    labels, logits = _sequences()
    testing.check_loss(losses.MaskedSparseCategoricalCrossentropy(pad_id=0, label_smoothing=0.1), labels, logits)


def test_masked_accuracy_counts_only_real_tokens_like_keras_accuracy_on_them():
    rng = np.random.default_rng(5)
    labels = rng.integers(1, 5, size=(6, 7))
    labels[:, 5:] = 0
    labels[1, 2:] = 0
    scores = rng.normal(size=(6, 7, 5)).astype("float32")
    scores[..., 0] += 10.0  # predicting padding everywhere: right at every pad, which must not count
    scores[0, :3, labels[0, :3]] += 20.0
    real = labels != 0
    expected = keras.metrics.SparseCategoricalAccuracy()
    expected.update_state(labels[real], scores[real])
    metric = metrics.MaskedSparseCategoricalAccuracy(pad_id=0)
    metric.update_state(labels, scores)
    np.testing.assert_allclose(float(metric.result()), float(expected.result()), rtol=1e-6)
    assert 0 < float(metric.result()) < 0.5
    testing.check_metric(metrics.MaskedSparseCategoricalAccuracy(pad_id=0), labels, scores)
