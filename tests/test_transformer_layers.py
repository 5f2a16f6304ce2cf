"""core/transformer_layers.py: masks, embeddings, attention with a cache, and the two blocks."""

import keras
import numpy as np
import pytest

from core import testing
from core import transformer_layers as tl

RNG = np.random.default_rng(0)


def test_padding_and_causal_masks_on_small_inputs():
    np.testing.assert_array_equal(np.asarray(tl.padding_mask(np.array([[5, 3, 0, 0], [7, 0, 0, 0]]))),
                                  [[True, True, False, False], [True, False, False, False]])
    np.testing.assert_array_equal(np.asarray(tl.causal_mask(3)),
                                  [[True, False, False], [True, True, False], [True, True, True]])


def test_sinusoidal_positions_follow_the_paper_formula():
    table = tl.sinusoidal_positions(50, 8)
    pos, i = 17, 2  # channel 2i is sin(pos / 10000^(2i/d)), channel 2i+1 the cos
    np.testing.assert_allclose(table[pos, 2 * i], np.sin(pos / 10000 ** (2 * i / 8)), rtol=1e-6)
    np.testing.assert_allclose(table[pos, 2 * i + 1], np.cos(pos / 10000 ** (2 * i / 8)), rtol=1e-6)


@pytest.mark.parametrize("learned", [False, True])
def test_positional_embedding_with_start_matches_the_full_sequence(learned):
    layer = tl.PositionalEmbedding(20, 8, max_length=10, learned_positions=learned)
    ids = RNG.integers(1, 20, size=(2, 6))
    full = np.asarray(layer(ids))
    np.testing.assert_allclose(np.asarray(layer(ids[:, 4:5], start=4)), full[:, 4:5], rtol=1e-6)
    clone = tl.PositionalEmbedding.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_attention_ignores_masked_keys_whatever_they_hold():
    attention = tl.MultiHeadAttention(num_heads=2, key_dim=4)
    query, value = RNG.normal(size=(2, 3, 8)), RNG.normal(size=(2, 5, 8))
    mask = np.array([[True] * 3 + [False] * 2, [True] * 5])[:, None, :]  # (B, 1, S)
    out = np.asarray(attention(query, value, mask))
    changed = value.copy()
    changed[0, 3:] = 100.0
    out_changed = np.asarray(attention(query, changed, mask))
    np.testing.assert_allclose(out_changed[0], out[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(attention(query, changed, None))[0], out[0])


def test_weights_hook_sees_the_weights_the_output_is_made_of():
    attention = tl.MultiHeadAttention(num_heads=2, key_dim=4, use_bias=False)
    query, value = RNG.normal(size=(2, 3, 8)), RNG.normal(size=(2, 5, 8))
    mask = np.array([[True] * 3 + [False] * 2, [True] * 5])[:, None, :]
    seen = []
    attention.weights_hook = seen.append
    out = np.asarray(attention(query, value, mask))
    attention.weights_hook = None
    attention(query, value, mask)
    [weights] = [np.asarray(w) for w in seen]  # called once, while the hook was set
    assert weights.shape == (2, 2, 3, 5)  # (batch, heads, query, key)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(weights[0, :, :, 3:], 0.0, atol=1e-7)  # masked keys get nothing
    v = np.einsum("bsd,dnh->bsnh", value, np.asarray(attention.value_dense.kernel))
    mixed = np.einsum("bnts,bsnh->btnh", weights, v)
    np.testing.assert_allclose(np.einsum("btnh,nhd->btd", mixed, np.asarray(attention.output_dense.kernel)), out,
                               rtol=1e-4, atol=1e-5)
    assert "weights_hook" not in attention.get_config()


def test_attention_cache_steps_equal_causal_attention_over_the_sequence():
    attention = tl.MultiHeadAttention(num_heads=2, key_dim=4)
    x = RNG.normal(size=(2, 5, 8)).astype("float32")
    full = np.asarray(attention(x, x, np.asarray(tl.causal_mask(5))[None]))
    cache = (np.zeros((2, 7, 2, 4), "float32"),) * 2  # longer than the sequence: unwritten rows are hidden
    for i in range(5):
        mask = (np.arange(7) <= i)[None, None]
        out, cache = attention(x[:, i:i + 1], x[:, i:i + 1], mask, cache=cache, cache_index=i)
        np.testing.assert_allclose(np.asarray(out)[:, 0], full[:, i], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_block_round_trips_and_runs_in_mixed_precision(norm_first):
    kwargs = dict(num_heads=2, intermediate_dim=16, dropout=0.1, norm_first=norm_first, activation="gelu")
    testing.check_layer(tl.TransformerEncoderBlock, kwargs, input_shape=(5, 8))


def test_encoder_block_keeps_padding_out_of_real_tokens():
    block = tl.TransformerEncoderBlock(num_heads=2, intermediate_dim=16)
    x = RNG.normal(size=(1, 6, 8)).astype("float32")
    mask = np.array([[True] * 4 + [False] * 2])
    out = np.asarray(block(x, mask))
    x[:, 4:] = -50.0
    np.testing.assert_allclose(np.asarray(block(x, mask))[:, :4], out[:, :4], rtol=1e-5, atol=1e-5)


def test_decoder_block_is_causal_and_its_cached_steps_match():
    block = tl.TransformerDecoderBlock(num_heads=2, intermediate_dim=16)
    x, memory = RNG.normal(size=(2, 5, 8)).astype("float32"), RNG.normal(size=(2, 4, 8)).astype("float32")
    memory_mask = np.array([[True] * 4, [True, True, False, False]])
    full = np.asarray(block(x, memory, memory_mask))
    later_changed = x.copy()
    later_changed[:, 3:] = 9.0  # a position never sees later ones
    np.testing.assert_allclose(np.asarray(block(later_changed, memory, memory_mask))[:, :3], full[:, :3],
                               rtol=1e-5, atol=1e-5)
    cache = (np.zeros((2, 5, 2, 4), "float32"),) * 2
    memory_kv = block.cross_attention.project_key_value(memory)
    for i in range(5):
        out, cache = block(x[:, i:i + 1], None, memory_mask, cache=cache, cache_index=i, memory_key_value=memory_kv)
        np.testing.assert_allclose(np.asarray(out)[:, 0], full[:, i], rtol=1e-5, atol=1e-5)
    config = block.get_config()
    assert tl.TransformerDecoderBlock.from_config(config).get_config() == config


def test_blocks_reject_a_width_the_heads_do_not_divide():
    with pytest.raises(ValueError, match="not divisible by num_heads=3"):
        tl.TransformerEncoderBlock(num_heads=3, intermediate_dim=8)(np.zeros((1, 2, 8), "float32"))


def test_layers_are_registered_for_keras_files():
    for name in ("PositionalEmbedding", "MultiHeadAttention", "TransformerEncoderBlock", "TransformerDecoderBlock"):
        assert keras.saving.get_registered_object(f"core>{name}") is getattr(tl, name)


@pytest.mark.parametrize("learned", [False, True])
def test_positional_embedding_goes_through_the_harness_on_int_ids(learned):
    ids = np.array([[3, 4, 5, 0], [1, 2, 3, 4], [7, 7, 0, 0]], "int32")
    kwargs = dict(vocab_size=9, embed_dim=4, max_length=6, learned_positions=learned)
    testing.check_layer(tl.PositionalEmbedding, kwargs, inputs=ids)


def test_attention_goes_through_the_harness_on_a_query_and_a_value():
    rng = np.random.default_rng(1)
    testing.check_layer(tl.MultiHeadAttention, dict(num_heads=2, key_dim=4),
                        inputs={"query": rng.normal(size=(3, 5, 8)).astype("float32"),
                                "value": rng.normal(size=(3, 7, 8)).astype("float32")})


@pytest.mark.parametrize("norm_first", [True, False])
def test_decoder_block_goes_through_the_harness_with_its_memory(norm_first):
    rng = np.random.default_rng(2)
    testing.check_layer(tl.TransformerDecoderBlock, dict(num_heads=2, intermediate_dim=16, norm_first=norm_first),
                        inputs={"x": rng.normal(size=(3, 4, 8)).astype("float32"),
                                "memory": rng.normal(size=(3, 6, 8)).astype("float32")})
