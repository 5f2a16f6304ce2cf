"""Skip-gram word2vec with negative sampling (Mikolov et al., 2013), with word2vec.c's optimizer: sparse SGD.

The input pipeline, all TensorFlow ops, makes chunks of word ids; the train step makes the pairs:

  texts -> tokens -> ids (words under min_count dropped, as word2vec.c does), tokenized once and cached
        -> every pass: texts shuffled, frequent words subsampled (keep word w with probability
           (sqrt(f(w) / t) + 1) * t / f(w), f = frequency), each kept word given its window b ~ U{1..window}
           (the "dynamic window": near words count more often than far ones)
        -> the texts' ids back to back in chunks of `tokens_per_step`, with a segment id per text so
           pairs never cross texts, and `shared_negatives` words per update drawn from the unigram
           distribution raised to the 0.75 power (a precomputed table, as the original C code draws them).

  step: the chunk is cut into updates of `tokens_per_update` centers. In each update every center is paired
        with each context within its window, as a shifted slice of the same gathered context vectors (no
        pair is materialized), and scored against the update's negatives with one matrix product:
          loss = sum over pairs  softplus(-<t_center, c_context>)
               + sum over pairs  (num_negatives / S) * sum over the S negatives  softplus(<t_center, c_negative>)
        which in expectation is word2vec's loss with `num_negatives` negatives per pair. The gradients of
        the two embedding lookups are `tf.IndexedSlices`, so plain SGD moves only the rows in the update,
        at word2vec's linearly decaying rate, then the next update reads the moved rows.

Why updates of a few hundred words: word2vec.c updates after every pair, and a frequent word's rows get
thousands of gradient terms in a chunk of 16k words; summed and applied at once they overshoot and the
loss diverges (measured: NaN at 1024 and more words per update at word2vec's rate 0.025). The updates run
in a `tf.while_loop` compiled by XLA, which is what makes small updates cheap on a CPU.
"""

from __future__ import annotations

import typing

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


