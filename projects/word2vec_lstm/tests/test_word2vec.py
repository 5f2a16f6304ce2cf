"""word2vec: window, subsampling and negatives have the statistics word2vec defines; the loss and its sparse
updates are the ones written out pair by pair."""

import collections

import keras
import numpy as np
import pytest
import tensorflow as tf

from core.config import ConfigError

from .. import word2vec as w2v
from .. import word2vec_task


def _pairs(segments, reach, window):
    centers, contexts = w2v.skipgram_pairs(tf.constant(segments, tf.int64), tf.constant(reach, tf.int64), window)
    return sorted(zip(centers.numpy().tolist(), contexts.numpy().tolist()))


def test_window_one_pairs_each_word_with_its_neighbours_and_never_across_texts():
    assert _pairs([0, 0, 0, 1, 1], [1] * 5, window=1) == [(0, 1), (1, 0), (1, 2), (2, 1), (3, 4), (4, 3)]


def test_each_center_pairs_with_the_words_within_its_own_reach():
    rng = np.random.default_rng(0)
    segments = np.sort(rng.integers(0, 6, 60))
    reach = rng.integers(1, 4, 60)
    expected = sorted((i, j) for i in range(60) for j in range(60)
                      if i != j and abs(i - j) <= reach[i] and segments[i] == segments[j])
    assert _pairs(segments, reach, window=3) == expected


def test_dynamic_window_takes_distance_d_with_probability_window_minus_d_plus_one_over_window():
    window, n = 4, 20_000
    chunks = w2v.TokenChunks([("a", 1)], window=window, sample=0, seed=1)
    reach = chunks.subsample(tf.constant(0, tf.int64), tf.zeros([n], tf.int64))["reach"]
    centers, contexts = w2v.skipgram_pairs(tf.zeros([n], tf.int64), reach, window)
    counts = collections.Counter(np.abs(contexts.numpy() - centers.numpy()).tolist())
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
    chunks = w2v.TokenChunks([("the", 9000), ("cat", 1000)], sample=1e-2, seed=3)
    ids = tf.constant([0] * 9 + [1], tf.int64)
    kept = np.concatenate([chunks.subsample(tf.constant(i, tf.int64), ids)["ids"].numpy() for i in range(2000)])
    keep = w2v.keep_probabilities(np.array([9000.0, 1000.0]), 1e-2)
    assert np.sum(kept == 0) / (9 * 2000) == pytest.approx(keep[0], abs=0.01)
    assert np.sum(kept == 1) / 2000 == pytest.approx(keep[1], abs=0.02)
    assert chunks.kept_per_pass == pytest.approx(9000 * keep[0] + 1000 * keep[1])


def test_unknown_words_are_dropped_before_pairing():
    chunks = w2v.TokenChunks([("a", 5), ("b", 5)], window=1, sample=0)
    assert chunks.ids(tf.constant(["a zzz b", "zzz"])).to_list() == [[0, 1], []]  # "a", "b" now neighbours


def test_negatives_follow_the_unigram_distribution_to_the_three_quarters():
    counts = np.array([8000, 1000, 100, 10], np.float64)
    chunks = w2v.TokenChunks([(f"w{i}", int(c)) for i, c in enumerate(counts)], shared_negatives=100,
                             tokens_per_update=10, seed=5)
    chunk = chunks.with_negatives(tf.constant(0, tf.int64), {"ids": tf.zeros([10_000], tf.int64)})
    assert chunk["negatives"].shape == (1000, 100)  # one row per update of 10 centers
    observed = np.bincount(chunk["negatives"].numpy().ravel(), minlength=4) / 100_000
    expected = counts**0.75 / (counts**0.75).sum()
    np.testing.assert_allclose(observed, expected, atol=0.005)
    assert observed[0] < counts[0] / counts.sum() - 0.05  # flatter than the raw unigram distribution


