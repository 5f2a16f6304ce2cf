"""The news classifier: embeddings (optionally pretrained, frozen then fine-tuned) -> stacked (Bi)LSTM -> head.

Reads bottom-up: the embedding layer that can be frozen for the first steps, the callback that thaws it,
then the model builder.
"""

from __future__ import annotations

import gin
import keras
import numpy as np
from absl import logging
from keras import ops

from core.config import ConfigError
from core.layers import MaskedGlobalPooling1D

PACKAGE = "word2vec_lstm"


@keras.saving.register_keras_serializable(package=PACKAGE)
class FreezableEmbedding(keras.layers.Embedding):
    """An Embedding whose gradient is cut while its `frozen` flag (a non-trainable weight) is 1.

    Flipping `layer.trainable` mid-run would need a new train function and new optimizer slots in
    both loops; a flag read inside the graph needs neither, is saved in checkpoints, and lets
    `fit` and the custom loop thaw the layer the same way (see `ThawEmbeddings`). With Adam, a
    weight whose gradient has always been zero does not move.
    """

    def __init__(self, input_dim: int, output_dim: int, frozen: bool = False, **kwargs):
        super().__init__(input_dim, output_dim, **kwargs)
        self.initially_frozen = frozen

    def build(self, input_shape=None):
        super().build(input_shape)
        self.frozen = self.add_weight(shape=(), initializer=keras.initializers.Constant(float(self.initially_frozen)),
                                      trainable=False, name="frozen", dtype="float32")

    def call(self, inputs):
        outputs = super().call(inputs)
        frozen = ops.cast(self.frozen, outputs.dtype)
        return frozen * ops.stop_gradient(outputs) + (1.0 - frozen) * outputs

    # Keras' Embedding saves only its own table to .keras files; the flag goes beside it.
    def save_own_variables(self, store):
        super().save_own_variables(store)
        if self.built:
            store["frozen"] = self.frozen.numpy()

    def load_own_variables(self, store):
        super().load_own_variables(store)
        if self.built:
            self.frozen.assign(store["frozen"])

    def get_config(self):
        return {**super().get_config(), "frozen": self.initially_frozen}


@keras.saving.register_keras_serializable(package=PACKAGE)
class WordDropout(keras.layers.Layer):
    """While training, each word id becomes padding (0) with probability `rate`: the masked LSTM then skips the
    word, so the article reads as if the word were not there. Unlike dropping embedding channels, this hides
    whole words, the ones a fine-tuned embedding table would otherwise memorise an article by. Identity at
    inference, so exports are unchanged."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ConfigError(f"lstm_classifier.word_dropout={rate}: expected a rate in [0, 1).")
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, ids, training=False):
        if not training or self.rate == 0.0:
            return ids
        keep = keras.random.uniform(ops.shape(ids), seed=self.seed_generator) >= self.rate
        return ops.where(keep, ids, ops.zeros_like(ids))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class AttentionPooling1D(keras.layers.Layer):
    """A learned weighted mean over time of (batch, time, features): each kept step scores
    `v . tanh(W h + b)`, a softmax over the steps the Keras mask keeps turns the scores into weights
    (the word-level attention of hierarchical attention networks). Unlike a max, every word can count,
    by how much the model learned it matters. An all-padding sequence pools to zeros.

    Keras' `Attention`/`MultiHeadAttention` layers need a query sequence; pooling against one learned
    query vector is this small, so it is written here.
    """

    def __init__(self, units: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.supports_masking = True

    def build(self, input_shape):
        self.hidden = keras.layers.Dense(self.units, activation="tanh", name="hidden")
        self.hidden.build(input_shape)
        self.score = keras.layers.Dense(1, use_bias=False, name="score")
        self.score.build((*input_shape[:-1], self.units))

    def call(self, inputs, mask=None):
        scores = ops.squeeze(self.score(self.hidden(inputs)), -1)  # (batch, time)
        if mask is None:
            mask = ops.ones(ops.shape(scores), dtype="bool")
        keep = ops.cast(mask, "bool")
        weights = ops.softmax(ops.where(keep, scores, ops.full_like(scores, -1e9)), axis=-1)
        weights = ops.where(keep, weights, ops.zeros_like(weights))  # an all-padding row: all zeros
        return ops.sum(inputs * ops.expand_dims(weights, -1), axis=1)

    def compute_mask(self, inputs, mask=None):
        return None  # time is pooled away

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class ThawEmbeddings(keras.callbacks.Callback):
    """Sets every FreezableEmbedding's flag at each loop start: frozen before `thaw_step`, trainable after."""

    def __init__(self, thaw_step: int, steps_per_loop: int):
        super().__init__()
        self.thaw_step = thaw_step
        self.steps_per_loop = steps_per_loop

    def on_epoch_begin(self, epoch, logs=None):
        frozen = float(epoch * self.steps_per_loop < self.thaw_step)
        for layer in self.model._flatten_layers():  # nested models included
            if isinstance(layer, FreezableEmbedding) and float(layer.frozen.numpy()) != frozen:
                layer.frozen.assign(frozen)
                logging.info("%s: %s from step %d", layer.name, "frozen" if frozen else "trainable",
                             epoch * self.steps_per_loop)


