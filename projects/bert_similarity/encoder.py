"""The BERT encoder (the "backbone"), built from core's transformer layers, and its pretrained weights.

    encoder = bert_encoder(**BertConfig.from_json("model/config.json").encoder_args())
    load_safetensors(encoder, "model/model.safetensors")

Inputs and outputs follow TF Hub's BERT interface, so the same model code serves a converted
checkpoint and a downloaded TF Hub encoder:
  inputs   input_word_ids, input_mask, input_type_ids: int32 (B, S)
  outputs  sequence_output (B, S, D): the last block's output per token
           pooled_output (B, D): tanh(Dense(sequence_output[:, 0])), the [CLS] summary
           encoder_outputs: a list with every block's (B, S, D) output
BERT is the post-layer-norm block (`norm_first=False`) with learned positions and the GELU its
config.json names: exact ("gelu", what all-MiniLM-L6-v2 and Google's BERTs use) or the tanh
approximation ("gelu_new"). keras-hub 0.32 builds every BERT with the approximation; on
all-MiniLM-L6-v2 that moves sequence_output by up to 3e-3 (tests/test_convert.py measures both).
"""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
from keras import layers

from core.config import UserError
from core.transformer_layers import PositionalEmbedding, TransformerEncoderBlock

INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")
PACKAGE = "bert_similarity"


@keras.saving.register_keras_serializable(package=PACKAGE)
def gelu_approximate(x):
    """GELU with the tanh approximation (Hugging Face's "gelu_new", keras-hub's BERT)."""
    return keras.activations.gelu(x, approximate=True)


ACTIVATIONS = {"gelu": "gelu", "gelu_new": gelu_approximate, "gelu_pytorch_tanh": gelu_approximate}


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The architecture of a Hugging Face BERT checkpoint, read from its config.json."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"

    @classmethod
    def from_json(cls, path: str) -> BertConfig:
        """Reads the fields above from `path`; says which are missing or unsupported."""
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: cannot read the BERT config.json ({e}).") from e
        if raw.get("model_type", "bert") != "bert" or raw.get("hidden_act", "gelu") not in ACTIVATIONS:
            raise UserError(f"{path}: model_type={raw.get('model_type')!r}, hidden_act={raw.get('hidden_act')!r}; "
                            f"expected a BERT with one of the activations {', '.join(ACTIVATIONS)}.")
        names = [field.name for field in dataclasses.fields(cls)]
        missing = [name for name in names[:5] if name not in raw]
        if missing:
            raise UserError(f"{path}: missing {', '.join(missing)}; expected a Hugging Face BERT config.json.")
        return cls(**{name: raw[name] for name in names if name in raw})

    def encoder_args(self) -> dict:
        """The keyword arguments of `bert_encoder` for this architecture."""
        return dict(vocab_size=self.vocab_size, hidden_dim=self.hidden_size, num_layers=self.num_hidden_layers,
                    num_heads=self.num_attention_heads, intermediate_dim=self.intermediate_size,
                    max_positions=self.max_position_embeddings, type_vocab_size=self.type_vocab_size,
                    layer_norm_epsilon=self.layer_norm_eps, activation=ACTIVATIONS[self.hidden_act])


def bert_encoder(vocab_size: int, hidden_dim: int, num_layers: int, num_heads: int, intermediate_dim: int,
                 max_positions: int = 512, type_vocab_size: int = 2, dropout: float = 0.1,
                 layer_norm_epsilon: float = 1e-12, activation="gelu", name: str = "bert_encoder") -> keras.Model:
    """A functional BERT: embeddings, `num_layers` post-LN encoder blocks, the pooler."""
    inputs = {key: keras.Input((None,), dtype="int32", name=key) for key in INPUT_NAMES}
    embeddings = PositionalEmbedding(vocab_size, hidden_dim, max_positions, learned_positions=True,
                                     scale_tokens=False, name="embeddings")(inputs["input_word_ids"])
    segments = layers.Embedding(type_vocab_size, hidden_dim, name="type_embeddings")(inputs["input_type_ids"])
    x = layers.LayerNormalization(epsilon=layer_norm_epsilon, name="embeddings_norm")(embeddings + segments)
    x = layers.Dropout(dropout, name="embeddings_dropout")(x)  # (B, S, D)
    mask = keras.ops.cast(inputs["input_mask"], "bool")  # (B, S), True at real tokens
    block_outputs = []
    for i in range(num_layers):
        x = TransformerEncoderBlock(num_heads, intermediate_dim, dropout=dropout, attention_dropout=dropout,
                                    activation=activation, norm_first=False, layer_norm_epsilon=layer_norm_epsilon,
                                    name=f"block_{i}")(x, padding_mask=mask)
        block_outputs.append(x)
    pooled = layers.Dense(hidden_dim, activation="tanh", name="pooler")(x[:, 0])  # (B, D) from [CLS]
    outputs = {"sequence_output": x, "pooled_output": pooled, "encoder_outputs": block_outputs}
    return keras.Model(inputs, outputs, name=name)


