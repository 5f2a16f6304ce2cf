"""Custom metrics with the update_state / result / reset_state protocol, registered for `.keras`."""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "core"


@keras.saving.register_keras_serializable(package=PACKAGE)
class MacroF1(keras.metrics.Metric):
    """Macro-averaged F1 over `num_classes`, from a running confusion matrix.

    Accepts integer labels and either class scores (..., num_classes) or integer predictions.
    Classes that never occur in labels or predictions count as F1 = 0, as in scikit-learn's
    `f1_score(average="macro", zero_division=0)` over the same label set.
    """

    def __init__(self, num_classes: int, name: str = "macro_f1", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = num_classes
        self.matrix = self.add_variable(
            shape=(num_classes, num_classes), initializer="zeros", dtype="float32", name="matrix",
            aggregation="sum",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        if len(y_pred.shape) > 1 and y_pred.shape[-1] == self.num_classes:
            y_pred = ops.argmax(y_pred, axis=-1)
        y_pred = ops.reshape(ops.cast(y_pred, "int32"), (-1,))
        weights = (
            ops.ones_like(y_true, dtype="float32")
            if sample_weight is None
            else ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        )
        index = y_true * self.num_classes + y_pred
        counts = ops.segment_sum(weights, index, num_segments=self.num_classes * self.num_classes)
        self.matrix.assign_add(ops.reshape(counts, (self.num_classes, self.num_classes)))

    def result(self):
        tp = ops.diagonal(self.matrix)
        predicted = ops.sum(self.matrix, axis=0)
        actual = ops.sum(self.matrix, axis=1)
        f1 = ops.divide_no_nan(2.0 * tp, predicted + actual)
        return ops.mean(f1)

    def confusion_matrix(self):
        """The running confusion matrix: rows are true classes, columns predicted classes."""
        return ops.convert_to_tensor(self.matrix)

    def reset_state(self):
        self.matrix.assign(ops.zeros_like(self.matrix))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