def test_one_pass_of_chunks_holds_every_word_once_in_order_with_a_segment_per_text():
    chunks = w2v.TokenChunks([("a", 3), ("b", 3), ("c", 3)], window=2, sample=0, tokens_per_update=4)
    texts = tf.data.Dataset.from_tensor_slices(["a b c", "c", "zzz", "b a", "a b c a"])
    batches = list(chunks.dataset(texts, tokens_per_step=4, training=False).as_numpy_iterator())
    assert [len(b["ids"]) for b in batches] == [4, 4, 2]  # the last, partial chunk kept outside training
    np.testing.assert_array_equal(np.concatenate([b["ids"] for b in batches]), [0, 1, 2, 2, 1, 0, 0, 1, 2, 0])
    np.testing.assert_array_equal(np.concatenate([b["segments"] for b in batches]), [0, 0, 0, 1, 3, 3, 4, 4, 4, 4])
    assert all(b["negatives"].shape == (1, 32) for b in batches)


def test_training_chunks_are_full_and_the_same_for_the_same_seed():
    vocabulary = [("a", 3), ("b", 3), ("c", 3)]
    texts = tf.data.Dataset.from_tensor_slices(["a b c a b c"] * 50)

    def first_chunks(seed):
        chunks = w2v.TokenChunks(vocabulary, sample=0, tokens_per_update=8, seed=seed)
        return list(chunks.dataset(texts, tokens_per_step=64, training=True).take(3).as_numpy_iterator())

    one, again, other = first_chunks(1), first_chunks(1), first_chunks(2)
    assert all(c["ids"].shape == (64,) and c["negatives"].shape == (8, 32) for c in one)
    for a, b in zip(one, again):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert any(not np.array_equal(a["reach"], b["reach"]) for a, b in zip(one, other))


def test_every_pass_draws_anew_and_a_skipped_stream_is_the_uninterrupted_one():
    # One text of 64 words and chunks of 64: chunk k is pass k. A resumed run skips the chunks it trained.
    chunks = w2v.TokenChunks([("a", 32), ("b", 32)], window=5, sample=0, tokens_per_update=8, seed=4)
    texts = tf.data.Dataset.from_tensor_slices([" ".join(["a b"] * 32)])
    stream = list(chunks.dataset(texts, tokens_per_step=64, training=True).take(4).as_numpy_iterator())
    assert not np.array_equal(stream[0]["reach"], stream[1]["reach"])
    assert not np.array_equal(stream[0]["negatives"], stream[1]["negatives"])
    resumed = list(chunks.dataset(texts, tokens_per_step=64, training=True).skip(2).take(2).as_numpy_iterator())
    for a, b in zip(stream[2:], resumed):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def _tiny_model(vocabulary_size=6, dim=3, seed=0):
    model = w2v.skipgram_model(vocabulary_size, dim)
    rng = np.random.default_rng(seed)
    for name in ("target_embedding", "context_embedding"):
        model.get_layer(name).embeddings.assign(rng.normal(0, 0.5, (vocabulary_size, dim)).astype("float32"))
    return model


def test_loss_is_word2vecs_written_out_pair_by_pair():
    model = _tiny_model()
    target = model.get_layer("target_embedding").embeddings.numpy()
    context = model.get_layer("context_embedding").embeddings.numpy()
    ids, segments, reach = [1, 2, 3, 4, 5, 1, 2], [0, 0, 0, 0, 1, 1, 1], [2, 1, 2, 2, 1, 2, 1]
    negatives, window, k = [0, 3, 3, 5], 2, 5
    padded = lambda a, fill: tf.constant([fill] * window + a + [fill] * window, tf.int64)  # noqa: E731
    parts = w2v.skipgram_loss(model.get_layer("target_embedding"), model.get_layer("context_embedding"),
                              padded(ids, 0), padded(segments, -1), tf.constant(reach, tf.int64),
                              tf.constant(negatives, tf.int64), window, k)
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    expected, pairs = 0.0, 0
    for i in range(7):
        for j in range(7):
            if i != j and abs(i - j) <= reach[i] and segments[i] == segments[j]:
                pairs += 1
                expected += softplus(-target[ids[i]] @ context[ids[j]])
                expected += k / len(negatives) * sum(softplus(target[ids[i]] @ context[n]) for n in negatives)
    assert int(parts.pairs) == pairs == 13
    assert float(parts.loss) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("xla", [False, True])
