"""BERT text preprocessing with tensorflow_text: raw strings to the encoder's three id tensors, in the graph.

Saved as a SavedModel with the interface of TF Hub's `bert_en_uncased_preprocess`:
  preprocessor(strings [B])                       -> dict of int32 (B, 128): one sentence per example
  preprocessor.tokenize(strings [B])              -> int32 RaggedTensor (B, words, pieces)
  preprocessor.tokenize.get_special_tokens_dict() -> the ids of [CLS], [SEP], [PAD], [MASK] and the vocab size
  preprocessor.bert_pack_inputs([a, b], seq_length) -> dict of int32 (B, seq_length): sentence pairs
so code written for TF Hub's preprocessors runs on it unchanged, and the other way round.

`pack_segments` is the packing itself, as a function of ragged piece ids: training uses it without
padding (the input pipeline pads each length bucket only as far as it needs), the SavedModel with.

`PairPreprocessor` is the Keras side, in the role of keras-hub's `TextClassifierPreprocessor`: a
serializable layer over any such preprocessor (ours or TF Hub's) that turns raw sentence pairs into a
cross- or bi-encoder's inputs. The input pipeline (`data.py`), `evaluate` and the export (and so
`predict` and the server) all go through it, so they pack pairs the same way.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf
import tensorflow_text as tft

from core.config import ConfigError, UserError

from . import hub

SPECIAL_TOKENS = {"start_of_sequence_id": "[CLS]", "end_of_segment_id": "[SEP]", "padding_id": "[PAD]",
                  "mask_id": "[MASK]"}
DEFAULT_SEQ_LENGTH = 128
ENCODERS = ("cross", "bi")


def read_vocab(path: str) -> list[str]:
    """The WordPiece vocabulary, one piece per line (line number = id); checks the special tokens are there."""
    try:
        with open(path, encoding="utf-8") as f:
            vocab = [line.rstrip("\n") for line in f]
    except OSError as e:
        raise UserError(f"{path}: cannot read the WordPiece vocabulary ({e}).") from e
    seen = {}
    for line, token in enumerate(vocab, start=1):
        if token in seen:
            raise UserError(f"{path}:{line}: {token!r} is already on line {seen[token]}; each piece must be unique.")
        seen[token] = line
    missing = [token for token in (*SPECIAL_TOKENS.values(), "[UNK]") if token not in seen]
    if missing:
        raise UserError(f"{path}: no {', '.join(missing)} in the vocabulary; expected a BERT vocab.txt.")
    return vocab


def pack_segments(segments: list[tf.RaggedTensor], max_length: int | tf.Tensor, start_id, end_id):
    """Packs one or two batches of piece ids as `[CLS] a [SEP] b [SEP]`; returns ragged (ids, type ids).

    Segments are (B, pieces) or (B, words, pieces). When the pair is longer than `max_length`, the
    round-robin trimmer gives each segment one piece in turn, so the longer one is cut first and a
    short segment is kept whole.
    """
    segments = [s.merge_dims(-2, -1) if s.ragged_rank > 1 else s for s in segments]
    budget = max_length - (len(segments) + 1)  # room for [CLS] and one [SEP] per segment
    trimmed = tft.RoundRobinTrimmer(max_seq_length=budget).trim(segments)
    return tft.combine_segments(trimmed, start_of_sequence_id=start_id, end_of_segment_id=end_id)


def pad_packed(ids: tf.RaggedTensor, type_ids: tf.RaggedTensor, length, pad_id) -> dict[str, tf.Tensor]:
    """Pads packed ids to (B, length): the encoder's input dict."""
    shape = tf.stack([ids.nrows(), tf.cast(length, tf.int64)])
    word_ids = ids.to_tensor(default_value=tf.cast(pad_id, ids.dtype), shape=shape)
    mask = tf.ones_like(ids).to_tensor(shape=shape)
    return {"input_word_ids": tf.cast(word_ids, tf.int32), "input_mask": tf.cast(mask, tf.int32),
            "input_type_ids": tf.cast(type_ids.to_tensor(shape=shape), tf.int32)}


class _Tokenize(tf.Module):
    """`preprocessor.tokenize`: callable, and answers get_special_tokens_dict() as TF Hub's does."""

    def __init__(self, tokenizer: tft.BertTokenizer, special_ids: dict[str, int], vocab_size: int):
        super().__init__()
        self._tokenizer = tokenizer
        self._special = {**special_ids, "vocab_size": vocab_size}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, strings):
        return self._tokenizer.tokenize(strings)  # int32 (B, words, pieces)

    @tf.function(input_signature=[])
    def get_special_tokens_dict(self):
        return {key: tf.constant(value, tf.int32) for key, value in self._special.items()}


class _PackInputs(tf.Module):
    """`preprocessor.bert_pack_inputs(segments, seq_length=128)` for one or two segments."""

    def __init__(self, special_ids: dict[str, int]):
        super().__init__()
        self._special = special_ids

    @tf.function
    def __call__(self, segments, seq_length=DEFAULT_SEQ_LENGTH):
        ids, type_ids = pack_segments(list(segments), seq_length, self._special["start_of_sequence_id"],
                                      self._special["end_of_segment_id"])
        return pad_packed(ids, type_ids, seq_length, self._special["padding_id"])


