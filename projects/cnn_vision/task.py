"""The image-classification Task: what cnn_vision trains, independent of which loop runs it."""

from __future__ import annotations

from collections.abc import Callable

import gin
import keras
import tensorflow as tf

from core import task as task_lib
from core.losses import SparseCategoricalCrossentropyWithSmoothing
from core.metrics import MacroF1

from . import data
from . import model as model_lib


@gin.configurable
class ImageClassificationTask(task_lib.Task):
    """Builds the model, pipelines, loss, metrics and optimizer from the prepared data's metadata."""

    def __init__(
        self,
        data_dir: str = "data/cnn_vision/fashion_mnist",
        model_fn: Callable[..., keras.Model] = model_lib.small_cnn,
        batch_size: int = 128,
        augment: bool = False,
        max_shift: int = 2,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_steps: int = 0,
        decay_steps: int = 0,
        label_smoothing: float = 0.0,
        shuffle_buffer: int = 10_000,
    ):
        self.data_dir = data_dir
        self.metadata = data.read_metadata(data_dir)
        self.model_fn = model_fn
        self.batch_size = batch_size  # global: split across replicas
        self.augment = augment  # random horizontal flips and shifts of up to max_shift pixels
        self.max_shift = max_shift
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.decay_steps = decay_steps  # > 0: cosine decay to zero over this many steps
        self.label_smoothing = label_smoothing
        self.shuffle_buffer = shuffle_buffer

    @property
    def class_names(self) -> list[str]:
        """Label names, index = class id (from the prepared data's metadata.json)."""
        return self.metadata["class_names"]

    @property
    def image_shape(self) -> list[int]:
        """[height, width, channels] of the prepared images."""
        return self.metadata["image_shape"]

    def build_model(self) -> keras.Model:
        """The configured `model_fn` for this data's image shape and class count."""
        return self.model_fn(input_shape=self.image_shape, num_classes=len(self.class_names))

    def build_inputs(self, split: str, input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
        """(images float32 0..255, labels) batches; per replica under a strategy."""
        batch_size = task_lib.per_replica_batch_size(self.batch_size, input_context,
                                                     "ImageClassificationTask.batch_size")
        return data.make_dataset(
            self.data_dir, split, batch_size, training=split == "train", augment=self.augment, max_shift=self.max_shift,
            shuffle_buffer=self.shuffle_buffer, input_context=input_context,
        )

    def build_loss(self) -> keras.losses.Loss:
        """Cross-entropy on logits, with optional label smoothing."""
        return SparseCategoricalCrossentropyWithSmoothing(label_smoothing=self.label_smoothing, from_logits=True)

    def build_metrics(self) -> list[keras.metrics.Metric]:
        """Accuracy and macro-F1 (whose confusion matrix `evaluate` prints)."""
        return [keras.metrics.SparseCategoricalAccuracy("accuracy"), MacroF1(len(self.class_names))]

    def build_optimizer(self) -> keras.optimizers.Optimizer:
        """AdamW, with linear warmup then cosine decay when `decay_steps` is set."""
        learning_rate = self.learning_rate
        if self.decay_steps:
            learning_rate = keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=0.0 if self.warmup_steps else self.learning_rate,
                decay_steps=max(self.decay_steps - self.warmup_steps, 1),
                warmup_target=self.learning_rate if self.warmup_steps else None,
                warmup_steps=self.warmup_steps,
            )
        optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=self.weight_decay)
        # Decaying biases and BatchNorm's scale and offset only fights the normalisation.
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        return optimizer