def test_an_update_moves_only_its_rows_and_equals_dense_sgd(xla):
    # Two updates of the Task's train step (sparse: SGD on IndexedSlices) against the same two updates
    # done densely by hand: gradients converted to full tables, tables minus rate times gradient.
    task = word2vec_task.Word2VecTask(vocabulary=[(w, 10) for w in "abcdef"], embedding_dim=3, window=2, sample=0,
                                 tokens_per_step=8, tokens_per_update=4, shared_negatives=3,
                                 learning_rate=0.1, min_learning_rate=0.1, xla=xla)
    chunk = {"ids": [1, 2, 1, 3, 3, 2, 1, 2], "segments": [0] * 5 + [1] * 3, "reach": [2, 1, 2, 2, 1, 2, 1, 2],
             "negatives": [[0, 3, 3], [1, 0, 2]]}
    chunk = {key: tf.constant(value, tf.int64) for key, value in chunk.items()}
    sparse, dense = _tiny_model(), _tiny_model()
    optimizer = task.build_optimizer()
    metric = keras.metrics.Mean()
    tf.function(lambda: task.train_step(chunk, sparse, optimizer, None, [metric]))()

    tables = [tf.Variable(v) for v in dense.trainable_variables]
    padded = task._padded(chunk)
    for j in range(2):
        with tf.GradientTape() as tape:
            for table, v in zip(tables, dense.trainable_variables):
                v.assign(table)
            loss = task._loss(dense, padded, j * 4, 4, chunk["negatives"][j]).loss
        gradients = tape.gradient(loss, dense.trainable_variables)
        assert all(isinstance(g, tf.IndexedSlices) for g in gradients)  # what SGD turns into row updates
        for table, gradient in zip(tables, gradients):
            table.assign_sub(0.1 * tf.convert_to_tensor(gradient))
    for v, table, start in zip(sparse.trainable_variables, tables, _tiny_model().trainable_variables):
        np.testing.assert_allclose(v.numpy(), table.numpy(), rtol=1e-5, atol=1e-6)
        untouched = [4, 5]  # in no update: neither center, context nor negative
        np.testing.assert_array_equal(v.numpy()[untouched], start.numpy()[untouched])


def test_the_rate_decays_linearly_over_the_updates_of_decay_steps():
    task = word2vec_task.Word2VecTask(vocabulary=[("a", 1), ("b", 1)], tokens_per_step=1024, tokens_per_update=256,
                                 learning_rate=0.025, min_learning_rate=1e-4, decay_steps=10)
    schedule = task.learning_rate_schedule()  # called with the optimizer's iterations: updates
    assert float(schedule(0)) == pytest.approx(0.025)
    assert float(schedule(20)) == pytest.approx((0.025 + 1e-4) / 2)  # 10 steps x 4 updates: halfway
    assert float(schedule(40)) == pytest.approx(1e-4)


def test_word2vec_task_reads_a_one_sentence_per_line_corpus(tmp_path):
    corpus = tmp_path / "sentences.txt"
    corpus.write_text("the cat sat on the mat\nthe dog sat on the log\n" * 20)
    task = word2vec_task.Word2VecTask(corpus=str(corpus), min_count=2, tokens_per_step=32, tokens_per_update=16,
                                 embedding_dim=4, sample=0)
    assert dict(task.vocabulary) == {"the": 80, "on": 40, "sat": 40, "cat": 20, "dog": 20, "log": 20, "mat": 20}
    chunk = next(iter(task.build_inputs("train")))
    assert chunk["ids"].shape == (32,) and chunk["negatives"].shape == (2, 32)
    assert task.steps_per_pass == pytest.approx(240 / 32)


def test_word2vec_task_names_a_corpus_that_matches_nothing(tmp_path):
    with pytest.raises(ConfigError, match="no files match"):
        word2vec_task.Word2VecTask(corpus=str(tmp_path / "missing-*.txt"))


def test_word2vec_task_says_when_updates_do_not_divide_a_step():
    with pytest.raises(ConfigError, match="tokens_per_step=1000 must be a multiple of .*tokens_per_update=256"):
        word2vec_task.Word2VecTask(vocabulary=[("a", 1), ("b", 1)], tokens_per_step=1000)
