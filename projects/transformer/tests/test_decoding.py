"""Decoding: the key/value cache changes only speed; beam search of width 1 is greedy; strings in, strings out."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from .. import decoding
from .. import model as model_lib
from .. import tokenizer as tokenizer_lib
from . import helpers


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(7)  # the same weights whichever tests ran before
    return model_lib.transformer(vocab_size=60, max_length=12, embed_dim=32, num_heads=4, intermediate_dim=64,
                                 num_encoder_layers=2, num_decoder_layers=2, dropout=0.0)


def _source():
    source = np.random.default_rng(1).integers(4, 60, size=(3, 9)).astype("int32")
    source[1, 5:] = tokenizer_lib.PAD_ID  # a shorter sentence in the batch
    return tf.constant(source)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_cached_and_uncached_decoding_give_identical_tokens(model, search):
    decode = (lambda s, cache: decoding.greedy_decode(model, s, 12, use_cache=cache)) if search == "greedy" else (
        lambda s, cache: decoding.beam_search(model, s, 12, beam_size=3, use_cache=cache))
    cached = tf.function(lambda s: decode(s, True))(_source()).numpy()
    uncached = tf.function(lambda s: decode(s, False))(_source()).numpy()
    np.testing.assert_array_equal(cached, uncached)
    assert cached.shape[0] == 3 and 1 <= cached.shape[1] <= 12


def test_beam_search_of_width_one_is_greedy_and_outputs_end_at_the_end_id(model):
    greedy = decoding.greedy_decode(model, _source(), 12).numpy()
    np.testing.assert_array_equal(decoding.beam_search(model, _source(), 12, beam_size=1).numpy(), greedy)
    for row in greedy:  # after an end id only padding follows
        ends = np.flatnonzero(row == tokenizer_lib.EOS_ID)
        if ends.size:
            assert np.all(row[ends[0] + 1:] == tokenizer_lib.PAD_ID)


def test_a_beam_as_wide_as_the_vocabulary_finds_outputs_at_least_as_likely_as_greedy(model):
    # A narrow beam may prune the greedy path, so "beam beats greedy" is not a property of beam search. With
    # as many beams as tokens and two steps it is: every first token is kept, then the best two-token output.
    source, steps = _source(), 2

    def log_prob(ids):  # the model's log-probability of each output, end id included
        target_in = tf.concat([tf.fill([3, 1], tokenizer_lib.BOS_ID), ids[:, :-1]], 1)
        logits = model({"source": source, "target_in": target_in}, training=False)
        picked = tf.gather(tf.nn.log_softmax(logits), ids, batch_dims=2)
        return tf.reduce_sum(tf.where(ids != tokenizer_lib.PAD_ID, picked, 0.0), axis=1).numpy()

    greedy = decoding.greedy_decode(model, source, steps)
    beam = decoding.beam_search(model, source, steps, beam_size=60, alpha=0.0)  # alpha 0: pure log-probability
    assert np.all(log_prob(beam) >= log_prob(greedy) - 1e-4)


def test_decoders_never_emit_padding_or_the_start_id_before_the_end():
    keras.utils.set_random_seed(7)
    model = model_lib.transformer(vocab_size=60, max_length=12, embed_dim=32, num_heads=4, intermediate_dim=64,
                                  num_encoder_layers=1, num_decoder_layers=1, dropout=0.0)
    bias = model.get_layer("logits").bias  # make padding and the start id the most likely tokens everywhere
    bias.assign(bias.numpy() + 50.0 * np.isin(np.arange(60), [tokenizer_lib.PAD_ID, tokenizer_lib.BOS_ID]))
    for ids in (decoding.greedy_decode(model, _source(), 12), decoding.beam_search(model, _source(), 12, beam_size=3)):
        for row in ids.numpy():
            ends = np.flatnonzero(row == tokenizer_lib.EOS_ID)
            body = row[: ends[0]] if ends.size else row
            assert body.size and not np.isin(body, [tokenizer_lib.PAD_ID, tokenizer_lib.BOS_ID]).any(), row


def test_translate_texts_maps_raw_strings_to_strings():
    tokenizer = tokenizer_lib.Tokenizer(tokenizer_lib.train_sentencepiece(
        [t for pair in helpers.pairs() for t in pair], vocab_size=400))
    model = model_lib.transformer(vocab_size=tokenizer.vocab_size, max_length=12, embed_dim=16, num_heads=2,
                                  intermediate_dim=32, num_encoder_layers=1, num_decoder_layers=1)
    texts = tf.constant(["could not open file", "", "New printer " * 20])  # empty, and longer than max_length
    for beam in (1, 3):
        out = decoding.translate_texts(model, tokenizer, texts, beam_size=beam)
        assert out.dtype == tf.string and out.shape == (3,)


def test_decoding_longer_than_the_model_positions_is_refused(model):
    with pytest.raises(ValueError, match="must be in 1..12"):
        decoding.greedy_decode(model, _source(), 13)
