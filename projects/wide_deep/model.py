"""wide_deep models, five ways, all taking raw column values (preprocessing layers live inside every model).

    mlp                     Sequential Dense layers over one-hot categories and normalized numerics (the baseline)
    wide_deep               Functional: wide (linear over one-hot categories and hashed crosses) + deep
                            (embeddings and normalized numerics through Dense layers), summed
    wide_deep_multi_input   the same with two named inputs, {"wide": {columns}, "deep": {columns}}
    wide_deep_multi_output  heads for the extra targets (casual, registered), the target as their sum,
                            and an auxiliary target head on the deep part alone
    WideDeepModel           the `wide_deep` network as a keras.Model subclass

`Columns` holds what the training split teaches the preprocessing layers (vocabularies through `adapt`,
the numeric mean and variance through `Normalization.adapt`) and builds fresh adapted layers for each model.
Every model's last layer rescales a unit-scale output to the target's training mean and standard deviation,
so the models predict in the target's own units (bikers per hour) from the first step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gin
import keras
import numpy as np
import tensorflow as tf
from keras import layers

from core.config import ConfigError

from . import data

PACKAGE = "wide_deep"
# The model functions below, by name (what RegressionTask.model_fn binds).
MODEL_FUNCTIONS = ("mlp", "wide_deep", "wide_deep_multi_input", "wide_deep_multi_output", "wide_deep_subclass")


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


def _dense_stack(x, hidden_units: Sequence[int], activation: str, dropout: float, initializer: str,
                 l2: float, batch_norm: bool = False, prefix: str = "deep"):
    regularizer = keras.regularizers.L2(l2) if l2 else None
    for i, units in enumerate(hidden_units):
        x = layers.Dense(units, kernel_initializer=initializer, kernel_regularizer=regularizer,
                         name=f"{prefix}_dense{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{prefix}_bn{i}")(x)
        x = layers.Activation(activation, name=f"{prefix}_{activation}{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"{prefix}_dropout{i}")(x)
    return x


def _stack_numeric(columns: Columns, inputs: dict) -> keras.KerasTensor:
    numeric = [inputs[c] for c in columns.numeric]
    return numeric[0] if len(numeric) == 1 else layers.Concatenate(name="numeric")(numeric)


def one_hot(columns: Columns, inputs: dict, lookups: dict) -> list[keras.KerasTensor]:
    """A one-hot vector per categorical column, through its lookup (slot 0: values training never saw)."""
    return [layers.CategoryEncoding(lookups[c].vocabulary_size(), output_mode="one_hot", name=f"onehot_{c}")(
        lookups[c](inputs[c])) for c in columns.categorical]


def wide_features(columns: Columns, inputs: dict, lookups: dict, crosses: Sequence[Sequence[str]], cross_bins: int):
    """Concatenated one-hot vectors of every categorical column and every hashed cross of columns."""
    parts = one_hot(columns, inputs, lookups)
    for cross in crosses:
        missing = [c for c in cross if c not in inputs]
        if missing:
            raise ValueError(f"cross {tuple(cross)}: no column(s) {missing}; columns: {sorted(inputs)}.")
        parts.append(layers.HashedCrossing(cross_bins, output_mode="one_hot", name="cross_" + "_x_".join(cross))(
            tuple(inputs[c] for c in cross)))
    if not parts:
        raise ConfigError("the wide part needs categorical columns or crosses, and TableSpec declared no categorical "
                          "column; use RegressionTask.model_fn = @mlp for an all-numeric table.")
    return parts[0] if len(parts) == 1 else layers.Concatenate(name="wide_features")(parts)


def deep_features(columns: Columns, inputs: dict, lookups: dict, embedding_dim: int):
    """Normalized numerics beside an embedding of every categorical column."""
    parts = []
    if columns.numeric:
        parts.append(columns.normalization(columns.numeric)(_stack_numeric(columns, inputs)))
    for column in columns.categorical:
        embedded = layers.Embedding(lookups[column].vocabulary_size(), embedding_dim, name=f"embed_{column}")(
            lookups[column](inputs[column]))  # [batch, 1, dim]
        parts.append(layers.Flatten(name=f"flat_{column}")(embedded))
    return parts[0] if len(parts) == 1 else layers.Concatenate(name="deep_features")(parts)


@gin.configurable
def mlp(columns: Columns, hidden_units: Sequence[int] = (128, 64), activation: str = "relu",
        dropout: float = 0.0, kernel_initializer: str = "he_normal", l2: float = 0.0) -> keras.Model:
    """keras.Sequential: one-hot categories and normalized numerics, stacked, through Dense layers.

    Sequential has one input, so preprocessing that needs the dict of columns happens in a small
    Functional front model; the Sequential network is the part a tutorial would write.
    """
    inputs = columns.inputs()
    parts = [columns.normalization(columns.numeric)(_stack_numeric(columns, inputs))] if columns.numeric else []
    parts += one_hot(columns, inputs, columns.lookups())
    features = parts[0] if len(parts) == 1 else layers.Concatenate(name="features")(parts)
    network = keras.Sequential(name="mlp_layers")
    network.add(keras.Input((features.shape[-1],)))
    regularizer = keras.regularizers.L2(l2) if l2 else None
    for units in hidden_units:
        network.add(layers.Dense(units, activation=activation, kernel_initializer=kernel_initializer,
                                 kernel_regularizer=regularizer))
        if dropout:
            network.add(layers.Dropout(dropout))
    network.add(layers.Dense(1))
    network.add(columns.output_scale(_target(columns), "prediction"))
    return keras.Model(inputs, network(features), name="mlp")


def _target(columns: Columns) -> str:
    return next(iter(columns.target_stats))


def _head(columns: Columns, link: str, model_fn: str) -> Callable[[str, str], Callable]:
    """`Columns.output_scale` for link "identity", `Columns.log_link_output` for "log"; others are refused."""
    if link not in ("identity", "log"):
        raise ConfigError(f"{model_fn}.link={link!r}: expected 'identity' or 'log'.")
    return columns.log_link_output if link == "log" else columns.output_scale


@gin.configurable
def wide_deep(columns: Columns, crosses: Sequence[Sequence[str]] = (), cross_bins: int = 64,
              embedding_dim: int = 8, hidden_units: Sequence[int] = (128, 64), activation: str = "relu",
              dropout: float = 0.0, kernel_initializer: str = "he_normal", l2: float = 0.0,
              wide_l2: float = 0.0, batch_norm: bool = False, link: str = "identity") -> keras.Model:
    """Functional API: the wide linear part and the deep network read the same raw columns; outputs summed.

    link: "identity" (the sum, scaled to the target's mean and std) or "log" (exp of the sum, started at
    the target's mean: effects multiply, as they do for counts; pair it with `RegressionTask.loss='poisson'`).
    """
    head = _head(columns, link, "wide_deep")
    inputs, lookups = columns.inputs(), columns.lookups()
    wide = layers.Dense(1, kernel_regularizer=keras.regularizers.L2(wide_l2) if wide_l2 else None, name="wide")(
        wide_features(columns, inputs, lookups, crosses, cross_bins))
    deep = _dense_stack(deep_features(columns, inputs, lookups, embedding_dim), hidden_units, activation, dropout,
                        kernel_initializer, l2, batch_norm)
    deep = layers.Dense(1, name="deep")(deep)
    output = head(_target(columns), "prediction")(layers.Add(name="wide_plus_deep")([wide, deep]))
    return keras.Model(inputs, output, name="wide_deep")


@gin.configurable
def wide_deep_multi_input(columns: Columns, crosses: Sequence[Sequence[str]] = (), cross_bins: int = 64,
                          embedding_dim: int = 8,
                          hidden_units: Sequence[int] = (128, 64), activation: str = "relu", dropout: float = 0.0,
                          kernel_initializer: str = "he_normal", l2: float = 0.0) -> keras.Model:
    """The same network with two named inputs: {"wide": {categorical columns}, "deep": {all columns}}.

    The input pipeline (task.py) routes the columns into the two dicts; the export takes each column once.
    """
    wide_columns = columns.categorical
    wide_inputs = columns.inputs(wide_columns, prefix="wide_")
    deep_inputs = columns.inputs(prefix="deep_")
    wide_only = Columns({c: columns.kinds[c] for c in wide_columns}, columns.train, columns.target_stats)
    lookups = columns.lookups()  # each applied to the wide and to the deep input of its column
    wide = layers.Dense(1, name="wide")(wide_features(wide_only, wide_inputs, lookups, crosses, cross_bins))
    deep = _dense_stack(deep_features(columns, deep_inputs, lookups, embedding_dim), hidden_units, activation, dropout,
                        kernel_initializer, l2)
    deep = layers.Dense(1, name="deep")(deep)
    output = columns.output_scale(_target(columns), "prediction")(layers.Add(name="wide_plus_deep")([wide, deep]))
    return keras.Model({"wide": wide_inputs, "deep": deep_inputs}, output, name="wide_deep_multi_input")


@gin.configurable
def wide_deep_multi_output(columns: Columns, crosses: Sequence[Sequence[str]] = (), cross_bins: int = 64,
                           embedding_dim: int = 8, hidden_units: Sequence[int] = (128, 64), activation: str = "relu",
                           dropout: float = 0.0, kernel_initializer: str = "he_normal", l2: float = 0.0,
                           link: str = "identity") -> keras.Model:
    """Outputs {extra target: head, ..., target: their sum, "aux": the target from the deep part alone}.

    Each extra-target head is its own wide + deep sum in that target's units; the target output adds them
    (bikers = casual + registered holds by construction). The auxiliary head only sees the deep network,
    so its loss pushes the deep part to be a good model on its own. link: as `wide_deep`'s, for every head
    (with "log" the target is the sum of two counts, each multiplying its own effects).
    """
    scale = _head(columns, link, "wide_deep_multi_output")
    stats = columns.target_stats
    target, parts = _target(columns), [t for t in stats][1:]
    if not parts:
        raise ValueError("wide_deep_multi_output needs TableSpec.extra_targets (e.g. casual, registered) in the data.")
    inputs, lookups = columns.inputs(), columns.lookups()
    wide = wide_features(columns, inputs, lookups, crosses, cross_bins)
    deep = _dense_stack(deep_features(columns, inputs, lookups, embedding_dim), hidden_units, activation, dropout,
                        kernel_initializer, l2)
    outputs = {}
    for part in parts:
        head = layers.Add(name=f"{part}_wide_plus_deep")([layers.Dense(1, name=f"{part}_wide")(wide),
                                                           layers.Dense(1, name=f"{part}_deep")(deep)])
        outputs[part] = scale(part, part)(head)
    outputs[target] = layers.Add(name=target, dtype="float32")([outputs[p] for p in parts])
    outputs["aux"] = scale(target, "aux")(layers.Dense(1, name="aux_deep")(deep))
    return keras.Model(inputs, outputs, name="wide_deep_multi_output")


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


@gin.configurable
def wide_deep_subclass(columns: Columns, crosses: Sequence[Sequence[str]] = (), cross_bins: int = 64,
                       embedding_dim: int = 8, hidden_units: Sequence[int] = (128, 64), activation: str = "relu",
                       dropout: float = 0.0, kernel_initializer: str = "he_normal", l2: float = 0.0) -> keras.Model:
    """`WideDeepModel`, adapted on the training split and built."""
    return WideDeepModel.from_columns(columns, crosses=crosses, cross_bins=cross_bins, embedding_dim=embedding_dim,
                                      hidden_units=hidden_units, activation=activation, dropout=dropout,
                                      kernel_initializer=kernel_initializer, l2=l2, name="wide_deep_subclass")