def _hf_weights(encoder: keras.Model, num_heads: int) -> list[tuple[keras.Variable, str, callable]]:
    """(variable, Hugging Face tensor name, converter) for every weight of the encoder.

    Hugging Face stores a Linear as (out, in); Keras's Dense kernel is (in, out), and the attention's
    EinsumDense kernels split the width into heads: (D, N, H) for query/key/value, (N, H, D) for the output.
    """
    def linear(w):
        return w.T

    def to_heads(w):
        return w.T.reshape(w.shape[1], num_heads, -1)

    def from_heads(w):
        return w.T.reshape(num_heads, -1, w.shape[0])

    def bias_heads(b):
        return b.reshape(num_heads, -1)

    def same(w):
        return w

    embeddings = encoder.get_layer("embeddings")
    pairs = [
        (embeddings.token_embedding.embeddings, "embeddings.word_embeddings.weight", same),
        (embeddings.position_embedding.embeddings, "embeddings.position_embeddings.weight", same),
        (encoder.get_layer("type_embeddings").embeddings, "embeddings.token_type_embeddings.weight", same),
        (encoder.get_layer("embeddings_norm").gamma, "embeddings.LayerNorm.weight", same),
        (encoder.get_layer("embeddings_norm").beta, "embeddings.LayerNorm.bias", same),
        (encoder.get_layer("pooler").kernel, "pooler.dense.weight", linear),
        (encoder.get_layer("pooler").bias, "pooler.dense.bias", same),
    ]
    i = 0
    while True:
        try:
            block = encoder.get_layer(f"block_{i}")
        except ValueError:
            break
        hf = f"encoder.layer.{i}."
        attention = block.self_attention
        for part in ("query", "key", "value"):
            dense = getattr(attention, f"{part}_dense")
            pairs += [(dense.kernel, f"{hf}attention.self.{part}.weight", to_heads),
                      (dense.bias, f"{hf}attention.self.{part}.bias", bias_heads)]
        pairs += [
            (attention.output_dense.kernel, f"{hf}attention.output.dense.weight", from_heads),
            (attention.output_dense.bias, f"{hf}attention.output.dense.bias", same),
            (block.self_attention_norm.gamma, f"{hf}attention.output.LayerNorm.weight", same),
            (block.self_attention_norm.beta, f"{hf}attention.output.LayerNorm.bias", same),
            (block.intermediate.kernel, f"{hf}intermediate.dense.weight", linear),
            (block.intermediate.bias, f"{hf}intermediate.dense.bias", same),
            (block.feed_forward_output.kernel, f"{hf}output.dense.weight", linear),
            (block.feed_forward_output.bias, f"{hf}output.dense.bias", same),
            (block.feed_forward_norm.gamma, f"{hf}output.LayerNorm.weight", same),
            (block.feed_forward_norm.beta, f"{hf}output.LayerNorm.bias", same),
        ]
        i += 1
    return pairs


def load_safetensors(encoder: keras.Model, path: str, num_heads: int) -> int:
    """Fills the encoder from a Hugging Face BertModel `model.safetensors`; returns the tensors read.

    Every encoder weight must be found with the right shape, so a checkpoint of another architecture
    fails here, naming the tensor, and not later as a silently half-initialized model.
    """
    from safetensors.numpy import load_file  # only conversion needs it

    try:
        tensors = load_file(path)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read safetensors ({e}).") from e
    # Some checkpoints prefix every name with the model class ("bert.embeddings...").
    tensors = {name.removeprefix("bert."): value for name, value in tensors.items()}
    used = 0
    for variable, name, convert in _hf_weights(encoder, num_heads):
        if name not in tensors:
            raise UserError(f"{path}: no tensor {name!r}; expected a Hugging Face BertModel checkpoint.")
        value = convert(tensors[name].astype(np.float32))
        if tuple(value.shape) != tuple(variable.shape):
            raise UserError(f"{path}: {name} has shape {tensors[name].shape}; the encoder expects "
                            f"{tuple(variable.shape)} after conversion. Does config.json match the weights?")
        variable.assign(value)
        used += 1
    return used
