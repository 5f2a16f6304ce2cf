"""The feature columns of a prepared table: what the training split teaches the preprocessing layers.

`Columns` builds fresh adapted layers for each model (vocabularies through `adapt`, the numeric mean and
variance through `Normalization.adapt`), the models' inputs, and the output layers that put a unit-scale
output into the target's units. `Cyclical` turns a position on a cycle (an hour of the day) into its sine
and cosine, so that 23 and 0 are neighbours. `MatrixColumns` splits a plain float matrix (what scikit-learn passes)
into those named, typed columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import keras
import numpy as np
from keras import layers

from . import data

PACKAGE = "wide_deep"  # what the project's Keras classes are registered under


class Columns:
    """The feature columns of a prepared table and their training-split values, for adapting layers."""

    def __init__(self, kinds: dict[str, str], train_features: dict[str, np.ndarray], target_stats: dict):
        self.kinds = dict(kinds)
        self.train = train_features
        self.target_stats = target_stats

    @property
    def numeric(self) -> list[str]:
        return [c for c, k in self.kinds.items() if k == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [c for c, k in self.kinds.items() if k != "numeric"]

    def inputs(self, names: Sequence[str] | None = None, prefix: str = "") -> dict[str, keras.KerasTensor]:
        """One `keras.Input` of shape [batch, 1] per column, named after it."""
        return {c: keras.Input((1,), dtype=data.DTYPES[self.kinds[c]], name=prefix + c) for c in (names or self.kinds)}

    def lookups(self) -> dict[str, layers.Layer]:
        """One adapted lookup per categorical column, shared by the wide and the deep part of a model."""
        return {c: self.lookup(c) for c in self.categorical}

    def lookup(self, column: str) -> layers.Layer:
        """A StringLookup / IntegerLookup adapted on the training column (index 0: values never seen)."""
        if self.kinds[column] == "string":
            layer = layers.StringLookup(name=f"lookup_{column}")
        else:
            layer = layers.IntegerLookup(name=f"lookup_{column}")
        layer.adapt(self.train[column])
        return layer

    def normalization(self, columns: Sequence[str]) -> layers.Normalization:
        """A Normalization over the stacked numeric columns, adapted on the training split."""
        layer = layers.Normalization(name="normalize_numeric")
        layer.adapt(np.stack([self.train[c] for c in columns], axis=1).astype("float32"))
        return layer

    def output_scale(self, target: str, name: str) -> layers.Layer:
        """y = mean + std * x: a unit-scale output in the target's units."""
        stats = self.target_stats[target]
        return layers.Rescaling(scale=stats["std"], offset=stats["mean"], name=name, dtype="float32")

    def log_link_output(self, target: str, name: str) -> Callable[[keras.KerasTensor], keras.KerasTensor]:
        """y = exp(log(mean) + x): a positive output, multiplicative in its inputs, that starts at the
        training mean; for counts, trained with a Poisson loss (`RegressionTask.loss='poisson'`)."""
        mean = self.target_stats[target]["mean"]
        if mean <= 0:
            raise ValueError(f"a log link needs a positive target; the training mean of {target!r} is {mean}.")

        def apply(x):
            x = layers.Rescaling(scale=1.0, offset=float(np.log(mean)), name=f"{name}_log", dtype="float32")(x)
            return layers.Activation("exponential", name=name, dtype="float32")(x)

        return apply


@keras.saving.register_keras_serializable(package=PACKAGE)
class MatrixColumns(keras.layers.Layer):
    """[batch, columns] float matrix -> {column: [batch, 1]}: float32 numerics, int64 category codes."""

    def __init__(self, kinds: dict[str, str], **kwargs):
        super().__init__(**kwargs)
        self.kinds = dict(kinds)

    def call(self, matrix):
        out = {}
        for i, (name, kind) in enumerate(self.kinds.items()):
            column = matrix[:, i : i + 1]
            out[name] = keras.ops.cast(column, data.DTYPES["numeric" if kind == "numeric" else "integer"])
        return out

    def compute_output_spec(self, matrix):
        return {name: keras.KerasTensor((matrix.shape[0], 1), dtype="float32" if kind == "numeric" else "int64")
                for name, kind in self.kinds.items()}

    def get_config(self):
        return {**super().get_config(), "kinds": self.kinds}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Cyclical(keras.layers.Layer):
    """[batch, 1] positions on a cycle of `period` (hours of the day: 24) -> [batch, 2]: their sine and cosine.

    Hour 23 and hour 0 become as close as hours 0 and 1, which a one-hot vector or a normalized number
    cannot say.
    """

    def __init__(self, period: float, **kwargs):
        super().__init__(**kwargs)
        if not period > 0:
            raise ValueError(f"Cyclical(period={period!r}): expected a positive period.")
        self.period = float(period)

    def call(self, positions):
        angle = keras.ops.cast(positions, self.compute_dtype) * (2.0 * math.pi / self.period)
        return keras.ops.concatenate([keras.ops.sin(angle), keras.ops.cos(angle)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)

    def get_config(self):
        return {**super().get_config(), "period": self.period}
