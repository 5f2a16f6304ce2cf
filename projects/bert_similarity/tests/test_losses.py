"""The bi-encoder's similarity losses against Keras's own, and their serialization."""

import keras
import numpy as np

from core import testing
from projects.bert_similarity import losses

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
