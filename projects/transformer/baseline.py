"""The plain-Keras peer that bench.py measures against: the keras-io "English-to-Spanish translation with a
sequence-to-sequence Transformer" recipe, rebuilt here on the same gettext pairs.

What makes it the tutorial way: word-level `TextVectorization` (15,000 words, every sentence padded or cut
to 20 tokens), Keras's built-in `MultiHeadAttention` with implicit `mask_zero` masks, 1 encoder and
1 decoder block (width 256, feed-forward 2048, 8 heads, dropout 0.5), RMSprop, and `model.fit` on
in-memory arrays in batches of 64 with default settings (no XLA, no length buckets, no caching).
It is a benchmark reference only; the project's model is model.py.
"""

from __future__ import annotations

import re
import string

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from core import bench

from .scoring import RECIPE_MARKS

VOCAB_SIZE = 15_000
SEQUENCE_LENGTH = 20
_STRIP = string.punctuation.replace("[", "").replace("]", "") + RECIPE_MARKS


def standardize(texts: tf.Tensor) -> tf.Tensor:
    """Lower-case and drop punctuation except the [start]/[end] brackets (the tutorial's rule)."""
    return tf.strings.regex_replace(tf.strings.lower(texts), f"[{re.escape(_STRIP)}]", "")


class _TokenAndPosition(layers.Layer):
    """Word embedding + learned position embedding; id 0 is masked for the attention layers downstream."""

    def __init__(self, sequence_length: int, vocab_size: int, embed_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.tokens = layers.Embedding(vocab_size, embed_dim)
        self.positions = layers.Embedding(sequence_length, embed_dim)

    def call(self, ids):
        return self.tokens(ids) + self.positions(keras.ops.arange(keras.ops.shape(ids)[-1]))

    def compute_mask(self, ids, mask=None):
        return keras.ops.not_equal(ids, 0)


class _Remasked(layers.Layer):
    """(encoded, source ids) -> encoded, with the source's padding mask. Keras's attention layers clear the
    masks of the tensors they read, so an encoder output that decoding reuses step after step needs its mask
    given back each step, or the decoder would attend to padded words."""

    def call(self, inputs):
        return inputs[0]

    def compute_mask(self, inputs, mask=None):
        return keras.ops.not_equal(inputs[1], 0)


class _Encoder(layers.Layer):
    """Post-norm self-attention block, as the tutorial writes it."""

    def __init__(self, embed_dim: int, dense_dim: int, num_heads: int, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.attention = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.dense = keras.Sequential([layers.Dense(dense_dim, activation="relu"), layers.Dense(embed_dim)])
        self.norm_1, self.norm_2 = layers.LayerNormalization(), layers.LayerNormalization()

    def call(self, x, mask=None):
        padding = None if mask is None else keras.ops.cast(mask[:, None, :], "int32")
        x = self.norm_1(x + self.attention(x, x, attention_mask=padding))
        return self.norm_2(x + self.dense(x))


class _Decoder(layers.Layer):
    """Causal self-attention, attention over the encoder output, feed-forward; post-norm."""

    def __init__(self, embed_dim: int, dense_dim: int, num_heads: int, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.self_attention = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.cross_attention = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.dense = keras.Sequential([layers.Dense(dense_dim, activation="relu"), layers.Dense(embed_dim)])
        self.norms = [layers.LayerNormalization() for _ in range(3)]

    def call(self, x, encoder_outputs, mask=None):
        x = self.norms[0](x + self.self_attention(x, x, use_causal_mask=True))
        x = self.norms[1](x + self.cross_attention(x, encoder_outputs))
        return self.norms[2](x + self.dense(x))


def peer_model(vocab_size: int = VOCAB_SIZE, sequence_length: int = SEQUENCE_LENGTH, embed_dim: int = 256,
               dense_dim: int = 2048, num_heads: int = 8, dropout: float = 0.5) -> keras.Model:
    """The tutorial's Functional encoder-decoder, compiled with RMSprop and sparse cross-entropy."""
    encoder_inputs = keras.Input(shape=(None,), dtype="int64", name="encoder_inputs")
    decoder_inputs = keras.Input(shape=(None,), dtype="int64", name="decoder_inputs")
    encoded = _Encoder(embed_dim, dense_dim, num_heads, name="encoder")(
        _TokenAndPosition(sequence_length, vocab_size, embed_dim, name="source_embedding")(encoder_inputs))
    x = _TokenAndPosition(sequence_length, vocab_size, embed_dim, name="target_embedding")(decoder_inputs)
    x = _Decoder(embed_dim, dense_dim, num_heads, name="decoder")(x, encoded)
    outputs = layers.Dense(vocab_size, activation="softmax", name="words")(layers.Dropout(dropout)(x))
    model = keras.Model([encoder_inputs, decoder_inputs], outputs, name="keras_io_peer")
    model.compile("rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class Vectorizers:
    """The tutorial's two `TextVectorization` layers, adapted on the training pairs: English words (default
    standardization) and German words with the `[start]`/`[end]` markers (`standardize`)."""

    def __init__(self, pairs: list[tuple[str, str]], vocab_size: int = VOCAB_SIZE,
                 sequence_length: int = SEQUENCE_LENGTH):
        self.sequence_length = sequence_length
        self.source = layers.TextVectorization(vocab_size, output_sequence_length=sequence_length)
        self.target = layers.TextVectorization(vocab_size, output_sequence_length=sequence_length + 1,
                                               standardize=standardize)
        self.source.adapt([s for s, _ in pairs])
        self.target.adapt([_marked(t) for _, t in pairs])
        self.target_words = np.array(self.target.get_vocabulary())


def _marked(target: str) -> str:
    return f"[start] {target} [end]"


def vectorize(pairs: list[tuple[str, str]], vectorizers: Vectorizers | None = None,
              vocab_size: int = VOCAB_SIZE, sequence_length: int = SEQUENCE_LENGTH
              ) -> tuple[list[np.ndarray], np.ndarray]:
    """Word ids as the tutorial makes them: ([source, target_in], target_out), each (N, sequence_length);
    with vectorizers adapted on `pairs` unless given."""
    vectorizers = vectorizers or Vectorizers(pairs, vocab_size, sequence_length)
    source = vectorizers.source(np.array([s for s, _ in pairs])).numpy()
    target = vectorizers.target(np.array([_marked(t) for _, t in pairs])).numpy()
    return [source, target[:, :-1]], target[:, 1:]


def train_for(model: keras.Model, train: tuple[list[np.ndarray], np.ndarray],
              validation: tuple[list[np.ndarray], np.ndarray], seconds: float, batch_size: int = 64,
              verbose: int | str = "auto") -> dict:
    """`model.fit` as the tutorial calls it (shuffled arrays, batch 64, a validation pass per epoch), for
    `seconds` of wall time: {"train_seconds", "steps", "epochs"} (epochs as a fraction of the training set)."""
    clock = bench.timed_fit(model, seconds, verbose, x=train[0], y=train[1], batch_size=batch_size,
                            validation_data=validation)
    return {"train_seconds": clock.elapsed, "steps": clock.steps, "epochs": clock.steps * batch_size / len(train[1])}


def greedy_translate(model: keras.Model, vectorizers: Vectorizers, sources: list[str],
                     batch_size: int = 256) -> list[str]:
    """The tutorial's `decode_sequence`, for many sentences at once: `sequence_length` steps; step i reads the
    prediction at position i of the words so far (after `[start]`) and appends the most probable word, until
    `[end]`. A predicted padding id appends nothing, as the tutorial's empty word vanishes when its string is
    vectorized again. A word depends only on the words before it (the decoder's causal mask), so each
    sentence gets the words it would get alone.

    It computes what the tutorial's full `model([source, target])` call computes at position i, without the
    rest: the encoder runs once per batch (the source does not change), the decoder reads positions 0..i
    only (the causal mask keeps later ones out of position i), and the output layer scores position i only.
    Dropout is off at inference, so it is skipped."""
    length = vectorizers.sequence_length
    start, end = (int(np.flatnonzero(vectorizers.target_words == w)[0]) for w in ("[start]", "[end]"))
    source_embedding, encoder, target_embedding, decoder, words_layer = (
        model.get_layer(name) for name in ("source_embedding", "encoder", "target_embedding", "decoder", "words"))
    remasked = _Remasked()
    out = []
    for first in range(0, len(sources), batch_size):
        source = vectorizers.source(np.array(sources[first:first + batch_size])).numpy()
        encoded = encoder(source_embedding(source), training=False)
        rows = np.arange(len(source))
        target = np.zeros((len(source), length + 1), dtype="int64")
        target[:, 0] = start
        filled = np.ones(len(source), dtype="int64")  # ids written so far, [start] included
        finished = np.zeros(len(source), dtype=bool)
        for i in range(length):
            hidden = decoder(target_embedding(target[:, :i + 1]), remasked([encoded, source]), training=False)[:, i]
            probabilities = words_layer(hidden).numpy()
            # Where position i holds padding (a padding word was predicted before), Keras masks its query and
            # then attends over every position, later ones too: those rows take the tutorial's full call.
            stalled = ~finished & (target[:, i] == 0)
            if stalled.any():
                probabilities[stalled] = model([source[stalled], target[stalled, :length]], training=False)[:, i]
            # Over the adapted words only: a vocabulary smaller than the output layer leaves ids with no word.
            probabilities = probabilities[:, :len(vectorizers.target_words)]
            words = np.argmax(probabilities, axis=-1)
            write = ~finished & (words != 0)
            target[rows[write], filled[write]] = words[write]
            filled += write
            finished |= words == end
            if finished.all():
                break
        for row in target:
            words = [vectorizers.target_words[t] for t in row[1:] if t]
            out.append(" ".join(words[:words.index("[end]")] if "[end]" in words else words))
    return out
