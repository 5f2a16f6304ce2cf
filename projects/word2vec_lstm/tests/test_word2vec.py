"""Pair generation: window, subsampling and negatives have the statistics word2vec defines."""

import collections

import numpy as np
import pytest
import tensorflow as tf

from core.config import ConfigError

from .. import task as task_lib
from .. import word2vec as w2v


def _ragged(rows):
    return tf.ragged.constant(rows, dtype=tf.int64)


def test_window_one_pairs_each_word_with_its_neighbours_and_never_across_texts():
    centers, contexts = w2v.skipgram_pairs(_ragged([[10, 11, 12], [20, 21]]), window=1)
    pairs = sorted(zip(centers.numpy().tolist(), contexts.numpy().tolist()))
    assert pairs == [(10, 11), (11, 10), (11, 12), (12, 11), (20, 21), (21, 20)]


def test_dynamic_window_takes_distance_d_with_probability_window_minus_d_plus_one_over_window():
    window, n = 4, 20_000
    ids = _ragged([list(range(n))])
    centers, contexts = w2v.skipgram_pairs(ids, window=window, seed=1)
    distance = np.abs(contexts.numpy() - centers.numpy())
    counts = collections.Counter(distance.tolist())
    assert set(counts) == {1, 2, 3, 4}
    for d in range(1, window + 1):
        expected = 2 * n * (window - d + 1) / window  # both sides; edges are negligible
        assert abs(counts[d] - expected) / expected < 0.03, (d, counts[d], expected)


def test_keep_probability_follows_the_word2vec_formula_and_spares_rare_words():
    counts = np.array([1_000_000, 1_000, 10], np.float64)
    keep = w2v.keep_probabilities(counts, sample=1e-3)
    f = counts[0] / counts.sum()
    assert keep[0] == pytest.approx((np.sqrt(f / 1e-3) + 1) * 1e-3 / f, rel=1e-5)
    assert keep[0] < 0.05 and keep[2] == 1.0
    np.testing.assert_array_equal(w2v.keep_probabilities(counts, sample=0), [1, 1, 1])


def test_subsampling_keeps_frequent_words_at_the_formula_rate():
    vocabulary = [("the", 9000), ("cat", 1000)]
    maker = w2v.PairMaker(vocabulary, sample=1e-2, seed=3)
    texts = tf.constant([" ".join(["the"] * 9 + ["cat"]) for _ in range(2000)])
    ids = maker.ids(texts).flat_values.numpy()
    keep = w2v.keep_probabilities(np.array([9000.0, 1000.0]), 1e-2)
    observed_the = np.sum(ids == 0) / (9 * 2000)
    observed_cat = np.sum(ids == 1) / 2000
    assert observed_the == pytest.approx(keep[0], abs=0.01)
    assert observed_cat == pytest.approx(keep[1], abs=0.02)


def test_unknown_words_are_dropped_before_pairing():
    maker = w2v.PairMaker([("a", 5), ("b", 5)], window=1, sample=0)
    ids = maker.ids(tf.constant(["a zzz b", "zzz"])).to_list()
    assert ids == [[0, 1], []]  # "a" and "b" become neighbours once "zzz" is gone


def test_negatives_follow_the_unigram_distribution_to_the_three_quarters():
    counts = np.array([8000, 1000, 100, 10], np.float64)
    maker = w2v.PairMaker([(f"w{i}", int(c)) for i, c in enumerate(counts)], num_negatives=20, seed=5)
    (centers, candidates), labels = maker.with_negatives(tf.zeros([5000], tf.int64), tf.fill([5000], np.int64(3)))
    assert candidates.shape == (5000, 21) and labels.shape == (5000, 21)
    np.testing.assert_array_equal(candidates[:, 0], 3)  # true context first, label 1
    np.testing.assert_array_equal(labels[0], [1] + [0] * 20)
    observed = np.bincount(candidates[:, 1:].numpy().ravel(), minlength=4) / (5000 * 20)
    expected = counts**0.75 / (counts**0.75).sum()
    np.testing.assert_allclose(observed, expected, atol=0.005)
    assert observed[0] < counts[0] / counts.sum() - 0.05  # flatter than the raw unigram distribution


def test_pair_dataset_yields_full_batches_of_model_inputs():
    maker = w2v.PairMaker([("a", 3), ("b", 3), ("c", 3)], window=2, num_negatives=3, sample=0, seed=0)
    texts = tf.data.Dataset.from_tensor_slices(["a b c a b c"] * 50)
    (centers, candidates), labels = next(iter(maker.dataset(texts, batch_size=64)))
    assert centers.shape == (64,) and candidates.shape == (64, 4) and labels.shape == (64, 4)
    model = w2v.skipgram_model(3, 8)
    assert model((centers, candidates)).shape == (64, 4)


def test_word2vec_task_reads_a_one_sentence_per_line_corpus(tmp_path):
    corpus = tmp_path / "sentences.txt"
    corpus.write_text("the cat sat on the mat\nthe dog sat on the log\n" * 20)
    task = task_lib.Word2VecTask(corpus=str(corpus), min_count=2, batch_size=16, embedding_dim=4, sample=0)
    assert dict(task.vocabulary) == {"the": 80, "on": 40, "sat": 40, "cat": 20, "dog": 20, "log": 20, "mat": 20}
    (centers, candidates), _ = next(iter(task.build_inputs("train")))
    assert centers.shape == (16,) and candidates.shape == (16, 6)


def test_word2vec_task_names_a_corpus_that_matches_nothing(tmp_path):
    with pytest.raises(ConfigError, match="no files match"):
        task_lib.Word2VecTask(corpus=str(tmp_path / "missing-*.txt"))
