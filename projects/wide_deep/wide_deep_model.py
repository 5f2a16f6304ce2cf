"""`WideDeepModel`: the `wide_deep` network written as a keras.Model subclass, with `get_config` and
`build_from_config`, so it trains, saves, exports and reloads like the Functional one."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from core.config import ConfigError

from . import data
from .columns import PACKAGE, Columns


@keras.saving.register_keras_serializable(package=PACKAGE)
class WideDeepModel(keras.Model):
    """The `wide_deep` network written as a subclass: layers made in `__init__`, wired in `call`.

    Adapted preprocessing state (vocabularies, numeric mean and variance) is saved with the model, so
    `get_config` only needs what rebuilds the layers' shapes: the column kinds, vocabulary sizes come back
    through the lookups' saved assets and the weights file.
    """

    def __init__(self, kinds: dict[str, str], target_stats: dict[str, float], crosses=(), cross_bins: int = 64,
                 embedding_dim: int = 8, hidden_units=(128, 64), activation: str = "relu", dropout: float = 0.0,
                 kernel_initializer: str = "he_normal", l2: float = 0.0, vocabularies: dict | None = None,
                 numeric_stats: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.kinds, self.target_stats = dict(kinds), dict(target_stats)
        self.crosses, self.cross_bins = [list(c) for c in crosses], cross_bins
        self.embedding_dim, self.hidden_units = embedding_dim, list(hidden_units)
        self.activation_name, self.dropout_rate = activation, dropout
        self.kernel_initializer, self.l2 = kernel_initializer, l2
        self.numeric = [c for c, k in self.kinds.items() if k == "numeric"]
        self.categorical = [c for c, k in self.kinds.items() if k != "numeric"]
        if not self.numeric or not self.categorical:
            raise ConfigError(f"WideDeepModel needs numeric and categorical columns; the table has {self.kinds}.")
        # Vocabularies and numeric statistics are config values (plain lists), so from_config rebuilds adapted
        # layers without any data; `from_columns` fills them from the training split.
        self.vocabularies = {c: list(v) for c, v in (vocabularies or {}).items()}
        self.numeric_stats = numeric_stats or {}
        # One attribute per sublayer: tf.train.Checkpoint does not follow Keras 3's tracked lists and dicts
        # (keras-team/keras#18398), so layers kept in a dict would be missing from every checkpoint.
        for c in self.categorical:
            lookup_cls = layers.StringLookup if self.kinds[c] == "string" else layers.IntegerLookup
            lookup = lookup_cls(vocabulary=self.vocabularies[c], name=f"lookup_{c}")
            setattr(self, f"lookup_{c}", lookup)
            setattr(self, f"onehot_{c}", layers.CategoryEncoding(lookup.vocabulary_size(), output_mode="one_hot",
                                                                  name=f"onehot_{c}"))
            setattr(self, f"embed_{c}", layers.Embedding(lookup.vocabulary_size(), embedding_dim, name=f"embed_{c}"))
        for i, cross in enumerate(self.crosses):
            setattr(self, f"cross{i}", layers.HashedCrossing(cross_bins, output_mode="one_hot",
                                                             name="cross_" + "_x_".join(cross)))
        self.wide = layers.Dense(1, name="wide")
        self.normalize = layers.Normalization(mean=self.numeric_stats.get("mean"),
                                              variance=self.numeric_stats.get("variance"), name="normalize_numeric")
        # Built here, eagerly: built on first call, a Normalization with given mean and variance keeps its
        # constants in the scratch graph Keras traces a subclassed model's first call in.
        self.normalize.build((None, len(self.numeric)))
        regularizer = keras.regularizers.L2(l2) if l2 else None
        for i, units in enumerate(self.hidden_units):
            setattr(self, f"hidden{i}", layers.Dense(units, activation=activation,
                                                     kernel_initializer=kernel_initializer,
                                                     kernel_regularizer=regularizer, name=f"deep_dense{i}"))
            if dropout:
                setattr(self, f"dropout{i}", layers.Dropout(dropout, name=f"deep_dropout{i}"))
        self.deep = layers.Dense(1, name="deep")
        target = next(iter(self.target_stats))
        self.scale = layers.Rescaling(self.target_stats[target]["std"], self.target_stats[target]["mean"],
                                      name="prediction", dtype="float32")

    @classmethod
    def from_columns(cls, columns: Columns, **kwargs) -> WideDeepModel:
        """A model whose lookups and normalization are adapted on the training split of `columns`."""
        vocabularies = {c: columns.lookup(c).get_vocabulary()[1:] for c in columns.categorical}  # [0] is OOV
        numeric = np.stack([columns.train[c] for c in columns.numeric], axis=1).astype("float64")
        stats = {"mean": numeric.mean(axis=0).tolist(), "variance": numeric.var(axis=0).tolist()}
        vocabularies = {c: [v.decode() if isinstance(v, bytes) else v.item() if hasattr(v, "item") else v
                            for v in vocabulary] for c, vocabulary in vocabularies.items()}
        model = cls(columns.kinds, columns.target_stats, vocabularies=vocabularies, numeric_stats=stats, **kwargs)
        model.build_from_config(model.get_build_config())  # every layer gets its weights now
        return model

    def get_build_config(self):
        return {"columns": self.kinds}

    def build_from_config(self, config):
        """Builds every layer by calling the model on symbolic columns; `keras.models.load_model` calls this
        before it loads the weights (without it a reloaded subclass has no weights to load them into)."""
        self(Columns(config["columns"], {}, self.target_stats).inputs())

    def call(self, inputs, training=False):
        ids = {c: getattr(self, f"lookup_{c}")(inputs[c]) for c in self.categorical}
        wide_parts = [getattr(self, f"onehot_{c}")(ids[c]) for c in self.categorical]
        wide_parts += [getattr(self, f"cross{i}")(tuple(inputs[c] for c in cross))
                       for i, cross in enumerate(self.crosses)]
        wide = self.wide(keras.ops.concatenate(wide_parts, axis=-1))
        numeric = keras.ops.concatenate([keras.ops.cast(inputs[c], "float32") for c in self.numeric], axis=-1)
        embedded = [keras.ops.squeeze(getattr(self, f"embed_{c}")(ids[c]), 1) for c in self.categorical]
        x = keras.ops.concatenate([self.normalize(numeric), *embedded], axis=-1)
        for i in range(len(self.hidden_units)):
            x = getattr(self, f"hidden{i}")(x)
            if self.dropout_rate:
                x = getattr(self, f"dropout{i}")(x, training=training)
        return self.scale(keras.ops.add(wide, self.deep(x)))

    @property
    def _default_save_signature(self):
        """The signature tf.saved_model.save traces a tracked model with, with each column's own dtype.

        Keras 3 (TF backend) types every input of a subclassed model as `self.input_dtype` (float32), and
        HashedCrossing and the lookups refuse float input, so a SavedModel export would fail.
        """
        spec = {c: tf.TensorSpec([None, 1], data.DTYPES[k], name=c) for c, k in self.kinds.items()}

        @tf.function(input_signature=(spec,))
        def serving_default(inputs):
            return self(inputs)

        return serving_default

    def get_config(self):
        return {**super().get_config(), "kinds": self.kinds, "target_stats": self.target_stats,
                "crosses": self.crosses, "cross_bins": self.cross_bins, "embedding_dim": self.embedding_dim,
                "hidden_units": self.hidden_units, "activation": self.activation_name, "dropout": self.dropout_rate,
                "kernel_initializer": self.kernel_initializer, "l2": self.l2, "vocabularies": self.vocabularies,
                "numeric_stats": self.numeric_stats}
