"""The translation Task: the model, token-level loss and accuracy, the optimizer, and the tokenizer a run keeps.

Its input pipeline is data.make_dataset: batches of ({"source": (B, S), "target_in": (B, T)}, target_out
(B, T)) int32 ids, where target_in is the start id followed by the target and target_out the target
followed by the end id (teacher forcing). Sentences are grouped by length into buckets and each bucket pads to its upper
bound, with batch sizes chosen so every batch holds about `tokens_per_batch` positions: short
messages are not padded to the longest one, and the number of distinct shapes (what XLA compiles)
stays one per bucket.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import gin
import keras
import tensorflow as tf
from absl import logging

from core import task as task_lib
from core.config import ConfigError

from . import data
from . import model as model_lib
from . import tokenizer as tokenizer_lib
from .data import read_pairs  # also what the baselines import from here
from .losses import MaskedSparseCategoricalCrossentropy, token_mean_loss
from .metrics import MaskedSparseCategoricalAccuracy
from .schedules import WarmupInverseSqrt

TOKENIZER_FILE = "tokenizer.model"


def training_texts(data_dir: str):
    """Both sides of every training pair, as Python strings (what the tokenizer learns from)."""
    for batch in read_pairs(data_dir, "train").batch(4096).as_numpy_iterator():
        for side in (batch["source"], batch["target"]):
            yield from (text.decode("utf-8") for text in side)


def tokenizer_file(model_dir: str) -> str:
    """The run's tokenizer.model; says to train first when it is missing."""
    return task_lib.artifact_path(model_dir, TOKENIZER_FILE, "transformer")


@gin.configurable
class TranslationTask(task_lib.Task):
    """Source-to-target translation over a prepared folder, with a subword tokenizer learned from its training split."""

    def __init__(
        self,
        data_dir: str = "data/transformer/gettext_de",
        tokenizer_path: str | None = None,  # a saved tokenizer.model; None: learn one from the training split
        vocab_size: int = 8000,
        max_length: int = 64,  # subword positions per side, end id included; longer training pairs are skipped
        bucket_width: int = 8,
        tokens_per_batch: int = 4096,  # global: padded positions per batch and side, split across replicas
        model_fn: Callable[..., keras.Model] = model_lib.transformer,
        label_smoothing: float = 0.1,
        peak_learning_rate: float = 1e-3,
        warmup_steps: int = 1000,
        optimizer: str = "adam",  # "adam" (beta_2 0.98, as in the paper) or "rmsprop" (the keras-io recipe's)
        shuffle_buffer: int = 20_000,
        seed: int | None = None,
    ):
        self.data_dir = data_dir
        self.vocab_size = vocab_size
        self._tokenizer = tokenizer_lib.Tokenizer.load(tokenizer_path) if tokenizer_path else None
        if self._tokenizer is None:
            read_pairs(data_dir, "train")  # the tokenizer is learned from it: say now if it is missing
        if optimizer not in ("adam", "rmsprop"):
            raise ConfigError(f"TranslationTask.optimizer={optimizer!r}: expected 'adam' or 'rmsprop'.")
        self.max_length = max_length
        self.buckets = data.bucket_lengths(max_length, bucket_width)
        if tokens_per_batch < max_length:
            raise ConfigError(f"TranslationTask.tokens_per_batch={tokens_per_batch} must be >= max_length="
                              f"{max_length}: the longest bucket needs at least one sentence per batch.")
        self.tokens_per_batch = tokens_per_batch
        self.model_fn = model_fn
        self.label_smoothing = label_smoothing
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = warmup_steps
        self.optimizer = optimizer
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed

    @classmethod
    def from_model_dir(cls, model_dir: str, **kwargs) -> TranslationTask:
        """The run's Task, with the tokenizer it was trained with (its ids are the checkpoint's rows)."""
        return cls(tokenizer_path=tokenizer_file(model_dir), **kwargs)

    @property
    def tokenizer(self) -> tokenizer_lib.Tokenizer:
        """The given tokenizer, or one learned from the training split on first use (`vocab_size` pieces)."""
        if self._tokenizer is None:
            logging.info("Learning a %d-piece SentencePiece vocabulary from %s", self.vocab_size, self.data_dir)
            self._tokenizer = tokenizer_lib.Tokenizer(
                tokenizer_lib.train_sentencepiece(training_texts(self.data_dir), vocab_size=self.vocab_size))
        return self._tokenizer

    def save_artifacts(self, model_dir: str) -> None:
        """Writes `model_dir/tokenizer.model`, which evaluate and export read: the ids the checkpoint is trained
        on. A resumed run that was given no tokenizer takes the saved one instead of learning another."""
        path = os.path.join(model_dir, TOKENIZER_FILE)
        if os.path.exists(path):
            saved = tokenizer_lib.Tokenizer.load(path)
            if self._tokenizer is not None and self._tokenizer.model_proto != saved.model_proto:
                raise ConfigError(f"{path} is not the tokenizer given (TranslationTask.tokenizer_path): the run's "
                                  "checkpoints are trained on its ids; use a new --model_dir.")
            self._tokenizer = saved
            return
        self.tokenizer.save(path)

    def build_model(self) -> keras.Model:
        return self.model_fn(vocab_size=self.tokenizer.vocab_size, max_length=self.max_length)

    def build_inputs(self, split: str, input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
        """Endless shuffled length-bucketed batches for "train"; one pass for the held-out splits (data.py)."""
        return data.make_dataset(self.data_dir, split, self.tokenizer, max_length=self.max_length, buckets=self.buckets,
                                 tokens_per_batch=self.tokens_per_batch, shuffle_buffer=self.shuffle_buffer,
                                 seed=self.seed, input_context=input_context)

    def build_loss(self) -> keras.losses.Loss:
        return MaskedSparseCategoricalCrossentropy(pad_id=tokenizer_lib.PAD_ID, label_smoothing=self.label_smoothing)

    def build_metrics(self) -> list[keras.metrics.Metric]:
        return [MaskedSparseCategoricalAccuracy(pad_id=tokenizer_lib.PAD_ID, name="accuracy")]

    def build_optimizer(self) -> keras.optimizers.Optimizer:
        schedule = WarmupInverseSqrt(self.peak_learning_rate, self.warmup_steps)
        if self.optimizer == "rmsprop":
            return keras.optimizers.RMSprop(schedule)
        return keras.optimizers.Adam(schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9)

    def step_loss(self, loss_fn, labels, predictions, model) -> tf.Tensor:
        """The mean over the real target tokens of the global batch (custom loop), as fit's loss is per token."""
        loss = token_mean_loss(loss_fn.call(labels, predictions), labels != tokenizer_lib.PAD_ID)
        if model.losses:
            loss += tf.nn.scale_regularization_loss(tf.cast(tf.add_n(model.losses), tf.float32))
        return loss

    def evaluation_losses(self, loss_fn, labels, predictions) -> tf.Tensor:
        """One loss per real target token, so the held-out loss is a mean per token as in training."""
        return tf.boolean_mask(loss_fn.call(labels, predictions), labels != tokenizer_lib.PAD_ID)
