"""The translation Task: tokenized, cached, length-bucketed input; token-level loss and accuracy; the optimizer.

Input batches are ({"source": (B, S), "target_in": (B, T)}, target_out (B, T)) int32 ids, where
target_in is the start id followed by the target and target_out the target followed by the end id
(teacher forcing). Sentences are grouped by length into buckets and each bucket pads to its upper
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
from core.data import prepared

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
    path = os.path.join(model_dir, TOKENIZER_FILE)
    if not os.path.exists(path):
        raise ConfigError(f"{path} not found: {model_dir} is not a trained transformer run; train it first.")
    return path


def bucket_lengths(max_length: int, bucket_width: int) -> list[int]:
    """The padded lengths of the buckets: bucket_width, 2 * bucket_width, ..., up to max_length."""
    if bucket_width < 1 or max_length < 2:
        raise ConfigError(f"TranslationTask: bucket_width={bucket_width} must be >= 1 and max_length={max_length} "
                          ">= 2.")
    lengths = list(range(bucket_width, max_length, bucket_width))
    return [*lengths, max_length]


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
        optimizer: str = "adam",  # "adam" (beta_2 0.98, as in the paper) or "rmsprop" (the keras-io peer)
        shuffle_buffer: int = 20_000,
        seed: int | None = None,
    ):
        self.data_dir = data_dir
        if tokenizer_path:
            self.tokenizer = tokenizer_lib.Tokenizer.load(tokenizer_path)
        else:
            logging.info("Learning a %d-piece SentencePiece vocabulary from %s", vocab_size, data_dir)
            self.tokenizer = tokenizer_lib.Tokenizer(
                tokenizer_lib.train_sentencepiece(training_texts(data_dir), vocab_size=vocab_size))
        if optimizer not in ("adam", "rmsprop"):
            raise ConfigError(f"TranslationTask.optimizer={optimizer!r}: expected 'adam' or 'rmsprop'.")
        self.max_length = max_length
        self.buckets = bucket_lengths(max_length, bucket_width)
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

    def save_tokenizer(self, model_dir: str) -> str:
        """Writes `model_dir/tokenizer.model`, which evaluate and export read: the ids the checkpoint was trained on."""
        path = os.path.join(model_dir, TOKENIZER_FILE)
        self.tokenizer.save(path)
        return path

    def build_model(self) -> keras.Model:
        return self.model_fn(vocab_size=self.tokenizer.vocab_size, max_length=self.max_length)

    def _tokenized(self, split: str, input_context) -> tf.data.Dataset:
        """(source ids, target ids) pairs, without start or end ids; tokenized in batches (faster), then cached."""
        pairs = prepared.shard(read_pairs(self.data_dir, split), input_context)
        tokenized = pairs.batch(1024).map(
            lambda b: (self.tokenizer.tokenize(b["source"]), self.tokenizer.tokenize(b["target"])),
            num_parallel_calls=tf.data.AUTOTUNE).unbatch()
        limit = self.max_length - 1  # room for the end (or start) id
        if split == "train":  # a truncated pair teaches a wrong translation; skip it
            tokenized = tokenized.filter(lambda s, t: (tf.size(s) <= limit) & (tf.size(t) <= limit))
        else:  # held-out loss and accuracy cover every pair
            tokenized = tokenized.map(lambda s, t: (s[:limit], t[:limit]))
        return tokenized.cache()

    def build_inputs(self, split: str, input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
        """Endless shuffled length-bucketed batches for "train"; one pass for the held-out splits."""
        training = split == "train"
        replicas = input_context.num_replicas_in_sync if input_context else 1
        dataset = self._tokenized(split, input_context)
        if training:
            dataset = dataset.shuffle(self.shuffle_buffer, seed=self.seed).repeat()
        bos, eos = tf.constant([tokenizer_lib.BOS_ID]), tf.constant([tokenizer_lib.EOS_ID])
        dataset = dataset.map(lambda s, t: (tf.concat([s, eos], 0), tf.concat([bos, t], 0), tf.concat([t, eos], 0)),
                              num_parallel_calls=tf.data.AUTOTUNE)
        # Bucket i holds pairs whose longer side fits buckets[i] and pads both sides to it.
        batch_sizes = [max(1, self.tokens_per_batch // replicas // length) for length in self.buckets]
        dataset = dataset.bucket_by_sequence_length(
            lambda s, t_in, t_out: tf.maximum(tf.size(s), tf.size(t_in)),
            bucket_boundaries=[length + 1 for length in self.buckets],
            bucket_batch_sizes=[*batch_sizes, 1],  # the last bucket (longer than max_length) stays empty
            pad_to_bucket_boundary=True, drop_remainder=training)
        dataset = dataset.map(lambda s, t_in, t_out: ({"source": s, "target_in": t_in}, t_out))
        return dataset.prefetch(tf.data.AUTOTUNE)

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
