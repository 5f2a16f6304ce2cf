"""Transformer building blocks shared by projects/transformer and projects/bert_similarity.

Reads bottom-up, as the model is assembled: masks, token + position embedding, multi-head attention
with a key/value cache, then the encoder and decoder blocks. Every layer takes explicit boolean masks
(True = may attend) instead of Keras's implicit `_keras_mask`, so what each attention sees is visible
in the code. Tensor shapes are in the comments: B batch, S source time, T target time, D model width,
N heads, H head width, L cache length.

`norm_first=True` is the pre-layer-norm block (Xiong et al., 2020), which trains without a long
warm-up; `norm_first=False` is the original post-layer-norm block that BERT uses.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

PACKAGE = "core"


def padding_mask(ids, pad_id: int = 0):
    """(B, S) ids -> (B, S) bool, True at real tokens."""
    return ops.not_equal(ids, pad_id)


def causal_mask(length):
    """(T, T) bool, True where query position i may attend to key position j, i.e. j <= i."""
    positions = ops.arange(length)
    return ops.greater_equal(ops.expand_dims(positions, 1), ops.expand_dims(positions, 0))


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
    """(length, dim) float32: sin on even channels, cos on odd, wavelengths 2*pi .. 10000*2*pi."""
    positions = np.arange(length, dtype=np.float64)[:, None]
    rates = 1.0 / np.power(10000.0, np.arange(0, dim, 2, dtype=np.float64) / dim)
    table = np.zeros((length, dim))
    table[:, 0::2] = np.sin(positions * rates)
    table[:, 1::2] = np.cos(positions * rates[: dim // 2])
    return table.astype("float32")


@keras.saving.register_keras_serializable(package=PACKAGE)
class PositionalEmbedding(layers.Layer):
    """Token embedding plus the embedding of each token's position (sinusoidal, or learned as in BERT).

    Token vectors are scaled by sqrt(D) (Vaswani et al., 2017) when `scale_tokens`, so they are not
    drowned by positions of unit size. `start` offsets the positions: decoding one token at a time
    passes the step index, and gets the same vector the full sequence has at that position.
    """

    def __init__(self, vocab_size: int, embed_dim: int, max_length: int, learned_positions: bool = False,
                 scale_tokens: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embed_dim = embed_dim
        self.max_length = max_length
        self.learned_positions = learned_positions
        self.scale_tokens = scale_tokens
        self.token_embedding = layers.Embedding(vocab_size, embed_dim, name="tokens", dtype=self.dtype_policy)
        self.position_embedding = (
            layers.Embedding(max_length, embed_dim, name="positions", dtype=self.dtype_policy)
            if learned_positions else None
        )

    def build(self, input_shape):
        self.token_embedding.build(input_shape)
        if self.position_embedding is not None:
            self.position_embedding.build((None,))
        else:
            self.table = sinusoidal_positions(self.max_length, self.embed_dim)  # numpy: a graph constant

    def call(self, ids, start=0):
        x = self.token_embedding(ids)  # (B, T, D)
        if self.scale_tokens:
            x = x * ops.cast(math.sqrt(self.embed_dim), x.dtype)
        positions = ops.arange(ops.shape(ids)[1]) + ops.cast(start, "int32")
        if self.position_embedding is not None:
            return x + self.position_embedding(positions)[None]
        return x + ops.cast(ops.take(self.table, positions, axis=0), x.dtype)[None]

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.embed_dim)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "embed_dim": self.embed_dim,
                "max_length": self.max_length, "learned_positions": self.learned_positions,
                "scale_tokens": self.scale_tokens}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MultiHeadAttention(layers.Layer):
    """Scaled dot-product attention over N heads, with an optional key/value cache for decoding.

    `keras.layers.MultiHeadAttention` has no cache, so this one is written out. Three ways to call it:
      attention(query, value, mask)                      ordinary attention (self: query is value)
      attention(query, None, mask, key_value=(k, v))     keys and values projected once beforehand
                                                         (`project_key_value`), e.g. the encoder output
      attention(query, query, mask, cache=(k, v), cache_index=i)   one decoding step: this step's key
                                                         and value are written at position i of the
                                                         (B, L, N, H) cache and the new cache returned.
    The cache has a fixed length L, so a decoding loop keeps the same shapes at every step (and XLA
    compiles it once); the mask hides the positions not yet written.
    """

    def __init__(self, num_heads: int, key_dim: int, dropout: float = 0.0, use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.dropout = dropout
        self.use_bias = use_bias
        projection = dict(output_shape=(None, num_heads, key_dim), bias_axes="nh" if use_bias else None,
                          dtype=self.dtype_policy)
        self.query_dense = layers.EinsumDense("btd,dnh->btnh", name="query", **projection)
        self.key_dense = layers.EinsumDense("btd,dnh->btnh", name="key", **projection)
        self.value_dense = layers.EinsumDense("btd,dnh->btnh", name="value", **projection)
        self.dropout_layer = layers.Dropout(dropout, dtype=self.dtype_policy)
        self.output_dense = None  # its width is the query's, known in build
        # A function given the (B, N, T, S) attention weights at every call, for pictures of what the layer
        # attends to (eager calls; not saved with the layer). None: nothing is called.
        self.weights_hook = None

    def build(self, query_shape, value_shape=None):
        value_shape = value_shape or query_shape
        self.query_dense.build(query_shape)
        self.key_dense.build(value_shape)
        self.value_dense.build(value_shape)
        self.output_dense = layers.EinsumDense(
            "btnh,nhd->btd", output_shape=(None, query_shape[-1]), bias_axes="d" if self.use_bias else None,
            name="attention_output", dtype=self.dtype_policy)
        self.output_dense.build((None, None, self.num_heads, self.key_dim))

    def compute_output_shape(self, query_shape, value_shape=None):
        return query_shape

    def project_key_value(self, value):
        """(B, S, D) -> keys and values, each (B, S, N, H), to reuse over every decoding step."""
        return self.key_dense(value), self.value_dense(value)

    def call(self, query, value, attention_mask=None, key_value=None, cache=None, cache_index=None,
             training=None):
        q = self.query_dense(query)  # (B, T, N, H)
        k, v = key_value if key_value is not None else self.project_key_value(value)
        if cache is not None:
            # Write this step's (B, 1, N, H) key and value at row `cache_index` of the (B, L, N, H) cache.
            at_index = ops.equal(ops.arange(ops.shape(cache[0])[1]), cache_index)[None, :, None, None]
            k = ops.where(at_index, k, cache[0])
            v = ops.where(at_index, v, cache[1])
        scores = ops.einsum("btnh,bsnh->bnts", q, k) * ops.cast(1.0 / math.sqrt(self.key_dim), q.dtype)
        # The softmax runs in float32 even under a 16-bit policy: exp overflows bfloat16/float16 early.
        scores = ops.cast(scores, "float32")
        if attention_mask is not None:  # (B, T, S) or broadcastable; False -> weight 0
            scores = ops.where(ops.expand_dims(attention_mask, 1), scores, -1e9)
        weights = ops.cast(ops.softmax(scores, axis=-1), q.dtype)
        if self.weights_hook is not None:
            self.weights_hook(weights)
        weights = self.dropout_layer(weights, training=training)
        output = self.output_dense(ops.einsum("bnts,bsnh->btnh", weights, v))  # (B, T, D)
        return (output, (k, v)) if cache is not None else output

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "dropout": self.dropout, "use_bias": self.use_bias}


class _Block(layers.Layer):
    """What encoder and decoder blocks share: arguments, the feed-forward part, residual + norm plumbing."""

    def __init__(self, num_heads: int, intermediate_dim: int, dropout: float = 0.1, attention_dropout: float = 0.0,
                 activation: str = "relu", norm_first: bool = True, layer_norm_epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation = activation
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon
        self.dropout_layer = layers.Dropout(dropout, dtype=self.dtype_policy)

    def _attention(self, name: str, width: int) -> MultiHeadAttention:
        if width % self.num_heads:
            raise ValueError(f"{self.name}: model width {width} is not divisible by num_heads={self.num_heads}.")
        return MultiHeadAttention(self.num_heads, width // self.num_heads, dropout=self.attention_dropout,
                                  name=name, dtype=self.dtype_policy)

    def _norm(self, name: str) -> layers.LayerNormalization:
        return layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name=name, dtype=self.dtype_policy)

    def _build_feed_forward(self, input_shape):
        width = input_shape[-1]
        self.intermediate = layers.Dense(self.intermediate_dim, activation=self.activation, name="intermediate",
                                         dtype=self.dtype_policy)
        self.feed_forward_output = layers.Dense(width, name="feed_forward_output", dtype=self.dtype_policy)
        self.feed_forward_norm = self._norm("feed_forward_norm")
        self.intermediate.build(input_shape)
        self.feed_forward_output.build((*input_shape[:-1], self.intermediate_dim))
        self.feed_forward_norm.build(input_shape)

    def _residual(self, x, norm, sublayer, training):
        """x + sublayer(x), with the layer norm before the sublayer (pre-LN) or after the sum (post-LN)."""
        if self.norm_first:
            return x + self.dropout_layer(sublayer(norm(x)), training=training)
        return norm(x + self.dropout_layer(sublayer(x), training=training))

    def _feed_forward(self, x, training):
        return self._residual(
            x, self.feed_forward_norm,
            lambda h: self.feed_forward_output(self.dropout_layer(self.intermediate(h), training=training)),
            training)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout, "attention_dropout": self.attention_dropout,
                "activation": self.activation, "norm_first": self.norm_first,
                "layer_norm_epsilon": self.layer_norm_epsilon}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TransformerEncoderBlock(_Block):
    """Self-attention over the whole sequence, then a position-wise feed-forward network."""

    def build(self, input_shape):
        self.self_attention = self._attention("self_attention", input_shape[-1])
        self.self_attention_norm = self._norm("self_attention_norm")
        self.self_attention.build(input_shape)
        self.self_attention_norm.build(input_shape)
        self._build_feed_forward(input_shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, x, padding_mask=None, training=None):
        """(B, S, D) -> (B, S, D); `padding_mask` (B, S) keeps padding out of every token's attention."""
        mask = None if padding_mask is None else ops.expand_dims(padding_mask, 1)  # (B, 1, S)
        x = self._residual(x, self.self_attention_norm,
                           lambda h: self.self_attention(h, h, mask, training=training), training)
        return self._feed_forward(x, training)


