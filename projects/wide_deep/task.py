"""The tabular regression Task: what wide_deep trains, independent of which loop runs it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import gin
import keras
import tensorflow as tf

from core import task as task_lib
from core.config import ConfigError
from core.files import write_text_atomic
from core.losses import MultiOutputLoss

from . import data
from . import model as model_lib

# mse: squared error; huber: squared near zero, linear beyond huber_delta; poisson: the negative
# log-likelihood of counts (with a log link); msle: squared error of log(1 + y), the log1p-transformed target.
LOSSES = ("mse", "huber", "poisson", "msle")


@gin.configurable
class RegressionTask(task_lib.Task):
    """Builds the model, pipelines, loss, metrics and optimizer from the prepared table.

    Single-output models predict the target; `wide_deep_multi_output` predicts a dict, trained with one loss
    per output weighted by `loss_weights` (outputs missing from it weigh 1).
    """

    def __init__(
        self,
        data_dir: str = "data/wide_deep/bikeshare",
        model_fn: Callable[..., keras.Model] = model_lib.wide_deep,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        decay_steps: int = 0,
        weight_decay: float = 0.0,
        loss: str = "mse",
        huber_delta: float = 1.0,
        loss_weights: dict[str, float] | None = None,
        seed: int | None = None,
        train_splits: tuple[str, ...] = ("train",),
    ):
        self.data_dir = data_dir
        self.metadata = data.read_metadata(data_dir)
        self.model_fn = model_fn
        self.batch_size = batch_size  # global: split across replicas
        self.learning_rate = learning_rate
        self.decay_steps = decay_steps  # > 0: cosine decay to zero over this many steps
        self.weight_decay = weight_decay
        if loss not in LOSSES:
            raise ValueError(f"RegressionTask.loss={loss!r}: expected one of {', '.join(map(repr, LOSSES))}.")
        self.loss = loss
        self.huber_delta = huber_delta  # in target units (bikers per hour)
        self.loss_weights = dict(loss_weights or {})  # multi-output: output name -> weight; unnamed outputs weigh 1
        self.seed = seed
        self.train_splits = tuple(train_splits)  # the search retrains its best on ("train", "validation")
        self._columns = None

    @classmethod
    def from_model_dir(cls, model_dir: str, **kwargs) -> RegressionTask:
        """The Task, refused when its data is not the data the run in `model_dir` was trained on."""
        task = cls(**kwargs)
        task.check_data(model_dir)
        return task

    def save_artifacts(self, model_dir: str) -> None:
        """Records the fingerprint of the training data (resuming on other data is refused too)."""
        self.check_data(model_dir, record=True)

    def check_data(self, model_dir: str, record: bool = False) -> None:
        """Refuses to use a model dir with data prepared differently from the data it was trained on.

        The checkpoint holds no vocabularies or target statistics: they are adapted again on the training
        split, so data prepared again (another seed, source or spec) would silently misalign embeddings and
        one-hot weights with their categories. `record` (train) writes the fingerprint when there is none.
        """
        path = os.path.join(model_dir, "data_metadata.json")
        fingerprint = {k: self.metadata[k] for k in ("source", "features", "target", "extra_targets", "split",
                                                     "counts", "target_stats")}
        if os.path.exists(path):
            with open(path) as f:
                trained_on = json.load(f)
            differ = sorted(k for k in fingerprint if trained_on.get(k) != fingerprint[k])
            if differ:
                raise ConfigError(f"{self.data_dir} is not the data {model_dir} was trained on: {', '.join(differ)} "
                                  f"differ from {path}. Prepare the data as it was, or train a new model dir.")
        elif record:
            os.makedirs(model_dir, exist_ok=True)
            write_text_atomic(path, json.dumps(fingerprint, indent=2))

    @property
    def target(self) -> str:
        return self.metadata["target"]

    @property
    def multi_output(self) -> bool:
        return self.model_fn is model_lib.wide_deep_multi_output

    @property
    def multi_input(self) -> bool:
        return self.model_fn is model_lib.wide_deep_multi_input

    def columns(self) -> model_lib.Columns:
        """The feature columns with their training-split values (read once), for adapting layers."""
        if self._columns is None:
            train_features, _ = data.load_arrays(self.data_dir, "train")
            stats = self.metadata["target_stats"]
            self._columns = model_lib.Columns(self.metadata["features"], train_features, stats)
        return self._columns

    def build_model(self) -> keras.Model:
        """The configured `model_fn`, its preprocessing adapted on the training split."""
        return self.model_fn(self.columns())

    def model_inputs(self, features: dict) -> dict:
        """Column tensors arranged as the model's inputs: the multi-input model reads each column twice."""
        if not self.multi_input:
            return features
        categorical = [c for c, kind in self.metadata["features"].items() if kind != "numeric"]
        return {"wide": {c: features[c] for c in categorical}, "deep": dict(features)}

    def labels(self, targets: dict) -> tf.Tensor | dict:
        """The target [batch, 1], or the dict the multi-output model's losses read (aux learns the target)."""
        if self.multi_output:
            return {**targets, "aux": targets[self.target]}
        return targets[self.target]

    def build_inputs(self, split: str, input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
        """(columns, target) batches; per replica under a strategy."""
        batch_size = task_lib.per_replica_batch_size(self.batch_size, input_context, "RegressionTask.batch_size")
        splits = self.train_splits if split == "train" else (split,)
        dataset = data.make_dataset(self.data_dir, splits, batch_size, training=split == "train", seed=self.seed,
                                    input_context=input_context)
        return dataset.map(lambda f, t: (self.model_inputs(f), self.labels(t)))

    def build_loss(self) -> keras.losses.Loss:
        """`loss` (see LOSSES) per output; weighted per output for the multi-output model."""
        def one():
            if self.loss == "huber":
                return keras.losses.Huber(delta=self.huber_delta)
            if self.loss == "poisson":
                return keras.losses.Poisson()
            if self.loss == "msle":
                return keras.losses.MeanSquaredLogarithmicError()
            return keras.losses.MeanSquaredError()

        if not self.multi_output:
            return one()
        outputs = [self.target, *self.metadata["extra_targets"], "aux"]
        unknown = sorted(set(self.loss_weights) - set(outputs))
        if unknown:
            raise ValueError(f"RegressionTask.loss_weights names {unknown}; the outputs are {outputs}.")
        return MultiOutputLoss({o: one() for o in outputs}, {o: self.loss_weights.get(o, 1.0) for o in outputs})

    def compile_kwargs(self, loss_fn: keras.losses.Loss) -> dict:
        """The multi-output model compiles with Keras's per-output losses and weights."""
        return loss_fn.compile_kwargs() if self.multi_output else super().compile_kwargs(loss_fn)

    def build_metrics(self):
        """RMSE, MAE and R^2 of the target (of the target output, for the multi-output model)."""
        metrics = [keras.metrics.RootMeanSquaredError("rmse"), keras.metrics.MeanAbsoluteError("mae"),
                   keras.metrics.R2Score(name="r2")]
        return {self.target: metrics} if self.multi_output else metrics

    def build_optimizer(self) -> keras.optimizers.Optimizer:
        """AdamW (Adam when weight_decay is 0), with cosine decay when `decay_steps` is set."""
        learning_rate = self.learning_rate
        if self.decay_steps:
            learning_rate = keras.optimizers.schedules.CosineDecay(self.learning_rate, self.decay_steps)
        if self.weight_decay:
            optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=self.weight_decay)
            optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta", "embeddings"])
            return optimizer
        return keras.optimizers.Adam(learning_rate=learning_rate)

    def prediction_of_target(self, predictions) -> tf.Tensor:
        """The target's predictions [batch] from the model's output (a tensor, or the multi-output dict)."""
        output = predictions[self.target] if isinstance(predictions, dict) else predictions
        return tf.reshape(tf.cast(output, tf.float32), [-1])