class BertPreprocessor(tf.Module):
    """Uncased (or cased) WordPiece preprocessing from a BERT vocab.txt; see the module docstring."""

    def __init__(self, vocab_path: str, lower_case: bool = True, name: str = "bert_preprocessor"):
        super().__init__(name=name)
        vocab = read_vocab(vocab_path)
        # The vocabulary lives in the graph as a constant table: the SavedModel needs no asset file.
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(vocab), tf.range(len(vocab), dtype=tf.int64)),
            default_value=-1)
        # BasicTokenizer's rules: lower case and strip accents (uncased), split on punctuation and around
        # every CJK character, then WordPiece with the "##" continuation prefix.
        tokenizer = tft.BertTokenizer(self._table, token_out_type=tf.int32, unknown_token="[UNK]",
                                      lower_case=lower_case)
        self.special_ids = {key: vocab.index(token) for key, token in SPECIAL_TOKENS.items()}
        self.vocab_size = len(vocab)
        self.tokenize = _Tokenize(tokenizer, self.special_ids, self.vocab_size)
        self.bert_pack_inputs = _PackInputs(self.special_ids)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, strings):
        return self.bert_pack_inputs([self.tokenize(strings)], DEFAULT_SEQ_LENGTH)

    def save(self, path: str) -> None:
        """Writes the SavedModel, tracing bert_pack_inputs for one and two segments at any seq_length."""
        segment = tf.RaggedTensorSpec([None, None, None], tf.int32, ragged_rank=2)
        length = tf.TensorSpec([], tf.int32)
        for count in (1, 2):
            self.bert_pack_inputs.__call__.get_concrete_function([segment] * count, length)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tf.saved_model.save(self, path)


@keras.saving.register_keras_serializable(package=hub.PACKAGE)
class PairPreprocessor(keras.layers.Layer):
    """Raw (text_a, text_b) string batches to the encoder's input dict, with a preprocessor's tokenizer.

      cross: {input_word_ids, input_mask, input_type_ids}            `[CLS] a [SEP] b [SEP]`, (B, S) int32
      bi:    {a_input_word_ids, ..., b_input_type_ids}              `[CLS] a [SEP]` and `[CLS] b [SEP]`

    padded to the batch's longest (at most `max_length` pieces). `handle` is a preprocessor folder or
    TF Hub handle with `tokenize` (the wordpieces) and its special-token ids; the tokenizer's own
    packing is not used, since it pads every pair to a fixed length.
    """

    def __init__(self, handle: str, encoder: str = "cross", max_length: int = DEFAULT_SEQ_LENGTH, **kwargs):
        super().__init__(**kwargs)
        if encoder not in ENCODERS:
            raise ConfigError(f"encoder={encoder!r}: expected one of {ENCODERS}.")
        if max_length < 8:
            raise ConfigError(f"max_length={max_length}: must be >= 8.")
        self.handle = handle
        self.encoder = encoder
        self.max_length = max_length
        self.module = hub.load(handle)  # export tracks it: the SavedModel carries the vocabulary
        self.special = {key: int(value) for key, value in self.module.tokenize.get_special_tokens_dict().items()}
        # Strings in, ragged tensors inside: as keras-hub's preprocessing layers, no conversion of the inputs.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True

    @property
    def bi(self) -> bool:
        return self.encoder == "bi"

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """(B,) strings -> (B, pieces) int32 ids."""
        return self.module.tokenize(texts).merge_dims(-2, -1)

    def pack(self, segments: list[tf.RaggedTensor]) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
        """Ragged (ids, type ids) of `[CLS] a [SEP] (b [SEP])`, trimmed to max_length."""
        return pack_segments(segments, self.max_length, self.special["start_of_sequence_id"],
                             self.special["end_of_segment_id"])

    def packed(self, text_a: tf.Tensor, text_b: tf.Tensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
        """What the input pipeline caches per pair, unpadded: (ids, type ids) of the pair (cross), or each
        side's ids (bi; its type ids are all 0)."""
        a, b = self.tokenize(text_a), self.tokenize(text_b)
        if self.bi:
            return self.pack([a])[0], self.pack([b])[0]
        return self.pack([a, b])

    def from_padded(self, first: tf.Tensor, second: tf.Tensor, mask_first: tf.Tensor,
                    mask_second: tf.Tensor) -> dict[str, tf.Tensor]:
        """The input dict from `packed`'s two tensors padded with 0 (padding id 0 is [PAD] in every BERT
        vocab we know; the mask, not the id, tells the encoder what is padding) and their masks."""
        if self.bi:
            return {"a_input_word_ids": first, "a_input_mask": mask_first, "a_input_type_ids": tf.zeros_like(first),
                    "b_input_word_ids": second, "b_input_mask": mask_second,
                    "b_input_type_ids": tf.zeros_like(second)}
        return {"input_word_ids": first, "input_mask": mask_first, "input_type_ids": second}

    def sentence_features(self, texts: tf.Tensor) -> dict[str, tf.Tensor]:
        """`[CLS] sentence [SEP]` inputs of (B,) strings, padded to the batch's longest (the bi-encoder's
        one-sentence embedding model takes them)."""
        ids, type_ids = self.pack([self.tokenize(texts)])
        return pad_packed(ids, type_ids, ids.bounding_shape()[1], self.special["padding_id"])

    def call(self, text_a, text_b) -> dict[str, tf.Tensor]:
        text_a, text_b = tf.convert_to_tensor(text_a, tf.string), tf.convert_to_tensor(text_b, tf.string)
        if self.bi:
            return {prefix + key: value for prefix, texts in (("a_", text_a), ("b_", text_b))
                    for key, value in self.sentence_features(texts).items()}
        ids, type_ids = self.pack([self.tokenize(text_a), self.tokenize(text_b)])
        return pad_packed(ids, type_ids, ids.bounding_shape()[1], self.special["padding_id"])

    def get_config(self) -> dict:
        return {**super().get_config(), "handle": self.handle, "encoder": self.encoder, "max_length": self.max_length}
