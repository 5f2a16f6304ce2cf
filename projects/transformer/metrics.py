"""Token accuracy over sequences with padding, registered for `.keras`."""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "transformer"


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedSparseCategoricalAccuracy(keras.metrics.SparseCategoricalAccuracy):
    """Token accuracy over sequences, counting only positions whose label is not `pad_id`."""

    def __init__(self, pad_id: int = 0, name: str = "masked_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.pad_id = pad_id

    def update_state(self, y_true, y_pred, sample_weight=None):
        mask = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        sample_weight = mask if sample_weight is None else ops.cast(sample_weight, "float32") * mask
        return super().update_state(y_true, y_pred, sample_weight)

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}
