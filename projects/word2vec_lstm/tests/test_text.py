import keras
import numpy as np
import pytest
import tensorflow as tf

from core.config import UserError

from .. import text


def _tokens(s):
    return [t.decode() for t in text.tokenize(tf.constant([s])).to_list()[0]]


def test_tokenize_lowercases_and_drops_punctuation():
    assert _tokens("Quarterly profits at TimeWarner jumped 76% to $1.13bn (£600m).") == [
        "quarterly", "profits", "at", "timewarner", "jumped", "76", "to", "1", "13bn", "600m"]
    assert _tokens("ÉLAN Café") == ["élan", "café"]  # Unicode-aware lower case


def test_tokenize_splits_chinese_into_characters_and_keeps_latin_words():
    assert _tokens("股市今天上涨3%，NASDAQ也涨了") == [
        "股", "市", "今", "天", "上", "涨", "3", "nasdaq", "也", "涨", "了"]


def test_vocabulary_orders_by_count_and_round_trips(tmp_path):
    counts = text.count_tokens(tf.data.Dataset.from_tensor_slices(["b a b", "c b a", "d"]))
    assert counts == {"b": 3, "a": 2, "c": 1, "d": 1}
    vocabulary = text.build_vocabulary(counts, min_count=1, max_size=3)
    assert vocabulary == [("b", 3), ("a", 2), ("c", 1)]
    assert text.build_vocabulary(counts, min_count=2) == [("b", 3), ("a", 2)]
    path = str(tmp_path / "vocabulary.tsv")
    text.write_vocabulary(path, vocabulary)
    assert text.read_vocabulary(path) == vocabulary


def test_bad_vocabulary_line_names_file_and_line(tmp_path):
    path = tmp_path / "vocabulary.tsv"
    path.write_text("the\t10\nbroken line\n")
    with pytest.raises(UserError, match=r"vocabulary.tsv:2: expected 'token<TAB>count'"):
        text.read_vocabulary(str(path))


def test_encoder_pads_truncates_and_marks_unknown_words():
    encoder = text.TextEncoder(["the", "market", "股"], max_length=4)
    ids = encoder(tf.constant(["The market fell", "股 x", "the the the the the", ""])).numpy()
    np.testing.assert_array_equal(ids, [[2, 3, 1, 0], [4, 1, 0, 0], [2, 2, 2, 2], [0, 0, 0, 0]])
    assert encoder.vocabulary_size == 5


def test_encoder_keeps_head_and_tail_of_a_long_text_and_all_of_a_short_one():
    words = [f"w{i}" for i in range(10)]
    encoder = text.TextEncoder(words, max_length=5, tail_length=2)
    ids = encoder(tf.constant([" ".join(words), "w0 w1 w2 w3 w4", "w9 w8"])).numpy()
    # w0..w9 are ids 2..11: the long text keeps w0 w1 w2 (head) and w8 w9 (tail), not w3..w7.
    np.testing.assert_array_equal(ids, [[2, 3, 4, 10, 11], [2, 3, 4, 5, 6], [11, 10, 0, 0, 0]])
    with pytest.raises(UserError, match=r"tail_length=5: expected 0 <= tail_length < max_length \(5\)"):
        text.TextEncoder(words, max_length=5, tail_length=5)


def test_encoder_round_trips_through_config_and_keras_file(tmp_path):
    encoder = text.TextEncoder(["a", "b"], max_length=3, tail_length=1)
    clone = text.TextEncoder.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, encoder(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded(tf.constant(["b a c"])), [[3, 2, 1]])
    np.testing.assert_array_equal(loaded(tf.constant(["b a c a"])), [[3, 2, 2]])  # the head b a, the tail a


def test_encoder_goes_through_the_harness_on_raw_strings():
    from core import testing

    texts = np.array(["shares fell", "the film opened", "rain"], dtype=object)
    testing.check_layer(text.TextEncoder, {"vocabulary": ["shares", "fell", "film", "the"], "max_length": 4},
                        inputs=texts, mixed_precision=False)  # strings in, ids out: no float computation
