"""wide_deep models, five ways, all taking raw column values (preprocessing layers live inside every model).

    mlp                     Sequential Dense layers over one-hot categories and normalized numerics (the baseline)
    wide_deep               Functional: wide (linear over one-hot categories and hashed crosses) + deep
                            (embeddings and normalized numerics through Dense layers), summed
    wide_deep_multi_input   the same with two named inputs, {"wide": {columns}, "deep": {columns}}
    wide_deep_multi_output  heads for the extra targets (casual, registered), the target as their sum,
                            and an auxiliary target head on the deep part alone
    wide_deep_subclass      the `wide_deep` network as a keras.Model subclass (`WideDeepModel`, wide_deep_model.py)

`Columns` (columns.py) holds what the training split teaches the preprocessing layers (vocabularies through `adapt`,
the numeric mean and variance through `Normalization.adapt`) and builds fresh adapted layers for each model.
Every model's last layer rescales a unit-scale output to the target's training mean and standard deviation,
so the models predict in the target's own units (bikers per hour) from the first step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gin
import keras
from keras import layers

from core.config import ConfigError

from .columns import Columns, Cyclical
from .wide_deep_model import WideDeepModel

# The model functions below, by name (what RegressionTask.model_fn binds).
MODEL_FUNCTIONS = ("mlp", "wide_deep", "wide_deep_multi_input", "wide_deep_multi_output", "wide_deep_subclass")


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


def deep_features(columns: Columns, inputs: dict, lookups: dict, embedding_dim: int,
                  cyclical: dict[str, float] | None = None, model_fn: str = "wide_deep"):
    """Normalized numerics beside an embedding of every categorical column, and the sine and cosine of
    each numeric or integer column named in `cyclical` (column -> period, e.g. {'hr': 24})."""
    parts = []
    for column, period in (cyclical or {}).items():
        if columns.kinds.get(column) not in ("integer", "numeric"):
            raise ConfigError(f"{model_fn}.cyclical names {column!r}: expected a numeric or integer column; "
                              f"those are {sorted(c for c, k in columns.kinds.items() if k != 'string')}.")
        parts.append(Cyclical(period, name=f"cyclical_{column}")(inputs[column]))
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
              wide_l2: float = 0.0, batch_norm: bool = False, link: str = "identity",
              cyclical: dict[str, float] | None = None) -> keras.Model:
    """Functional API: the wide linear part and the deep network read the same raw columns; outputs summed.

    link: "identity" (the sum, scaled to the target's mean and std) or "log" (exp of the sum, started at
    the target's mean: effects multiply, as they do for counts; pair it with `RegressionTask.loss='poisson'`).
    cyclical: column -> period ({'hr': 24, 'weekday': 7}): the deep part also reads each column's position
    on its cycle as a sine and a cosine.
    """
    head = _head(columns, link, "wide_deep")
    inputs, lookups = columns.inputs(), columns.lookups()
    wide = layers.Dense(1, kernel_regularizer=keras.regularizers.L2(wide_l2) if wide_l2 else None, name="wide")(
        wide_features(columns, inputs, lookups, crosses, cross_bins))
    deep = _dense_stack(deep_features(columns, inputs, lookups, embedding_dim, cyclical), hidden_units, activation,
                        dropout, kernel_initializer, l2, batch_norm)
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


@gin.configurable
def wide_deep_subclass(columns: Columns, crosses: Sequence[Sequence[str]] = (), cross_bins: int = 64,
                       embedding_dim: int = 8, hidden_units: Sequence[int] = (128, 64), activation: str = "relu",
                       dropout: float = 0.0, kernel_initializer: str = "he_normal", l2: float = 0.0) -> keras.Model:
    """`WideDeepModel`, adapted on the training split and built."""
    return WideDeepModel.from_columns(columns, crosses=crosses, cross_bins=cross_bins, embedding_dim=embedding_dim,
                                      hidden_units=hidden_units, activation=activation, dropout=dropout,
                                      kernel_initializer=kernel_initializer, l2=l2, name="wide_deep_subclass")
