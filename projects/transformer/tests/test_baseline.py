"""The keras-io recipe's pieces: its word ids, the wall-clock budget, and batched greedy decoding."""

import keras
import numpy as np

from .. import baseline
from . import helpers

SIZE = dict(vocab_size=200, sequence_length=12, embed_dim=16, dense_dim=32, num_heads=2)


def _tiny(pairs):
    vectorizers = baseline.Vectorizers(pairs, vocab_size=SIZE["vocab_size"], sequence_length=SIZE["sequence_length"])
    keras.utils.set_random_seed(3)
    model = baseline.peer_model(**SIZE)
    return vectorizers, model


def test_vectorize_marks_targets_and_shifts_them_by_one():
    pairs = helpers.pairs()
    vectorizers, _ = _tiny(pairs)
    (source, target_in), target_out = baseline.vectorize(pairs, vectorizers)
    assert source.shape == target_in.shape == target_out.shape == (len(pairs), SIZE["sequence_length"])
    words = vectorizers.target_words
    assert words[target_in[0, 0]] == "[start]"
    np.testing.assert_array_equal(target_in[:, 1:], target_out[:, :-1])
    assert "»%s«" not in set(words) and "fehlt" in set(words)  # the tutorial strips punctuation, keeps words


def test_train_for_stops_at_the_budget():
    pairs = helpers.pairs()
    vectorizers, model = _tiny(pairs)
    data = baseline.vectorize(pairs, vectorizers)
    done = baseline.train_for(model, data, data, seconds=0.0, batch_size=8, verbose=0)
    assert done["steps"] == 1 and done["epochs"] == 8 / len(pairs)  # stopped after the first batch
    longer = baseline.train_for(model, data, data, seconds=2.0, batch_size=8, verbose=0)
    assert longer["steps"] > 1 and longer["train_seconds"] >= 2.0


def test_greedy_translate_gives_each_sentence_the_words_it_gets_alone():
    pairs = helpers.pairs()
    vectorizers, model = _tiny(pairs)
    data = baseline.vectorize(pairs, vectorizers)
    baseline.train_for(model, data, data, seconds=3.0, batch_size=8, verbose=0)
    sources = [s for s, _ in pairs[:9]]
    together = baseline.greedy_translate(model, vectorizers, sources, batch_size=9)
    alone = [baseline.greedy_translate(model, vectorizers, [s], batch_size=1)[0] for s in sources]
    assert together == alone
    known = set(vectorizers.target_words)
    for text in together:
        words = text.split()
        assert len(words) <= SIZE["sequence_length"] and "[end]" not in words  # cut at the first [end]
        assert set(words) <= known
