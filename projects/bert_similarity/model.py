"""The two ways to score a sentence pair with a pretrained BERT, each a Keras 3 model around a TF Hub encoder.

  cross_encoder  `[CLS] a [SEP] b [SEP]` through the encoder once; a logit from the pooled output.
                 Every token of a attends to every token of b: the more accurate of the two.
  bi_encoder     a and b through the same encoder separately; mean-pooled, L2-normalised embeddings;
                 their cosine similarity. Embeddings can be computed once and indexed: the fast one.
The encoder is any TF Hub BERT handle (`hub.HubLayer`), fine-tuned end to end. Inputs are the
encoder's id tensors; raw strings are turned into them by the preprocessor (task.py, export.py).
"""

from __future__ import annotations

import gin
import keras
from keras import layers, ops

from core.layers import MaskedGlobalPooling1D

from .hub import HubLayer

ID_NAMES = ("input_word_ids", "input_mask", "input_type_ids")


def _id_inputs(prefix: str = "") -> dict:
    return {prefix + name: keras.Input((None,), dtype="int32", name=prefix + name) for name in ID_NAMES}


@gin.configurable
def cross_encoder(encoder_handle: str, dropout: float = 0.1) -> keras.Model:
    """Packed pair ids -> one logit per pair (B,); sigmoid(logit) is the probability they match."""
    inputs = _id_inputs()
    pooled = HubLayer(encoder_handle, output_key="pooled_output", name="encoder")(inputs)  # (B, D)
    logit = layers.Dense(1, name="classifier")(layers.Dropout(dropout)(pooled))
    return keras.Model(inputs, layers.Reshape(())(logit), name="cross_encoder")


def sentence_embedding(encoder: HubLayer, ids: dict):
    """(B, D) unit-length mean of the encoder's token outputs over the real tokens."""
    tokens = encoder(ids)["sequence_output"]  # (B, S, D)
    pooled = MaskedGlobalPooling1D("mean")(tokens, mask=ops.cast(ids["input_mask"], "bool"))
    return layers.UnitNormalization(axis=-1)(pooled)


@gin.configurable
def bi_encoder(encoder_handle: str) -> keras.Model:
    """Ids of a and of b (inputs prefixed "a_" and "b_") -> their cosine similarity (B,), in [-1, 1]."""
    inputs_a, inputs_b = _id_inputs("a_"), _id_inputs("b_")
    encoder = HubLayer(encoder_handle, name="encoder")  # one encoder, shared by both sides
    a = sentence_embedding(encoder, {name: inputs_a["a_" + name] for name in ID_NAMES})
    b = sentence_embedding(encoder, {name: inputs_b["b_" + name] for name in ID_NAMES})
    similarity = ops.sum(a * b, axis=-1)
    return keras.Model({**inputs_a, **inputs_b}, similarity, name="bi_encoder")


def embedding_model(model: keras.Model) -> keras.Model:
    """The bi-encoder's embedding of one sentence, from its trained encoder: ids -> (B, D)."""
    inputs = _id_inputs()
    return keras.Model(inputs, sentence_embedding(model.get_layer("encoder"), inputs), name="sentence_embedding")
