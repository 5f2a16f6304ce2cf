"""Custom Keras 3 layers that more than one project uses; each round-trips through get_config and `.keras`."""

from __future__ import annotations

import keras
from keras import layers

PACKAGE = "core"


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedGlobalPooling1D(layers.Layer):
    """Max or mean over time of (batch, time, features), counting only steps the Keras mask keeps.

    Keras passes the mask of an `Embedding(mask_zero=True)` down through RNN layers; padded steps
    must not win a max or dilute a mean. An all-padding sequence pools to zeros.
    """

    def __init__(self, mode: str = "max", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("max", "mean"):
            raise ValueError(f"MaskedGlobalPooling1D mode={mode!r}: expected 'max' or 'mean'.")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            mask = keras.ops.ones(keras.ops.shape(inputs)[:2], dtype="bool")
        keep = keras.ops.expand_dims(keras.ops.cast(mask, "bool"), -1)  # (batch, time, 1)
        if self.mode == "max":
            lowest = keras.ops.min(inputs, axis=1, keepdims=True)  # no kept value is below it, in any dtype
            pooled = keras.ops.max(keras.ops.where(keep, inputs, lowest), axis=1)
            return keras.ops.where(keras.ops.any(keep, axis=1), pooled, keras.ops.zeros_like(pooled))
        weights = keras.ops.cast(keep, inputs.dtype)
        count = keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)
        return keras.ops.sum(inputs * weights, axis=1) / count

    def compute_mask(self, inputs, mask=None):
        return None  # time is pooled away

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
