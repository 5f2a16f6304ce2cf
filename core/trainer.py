"""Training and evaluation over a Task, with Keras `fit` or a custom GradientTape loop.

*What* a model computes lives in a `Task` (model, inputs, loss, metrics, optimizer, and the per-replica
train and validation steps). *How* the loop runs lives here. Both loops use the same Task objects:

  fit     model.compile(loss, metrics) + model.fit over "epochs" of `steps_per_loop` steps.
  custom  `strategy.run(task.train_step)` inside a `tf.function` that runs `steps_per_execution`
          steps per call; the same Keras callbacks are driven by hand once per loop.

After every loop of `steps_per_loop` steps: evaluate, write summaries, save a checkpoint (model,
optimizer, global step and the layers' random-seed states). A restarted run resumes at the exact step of
its newest readable checkpoint and continues the same stream of training batches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys

import gin
import keras
import tensorflow as tf
from absl import logging

from core import callbacks as callbacks_lib
from core import checkpoints, distribute, run_lock
from core.config import ConfigError, RunOptions, save_run_config
from core.evaluation import format_results, make_evaluate_fn
from core.task import Components, Task, build_components, named_metrics

LOOPS = ("fit", "custom")


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
        for name in ("train_steps", "steps_per_loop", "steps_per_execution", "max_checkpoints",
                     "early_stopping_patience", "reduce_lr_on_plateau_patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"TrainConfig.{name}={value!r}: expected an integer.")
        if self.eval_steps is not None and (not isinstance(self.eval_steps, int) or self.eval_steps <= 0):
            raise ConfigError(f"TrainConfig.eval_steps={self.eval_steps!r}: expected an integer > 0, or None.")
        if self.loop not in LOOPS:
            raise ConfigError(f"TrainConfig.loop={self.loop!r}: expected one of {LOOPS}.")
        if self.train_steps <= 0 or self.steps_per_loop <= 0 or self.steps_per_execution <= 0:
            raise ConfigError("TrainConfig.train_steps, steps_per_loop and steps_per_execution must be > 0.")
        if self.train_steps % self.steps_per_loop:
            raise ConfigError(
                f"TrainConfig.train_steps={self.train_steps} must be a multiple of "
                f"TrainConfig.steps_per_loop={self.steps_per_loop}: checkpoints fall at loop ends, so "
                "both loops stop, and resume, at the same step."
            )
        if self.eval_steps is not None and self.eval_steps % self.steps_per_execution:
            # fit runs validation in whole executions too, so it would evaluate more batches.
            raise ConfigError(
                f"TrainConfig.eval_steps={self.eval_steps} must be a multiple of "
                f"TrainConfig.steps_per_execution={self.steps_per_execution}, or None."
            )
        if self.max_checkpoints < 1:
            raise ConfigError(f"TrainConfig.max_checkpoints={self.max_checkpoints}: must be >= 1.")
        if not 0.0 < self.reduce_lr_factor < 1.0:
            raise ConfigError(f"TrainConfig.reduce_lr_factor={self.reduce_lr_factor}: must be in (0, 1).")
        if self.steps_per_loop % self.steps_per_execution:
            raise ConfigError(
                f"TrainConfig.steps_per_loop={self.steps_per_loop} must be a multiple of "
                f"TrainConfig.steps_per_execution={self.steps_per_execution}."
            )

    @property
    def num_loops(self) -> int:
        """Loops of `steps_per_loop` steps in the whole run (fit calls them epochs)."""
        return self.train_steps // self.steps_per_loop


def _callbacks(config: TrainConfig, parts: Components, out_dir: str, manager) -> list[keras.callbacks.Callback]:
    result = [
        callbacks_lib.CheckpointManagerCallback(manager, parts.step),
        callbacks_lib.ScalarSummaries(out_dir, parts.step),
    ]
    if config.terminate_on_nan:
        result.append(keras.callbacks.TerminateOnNaN())
    if config.early_stopping_patience:
        result.append(keras.callbacks.EarlyStopping(
            monitor=config.monitor, patience=config.early_stopping_patience, restore_best_weights=False))
    if config.reduce_lr_on_plateau_patience:
        optimizer = getattr(parts.optimizer, "inner_optimizer", parts.optimizer)
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


def loop_plan(start: int, config: TrainConfig) -> list[tuple[int, int]]:
    """(loop index, steps) of each loop from step `start` on: every loop ends at a multiple of steps_per_loop.

    A run resumed between two boundaries (after a Ctrl-C, or with another steps_per_loop) first runs
    a shorter loop up to the next boundary, so the step count stays exact.
    """
    plan, step = [], start
    while step < config.train_steps:
        index = step // config.steps_per_loop
        end = min((index + 1) * config.steps_per_loop, config.train_steps)
        plan.append((index, end - step))
        step = end
    return plan


def train(
    task: Task,
    options: RunOptions,
    config: TrainConfig | None = None,
    extra_callbacks: tuple[keras.callbacks.Callback, ...] = (),
) -> dict[str, float]:
    """Trains (or resumes training) to `config.train_steps`; returns the last loop's logs.

    Only one run at a time may train into a model dir (a second one fails at once, naming the first).
    `extra_callbacks` run after the trainer's own (checkpoint, summaries, ...) in either loop.
    """
    config = config or TrainConfig()
    strategy = distribute.create_strategy(options.strategy, options.tpu)
    # Under several workers only the chief writes into the model dir, so only the chief takes the lock.
    lock = run_lock.hold_model_dir(options.model_dir) if distribute.is_chief(strategy) else contextlib.nullcontext()
    with lock:
        return _train(task, strategy, options, config, extra_callbacks)


def _train(task, strategy, options, config, extra_callbacks) -> dict[str, float]:
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
    if options.jit_compile and strategy.num_replicas_in_sync > 1:
        logging.warning(
            "--jit_compile is ignored on %d replicas: Keras 3 fit fails to XLA-compile a step that "
            "holds the cross-replica gradient reduction, and both loops are kept alike.",
            strategy.num_replicas_in_sync,
        )
        options = dataclasses.replace(options, jit_compile=False)
    out_dir = distribute.write_dir(options.model_dir, strategy)
    parts = build_components(task, strategy, options, fit_steps_per_execution)
    # Every worker restores the chief's newest checkpoint (a shared filesystem in a real cluster),
    # so all replicas start from the same state.
    restored_from = checkpoints.resume(parts.checkpoint, options.model_dir, writer=distribute.is_chief(strategy))
    manager = tf.train.CheckpointManager(
        parts.checkpoint, checkpoints.checkpoint_dir(out_dir), max_to_keep=config.max_checkpoints)
    start = int(parts.step.numpy())
    if start >= config.train_steps:
        logging.info("Already trained to step %d (train_steps=%d); nothing to do.", start, config.train_steps)
        return {}
    plan = loop_plan(start, config)
    if loop == "fit" and plan[0][1] % fit_steps_per_execution:
        raise ConfigError(
            f"the checkpoint is at step {start}, so the first loop runs {plan[0][1]} steps to reach a multiple of "
            f"TrainConfig.steps_per_loop={config.steps_per_loop}, which fit cannot do in executions of "
            f"TrainConfig.steps_per_execution={fit_steps_per_execution}: use a steps_per_execution that "
            f"divides {plan[0][1]}, or TrainConfig.loop='custom'."
        )
    logging.info(
        "%s at step %d; loop=%s, %d replica(s), model_dir=%s",
        "Resumed" if restored_from else "Starting", start, loop, strategy.num_replicas_in_sync, options.model_dir,
    )
    if start:
        logging.info("Continuing the data stream: the input pipeline skips the batches of the first %d steps.", start)

    def train_dataset(first_step: int):
        return _train_dataset(task, strategy, first_step, options.seed)

    eval_ds = strategy.distribute_datasets_from_function(lambda ctx: task.build_inputs("validation", ctx))
    with callbacks_lib.stop_at_step_on_interrupt(enabled=not distribute.is_multi_worker(strategy)) as interrupt:
        callbacks = [callbacks_lib.StepCounter(parts.step, interrupt),
                     *_callbacks(config, parts, out_dir, manager), *extra_callbacks]
        try:
            if loop == "fit":
                logs = _fit(parts.model, config, plan, train_dataset, eval_ds, callbacks, out_dir)
            else:
                train_ds = train_dataset(start)
                save_run_config(out_dir)  # after the datasets are built, so their configurables are recorded too
                logs = _custom_loop(task, strategy, parts, config, plan, callbacks, train_ds, eval_ds,
                                    options.jit_compile)
        except callbacks_lib.TrainingInterrupted as stop:
            path = callbacks_lib.save(manager, stop.step)
            raise callbacks_lib.TrainingInterrupted(
                stop.step, f"saved {path}; run the same command to resume from there") from None
    logs.pop("step", None)
    logging.info("Finished at step %d: %s", int(parts.step.numpy()), format_results(logs))
    if out_dir != options.model_dir:
        shutil.rmtree(out_dir, ignore_errors=True)
    return logs


def _train_dataset(task: Task, strategy, first_step: int, seed: int) -> tf.distribute.DistributedDataset:
    """The training batches from step `first_step` on: the same stream an uninterrupted run reads.

    The pipeline is rebuilt from its seed and skips what the steps before `first_step` consumed, so a
    resumed run neither replays its first batches nor depends on where it was stopped. Skipping re-reads
    those batches (about a second per thousand small batches); checkpointing the iterator instead would
    store tf.data's cache and shuffle buffer, often the whole dataset, in every checkpoint.
    """
    # Seed-derived op seeds depend on how many random ops were made before; reset them so the shuffle
    # order depends on --seed alone, not on what was built (or restored) before the pipeline.
    tf.random.set_seed(seed)

    def dataset_fn(input_context):
        dataset = task.build_inputs("train", input_context)
        batches_per_step = input_context.num_replicas_in_sync // input_context.num_input_pipelines
        return dataset.skip(first_step * batches_per_step) if first_step else dataset

    return strategy.distribute_datasets_from_function(dataset_fn)


def _fit(model, config, plan, train_dataset, eval_ds, callbacks, out_dir) -> dict[str, float]:
    """Runs the plan with `model.fit`: one call for a short first loop, one for the full loops after it."""
    calls = [plan[:1], plan[1:]] if plan[0][1] != config.steps_per_loop else [plan]
    logs = {}
    for loops in filter(None, calls):
        first_index, steps = loops[0]
        first_step = first_index * config.steps_per_loop + (config.steps_per_loop - steps)
        train_ds = train_dataset(first_step)
        save_run_config(out_dir)  # after the datasets are built, so their configurables are recorded too
        history = model.fit(
            train_ds,
            epochs=first_index + len(loops),
            initial_epoch=first_index,
            steps_per_epoch=steps,
            validation_data=eval_ds,
            validation_steps=config.eval_steps,
            callbacks=callbacks,
            shuffle=False,  # the Task's dataset shuffles; fit would only warn that it cannot
            verbose=1 if sys.stdout.isatty() else 2,
        )
        logs = {k: v[-1] for k, v in history.history.items()}
        if model.stop_training:
            break
    return logs


def _custom_loop(task, strategy, parts: Components, config, plan, callbacks, train_ds, eval_ds, jit_compile):
    """Runs the planned loops, driving the Keras callbacks by hand."""
    model, optimizer, loss_fn, metrics = parts.model, parts.optimizer, parts.loss_fn, parts.metrics
    with strategy.scope():
        train_loss = keras.metrics.Mean("loss")

    def replica_step(inputs):
        return task.train_step(inputs, model, optimizer, loss_fn, metrics)

    if jit_compile:
        replica_step = tf.function(replica_step, jit_compile=True)

    @tf.function
    def train_steps(iterator, num_steps):
        for _ in tf.range(num_steps):
            per_replica_loss = strategy.run(replica_step, args=(next(iterator),))
            train_loss.update_state(strategy.reduce("SUM", per_replica_loss, axis=None))

    evaluate_fn = make_evaluate_fn(task, strategy, parts, config.eval_steps)
    callback_list = keras.callbacks.CallbackList(callbacks, model=model)
    iterator = iter(train_ds)
    callback_list.on_train_begin()
    logs = {}
    for loop_index, steps in plan:
        callback_list.on_epoch_begin(loop_index)
        for _, m in [("loss", train_loss), *named_metrics(metrics)]:
            m.reset_state()
        progbar = keras.utils.Progbar(steps, verbose=1 if sys.stdout.isatty() else 2)
        done = 0
        while done < steps and not model.stop_training:
            # A tensor, so a shorter last execution (a short first loop) reuses the traced function.
            chunk = min(config.steps_per_execution, steps - done)
            train_steps(iterator, tf.constant(chunk))
            done += chunk
            logs = {"loss": float(train_loss.result())}
            progbar.update(done, list(logs.items()), finalize=False)
            callback_list.on_train_batch_end(done - 1, logs)
        logs.update({name: float(m.result()) for name, m in named_metrics(metrics)})
        logs.update({f"val_{k}": v for k, v in evaluate_fn(eval_ds).items()})
        progbar.update(done, list(logs.items()), finalize=True)
        callback_list.on_epoch_end(loop_index, logs)
        if model.stop_training:
            logging.info("Stopping early after loop %d.", loop_index)
            break
    callback_list.on_train_end(logs)
    return logs
