"""The subword tokenizer: exact round trips (placeholders, spacing, unseen characters), reserved ids,
determinism, and the same ids after a SavedModel round trip."""

import json

import numpy as np
import pytest
import tensorflow as tf

from core import testing

from .. import tokenizer as tokenizer_lib

CORPUS = ["could not open file %s", "Datei %s konnte nicht geöffnet werden", "cannot read '%s'",
          "»%s« kann nicht gelesen werden", "%1$s: %2$d files copied", "%1$s: %2$d Dateien kopiert",
          "Open {0} in a new window", "{0} in neuem Fenster öffnen", "Save the file?", "Datei speichern?"] * 20

HARD = ["could not open file %s", "cannot read '%s'", "%1$s: %2$d files", "two  spaces and a tab\there",
        "trailing spaces  ", "unseen: Ωμέγα 漢字 🙂", "Übergrößenträger", ""]


@pytest.fixture(scope="module")
def tokenizer():
    return tokenizer_lib.Tokenizer(tokenizer_lib.train_sentencepiece(CORPUS, vocab_size=400))


def test_round_trip_is_exact_for_placeholders_spacing_and_unseen_characters(tokenizer):
    ids = tokenizer.tokenize(tf.constant(HARD))
    assert [t.decode() for t in tokenizer.detokenize(ids).numpy()] == HARD
    # Leading spaces are the one loss (SentencePiece's word-start marker); `prepare` strips every text.
    assert tokenizer.detokenize(tokenizer.tokenize(tf.constant(["  x"]))).numpy()[0] == b"x"
    assert tokenizer.pieces(ids[0]).numpy()[-1].decode().endswith("s")  # a placeholder is pieces, not <unk>
    assert not tf.reduce_any(ids.flat_values == tokenizer_lib.UNK_ID)  # byte fallback instead of unknown


def test_reserved_ids_and_padding_are_dropped_when_detokenizing(tokenizer):
    ids = tokenizer.tokenize(tf.constant(["Save the file?"]))
    framed = tf.concat([[[tokenizer_lib.BOS_ID]], ids.to_tensor(), [[tokenizer_lib.EOS_ID, 0, 0]]], axis=1)
    assert tokenizer.detokenize(framed).numpy()[0].decode() == "Save the file?"
    assert tokenizer.pieces(tf.constant([0, 1, 2, 3])).numpy().tolist() == [b"<pad>", b"<unk>", b"<s>", b"</s>"]
    assert tokenizer.vocab_size > 256  # the 256 byte-fallback pieces, then subwords


def test_training_is_deterministic():
    assert tokenizer_lib.train_sentencepiece(CORPUS, vocab_size=400) == \
        tokenizer_lib.train_sentencepiece(CORPUS, vocab_size=400)


def test_saved_file_and_saved_model_give_the_same_ids(tokenizer, tmp_path):
    path = str(tmp_path / "sentencepiece.model")
    tokenizer.save(path)
    reloaded = tokenizer_lib.Tokenizer.load(path)
    texts = tf.constant(HARD)
    np.testing.assert_array_equal(reloaded.tokenize(texts).flat_values, tokenizer.tokenize(texts).flat_values)

    module = tf.Module()
    module.tokenizer = tokenizer
    module.round_trip = tf.function(lambda t: tokenizer.detokenize(tokenizer.tokenize(t)),
                                    input_signature=[tf.TensorSpec([None], tf.string)])
    module.token_count = tf.function(lambda t: tokenizer.tokenize(t).row_lengths(),
                                     input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path / "saved"))
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    assert [t.decode() for t in loaded.round_trip(texts).numpy()] == HARD
    np.testing.assert_array_equal(loaded.token_count(texts), tokenizer.tokenize(texts).row_lengths())


def test_tokenizes_inside_tf_data(tokenizer):
    dataset = tf.data.Dataset.from_tensor_slices(HARD[:3]).batch(3).map(tokenizer.tokenize)
    batch = next(iter(dataset))
    np.testing.assert_array_equal(batch.flat_values, tokenizer.tokenize(tf.constant(HARD[:3])).flat_values)


def test_is_a_serializable_preprocessing_layer(tokenizer):
    testing.check_preprocessor(tokenizer_lib.Tokenizer, {"proto": tokenizer.model_proto}, {"texts": np.array(HARD)})
    config = tokenizer.get_config()
    json.dumps(config)  # the proto travels as text in a .keras file's config
    revived = tokenizer_lib.Tokenizer.from_config(config)
    assert revived.model_proto == tokenizer.model_proto and revived.vocab_size == tokenizer.vocab_size