@gin.configurable
def lstm_classifier(
    vocabulary_size: int,
    num_classes: int,
    max_length: int,
    embedding_dim: int = 100,
    embeddings: np.ndarray | None = None,
    freeze_embeddings: bool = False,
    lstm_units: tuple[int, ...] = (64,),
    bidirectional: bool = True,
    pooling: str = "max",
    embedding_dropout: float = 0.2,
    dropout: float = 0.3,
    word_dropout: float = 0.0,
) -> keras.Model:
    """Token ids [batch, time <= max_length] (0 = padding) -> class logits [batch, num_classes].

    pooling: "last" (the final LSTM state, the textbook choice), "max" or "mean" over the non-padded
    time steps of the last LSTM's outputs (more robust on long articles), or "attention" (a learned
    weighted mean of them, `AttentionPooling1D`).
    embedding_dropout drops whole embedding channels (SpatialDropout1D); word_dropout whole words (WordDropout).
    """
    if pooling not in ("last", "max", "mean", "attention"):
        raise ConfigError(f"lstm_classifier.pooling={pooling!r}: expected 'last', 'max', 'mean' or 'attention'.")
    if embeddings is not None and embeddings.shape != (vocabulary_size, embedding_dim):
        # The width is a binding, not read from the vectors, so evaluate and export rebuild the
        # same model from the operative config without the pretrained files.
        raise ConfigError(
            f"pretrained embeddings are {embeddings.shape[0]} x {embeddings.shape[1]} but the model expects "
            f"{vocabulary_size} x {embedding_dim}: set lstm_classifier.embedding_dim = {embeddings.shape[1]}."
        )
    initializer = keras.initializers.Constant(embeddings) if embeddings is not None else "uniform"

    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")  # any length: batches of a length bucket
    x = WordDropout(word_dropout, name="word_dropout")(ids) if word_dropout else ids
    x = FreezableEmbedding(vocabulary_size, embedding_dim, frozen=freeze_embeddings, mask_zero=True,
                           embeddings_initializer=initializer, name="embedding")(x)  # (batch, time, dim)
    x = keras.layers.SpatialDropout1D(embedding_dropout)(x)  # drops whole embedding channels
    for i, units in enumerate(lstm_units):
        sequences = i < len(lstm_units) - 1 or pooling != "last"
        layer = keras.layers.LSTM(units, return_sequences=sequences, name=f"lstm_{i}")
        x = (keras.layers.Bidirectional(layer, name=f"bilstm_{i}") if bidirectional else layer)(x)
        # (batch, time, units x directions), or (batch, units x directions) for the last with "last"
    if pooling == "attention":
        x = AttentionPooling1D(name="attention_pool")(x)  # padding steps get no weight, via the mask
    elif pooling != "last":
        x = MaskedGlobalPooling1D(pooling, name=f"{pooling}_pool")(x)  # padding steps ignored via the mask
    x = keras.layers.Dropout(dropout)(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(ids, logits, name="lstm_classifier")
