"""The translation loss: cross-entropy per target token, padding ignored, and its mean over the global batch.

Registered for serialization, so a model compiled with it saves to `.keras` and loads back.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

PACKAGE = "transformer"


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Token-level cross-entropy for sequences: label smoothing, and positions holding `pad_id` ignored.

    `call` gives the loss of every position, 0 at padding. The default reduction divides the sum by the
    number of real tokens (Keras's "mean_with_sample_weight", the padding mask being the weight), so a
    batch of short sentences padded long weighs the same as the same sentences unpadded. The smoothed
    target is never built as a (B, T, vocab) one-hot: -(1-e) log p[y] - e * mean(log p) is the same value.
    """

    def __init__(self, pad_id: int = 0, label_smoothing: float = 0.0, from_logits: bool = True,
                 reduction: str = "mean_with_sample_weight", name: str = "masked_sparse_categorical_crossentropy",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
        self.pad_id = pad_id
        self.label_smoothing = label_smoothing
        self.from_logits = from_logits

    def __call__(self, y_true, y_pred, sample_weight=None):
        mask = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        sample_weight = mask if sample_weight is None else ops.cast(sample_weight, "float32") * mask
        return super().__call__(y_true, y_pred, sample_weight)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        log_probs = ops.log_softmax(y_pred, axis=-1) if self.from_logits else ops.log(
            ops.clip(y_pred, keras.config.epsilon(), 1.0))
        y_true = ops.cast(y_true, "int32")
        log_p_true = ops.take_along_axis(log_probs, ops.expand_dims(y_true, -1), axis=-1)[..., 0]
        loss = -log_p_true
        if self.label_smoothing:
            loss = (1.0 - self.label_smoothing) * loss - self.label_smoothing * ops.mean(log_probs, axis=-1)
        return loss * ops.cast(ops.not_equal(y_true, self.pad_id), "float32")

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id, "label_smoothing": self.label_smoothing,
                "from_logits": self.from_logits}


def token_mean_loss(per_token: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """This replica's share of the mean loss per real token over all replicas.

    Sequence batches hold different numbers of real tokens on each replica, so each replica divides its
    sum by the token count of the *global* batch (an all-reduce); summing the replicas' gradients then
    gives the gradient of the global token mean, as one big batch would.
    """
    tokens = tf.reduce_sum(tf.cast(mask, tf.float32))
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        tokens = context.all_reduce("SUM", tokens)
    return tf.reduce_sum(tf.cast(per_token, tf.float32)) / tf.maximum(tokens, 1.0)