class TokenChunks:
    """Texts -> chunks {ids, segments, reach [T], negatives [T / tokens_per_update, shared_negatives]}.

    ids: word ids after min_count and subsampling, the texts back to back; segments: which text each id
    came from (pairs never cross a change); reach: each id's window as a center, 1..window.
    Randomness is stateless, seeded by (seed, text number) and (seed, chunk number), so parallel maps
    and a resumed run (which skips chunks) draw exactly what an uninterrupted run draws.
    """

    def __init__(self, vocabulary: list[tuple[str, int]], window: int = 5, sample: float = 1e-3,
                 power: float = 0.75, shared_negatives: int = 32, tokens_per_update: int = 256,
                 seed: int | None = None):
        words = [w for w, _ in vocabulary]
        counts = np.array([c for _, c in vocabulary], np.float64)
        self.window, self.shared_negatives, self.tokens_per_update = window, shared_negatives, tokens_per_update
        # Without a seed of its own, one from NumPy's global state, which the --seed flag sets.
        self.seed = int(seed if seed is not None else np.random.randint(2**31))
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(words), tf.range(len(words), dtype=tf.int64)), -1)
        keep = keep_probabilities(counts, sample)
        self.keep = tf.constant(keep)
        self.kept_per_pass = float((counts * keep).sum())  # expected ids per pass over the corpus
        self.negatives = tf.constant(unigram_table(counts, power))

    def _stateless_seed(self, stream: int, index: tf.Tensor) -> tf.Tensor:
        return tf.stack([tf.constant(self.seed * 8 + stream, tf.int64), tf.cast(index, tf.int64)])

    def ids(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Ragged word ids of a batch of texts, words under min_count (not in the vocabulary) dropped."""
        ids = tf.ragged.map_flat_values(self.table.lookup, text_lib.tokenize(texts))
        return tf.ragged.boolean_mask(ids, ids >= 0)

    def subsample(self, index: tf.Tensor, ids: tf.Tensor) -> dict[str, tf.Tensor]:
        """Text number `index`'s ids after subsampling, with their segment (the text number) and windows."""
        draw = tf.random.stateless_uniform(tf.shape(ids), self._stateless_seed(0, index))
        kept = ids[draw < tf.gather(self.keep, ids)]
        reach = tf.random.stateless_uniform(tf.shape(kept), self._stateless_seed(1, index), 1, self.window + 1,
                                            dtype=tf.int64)
        return {"ids": kept, "segments": tf.fill(tf.shape(kept), tf.cast(index, tf.int64)), "reach": reach}

    def with_negatives(self, index: tf.Tensor, chunk: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Adds the chunk's negatives: `shared_negatives` unigram**0.75 draws per update."""
        updates = -(-tf.size(chunk["ids"]) // self.tokens_per_update)
        draws = tf.random.stateless_uniform([updates, self.shared_negatives], self._stateless_seed(2, index), 0,
                                            tf.size(self.negatives, tf.int64), dtype=tf.int64)
        return {**chunk, "negatives": tf.gather(self.negatives, draws)}

    def dataset(self, texts: tf.data.Dataset, tokens_per_step: int, training: bool,
                shuffle_buffer: int = 10_000) -> tf.data.Dataset:
        """Chunks from a dataset of strings: endless and shuffled for training, one pass otherwise."""
        ids = texts.batch(256).map(self.ids, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
        if training:  # tokenized once: every later pass reads the cached ids
            ids = ids.cache().shuffle(shuffle_buffer, seed=self.seed).repeat()
        chunks = (
            ids.enumerate()
            .map(self.subsample, num_parallel_calls=tf.data.AUTOTUNE)
            .rebatch(tokens_per_step, drop_remainder=training)
            .enumerate()
            .map(self.with_negatives, num_parallel_calls=tf.data.AUTOTUNE)
        )
        return chunks.prefetch(tf.data.AUTOTUNE)


class LossParts(typing.NamedTuple):
    """Sums over the pairs of one update."""

    loss: tf.Tensor  # word2vec's loss, summed over pairs
    pairs: tf.Tensor  # (center, context) pairs
    correct: tf.Tensor  # true contexts scored > 0 plus negatives' weight scored < 0, of pairs * (1 + negatives)


def window_offsets(window: int) -> list[int]:
    """The context offsets of a center, in the column order of `window_mask`: -window..-1, 1..window."""
    return [o for o in range(-window, window + 1) if o]


def window_mask(segments: tf.Tensor, reach: tf.Tensor, window: int) -> tf.Tensor:
    """(n, 2 window) bool: center i pairs with the id at offset o (columns: -window..-1, 1..window).

    segments: [n + 2 window], the n centers' segments with `window` either side (-1 where there is no text);
    reach: [n], each center's window.
    """
    n = tf.shape(reach)[0]
    offsets = window_offsets(window)
    center_segments = segments[window:window + n]
    same_text = tf.stack([tf.equal(center_segments, segments[window + o:window + o + n]) for o in offsets], axis=1)
    return same_text & (tf.constant([abs(o) for o in offsets], tf.int64)[None, :] <= reach[:, None])


def skipgram_loss(target: keras.layers.Embedding, context: keras.layers.Embedding, ids: tf.Tensor,
                  segments: tf.Tensor, reach: tf.Tensor, negatives: tf.Tensor, window: int,
                  num_negatives: int) -> LossParts:
    """word2vec's loss over the pairs of n centers; ids/segments [n + 2 window], reach [n], negatives [S]."""
    n = tf.shape(reach)[0]
    offsets = window_offsets(window)
    centers = tf.cast(target(ids[window:window + n]), tf.float32)  # (n, dim)
    contexts = tf.cast(context(ids), tf.float32)  # (n + 2 window, dim): every context of every center
    logits = tf.stack([tf.reduce_sum(centers * contexts[window + o:window + o + n], axis=-1) for o in offsets],
                      axis=1)  # (n, 2 window)
    mask = tf.cast(window_mask(segments, reach, window), tf.float32)
    pairs = tf.reduce_sum(mask, axis=1)  # (n,): pairs of each center
    noise = tf.matmul(centers, tf.cast(context(negatives), tf.float32), transpose_b=True)  # (n, S)
    weight = pairs[:, None] * (num_negatives / negatives.shape[0])  # each pair's share of each negative
    loss = tf.reduce_sum(mask * tf.nn.softplus(-logits)) + tf.reduce_sum(weight * tf.nn.softplus(noise))
    correct = (tf.reduce_sum(mask * tf.cast(logits > 0, tf.float32))
               + tf.reduce_sum(weight * tf.cast(noise < 0, tf.float32)))
    return LossParts(loss, tf.reduce_sum(pairs), correct)


def skipgram_pairs(segments: tf.Tensor, reach: tf.Tensor, window: int) -> tuple[tf.Tensor, tf.Tensor]:
    """(center positions, context positions) of every pair `window_mask` makes in a chunk of segments [n]."""
    padded = tf.pad(segments, [[window, window]], constant_values=-1)
    mask = window_mask(padded, reach, window)
    offsets = tf.constant(window_offsets(window), tf.int64)
    where = tf.where(mask)  # (pairs, 2): center position, offset column
    return where[:, 0], where[:, 0] + tf.gather(offsets, where[:, 1])


def skipgram_model(vocabulary_size: int, embedding_dim: int) -> keras.Model:
    """(centers [B], candidates [B, K]) -> logits [B, K]: dot products of target and context vectors.

    The two tables are word2vec's weights; the train step uses the layers directly (`skipgram_loss`).
    The pair interface is what the benchmark's tutorial baseline trains with `model.fit`.
    """
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
