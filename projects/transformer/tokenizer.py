"""A subword tokenizer learned from the training text and run inside the graph.

SentencePiece (unigram) is trained on both sides of the training split with the `sentencepiece`
package, then used through tensorflow_text's `SentencepieceTokenizer`, so tokenizing raw strings and
joining ids back into text are TensorFlow ops: they run in tf.data, in the model and in the exported
SavedModel. The settings make the round trip exact: identity normalization, whitespace kept as it is,
and byte fallback for characters never seen in training, so placeholders such as `%s`, `'%s'` and
`%1$d` come back character for character. Only leading spaces are lost (SentencePiece marks word
starts with them); `prepare` strips every text, so none reach the tokenizer.

Ids 0..3 are reserved: 0 padding, 1 unknown, 2 start of sequence, 3 end of sequence.

`Tokenizer` is a Keras preprocessing layer, in the role of keras-hub's `SentencePieceTokenizer`: its
config carries the model proto, so it serializes with the model it belongs to; calling it tokenizes. The
input pipeline (`data.py`), `evaluate`, `translate` and the export all call it the same way.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable

import keras
import sentencepiece
import tensorflow as tf
import tensorflow_text as tft

from core.files import atomic_path

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


def train_sentencepiece(texts: Iterable[str], vocab_size: int = 8000, model_type: str = "unigram") -> bytes:
    """A SentencePiece model proto learned from `texts` (deterministic for the same texts and settings)."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type=model_type,
        character_coverage=1.0, byte_fallback=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, split_digits=True, hard_vocab_limit=False,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        input_sentence_size=0, shuffle_input_sentence=False, num_threads=1, minloglevel=2)
    return model.getvalue()


@keras.saving.register_keras_serializable(package="transformer")
class Tokenizer(keras.layers.Layer):
    """Strings to ragged int32 ids and back, from a SentencePiece model proto; serializable, and exportable in
    a SavedModel. `proto` is the model's bytes (or, in a config, their base64 text)."""

    def __init__(self, proto: bytes | str, **kwargs):
        super().__init__(**kwargs)
        self.model_proto = base64.b64decode(proto) if isinstance(proto, str) else bytes(proto)
        self._sentencepiece = tft.SentencepieceTokenizer(model=self.model_proto, out_type=tf.int32)
        self.vocab_size = int(self._sentencepiece.vocab_size())
        # Strings in, ragged ids out: as keras-hub's preprocessing layers, no conversion of the inputs.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True

    def get_config(self) -> dict:
        return {**super().get_config(), "proto": base64.b64encode(self.model_proto).decode("ascii")}

    def call(self, texts) -> tf.RaggedTensor:
        return self.tokenize(texts)

    @classmethod
    def load(cls, path: str) -> Tokenizer:
        """A tokenizer from a `.model` file written by `save`."""
        with open(path, "rb") as f:
            return cls(f.read())

    def save(self, path: str) -> None:
        """Writes the model proto (atomically), to keep beside the checkpoints of a run."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(self.model_proto)

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """[batch] strings -> [batch, (tokens)] int32 ids, without start or end ids."""
        return self._sentencepiece.tokenize(texts)

    def detokenize(self, ids: tf.Tensor | tf.RaggedTensor) -> tf.Tensor:
        """[batch, (tokens)] ids -> [batch] strings; padding, start and end ids are dropped first."""
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        keep = (ids != PAD_ID) & (ids != BOS_ID) & (ids != EOS_ID)
        return self._sentencepiece.detokenize(tf.ragged.boolean_mask(ids, keep))

    def pieces(self, ids: tf.Tensor) -> tf.Tensor:
        """The subword strings of ids, to see how a text was split."""
        return self._sentencepiece.id_to_string(ids)
