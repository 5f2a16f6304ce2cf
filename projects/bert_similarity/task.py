"""The similarity Task: a cross- or bi-encoder (`encoder`, bound explicitly), its preprocessor, AdamW with warmup.

Text is tokenized by a TF Hub preprocessor's `tokenize` (so any TF Hub BERT preprocessor works) through
`PairPreprocessor`; the input pipeline (data.py) caches the packed pairs and pads per length bucket.
  cross:  ({input_word_ids, input_mask, input_type_ids}: (B, S)) with label (B,) float32
  bi:     ({a_input_word_ids, ..., b_input_type_ids}: (B, S)) with label (B,) float32
"""

from __future__ import annotations

import os
from collections.abc import Callable

import gin
import keras
import tensorflow as tf

from core import task as task_lib
from core.config import ConfigError

from . import data
from . import model as model_lib
from .data import read_pairs  # noqa: F401  (what the baselines import from here)
from .losses import CosineSimilarityLoss, contrastive_loss
from .preprocessor import ENCODERS, PairPreprocessor

DEFAULT_MODEL_DIR = "models/all-MiniLM-L6-v2"


@gin.configurable
class SimilarityTask(task_lib.Task):
    """Does text_a say the same as text_b? A pretrained TF Hub BERT fine-tuned as a cross- or bi-encoder."""

    def __init__(
        self,
        data_dir: str = "data/bert_similarity/bible",
        preprocessor_handle: str = os.path.join(DEFAULT_MODEL_DIR, "preprocessor"),
        encoder_handle: str = os.path.join(DEFAULT_MODEL_DIR, "encoder"),
        encoder: str = "cross",  # "cross": one packed pair per example; "bi": each sentence apart
        model_fn: Callable[..., keras.Model] = model_lib.cross_encoder,  # must build the `encoder` kind
        max_length: int = 128,  # pieces per packed sequence (cross: the pair; bi: each sentence)
        batch_size: int = 32,
        bucket_boundaries: tuple[int, ...] = (32, 48, 64, 96),
        loss: str = "crossentropy",  # cross: "crossentropy"; bi: "cosine" or "contrastive"
        contrastive_margin: float = 0.5,
        learning_rate: float = 3e-5,
        weight_decay: float = 0.01,
        warmup_steps: int = 100,
        decay_steps: int = 1000,  # the learning rate decays (cosine) to 0 over this many steps after warmup
        shuffle_buffer: int = 10_000,
        seed: int | None = None,
    ):
        if encoder not in ENCODERS:
            raise ConfigError(f"SimilarityTask.encoder={encoder!r}: expected one of {ENCODERS}.")
        self.encoder = encoder
        self.bi = encoder == "bi"
        losses = ("cosine", "contrastive") if self.bi else ("crossentropy",)
        if loss not in losses:
            raise ConfigError(f"SimilarityTask.loss={loss!r}: the {'bi' if self.bi else 'cross'}-encoder takes "
                              f"{' or '.join(map(repr, losses))}.")
        if max_length < 8 or any(b >= max_length for b in bucket_boundaries):
            raise ConfigError(f"SimilarityTask: max_length={max_length} must be >= 8 and above every bucket boundary "
                              f"{tuple(bucket_boundaries)}.")
        for field, handle in (("preprocessor_handle", preprocessor_handle), ("encoder_handle", encoder_handle)):
            if "://" not in handle and not os.path.isdir(handle):
                raise ConfigError(f"SimilarityTask.{field}={handle!r}: no such folder. Convert the pretrained BERT "
                                  "first: `python -m projects.bert_similarity.convert`, or bind a TF Hub handle.")
        self.data_dir = data_dir
        self.preprocessor_handle = preprocessor_handle
        self.encoder_handle = encoder_handle
        self._preprocessor = None  # loaded on first use
        self.model_fn = model_fn
        self.max_length = max_length
        self.batch_size = batch_size
        self.bucket_boundaries = tuple(bucket_boundaries)
        self.loss = loss
        self.contrastive_margin = contrastive_margin
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.decay_steps = decay_steps
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed

    def build_model(self) -> keras.Model:
        model = self.model_fn(encoder_handle=self.encoder_handle)
        expected = {prefix + name for prefix in (("a_", "b_") if self.bi else ("",)) for name in model_lib.ID_NAMES}
        found = {tensor.name for tensor in model.inputs}
        if found != expected:
            raise ConfigError(f"SimilarityTask.encoder={self.encoder!r} feeds {sorted(expected)}, but "
                              f"SimilarityTask.model_fn={getattr(self.model_fn, '__name__', self.model_fn)} builds a "
                              f"model with inputs {sorted(found)}: bind SimilarityTask.encoder to "
                              "the builder's kind ('bi' for two sentences encoded apart, 'cross' for one packed pair).")
        return model

    @property
    def preprocessor(self) -> PairPreprocessor:
        """Raw pairs to the model's inputs: what the input pipeline, evaluate, export and predict feed."""
        if self._preprocessor is None:
            self._preprocessor = PairPreprocessor(self.preprocessor_handle, self.encoder, self.max_length)
        return self._preprocessor

    def build_inputs(self, split: str, input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
        """Endless shuffled, length-bucketed batches for "train"; one pass, in file order, for the others."""
        batch_size = task_lib.per_replica_batch_size(self.batch_size, input_context, "SimilarityTask.batch_size")
        return data.make_dataset(self.data_dir, split, self.preprocessor, batch_size=batch_size,
                                 bucket_boundaries=self.bucket_boundaries, shuffle_buffer=self.shuffle_buffer,
                                 seed=self.seed, input_context=input_context)

    def build_loss(self) -> keras.losses.Loss:
        if self.loss == "cosine":
            return CosineSimilarityLoss()
        if self.loss == "contrastive":
            return contrastive_loss(self.contrastive_margin)
        return keras.losses.BinaryCrossentropy(from_logits=True)

    def build_metrics(self) -> list[keras.metrics.Metric]:
        # Logits (cross) are thresholded at 0, cosine similarities (bi) at 0.5; evaluate tunes the threshold.
        threshold = 0.5 if self.bi else 0.0
        return [keras.metrics.BinaryAccuracy(name="accuracy", threshold=threshold),
                keras.metrics.AUC(name="auc", from_logits=not self.bi)]

    def build_optimizer(self) -> keras.optimizers.Optimizer:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, self.decay_steps, warmup_target=self.learning_rate, warmup_steps=self.warmup_steps)
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=self.weight_decay)
        # No weight decay on biases and layer-norm scales/offsets (as BERT was trained).
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta", "LayerNorm", "norm"])
        return optimizer

    def scores(self, outputs: tf.Tensor) -> tf.Tensor:
        """The model's outputs as match scores: probabilities (cross) or cosine similarities (bi)."""
        return outputs if self.bi else tf.sigmoid(outputs)
