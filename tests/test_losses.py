import keras
import numpy as np
import pytest

from core import losses, testing

RNG = np.random.default_rng(0)


LOGITS = RNG.normal(size=(16, 5)).astype("float32")


LABELS = RNG.integers(0, 5, size=(16,))


def test_smoothing_zero_equals_keras_sparse_crossentropy():
    ours = losses.SparseCategoricalCrossentropyWithSmoothing(0.0)
    reference = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    np.testing.assert_allclose(float(ours(LABELS, LOGITS)), float(reference(LABELS, LOGITS)), rtol=1e-6)


def test_smoothing_equals_keras_categorical_crossentropy_on_one_hot_labels():
    ours = losses.SparseCategoricalCrossentropyWithSmoothing(0.1)
    reference = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
    one_hot = np.eye(5, dtype="float32")[LABELS]
    np.testing.assert_allclose(float(ours(LABELS, LOGITS)), float(reference(one_hot, LOGITS)), rtol=1e-6)


def test_smoothing_loss_serializes():
    testing.check_loss(losses.SparseCategoricalCrossentropyWithSmoothing(0.2), LABELS, LOGITS)


def test_smoothing_rejects_out_of_range_value():
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.SparseCategoricalCrossentropyWithSmoothing(1.5)


def test_multi_output_loss_is_the_weighted_sum_of_keras_losses_and_serializes():
    rng = np.random.default_rng(0)
    y_true = {k: rng.normal(size=(6, 1)).astype("float32") for k in ("a", "b", "c")}
    y_pred = {k: rng.normal(size=(6, 1)).astype("float32") for k in ("a", "b", "c")}
    loss = losses.MultiOutputLoss({"a": keras.losses.MeanSquaredError(), "b": "mae"}, {"a": 0.25})
    expected = 0.25 * float(keras.losses.MeanSquaredError()(y_true["a"], y_pred["a"])) + float(
        keras.losses.MeanAbsoluteError()(y_true["b"], y_pred["b"]))  # "c" has no loss; "b" weighs 1 by default
    np.testing.assert_allclose(float(loss(y_true, y_pred)), expected, rtol=1e-6)
    testing.check_loss(loss, y_true, y_pred)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert clone.loss_weights == {"a": 0.25, "b": 1.0}


def test_multi_output_loss_names_bad_weights_and_missing_outputs():
    with pytest.raises(ValueError, match=r"loss_weights names outputs \['z'\]"):
        losses.MultiOutputLoss({"a": "mse"}, {"z": 2.0})
    loss = losses.MultiOutputLoss({"a": "mse", "b": "mse"})
    with pytest.raises(KeyError, match="output 'b' needs a label"):
        loss({"a": np.zeros((2, 1))}, {"a": np.zeros((2, 1)), "b": np.zeros((2, 1))})
