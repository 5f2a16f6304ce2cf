"""The Task interface: *what* a project trains, apart from *how* the loop runs (core/trainer.py).

A project subclasses `Task` and implements the `build_*` methods. Both training loops and the
evaluator build everything through `build_components`, so `fit`, the custom loop and `evaluate`
share one model, one loss object and one set of metric objects.

What a run needs besides its checkpoint (a vocabulary, a tokenizer, a fingerprint of its data) goes
through one pair of methods: the trainer calls `save_artifacts(model_dir)` before the first step, and
evaluate, export and predict build the Task with `from_model_dir(model_dir)`, as keras-hub's
`from_preset` builds a model from what its preset folder carries.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from core import checkpoints, distribute
from core.config import ConfigError, RunOptions

if TYPE_CHECKING:  # core.trainer imports this module
    from core.trainer import TrainConfig


class Task:
    """What a project trains. Subclass it and implement the `build_*` methods."""

    @classmethod
    def from_model_dir(cls, model_dir: str, **kwargs) -> Task:
        """The Task a trained run in `model_dir` was built as, for evaluate, export and predict.

        gin supplies the bindings (those binaries parse the run's operative_config.gin); a Task whose
        run keeps files in `save_artifacts` reads them back here, and says to train first when they are
        missing. `kwargs` go to the constructor.
        """
        return cls(**kwargs)

    def save_artifacts(self, model_dir: str) -> None:
        """Keeps in `model_dir` what the checkpoint's numbers mean besides the weights (the words of an
        embedding's rows, a tokenizer, a fingerprint of the data), or, when a resumed run finds them there,
        checks that this Task means the same. The trainer calls it before building the model."""

    def callbacks(self, config: TrainConfig) -> list[keras.callbacks.Callback]:
        """Callbacks the Task adds to training, after the trainer's own (e.g. thawing frozen embeddings)."""
        return []

    def build_model(self) -> keras.Model:
        """Returns a new, built Keras model (called inside the strategy scope)."""
        raise NotImplementedError

    def build_inputs(self, split: str, input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
        """Returns batches of `(features, labels)` for `split` ("train", "validation", "test").

        Under a strategy, `input_context` says which input pipeline this is and the batch size
        must be per replica: `input_context.get_per_replica_batch_size(global_batch_size)`.
        The training split should repeat forever; the others end.
        """
        raise NotImplementedError

    def build_loss(self) -> keras.losses.Loss:
        """Returns the loss; its `call` must give one value per example."""
        raise NotImplementedError

    def build_metrics(self) -> list[keras.metrics.Metric] | dict[str, list[keras.metrics.Metric]]:
        """Returns new metric objects, updated with `(labels, predictions)`.

        A multi-output model (dict outputs) returns `{output name: [metrics]}`; each is updated with that
        output's labels and predictions and reported as `<output>_<metric name>`, as `fit` names them.
        """
        return []

    def build_optimizer(self) -> keras.optimizers.Optimizer:
        """Returns the optimizer, learning-rate schedule included."""
        return keras.optimizers.Adam()

    def compile_kwargs(self, loss_fn: keras.losses.Loss) -> dict:
        """How the loss goes to `model.compile` (which `fit` trains with): by default as it is.

        A multi-output Task whose loss is a `core.losses.MultiOutputLoss` returns `loss_fn.compile_kwargs()`,
        Keras's own per-output form, so `fit` also logs `<output>_loss`; the custom loop calls the loss itself.
        """
        return {"loss": loss_fn}

    def train_step(self, inputs, model, optimizer, loss_fn, metrics) -> tf.Tensor:
        """One step on one replica's batch (custom loop); returns this replica's share of the mean loss."""
        features, labels = inputs
        with tf.GradientTape() as tape:
            predictions = model(features, training=True)
            loss = self.step_loss(loss_fn, labels, predictions, model)
            # mixed_float16: scale up so small gradients do not underflow; apply_gradients unscales.
            scaled_loss = optimizer.scale_loss(loss)
        variables = distribute.trainable_variables(model)  # the shards of a sharded variable
        gradients = tape.gradient(scaled_loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        update_metrics(metrics, labels, predictions)
        return loss

    def step_loss(self, loss_fn, labels, predictions, model) -> tf.Tensor:
        """This replica's share of the loss to minimise (custom loop): by default the global mean per example."""
        return replica_loss(per_example_loss(loss_fn, labels, predictions), model.losses)

    def evaluation_losses(self, loss_fn, labels, predictions) -> tf.Tensor:
        """The values whose mean is the reported loss: by default one per example."""
        return per_example_loss(loss_fn, labels, predictions)

    def validation_step(self, inputs, model, loss_fn, metrics) -> tf.Tensor:
        """Forward pass on one replica's batch; updates metrics, returns per-example losses.

        Regularization losses are added to every example, as `fit` adds them to its val_loss,
        so `val_loss` (what early stopping watches) means the same in both loops.
        """
        features, labels = inputs
        predictions = model(features, training=False)
        update_metrics(metrics, labels, predictions)
        losses = self.evaluation_losses(loss_fn, labels, predictions)
        if model.losses:
            losses += tf.cast(tf.add_n(model.losses), tf.float32)
        return losses


def artifact_path(model_dir: str, name: str, run_kind: str) -> str:
    """`model_dir/name`, a file a trained run keeps (`Task.save_artifacts`); says to train first when it is missing
    (`run_kind` names the run in the message: "transformer", "classifier")."""
    path = os.path.join(model_dir, name)
    if not os.path.exists(path):
        raise ConfigError(f"{path} not found: {model_dir} is not a trained {run_kind} run; train it first.")
    return path


def per_replica_batch_size(global_batch_size: int, input_context: tf.distribute.InputContext | None,
                           field: str) -> int:
    """The batch one input pipeline reads; `field` names the setting in the error when it does not divide."""
    if input_context is None:
        return global_batch_size
    if global_batch_size % input_context.num_replicas_in_sync:
        raise ConfigError(
            f"{field}={global_batch_size} is the global batch and must divide evenly over "
            f"{input_context.num_replicas_in_sync} replicas."
        )
    return input_context.get_per_replica_batch_size(global_batch_size)


def per_example_loss(loss_fn: keras.losses.Loss, labels, predictions) -> tf.Tensor:
    """The unreduced float32 loss of each example (a multi-output loss sums its weighted outputs)."""
    predictions = keras.tree.map_structure(lambda p: tf.cast(p, tf.float32), predictions)
    return tf.cast(loss_fn.call(labels, predictions), tf.float32)


def named_metrics(metrics) -> list[tuple[str, keras.metrics.Metric]]:
    """(reported name, metric) pairs of a Task's metrics: a list, or a dict of lists by output name."""
    if isinstance(metrics, dict):
        return [(f"{output}_{m.name}", m) for output, group in metrics.items() for m in group]
    return [(m.name, m) for m in metrics]


def update_metrics(metrics, labels, predictions) -> None:
    """Updates a Task's metrics; with a dict of metrics, each output's with that output's labels and predictions."""
    if isinstance(metrics, dict):
        for output, group in metrics.items():
            for metric in group:
                metric.update_state(labels[output], predictions[output])
    else:
        for metric in metrics:
            metric.update_state(labels, predictions)


def replica_loss(per_example: tf.Tensor, regularization_losses) -> tf.Tensor:
    """The loss one replica contributes, so that summing over replicas gives the global mean.

    `tf.nn.compute_average_loss` divides the per-example sum by the *global* batch size
    (per-replica batch x num_replicas_in_sync); dividing by the local batch instead would make
    the gradient N times too large once the replicas' gradients are summed.
    """
    loss = tf.nn.compute_average_loss(per_example)
    if regularization_losses:
        loss += tf.nn.scale_regularization_loss(tf.cast(tf.add_n(regularization_losses), tf.float32))
    return loss


@dataclasses.dataclass
class Components:
    """Everything built from a Task for one run, shared by both loops and the evaluator."""

    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    loss_fn: keras.losses.Loss
    metrics: list | dict  # a dict of lists by output name for a multi-output model
    step: tf.Variable  # global step: the training steps run so far, saved in every checkpoint
    checkpoint: tf.train.Checkpoint


def build_components(
    task: Task, strategy: tf.distribute.Strategy, options: RunOptions, steps_per_execution: int = 1,
    for_training: bool = True,
) -> Components:
    """Builds model, optimizer, loss and metrics under the strategy and compiles the model with them.

    `for_training=False` (evaluation) leaves the optimizer's slots unbuilt: a restore then skips the
    checkpoint's, which a parameter-server run keeps per shard and which evaluation has no use for.
    """
    with strategy.scope(), distribute.variable_scope(strategy):
        model = task.build_model()
        optimizer = task.build_optimizer()
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        loss_fn = task.build_loss()
        metrics = task.build_metrics()
        model.compile(
            optimizer=optimizer,
            **task.compile_kwargs(loss_fn),
            metrics=metrics,
            jit_compile=options.jit_compile,
            steps_per_execution=steps_per_execution,
        )
        if for_training:  # create slots now so a restore fills them at once
            optimizer.build(distribute.trainable_variables(model))
    # Not optimizer.iterations: a LossScaleOptimizer does not count the steps it skips.
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    # model.variables adds the random-seed states of layers such as Dropout to the weights. Keras does
    # not save them in checkpoints; without them a resumed run would draw the dropout masks of step 0 again.
    weights = {id(w) for w in model.weights}
    seeds = [v for v in model.variables if id(v) not in weights]
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step, **({"seeds": seeds} if seeds else {}))
    checkpoints.check_tracked(checkpoint, model)
    return Components(model, optimizer, loss_fn, metrics, step, checkpoint)
