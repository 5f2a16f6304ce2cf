"""Training and evaluation over a Task, with Keras `fit` or a custom GradientTape loop.

*What* a model computes lives in a `Task` (model, inputs, loss, metrics, optimizer, and the per-replica
train and validation steps). *How* the loop runs lives here. Both loops use the same Task objects:

  fit     model.compile(loss, metrics) + model.fit over "epochs" of `steps_per_loop` steps.
  custom  `strategy.run(task.train_step)` inside a `tf.function` that runs `steps_per_execution`
          steps per call; the same Keras callbacks are driven by hand once per loop.

After every loop of `steps_per_loop` steps: evaluate, write summaries, save a checkpoint. The global
step is `optimizer.iterations`, saved with the model, so a restarted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys

import gin
import keras
import tensorflow as tf
from absl import logging

from core import callbacks as callbacks_lib
from core import distribute
from core.config import ConfigError, RunOptions, save_run_config

LOOPS = ("fit", "custom")


class Task:
    """What a project trains. Subclass it and implement the `build_*` methods.

    `build_inputs` returns batches of `(features, labels)`; under a strategy it receives an
    `input_context` and must return the per-replica batch size for that pipeline.
    """

    def build_model(self) -> keras.Model:
        raise NotImplementedError

    def build_inputs(self, split: str, input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
        raise NotImplementedError

    def build_loss(self) -> keras.losses.Loss:
        raise NotImplementedError

    def build_metrics(self) -> list[keras.metrics.Metric]:
        return []

    def build_optimizer(self) -> keras.optimizers.Optimizer:
        return keras.optimizers.Adam()

    def train_step(self, inputs, model, optimizer, loss_fn, metrics) -> tf.Tensor:
        """One step on one replica's batch; returns this replica's share of the mean loss."""
        features, labels = inputs
        with tf.GradientTape() as tape:
            predictions = model(features, training=True)
            loss = replica_loss(loss_fn, labels, predictions, model.losses)
            # mixed_float16: scale up so small gradients do not underflow; apply() unscales.
            scaled_loss = optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        for metric in metrics:
            metric.update_state(labels, predictions)
        return loss

    def validation_step(self, inputs, model, loss_fn, metrics) -> tf.Tensor:
        """Forward pass on one replica's batch; updates metrics and returns the per-example losses."""
        features, labels = inputs
        predictions = model(features, training=False)
        for metric in metrics:
            metric.update_state(labels, predictions)
        return tf.cast(loss_fn.call(labels, tf.cast(predictions, tf.float32)), tf.float32)


def replica_loss(loss_fn: keras.losses.Loss, labels, predictions, regularization_losses) -> tf.Tensor:
    """The loss one replica contributes, so that summing over replicas gives the global mean.

    `tf.nn.compute_average_loss` divides the per-example sum by the *global* batch size
    (per-replica batch x num_replicas_in_sync); dividing by the local batch instead would make
    the gradient N times too large once the replicas' gradients are summed.
    """
    per_example = tf.cast(loss_fn.call(labels, tf.cast(predictions, tf.float32)), tf.float32)
    loss = tf.nn.compute_average_loss(per_example)
    if regularization_losses:
        loss += tf.nn.scale_regularization_loss(tf.cast(tf.add_n(regularization_losses), tf.float32))
    return loss


