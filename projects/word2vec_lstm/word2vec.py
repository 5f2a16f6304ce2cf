"""Skip-gram word2vec with negative sampling (Mikolov et al., 2013), with the pairs made in the tf.data graph.

The pipeline, all TensorFlow ops so it runs in parallel with training and never in Python loops:

  texts -> tokens -> ids (words under min_count dropped, as the original word2vec does)
        -> subsampling: keep word w with probability (sqrt(f(w) / t) + 1) * t / f(w)    (f = frequency)
        -> (center, context) for every context within a window of b words, b ~ U{1..window} per center
           (the "dynamic window": near words count more often than far ones)
        -> batches of pairs -> negatives: `num_negatives` words per pair from the unigram distribution
           raised to the 0.75 power, drawn from a precomputed table as the original C code does
  model: logits = <target_embedding[center], context_embedding[context or negative]>,
  loss:  sigmoid cross-entropy with label 1 for the true context and 0 for each negative.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from core.config import ConfigError

from . import text as text_lib

UNIGRAM_TABLE_SIZE = 1_000_000


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """Per-word probability of keeping an occurrence under frequent-word subsampling (1.0 if sample <= 0)."""
    if sample <= 0:
        return np.ones(len(counts), np.float32)
    frequency = counts / counts.sum()
    return np.minimum(1.0, (np.sqrt(frequency / sample) + 1.0) * sample / frequency).astype(np.float32)


def unigram_table(counts: np.ndarray, power: float = 0.75, size: int = UNIGRAM_TABLE_SIZE) -> np.ndarray:
    """Word ids repeated in proportion to count**power; a uniform index into it draws a negative."""
    weights = counts.astype(np.float64) ** power
    repeats = np.maximum(np.round(weights / weights.sum() * size), 1).astype(np.int64)
    return np.repeat(np.arange(len(counts), dtype=np.int64), repeats)


def skipgram_pairs(ids: tf.RaggedTensor, window: int, seed: int | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """(centers [P], contexts [P]) of every text in the ragged batch `ids`; pairs never cross texts."""
    flat = ids.flat_values  # (N,)
    rows = ids.value_rowids()
    starts = tf.gather(ids.row_starts(), rows)  # first position of each token's text, (N,)
    limits = tf.gather(ids.row_limits(), rows)
    n = tf.shape(flat, out_type=tf.int64)[0]
    offsets = tf.constant([o for o in range(-window, window + 1) if o], tf.int64)  # (2 window,)
    positions = tf.range(n)[:, None] + offsets[None, :]  # (N, 2 window)
    reach = tf.random.uniform([n, 1], 1, window + 1, dtype=tf.int64, seed=seed)  # dynamic window
    valid = (positions >= starts[:, None]) & (positions < limits[:, None]) & (tf.abs(offsets)[None, :] <= reach)
    centers = tf.broadcast_to(flat[:, None], tf.shape(positions))
    contexts = tf.gather(flat, tf.clip_by_value(positions, 0, tf.maximum(n - 1, 0)))
    return tf.boolean_mask(centers, valid), tf.boolean_mask(contexts, valid)


class PairMaker:
    """Texts -> batches of ((centers [B], candidates [B, 1 + negatives]), labels [B, 1 + negatives])."""

    def __init__(self, vocabulary: list[tuple[str, int]], window: int = 5, num_negatives: int = 5,
                 sample: float = 1e-3, power: float = 0.75, seed: int | None = None):
        words = [w for w, _ in vocabulary]
        counts = np.array([c for _, c in vocabulary], np.float64)
        self.window, self.num_negatives, self.seed = window, num_negatives, seed
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(words), tf.range(len(words), dtype=tf.int64)), -1)
        self.keep = tf.constant(keep_probabilities(counts, sample))
        self.negatives = tf.constant(unigram_table(counts, power))

    def _seed(self, stream: int) -> int | None:
        """A distinct op seed per random choice, so subsampling, windows and negatives are independent."""
        return None if self.seed is None else self.seed * 10 + stream

    def ids(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Ragged word ids of a batch of texts: unknown words dropped, then frequent words subsampled."""
        ids = tf.ragged.map_flat_values(self.table.lookup, text_lib.tokenize(texts))
        ids = tf.ragged.boolean_mask(ids, ids >= 0)
        draw = tf.random.uniform(tf.shape(ids.flat_values), seed=self._seed(0))
        return tf.ragged.boolean_mask(ids, ids.with_flat_values(draw < tf.gather(self.keep, ids.flat_values)))

    def pairs(self, texts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Shuffled (centers, contexts) of a batch of texts."""
        centers, contexts = skipgram_pairs(self.ids(texts), self.window, self._seed(1))
        order = tf.random.shuffle(tf.range(tf.size(centers)), seed=self._seed(2))
        return tf.gather(centers, order), tf.gather(contexts, order)

    def with_negatives(self, centers: tf.Tensor, contexts: tf.Tensor) -> tuple[tuple[tf.Tensor, tf.Tensor], tf.Tensor]:
        """Model inputs and labels for a batch of pairs: column 0 is the true context, the rest negatives."""
        batch = tf.shape(centers)[0]
        draws = tf.random.uniform([batch, self.num_negatives], 0, tf.size(self.negatives, tf.int64),
                                  dtype=tf.int64, seed=self._seed(3))
        candidates = tf.concat([contexts[:, None], tf.gather(self.negatives, draws)], axis=1)
        labels = tf.one_hot(tf.zeros([batch], tf.int32), self.num_negatives + 1)
        return (centers, candidates), labels

    def dataset(self, texts: tf.data.Dataset, batch_size: int, texts_per_chunk: int = 64) -> tf.data.Dataset:
        """Batches of pairs from a dataset of strings; pairs are shuffled within chunks of texts."""
        return (
            texts.batch(texts_per_chunk)
            .map(self.pairs, num_parallel_calls=tf.data.AUTOTUNE)
            .rebatch(batch_size, drop_remainder=True)
            .map(self.with_negatives, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )


def skipgram_model(vocabulary_size: int, embedding_dim: int) -> keras.Model:
    """(centers [B], candidates [B, K]) -> logits [B, K]: dot products of target and context vectors."""
    centers = keras.Input(shape=(), dtype="int64", name="centers")
    candidates = keras.Input(shape=(None,), dtype="int64", name="candidates")
    scale = 0.5 / embedding_dim  # word2vec's init: small random targets, zero contexts
    target = keras.layers.Embedding(vocabulary_size, embedding_dim, name="target_embedding",
                                    embeddings_initializer=keras.initializers.RandomUniform(-scale, scale))(centers)
    context = keras.layers.Embedding(vocabulary_size, embedding_dim, name="context_embedding",
                                     embeddings_initializer="zeros")(candidates)
    logits = keras.ops.einsum("bd,bkd->bk", target, context)  # (batch, 1 + negatives)
    return keras.Model([centers, candidates], logits, name="skipgram")


def line_texts(pattern: str) -> tf.data.Dataset:
    """One text per line of the files matching `pattern` (a one-sentence-per-line corpus)."""
    files = tf.io.gfile.glob(pattern)
    if not files:
        raise ConfigError(f"corpus {pattern!r} (Word2VecTask.corpus or validation_corpus): no files match.")
    return tf.data.TextLineDataset(sorted(files), num_parallel_reads=min(len(files), 4))
