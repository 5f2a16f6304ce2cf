"""Preprocessing: WordPiece ids, pair packing (segments, [CLS]/[SEP], longest-first trimming), the saved interface."""

import numpy as np
import pytest
import tensorflow as tf

from core import testing
from core.config import ConfigError, UserError

from ..preprocessor import BertPreprocessor, PairPreprocessor
from . import helpers


@pytest.fixture(scope="module")
def vocab_and_preprocessor(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("vocab") / "vocab.txt")
    vocab = helpers.write_vocab(path)
    return vocab, BertPreprocessor(path)


def ids(vocab, words):
    return [vocab.index(w) for w in words]


def test_tokenize_lower_cases_splits_punctuation_and_cjk_characters(vocab_and_preprocessor):
    vocab, pre = vocab_and_preprocessor
    pieces = pre.tokenize(tf.constant(["The CAT sat!", "我爱北京"])).merge_dims(-2, -1).to_list()
    assert pieces[0] == ids(vocab, ["the", "cat", "sat", "!"])
    assert pieces[1] == ids(vocab, list("我爱北京"))  # one piece per CJK character


def test_pair_packing_places_cls_and_sep_and_segment_ids(vocab_and_preprocessor):
    vocab, pre = vocab_and_preprocessor
    a, b = pre.tokenize(tf.constant(["the cat"])), pre.tokenize(tf.constant(["a dog sat"]))
    packed = {k: v.numpy()[0] for k, v in pre.bert_pack_inputs([a, b], 10).items()}
    cls, sep, pad = vocab.index("[CLS]"), vocab.index("[SEP]"), vocab.index("[PAD]")
    assert packed["input_word_ids"].tolist() == [cls, *ids(vocab, ["the", "cat"]), sep,
                                                 *ids(vocab, ["a", "dog", "sat"]), sep, pad, pad]
    assert packed["input_type_ids"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    assert packed["input_mask"].tolist() == [1] * 8 + [0] * 2


def test_trimming_cuts_the_longer_sentence_first(vocab_and_preprocessor):
    vocab, pre = vocab_and_preprocessor
    short, long = "jesus wept", "the cat sat on the mat and the dog sat on the mat"
    a, b = pre.tokenize(tf.constant([short])), pre.tokenize(tf.constant([long]))
    packed = pre.bert_pack_inputs([a, b], 9)  # room for 6 pieces: the short sentence keeps both of its own
    word_ids = packed["input_word_ids"].numpy()[0].tolist()
    assert word_ids[:4] == [vocab.index("[CLS]"), *ids(vocab, ["jesus", "wept"]), vocab.index("[SEP]")]
    assert word_ids[4:] == [*ids(vocab, ["the", "cat", "sat", "on"]), vocab.index("[SEP]")]
    assert packed["input_mask"].numpy().sum() == 9


def test_saved_preprocessor_has_the_tf_hub_interface(vocab_and_preprocessor, tmp_path):
    vocab, pre = vocab_and_preprocessor
    pre.save(str(tmp_path / "pre"))
    import tensorflow_text  # noqa: F401

    loaded = tf.saved_model.load(str(tmp_path / "pre"))
    special = {k: int(v) for k, v in loaded.tokenize.get_special_tokens_dict().items()}
    assert special == {"start_of_sequence_id": vocab.index("[CLS]"), "end_of_segment_id": vocab.index("[SEP]"),
                       "padding_id": 0, "mask_id": vocab.index("[MASK]"), "vocab_size": len(vocab)}
    texts = tf.constant(["how do i learn python", "我爱北京"])
    single = loaded(texts)
    assert {k: v.shape for k, v in single.items()} == {k: (2, 128) for k in single}
    expected = pre.bert_pack_inputs([pre.tokenize(texts), pre.tokenize(texts)], 16)
    restored = loaded.bert_pack_inputs([loaded.tokenize(texts), loaded.tokenize(texts)], 16)
    for key in expected:
        np.testing.assert_array_equal(restored[key].numpy(), expected[key].numpy())


def test_vocab_without_special_tokens_is_rejected(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("hello\nworld\n")
    with pytest.raises(UserError, match=r"vocab.txt: no \[CLS\], \[SEP\], \[PAD\], \[MASK\], \[UNK\]"):
        BertPreprocessor(str(path))


def test_vocab_with_a_repeated_piece_is_rejected(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ncat\ncat\n")
    with pytest.raises(UserError, match=r"vocab.txt:7: 'cat' is already on line 6"):
        BertPreprocessor(str(path))


@pytest.fixture(scope="module")
def saved_preprocessor(vocab_and_preprocessor, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("preprocessor") / "preprocessor")
    vocab_and_preprocessor[1].save(path)
    return path


PAIR = {"text_a": np.array(["the cat sat on the mat", "jesus wept"]),
        "text_b": np.array(["a dog", "how do i learn python"])}


@pytest.mark.parametrize("encoder", ["cross", "bi"])
def test_pair_preprocessor_is_serializable_and_the_same_in_tf_data_and_tf_function(saved_preprocessor, encoder):
    testing.check_preprocessor(PairPreprocessor, {"handle": saved_preprocessor, "encoder": encoder, "max_length": 16},
                               PAIR)


def test_pair_preprocessor_packs_as_the_saved_preprocessor_and_pads_to_the_longest_pair(
        vocab_and_preprocessor, saved_preprocessor):
    vocab, pre = vocab_and_preprocessor
    cross = PairPreprocessor(saved_preprocessor, "cross", max_length=16)(**PAIR)
    texts = [tf.constant(PAIR["text_a"]), tf.constant(PAIR["text_b"])]
    fixed = pre.bert_pack_inputs([pre.tokenize(t) for t in texts], 16)
    length = cross["input_word_ids"].shape[1]
    assert length == int(tf.reduce_max(tf.reduce_sum(fixed["input_mask"], axis=1)))  # the longest pair, not 16
    for key, value in cross.items():
        np.testing.assert_array_equal(value.numpy(), fixed[key].numpy()[:, :length])
    bi = PairPreprocessor(saved_preprocessor, "bi", max_length=16)(**PAIR)
    alone = pre.bert_pack_inputs([pre.tokenize(texts[1])], 16)
    width = bi["b_input_word_ids"].shape[1]
    np.testing.assert_array_equal(bi["b_input_word_ids"].numpy(), alone["input_word_ids"].numpy()[:, :width])
    assert not bi["a_input_type_ids"].numpy().any() and not bi["b_input_type_ids"].numpy().any()


def test_pair_preprocessor_rejects_an_unknown_encoder(saved_preprocessor):
    with pytest.raises(ConfigError, match="encoder='dual'"):
        PairPreprocessor(saved_preprocessor, "dual")