@gin.configurable
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How the loop runs. Bad combinations raise ConfigError naming the fields involved."""

    loop: str = "fit"
    train_steps: int = 1000
    steps_per_loop: int = 100
    steps_per_execution: int = 1
    eval_steps: int | None = None  # None: the whole validation split each loop
    max_checkpoints: int = 3
    early_stopping_patience: int = 0  # loops without improvement of `monitor`; 0 disables
    reduce_lr_on_plateau_patience: int = 0  # 0 disables; needs a constant learning rate
    reduce_lr_factor: float = 0.5
    monitor: str = "val_loss"
    csv_log: bool = True
    terminate_on_nan: bool = True

    def __post_init__(self):
        if self.loop not in LOOPS:
            raise ConfigError(f"TrainConfig.loop={self.loop!r}: expected one of {LOOPS}.")
        if self.train_steps <= 0 or self.steps_per_loop <= 0 or self.steps_per_execution <= 0:
            raise ConfigError("TrainConfig.train_steps, steps_per_loop and steps_per_execution must be > 0.")
        if self.train_steps % self.steps_per_loop:
            raise ConfigError(
                f"TrainConfig.train_steps={self.train_steps} must be a multiple of "
                f"TrainConfig.steps_per_loop={self.steps_per_loop}: checkpoints fall at loop ends, "
                "which is what makes a resumed run continue exactly where it stopped."
            )
        if self.steps_per_loop % self.steps_per_execution:
            raise ConfigError(
                f"TrainConfig.steps_per_loop={self.steps_per_loop} must be a multiple of "
                f"TrainConfig.steps_per_execution={self.steps_per_execution}."
            )

    @property
    def num_loops(self) -> int:
        return self.train_steps // self.steps_per_loop


@dataclasses.dataclass
class _Built:
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    loss_fn: keras.losses.Loss
    metrics: list
    checkpoint: tf.train.Checkpoint


def _build(task: Task, strategy: tf.distribute.Strategy, options: RunOptions, steps_per_execution: int = 1) -> _Built:
    with strategy.scope():
        model = task.build_model()
        optimizer = task.build_optimizer()
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        loss_fn = task.build_loss()
        metrics = task.build_metrics()
        model.compile(
            optimizer=optimizer,
            loss=loss_fn,
            metrics=metrics,
            jit_compile=options.jit_compile,
            steps_per_execution=steps_per_execution,
        )
        optimizer.build(model.trainable_variables)  # create slots now so a restore fills them at once
    return _Built(model, optimizer, loss_fn, metrics, tf.train.Checkpoint(model=model, optimizer=optimizer))


def checkpoint_dir(model_dir: str) -> str:
    return os.path.join(model_dir, "checkpoints")


def _callbacks(config: TrainConfig, built: _Built, out_dir: str, manager) -> list[keras.callbacks.Callback]:
    step = built.optimizer.iterations
    result = [callbacks_lib.CheckpointManagerCallback(manager, step), callbacks_lib.ScalarSummaries(out_dir, step)]
    if config.terminate_on_nan:
        result.append(keras.callbacks.TerminateOnNaN())
    if config.early_stopping_patience:
        result.append(keras.callbacks.EarlyStopping(
            monitor=config.monitor, patience=config.early_stopping_patience, restore_best_weights=False))
    if config.reduce_lr_on_plateau_patience:
        optimizer = getattr(built.optimizer, "inner_optimizer", built.optimizer)
        if isinstance(optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            raise ConfigError(
                "TrainConfig.reduce_lr_on_plateau_patience needs a constant learning rate, but the "
                "task's optimizer uses a LearningRateSchedule; use one or the other."
            )
        result.append(keras.callbacks.ReduceLROnPlateau(
            monitor=config.monitor, factor=config.reduce_lr_factor, patience=config.reduce_lr_on_plateau_patience))
    if config.csv_log:
        result.append(keras.callbacks.CSVLogger(os.path.join(out_dir, "training_log.csv"), append=True))
    return result


def train(
    task: Task,
    options: RunOptions,
    config: TrainConfig | None = None,
    extra_callbacks: tuple[keras.callbacks.Callback, ...] = (),
) -> dict[str, float]:
    """Trains (or resumes training) to `config.train_steps`; returns the last loop's logs.

    `extra_callbacks` run after the trainer's own (checkpoint, summaries, ...) in either loop.
    """
    config = config or TrainConfig()
    strategy = distribute.create_strategy(options.strategy, options.tpu)
    loop = config.loop
    if loop == "fit" and distribute.is_multi_worker(strategy):
        logging.warning(
            "TrainConfig.loop='fit' cannot run under MultiWorkerMirroredStrategy in Keras 3 "
            "(keras-team/keras#20585); using the custom loop instead."
        )
        loop = "custom"
    fit_steps_per_execution = config.steps_per_execution
    if loop == "fit" and strategy.num_replicas_in_sync > 1 and fit_steps_per_execution > 1:
        logging.warning(
            "Keras 3 fit fails with steps_per_execution > 1 on several replicas (keras-team/keras#19246); "
            "running fit with steps_per_execution=1. The custom loop has no such limit."
        )
        fit_steps_per_execution = 1
    out_dir = distribute.write_dir(options.model_dir, strategy)
    built = _build(task, strategy, options, fit_steps_per_execution)
    manager = tf.train.CheckpointManager(built.checkpoint, checkpoint_dir(out_dir), max_to_keep=config.max_checkpoints)
    if distribute.is_chief(strategy):
        restored_from = manager.restore_or_initialize()
    else:  # workers restore the chief's checkpoint so every replica starts from the same state
        latest = tf.train.latest_checkpoint(checkpoint_dir(options.model_dir))
        restored_from = latest and built.checkpoint.restore(latest)
    start = int(built.optimizer.iterations.numpy())
    logging.info(
        "%s at step %d; loop=%s, %d replica(s), model_dir=%s",
        "Resumed" if restored_from else "Starting", start, loop, strategy.num_replicas_in_sync, options.model_dir,
    )
    train_ds = strategy.distribute_datasets_from_function(lambda ctx: task.build_inputs("train", ctx))
    eval_ds = strategy.distribute_datasets_from_function(lambda ctx: task.build_inputs("validation", ctx))
    save_run_config(out_dir)
    if start >= config.train_steps:
        logging.info("Already trained to step %d (train_steps=%d); nothing to do.", start, config.train_steps)
        return {}
    callbacks = [*_callbacks(config, built, out_dir, manager), *extra_callbacks]
    if loop == "fit":
        history = built.model.fit(
            train_ds,
            epochs=config.num_loops,
            initial_epoch=start // config.steps_per_loop,
            steps_per_epoch=config.steps_per_loop,
            validation_data=eval_ds,
            validation_steps=config.eval_steps,
            callbacks=callbacks,
            verbose=1 if sys.stdout.isatty() else 2,
        )
        logs = {k: v[-1] for k, v in history.history.items()}
    else:
        logs = _custom_loop(task, strategy, built, config, callbacks, train_ds, eval_ds, start, options.jit_compile)
    logging.info("Finished at step %d: %s", int(built.optimizer.iterations.numpy()), _format(logs))
    if out_dir != options.model_dir:
        shutil.rmtree(out_dir, ignore_errors=True)
    return logs


def _custom_loop(task, strategy, built, config, callbacks, train_ds, eval_ds, start, jit_compile):
    model, optimizer, loss_fn, metrics = built.model, built.optimizer, built.loss_fn, built.metrics
    with strategy.scope():
        train_loss = keras.metrics.Mean("loss")

    def replica_step(inputs):
        return task.train_step(inputs, model, optimizer, loss_fn, metrics)

    if jit_compile and strategy.num_replicas_in_sync == 1:
        # XLA compiles the whole step when no cross-replica reduction sits inside it.
        replica_step = tf.function(replica_step, jit_compile=True)
    elif jit_compile:
        logging.warning("--jit_compile is ignored by the custom loop on %d replicas: XLA cannot compile "
                        "the cross-replica gradient reduction inside the step.", strategy.num_replicas_in_sync)

    @tf.function
    def train_steps(iterator, num_steps):
        for _ in tf.range(num_steps):
            per_replica_loss = strategy.run(replica_step, args=(next(iterator),))
            train_loss.update_state(strategy.reduce("SUM", per_replica_loss, axis=None))

    evaluate_fn = make_evaluate_fn(task, strategy, built, config.eval_steps)
    callback_list = keras.callbacks.CallbackList(callbacks, model=model)
    iterator = iter(train_ds)
    callback_list.on_train_begin()
    logs = {}
    chunk = tf.constant(config.steps_per_execution)
    for loop_index in range(start // config.steps_per_loop, config.num_loops):
        callback_list.on_epoch_begin(loop_index)
        for m in [train_loss, *metrics]:
            m.reset_state()
        progbar = keras.utils.Progbar(config.steps_per_loop, verbose=1 if sys.stdout.isatty() else 2)
        done = 0
        while done < config.steps_per_loop and not model.stop_training:
            train_steps(iterator, chunk)
            done += config.steps_per_execution
            logs = {"loss": float(train_loss.result())}
            progbar.update(done, list(logs.items()), finalize=False)
            callback_list.on_train_batch_end(done - 1, logs)
        logs.update({m.name: float(m.result()) for m in metrics})
        logs.update({f"val_{k}": v for k, v in evaluate_fn(eval_ds).items()})
        progbar.update(done, list(logs.items()), finalize=True)
        callback_list.on_epoch_end(loop_index, logs)
        if model.stop_training:
            logging.info("Stopping early after loop %d.", loop_index)
            break
    callback_list.on_train_end(logs)
    return logs


def make_evaluate_fn(task: Task, strategy, built: _Built, eval_steps: int | None):
    """Returns f(distributed_dataset) -> {"loss": ..., metric names: ...} over `eval_steps` batches or all."""
    with strategy.scope():
        eval_loss = keras.metrics.Mean("loss")
    model, loss_fn, metrics = built.model, built.loss_fn, built.metrics
    limit = eval_steps if eval_steps is not None else 2**31 - 1

    def replica_step(inputs):
        # Metric updates inside the replica context are summed over replicas and workers.
        eval_loss.update_state(task.validation_step(inputs, model, loss_fn, metrics))

    @tf.function
    def run(dataset):
        # get_next_as_optional lets every worker agree on where the data ends, even when their
        # shards hold different numbers of batches (a plain StopIteration would hang the others).
        iterator = iter(dataset)
        for _ in tf.range(limit):
            optional = iterator.get_next_as_optional()
            if not optional.has_value():
                break
            strategy.run(replica_step, args=(optional.get_value(),))

    def evaluate(dataset) -> dict[str, float]:
        for m in [eval_loss, *metrics]:
            m.reset_state()
        run(dataset)
        return {"loss": float(eval_loss.result()), **{m.name: float(m.result()) for m in metrics}}

    return evaluate


def evaluate(
    task: Task, options: RunOptions, split: str = "test", checkpoint: str | None = None
) -> tuple[dict[str, float], list[keras.metrics.Metric]]:
    """Restores the newest checkpoint of `options.model_dir` (or `checkpoint`) and evaluates on `split`.

    Returns the results and the metric objects (for anything beyond a scalar, such as a confusion matrix).
    """
    strategy = distribute.create_strategy(options.strategy, options.tpu)
    built = _build(task, strategy, options)
    if checkpoint:
        tf.train.Checkpoint(model=built.model).restore(checkpoint).expect_partial()
    else:
        checkpoint = restore_latest(built.model, options.model_dir)
    logging.info("Evaluating %s on split %r", checkpoint, split)
    dataset = strategy.distribute_datasets_from_function(lambda ctx: task.build_inputs(split, ctx))
    return make_evaluate_fn(task, strategy, built, None)(dataset), built.metrics


def restore_latest(model: keras.Model, model_dir: str) -> str:
    """Restores the model's weights from the newest checkpoint in model_dir; returns its path."""
    latest = tf.train.latest_checkpoint(checkpoint_dir(model_dir))
    if latest is None:
        raise FileNotFoundError(
            f"no checkpoint in {checkpoint_dir(model_dir)}: train first with the same --model_dir."
        )
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    return latest


def _format(logs: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in logs.items())
