"""The encoder-decoder Transformer (Vaswani et al., 2017) built from core's layers, pre-layer-norm.

Reads bottom-up: the model class (embedding shared by both sides, encoder stack, decoder stack, output
projection), the one-token decoding step with its caches, then the gin-configurable builder. Decoding
loops are in decoding.py. Shapes: B batch, S source time, T target time, D width, V vocabulary.
"""

from __future__ import annotations

import gin
import keras
import numpy as np
from keras import layers, ops

from core import transformer_layers as tl

PACKAGE = "transformer"


@keras.saving.register_keras_serializable(package=PACKAGE)
class Transformer(keras.Model):
    """Source ids (B, S) and shifted target ids (B, T) -> next-token logits (B, T, V), float32.

    Inputs are a dict {"source": ..., "target_in": ...}; id 0 is padding. Source and target share one
    subword vocabulary, so they share one embedding table (fewer parameters, and copied tokens such as
    `%s` get the same vector on both sides).
    """

    def __init__(self, vocab_size: int, max_length: int = 64, embed_dim: int = 256, num_heads: int = 4,
                 intermediate_dim: int = 1024, num_encoder_layers: int = 3, num_decoder_layers: int = 3,
                 dropout: float = 0.1, attention_dropout: float = 0.0, activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.num_encoder_layers = num_encoder_layers
        self.num_decoder_layers = num_decoder_layers
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation = activation
        policy = self.dtype_policy
        block = dict(num_heads=num_heads, intermediate_dim=intermediate_dim, dropout=dropout,
                     attention_dropout=attention_dropout, activation=activation, norm_first=True, dtype=policy)
        self.embedding = tl.PositionalEmbedding(vocab_size, embed_dim, max_length, name="embedding", dtype=policy)
        self.embedding_dropout = layers.Dropout(dropout, dtype=policy)
        # One attribute per block, not a list: Keras 3 wraps a list attribute in a TrackedList, which
        # tf.train.Checkpoint does not follow, so the blocks' weights would be missing from every
        # checkpoint (keras-team/keras#18398; core.checkpoints.check_tracked catches it).
        for i in range(num_encoder_layers):
            setattr(self, f"encoder_{i}", tl.TransformerEncoderBlock(**block, name=f"encoder_{i}"))
        for i in range(num_decoder_layers):
            setattr(self, f"decoder_{i}", tl.TransformerDecoderBlock(**block, name=f"decoder_{i}"))
        # Pre-LN blocks leave their sum unnormalised; one final norm per stack.
        self.encoder_norm = layers.LayerNormalization(epsilon=1e-6, name="encoder_norm", dtype=policy)
        self.decoder_norm = layers.LayerNormalization(epsilon=1e-6, name="decoder_norm", dtype=policy)
        # float32 logits under a 16-bit policy: the softmax over V classes needs the range.
        self.logits_layer = layers.Dense(vocab_size, name="logits", dtype="float32")

    @property
    def encoder_blocks(self) -> list[tl.TransformerEncoderBlock]:
        return [getattr(self, f"encoder_{i}") for i in range(self.num_encoder_layers)]

    @property
    def decoder_blocks(self) -> list[tl.TransformerDecoderBlock]:
        return [getattr(self, f"decoder_{i}") for i in range(self.num_decoder_layers)]

    def encode(self, source, training=None):
        """(B, S) ids -> memory (B, S, D) and its padding mask (B, S)."""
        mask = tl.padding_mask(source)
        x = self.embedding_dropout(self.embedding(source), training=training)
        for block in self.encoder_blocks:
            x = block(x, mask, training=training)
        return self.encoder_norm(x), mask

    def decode(self, target_in, memory, memory_mask, training=None):
        """(B, T) target ids so far -> logits (B, T, V) for the token after each, attending to the memory."""
        x = self.embedding_dropout(self.embedding(target_in), training=training)
        for block in self.decoder_blocks:
            x = block(x, memory, memory_mask, training=training)
        return self.logits_layer(self.decoder_norm(x))

    def call(self, inputs, training=None):
        memory, memory_mask = self.encode(inputs["source"], training=training)
        return self.decode(inputs["target_in"], memory, memory_mask, training=training)

    # Decoding one token at a time, with caches (decoding.py drives the loop).

    def init_cache(self, memory, max_length: int) -> dict:
        """Empty self-attention caches (B, L, N, H) per decoder block, and the memory's keys and values.

        The memory does not change while decoding, so its projections for cross-attention are made once
        here instead of at every step.
        """
        batch = ops.shape(memory)[0]
        head_dim = self.embed_dim // self.num_heads
        zeros = ops.zeros((batch, max_length, self.num_heads, head_dim), dtype=memory.dtype)
        return {"self": [(zeros, zeros) for _ in self.decoder_blocks],
                "memory": [block.cross_attention.project_key_value(memory) for block in self.decoder_blocks]}

    def decode_step(self, tokens, index, cache: dict, memory_mask):
        """tokens (B,) at position `index` -> logits (B, V) of the next token, and the updated cache."""
        x = self.embedding(ops.expand_dims(tokens, 1), start=index)  # (B, 1, D)
        new_self = []
        for block, self_cache, memory_kv in zip(self.decoder_blocks, cache["self"], cache["memory"], strict=True):
            x, updated = block(x, None, memory_mask, cache=self_cache, cache_index=index, memory_key_value=memory_kv)
            new_self.append(updated)
        logits = self.logits_layer(self.decoder_norm(x))[:, 0]
        return logits, {"self": new_self, "memory": cache["memory"]}

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "max_length": self.max_length,
                "embed_dim": self.embed_dim, "num_heads": self.num_heads, "intermediate_dim": self.intermediate_dim,
                "num_encoder_layers": self.num_encoder_layers, "num_decoder_layers": self.num_decoder_layers,
                "dropout": self.dropout, "attention_dropout": self.attention_dropout, "activation": self.activation}


@gin.configurable
def transformer(vocab_size: int, max_length: int, embed_dim: int = 256, num_heads: int = 4,
                intermediate_dim: int = 1024, num_encoder_layers: int = 3, num_decoder_layers: int = 3,
                dropout: float = 0.1, attention_dropout: float = 0.0, activation: str = "relu") -> Transformer:
    """A built Transformer; the task passes the vocabulary size and maximum length, gin the rest."""
    model = Transformer(vocab_size, max_length, embed_dim, num_heads, intermediate_dim, num_encoder_layers,
                        num_decoder_layers, dropout, attention_dropout, activation, name="transformer")
    ids = np.ones((1, 2), "int32")
    model({"source": ids, "target_in": ids})  # creates every weight
    return model
