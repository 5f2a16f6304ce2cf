"""The similarity Task: tokenized, cached, length-bucketed pairs; a cross- or bi-encoder; AdamW with warmup.

Text is tokenized once by the TF Hub preprocessor's `tokenize` (so any TF Hub BERT preprocessor works)
and cached; packing and padding happen per batch. Batches group pairs of similar length and pad only
to the longest pair in the batch, where keras-hub and most tutorials pad every pair to 128.
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
from core.data import prepared

from . import hub
from . import model as model_lib
from .data import read_pairs  # also what the baselines import from here
from .losses import CosineSimilarityLoss, contrastive_loss
from .preprocessor import pack_segments, pad_packed

DEFAULT_MODEL_DIR = "models/all-MiniLM-L6-v2"


@gin.configurable
class SimilarityTask(task_lib.Task):
    """Does text_a say the same as text_b? A pretrained TF Hub BERT fine-tuned as a cross- or bi-encoder."""

    def __init__(
        self,
        data_dir: str = "data/bert_similarity/bible",
        preprocessor_handle: str = os.path.join(DEFAULT_MODEL_DIR, "preprocessor"),
        encoder_handle: str = os.path.join(DEFAULT_MODEL_DIR, "encoder"),
        model_fn: Callable[..., keras.Model] = model_lib.cross_encoder,
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
        self.bi = model_fn is model_lib.bi_encoder
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
        self.preprocessor = hub.load(preprocessor_handle)
        self.special = {key: int(value) for key, value in self.preprocessor.tokenize.get_special_tokens_dict().items()}
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
        return self.model_fn(encoder_handle=self.encoder_handle)

    def pack(self, segments: list[tf.RaggedTensor]) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
        """Ragged (ids, type ids) of `[CLS] a [SEP] (b [SEP])`, trimmed to max_length."""
        return pack_segments(segments, self.max_length, self.special["start_of_sequence_id"],
                             self.special["end_of_segment_id"])

    def tokenize_texts(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """(B,) strings -> (B, pieces) ids."""
        return self.preprocessor.tokenize(texts).merge_dims(-2, -1)

    def sentence_features(self, pieces: tf.RaggedTensor) -> dict[str, tf.Tensor]:
        """`[CLS] sentence [SEP]` ids for (B, pieces) token ids, padded to the batch's longest."""
        ids, type_ids = self.pack([pieces])
        return pad_packed(ids, type_ids, ids.bounding_shape()[1], self.special["padding_id"])

    def features(self, text_a: tf.Tensor, text_b: tf.Tensor, bi: bool | None = None) -> dict[str, tf.Tensor]:
        """The model's input dict for (B,) raw string pairs, padded to the batch's longest: what export,
        evaluate and predict feed. `bi` overrides the task's model type (the zero-shot baseline is a bi-encoder)."""
        bi = self.bi if bi is None else bi
        a, b = self.tokenize_texts(text_a), self.tokenize_texts(text_b)
        if bi:
            return {prefix + key: value for prefix, side in (("a_", a), ("b_", b))
                    for key, value in self.sentence_features(side).items()}
        ids, type_ids = self.pack([a, b])
        return pad_packed(ids, type_ids, ids.bounding_shape()[1], self.special["padding_id"])

    def _packed(self, split: str, input_context) -> tf.data.Dataset:
        """Per pair: packed ids and type ids (cross), or each side's packed ids (bi), and the label."""
        pairs = prepared.shard(read_pairs(self.data_dir, split), input_context)

        def pack_batch(batch):
            a, b = self.tokenize_texts(batch["text_a"]), self.tokenize_texts(batch["text_b"])
            label = tf.cast(batch["label"], tf.float32)
            if self.bi:
                (ids_a, _), (ids_b, _) = self.pack([a]), self.pack([b])
                return ids_a, ids_b, label
            ids, type_ids = self.pack([a, b])
            return ids, type_ids, label

        packed = pairs.batch(256).map(pack_batch, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
        # Cache the training split (read many times over); the held-out ones are small, and a partial
        # validation pass (TrainConfig.eval_steps) would leave a cache half-filled.
        return packed.cache() if split == "train" else packed

    def build_inputs(self, split: str, input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
        """Endless shuffled, length-bucketed batches for "train"; one pass, in file order, for the others."""
        training = split == "train"
        batch_size = task_lib.per_replica_batch_size(self.batch_size, input_context, "SimilarityTask.batch_size")
        dataset = self._packed(split, input_context)
        if training:
            dataset = dataset.shuffle(self.shuffle_buffer, seed=self.seed).repeat()
        dataset = dataset.map(lambda x, y, label: (x, y, tf.ones_like(x), tf.ones_like(y), label))
        buckets = len(self.bucket_boundaries) + 1
        dataset = dataset.bucket_by_sequence_length(
            lambda x, y, *_: tf.maximum(tf.size(x), tf.size(y)), bucket_boundaries=list(self.bucket_boundaries),
            bucket_batch_sizes=[batch_size] * buckets, pad_to_bucket_boundary=False, drop_remainder=training)
        return dataset.map(self._features, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def _features(self, x, y, mask_x, mask_y, label):
        """The model's input dict from padded batches (padding id 0 is [PAD] in every BERT vocab we know;
        the mask, not the id, tells the encoder what is padding)."""
        if self.bi:
            return ({"a_input_word_ids": x, "a_input_mask": mask_x, "a_input_type_ids": tf.zeros_like(x),
                     "b_input_word_ids": y, "b_input_mask": mask_y, "b_input_type_ids": tf.zeros_like(y)}, label)
        return {"input_word_ids": x, "input_mask": mask_x, "input_type_ids": y}, label

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
