"""Similarity losses for bi-encoders: `y_pred` is the cosine similarity of two embeddings, in [-1, 1];
`y_true` is 1 for a matching pair and 0 for a non-matching one.

Both are registered for serialization: `CosineSimilarityLoss` is a `keras.losses.Loss` subclass, and
`contrastive_loss` a function factory that binds `margin` through `core.losses.FunctionLoss`, so the bound
value is saved with the model where a closure would be lost.
"""

from __future__ import annotations

import keras
from keras import ops

from core.losses import FunctionLoss

PACKAGE = "bert_similarity"


@keras.saving.register_keras_serializable(package=PACKAGE)
class CosineSimilarityLoss(keras.losses.Loss):
    """Squared error between the cosine similarity and the label (Reimers & Gurevych, 2019).

    `negative_target` is what a non-matching pair's similarity is pulled towards: 0 (orthogonal, the
    sentence-transformers default) or -1 (opposite).
    """

    def __init__(self, negative_target: float = 0.0, reduction: str = "sum_over_batch_size",
                 name: str = "cosine_similarity_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.negative_target = negative_target

    def call(self, y_true, y_pred):
        y_pred = ops.reshape(y_pred, (-1,))
        y_true = ops.cast(ops.reshape(y_true, (-1,)), y_pred.dtype)
        target = y_true + (1.0 - y_true) * self.negative_target
        return ops.square(y_pred - target)

    def get_config(self):
        return {**super().get_config(), "negative_target": self.negative_target}


@keras.saving.register_keras_serializable(package=PACKAGE)
def cosine_contrastive(y_true, y_pred, margin: float = 0.5):
    """Per-pair contrastive loss (Hadsell et al., 2006) on the cosine distance d = 1 - similarity.

    A matching pair pays d^2; a non-matching pair pays max(0, margin - d)^2, so it is pushed apart only
    until its distance reaches `margin`, and easy negatives cost nothing.
    """
    y_pred = ops.reshape(y_pred, (-1,))
    y_true = ops.cast(ops.reshape(y_true, (-1,)), y_pred.dtype)
    distance = 1.0 - y_pred
    return 0.5 * (y_true * ops.square(distance) + (1.0 - y_true) * ops.square(ops.relu(margin - distance)))


def contrastive_loss(margin: float = 0.5, name: str = "contrastive_loss") -> keras.losses.Loss:
    """Function factory: the cosine contrastive loss with `margin` bound, as a serializable Loss."""
    return FunctionLoss(cosine_contrastive, name=name, margin=margin)
