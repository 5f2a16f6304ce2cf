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


def test_focal_loss_with_gamma_zero_is_crossentropy():
    reference = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    np.testing.assert_allclose(
        float(losses.focal_loss(gamma=0.0)(LABELS, LOGITS)), float(reference(LABELS, LOGITS)), rtol=1e-5)


def test_focal_loss_down_weights_easy_examples():
    confident = np.array([[10.0, 0.0], [0.0, 10.0]], "float32")
    per_example_ce = keras.losses.sparse_categorical_crossentropy(np.array([0, 1]), confident, from_logits=True)
    focal = losses.sparse_focal_crossentropy(np.array([0, 1]), confident, gamma=2.0)
    assert np.all(np.asarray(focal) < 1e-3 * np.asarray(per_example_ce))


def test_focal_loss_factory_serializes_with_its_gamma():
    loss = losses.focal_loss(gamma=3.0)
    testing.check_loss(loss, LABELS, LOGITS)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert clone.get_config()["gamma"] == 3.0


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


SIMILARITY = np.array([0.9, -0.2, 0.7, 0.1, 0.45], dtype="float32")
MATCH = np.array([1, 0, 0, 1, 0])


def test_cosine_similarity_loss_is_keras_mean_squared_error_to_the_targets():
    for negative_target in (0.0, -1.0):
        targets = np.where(MATCH == 1, 1.0, negative_target).astype("float32")
        ours = losses.CosineSimilarityLoss(negative_target=negative_target)(MATCH, SIMILARITY)
        reference = keras.losses.MeanSquaredError()(targets[:, None], SIMILARITY[:, None])
        np.testing.assert_allclose(float(ours), float(reference), rtol=1e-6)


def test_contrastive_loss_charges_positives_by_distance_and_negatives_only_inside_the_margin():
    loss = losses.contrastive_loss(margin=0.5)
    per_pair = loss.call(MATCH, SIMILARITY).numpy()
    # positives: 0.5 * (1 - s)^2; negatives at distance 1.2 and 0.3 -> 0 and 0.5 * 0.2^2; at 0.55 -> 0.
    np.testing.assert_allclose(per_pair, [0.5 * 0.01, 0.0, 0.5 * 0.04, 0.5 * 0.81, 0.0], atol=1e-6)
    assert float(loss(np.array([1]), np.array([1.0], "float32"))) == 0.0


def test_similarity_losses_serialize():
    testing.check_loss(losses.CosineSimilarityLoss(negative_target=-1.0), MATCH, SIMILARITY[:, None])
    testing.check_loss(losses.contrastive_loss(margin=0.3), MATCH, SIMILARITY[:, None])


def test_multi_output_loss_is_the_weighted_sum_of_keras_losses_and_serializes():
    rng = np.random.default_rng(0)
    y_true = {k: rng.normal(size=(6, 1)).astype("float32") for k in ("a", "b", "c")}
    y_pred = {k: rng.normal(size=(6, 1)).astype("float32") for k in ("a", "b", "c")}
    loss = losses.MultiOutputLoss({"a": keras.losses.MeanSquaredError(), "b": "mae"}, {"a": 0.25})
    expected = 0.25 * float(keras.losses.MeanSquaredError()(y_true["a"], y_pred["a"])) + float(
        keras.losses.MeanAbsoluteError()(y_true["b"], y_pred["b"]))  # "c" has no loss; "b" weighs 1 by default
    np.testing.assert_allclose(float(loss(y_true, y_pred)), expected, rtol=1e-6)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert clone.loss_weights == {"a": 0.25, "b": 1.0}
    np.testing.assert_allclose(float(clone(y_true, y_pred)), expected, rtol=1e-6)


def test_multi_output_loss_names_bad_weights_and_missing_outputs():
    with pytest.raises(ValueError, match=r"loss_weights names outputs \['z'\]"):
        losses.MultiOutputLoss({"a": "mse"}, {"z": 2.0})
    loss = losses.MultiOutputLoss({"a": "mse", "b": "mse"})
    with pytest.raises(KeyError, match="output 'b' needs a label"):
        loss({"a": np.zeros((2, 1))}, {"a": np.zeros((2, 1)), "b": np.zeros((2, 1))})
