"""The keras-io recipe's pieces: its word ids, the wall-clock budget, and batched greedy decoding."""

import keras
import numpy as np

from .. import baseline, scoring
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


def _tutorial_decode(model, vectorizers, sentence: str) -> list[str]:
    """keras-io's decode_sequence as the tutorial writes it: strings in, one sentence, re-vectorized each step."""
    words = vectorizers.target_words
    source = vectorizers.source(np.array([sentence])).numpy()
    decoded = "[start]"
    for i in range(vectorizers.sequence_length):
        target = vectorizers.target(np.array([decoded])).numpy()[:, :-1]
        token = words[int(np.argmax(model([source, target], training=False)[0, i, :len(words)]))]
        decoded += " " + token
        if token == "[end]":
            break
    tokens = decoded.split()[1:]
    return tokens[:tokens.index("[end]")] if "[end]" in tokens else tokens


def test_greedy_translate_gives_each_sentence_what_the_tutorials_decode_sequence_gives_it():
    pairs = helpers.pairs()
    vectorizers, model = _tiny(pairs)
    data = baseline.vectorize(pairs, vectorizers)
    baseline.train_for(model, data, data, seconds=3.0, batch_size=8, verbose=0)
    sources = [s for s, _ in pairs[:9]] + ["a sentence of words it never saw"]
    together = baseline.greedy_translate(model, vectorizers, sources, batch_size=7)  # two batches
    assert [text.split() for text in together] == [_tutorial_decode(model, vectorizers, s) for s in sources]
    assert any(together)


def test_the_recipes_own_words_for_a_reference_are_its_plain_form():
    """The plain form is fair to the recipe: the best it can output (its vectorized training target, as words)
    scores as the reference does."""
    pairs = helpers.pairs() + [("Send e-mail", "„E-Mail“ senden: »%s«?")]
    vectorizers, _ = _tiny(pairs)
    (_, target_in), _ = baseline.vectorize(pairs, vectorizers)
    for (_, reference), ids in zip(pairs, target_in, strict=True):
        words = [vectorizers.target_words[i] for i in ids[1:] if i and vectorizers.target_words[i] != "[end]"]
        assert scoring.plain(" ".join(words)) == scoring.plain(reference), reference