@keras.saving.register_keras_serializable(package=PACKAGE)
class TransformerDecoderBlock(_Block):
    """Causal self-attention, attention over the encoder output ("memory"), then feed-forward.

    Called on a whole target sequence for training, or on one token with `cache` and `cache_index`
    for decoding; then it returns the updated self-attention cache too. `memory_key_value` (from
    `cross_attention.project_key_value(memory)`) saves projecting the memory again at every step.
    """

    def build(self, x_shape, memory_shape=None):  # named after call's arguments, as Keras matches them
        input_shape, memory_shape = x_shape, memory_shape or x_shape
        self.self_attention = self._attention("self_attention", input_shape[-1])
        self.self_attention_norm = self._norm("self_attention_norm")
        self.cross_attention = self._attention("cross_attention", input_shape[-1])
        self.cross_attention_norm = self._norm("cross_attention_norm")
        self.self_attention.build(input_shape)
        self.self_attention_norm.build(input_shape)
        self.cross_attention.build(input_shape, memory_shape)
        self.cross_attention_norm.build(input_shape)
        self._build_feed_forward(input_shape)

    def compute_output_shape(self, x_shape, memory_shape=None):
        return x_shape

    def call(self, x, memory, memory_mask=None, cache=None, cache_index=None, memory_key_value=None,
             training=None):
        """(B, T, D) and memory (B, S, D) -> (B, T, D) [, new cache]; `memory_mask` (B, S) hides padding."""
        if cache is None:
            self_mask = causal_mask(ops.shape(x)[1])[None]  # (1, T, T)
        else:  # one step at `cache_index`: see the cache up to and including it
            self_mask = ops.less_equal(ops.arange(ops.shape(cache[0])[1]), cache_index)[None, None]  # (1, 1, L)
        new_cache = []

        def self_attend(h):
            if cache is None:
                return self.self_attention(h, h, self_mask, training=training)
            out, updated = self.self_attention(h, h, self_mask, cache=cache, cache_index=cache_index)
            new_cache.append(updated)
            return out

        x = self._residual(x, self.self_attention_norm, self_attend, training)
        cross_mask = None if memory_mask is None else ops.expand_dims(memory_mask, 1)  # (B, 1, S)
        x = self._residual(
            x, self.cross_attention_norm,
            lambda h: self.cross_attention(h, memory, cross_mask, key_value=memory_key_value, training=training),
            training)
        x = self._feed_forward(x, training)
        return (x, new_cache[0]) if cache is not None else x
