"""Word tokenization and vocabularies, in TensorFlow ops so the same code runs in tf.data and in the export.

Only core TensorFlow string ops are used (no tensorflow_text kernels): the exported SavedModel must
load in the stock `tensorflow/serving` image, which does not ship tensorflow_text's custom ops.

Tokenization: lower-case (Unicode-aware), put spaces around every Chinese character so each one is a
token (the standard word-free segmentation for Chinese classification), then keep runs of letters and
digits. "The £1.13bn deal" -> ["the", "1", "13bn", "deal"]; "股市上涨" -> ["股", "市", "上", "涨"].
"""

from __future__ import annotations

import collections
import os

import keras
import numpy as np
import tensorflow as tf

from core.config import ConfigError, UserError
from core.files import write_text_atomic

PACKAGE = "word2vec_lstm"
PAD, OOV = "", "[UNK]"  # classifier ids: 0 = padding (masked), 1 = out of vocabulary, 2.. = words


def tokenize(texts: tf.Tensor) -> tf.RaggedTensor:
    """Strings [batch] -> ragged tokens [batch, (words)]."""
    texts = tf.strings.lower(texts, encoding="utf-8")
    texts = tf.strings.regex_replace(texts, r"(\p{Han})", r" \1 ")
    texts = tf.strings.regex_replace(texts, r"[^\p{L}\p{N}\p{M}]+", " ")
    return tf.strings.split(tf.strings.strip(texts))


def count_tokens(texts: tf.data.Dataset, batch_size: int = 256) -> collections.Counter:
    """Token counts over a dataset of strings (tokenized in batches in the graph)."""
    counts: collections.Counter = collections.Counter()
    for tokens in texts.batch(batch_size).map(lambda t: tokenize(t).flat_values, num_parallel_calls=tf.data.AUTOTUNE):
        counts.update(tokens.numpy())
    return collections.Counter({token.decode("utf-8"): n for token, n in counts.items()})


def build_vocabulary(counts: collections.Counter, min_count: int = 1, max_size: int | None = None) -> list[tuple]:
    """(token, count) pairs with count >= min_count, most frequent first (ties alphabetical), at most max_size."""
    kept = sorted(((t, n) for t, n in counts.items() if n >= min_count), key=lambda tn: (-tn[1], tn[0]))
    return kept[:max_size] if max_size else kept


def write_vocabulary(path: str, vocabulary: list[tuple]) -> None:
    """Writes `token<TAB>count` lines, most frequent first."""
    write_text_atomic(path, "".join(f"{token}\t{count}\n" for token, count in vocabulary))


def read_vocabulary(path: str) -> list[tuple]:
    """Reads a `token<TAB>count` file written by `write_vocabulary`."""
    if not os.path.exists(path):
        raise UserError(f"{path}: vocabulary file not found.")
    vocabulary = []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            token, sep, count = line.rstrip("\n").partition("\t")
            if not sep or not token or not count.isdigit():
                raise UserError(f"{path}:{line_number}: expected 'token<TAB>count', got {line.rstrip()!r}.")
            vocabulary.append((token, int(count)))
    return vocabulary


@keras.saving.register_keras_serializable(package=PACKAGE)
class TextEncoder(keras.layers.Layer):
    """Raw strings [batch] -> token ids [batch, max_length]: 0 pads, 1 is out-of-vocabulary, 2.. are words.

    Used by the input pipeline (so training never tokenizes on the accelerator's critical path) and by
    the exported signature (so clients send text); one object guarantees both see the same ids.

    A text longer than `max_length` words keeps its first `max_length - tail_length` words and its last
    `tail_length` (a news article's closing lines often name its topic again); `tail_length=0` keeps the head.
    """

    def __init__(self, vocabulary: list[str], max_length: int = 256, tail_length: int = 0, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= tail_length < max_length:
            raise ConfigError(f"TextClassificationTask.tail_length={tail_length}: expected 0 <= tail_length < "
                              f"max_length ({max_length}).")
        self.vocabulary = list(vocabulary)
        self.max_length = max_length
        self.tail_length = tail_length
        self.lookup = keras.layers.StringLookup(vocabulary=self.vocabulary, mask_token=PAD, num_oov_indices=1)
        self.built = True  # no weights of its own; the lookup table is made above

    @property
    def vocabulary_size(self) -> int:
        """Ids in use, padding and out-of-vocabulary included."""
        return len(self.vocabulary) + 2

    def call(self, texts):
        tokens = tokenize(texts)
        if self.tail_length:  # keep word i if i < head or i >= length - tail: all of it when it fits
            lengths = tokens.row_lengths()
            positions = tf.ragged.range(lengths)
            tail_start = tf.expand_dims(lengths - self.tail_length, 1)
            tokens = tf.ragged.boolean_mask(
                tokens, (positions < self.max_length - self.tail_length) | (positions >= tail_start))
        tokens = tokens[:, : self.max_length]
        ids = self.lookup(tokens)
        return tf.cast(ids.to_tensor(0, shape=[None, self.max_length]), tf.int32)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.max_length)

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary, "max_length": self.max_length,
                "tail_length": self.tail_length}


def tokens_per_text(texts: list[str]) -> np.ndarray:
    """Number of tokens in each text (for choosing max_length)."""
    return tokenize(tf.constant(texts)).row_lengths().numpy()
