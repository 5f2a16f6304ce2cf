"""A subword tokenizer learned from the training text and run inside the graph.

SentencePiece (unigram) is trained on both sides of the training split with the `sentencepiece`
package, then used through tensorflow_text's `SentencepieceTokenizer`, so tokenizing raw strings and
joining ids back into text are TensorFlow ops: they run in tf.data, in the model and in the exported
SavedModel. The settings make the round trip exact: identity normalization, whitespace kept as it is,
and byte fallback for characters never seen in training, so placeholders such as `%s`, `'%s'` and
`%1$d` come back character for character. Only leading spaces are lost (SentencePiece marks word
starts with them); `prepare` strips every text, so none reach the tokenizer.

Ids 0..3 are reserved: 0 padding, 1 unknown, 2 start of sequence, 3 end of sequence.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

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


class Tokenizer(tf.Module):
    """Strings to ragged int32 ids and back, from a SentencePiece model proto; exportable in a SavedModel."""

    def __init__(self, model_proto: bytes, name: str | None = None):
        super().__init__(name=name)
        self.model_proto = model_proto
        self._sentencepiece = tft.SentencepieceTokenizer(model=model_proto, out_type=tf.int32)
        self.vocab_size = int(self._sentencepiece.vocab_size())

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
