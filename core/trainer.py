"""Training and evaluation over a Task, with Keras `fit` or a custom GradientTape loop.

*What* a model computes lives in a `Task` (model, inputs, loss, metrics, optimizer, and the per-replica
train and validation steps). *How* the loop runs lives here and in core/loops.py. Both loops use the
same Task objects:

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
import math
import os
import shutil
from collections.abc import Sequence

import gin
import keras
import tensorflow as tf
from absl import logging

from core import board, checkpoints, distribute, evaluation, loops, run_lock
from core import callbacks as callbacks_lib
from core.config import FLAGS, ConfigError, RunOptions, UserError, error_summary, save_run_config
from core.evaluation import format_results
from core.task import Components, Task, build_components

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
    average_checkpoints: int = 1  # > 1: at the end, the mean weights of this many newest checkpoints are
    # written beside them (checkpoints/averaged-<step>/), and evaluate and export restore those
    early_stopping_patience: int = 0  # loops without improvement of `monitor`; 0 disables
    reduce_lr_on_plateau_patience: int = 0  # 0 disables; needs a constant learning rate
    reduce_lr_factor: float = 0.5
    monitor: str = "val_loss"
    csv_log: bool = True
    terminate_on_nan: bool = True

    def __post_init__(self):
        for name in ("train_steps", "steps_per_loop", "steps_per_execution", "max_checkpoints",
                     "average_checkpoints", "early_stopping_patience", "reduce_lr_on_plateau_patience"):
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
        if not 1 <= self.average_checkpoints <= min(self.max_checkpoints, self.num_loops):
            raise ConfigError(
                f"TrainConfig.average_checkpoints={self.average_checkpoints}: must be >= 1 and at most "
                f"TrainConfig.max_checkpoints={self.max_checkpoints} and the run's {self.num_loops} loop(s) "
                "(one checkpoint per loop).")
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
        # Keras 3 keeps the schedule in the private `_learning_rate` (`learning_rate` reads its value at the
        # current step); tests/test_trainer.py pins the attribute, so an upgrade that renames it fails there.
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


def _write_average(config: TrainConfig, model: keras.Model, model_dir: str, out_dir: str,
                   only_if_missing: bool = False) -> None:
    """The mean weights of the newest `config.average_checkpoints` checkpoints, written by the chief."""
    if config.average_checkpoints == 1 or out_dir != model_dir:
        return
    if only_if_missing and checkpoints.newest_average(model_dir):
        return
    path = checkpoints.write_average(model, model_dir, config.average_checkpoints)
    logging.info("Wrote the mean weights of the newest %d checkpoints to %s; evaluate and export use them.",
                 config.average_checkpoints, path)


def train(
    task: Task,
    *,
    options: RunOptions,
    config: TrainConfig | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict[str, float]:
    """Trains (or resumes training) `task` into `options.model_dir` to `config.train_steps`; returns the last
    loop's logs (empty when the run had already finished).

    Only one run at a time may train into a model dir (a second one fails at once, naming the first).
    The Task's own `callbacks(config)`, then `callbacks`, run after the trainer's (checkpoint, summaries,
    ...) in either loop.
    """
    config = config or TrainConfig()
    strategy = distribute.create_strategy(options.strategy, options.tpu)
    # Under several workers only the chief writes into the model dir, so only the chief takes the lock.
    lock = run_lock.hold_model_dir(options.model_dir) if distribute.is_chief(strategy) else contextlib.nullcontext()
    with lock:
        # Every worker: each needs what the Task keeps (a tokenizer), and the writes are atomic and alike.
        task.save_artifacts(options.model_dir)
        return _train(task, strategy, options, config, (*task.callbacks(config), *callbacks))


def _stopped(step: int, loss: float, manager) -> callbacks_lib.TrainingInterrupted:
    """What a Ctrl-C at `step` ends with: a checkpoint there, unless the weights went non-finite."""
    if not math.isfinite(loss):
        return callbacks_lib.TrainingInterrupted(
            step, f"not saved, the loss is {loss}; the newest checkpoint is {manager.latest_checkpoint}")
    path = checkpoints.save(manager, step)
    return callbacks_lib.TrainingInterrupted(step, f"saved {path}; run the same command to resume from there")


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    """How a run's loop runs once the Keras 3 limits below are applied; `changes` says what changed and why."""

    loop: str  # "fit" or "custom"
    fit_steps_per_execution: int  # what fit is compiled with (the custom loop uses TrainConfig's)
    jit_compile: bool
    changes: tuple[str, ...] = ()


def loop_settings(config: TrainConfig, strategy: tf.distribute.Strategy, jit_compile: bool) -> LoopSettings:
    """TrainConfig.loop, steps_per_execution and --jit_compile, changed where Keras 3 cannot run them under
    `strategy`; each change comes with the reason, which the trainer logs as a warning."""
    loop, steps, changes = config.loop, config.steps_per_execution, []
    replicas = strategy.num_replicas_in_sync
    if loop == "fit" and distribute.is_multi_worker(strategy):
        changes.append("TrainConfig.loop='fit' cannot run under MultiWorkerMirroredStrategy in Keras 3 "
                       "(keras-team/keras#20585); using the custom loop instead.")
        loop = "custom"
    if loop == "fit" and distribute.is_parameter_server(strategy):
        changes.append("TrainConfig.loop='fit' cannot run under ParameterServerStrategy in Keras 3 (its fit has no "
                       "ClusterCoordinator path); using the custom loop, driven by a ClusterCoordinator, instead.")
        loop = "custom"
    if jit_compile and distribute.is_parameter_server(strategy):
        changes.append("--jit_compile is ignored under ParameterServerStrategy: XLA cannot compile a step whose "
                       "variables live on other machines (the parameter servers).")
        jit_compile = False
    if loop == "fit" and replicas > 1 and steps > 1:
        changes.append("Keras 3 fit fails with steps_per_execution > 1 on several replicas (keras-team/keras#19246); "
                       "running fit with steps_per_execution=1. The custom loop has no such limit.")
        steps = 1
    if jit_compile and replicas > 1:
        changes.append(f"--jit_compile is ignored on {replicas} replicas: Keras 3 fit fails to XLA-compile a step "
                       "that holds the cross-replica gradient reduction, and both loops are kept alike.")
        jit_compile = False
    return LoopSettings(loop, steps, jit_compile, tuple(changes))


def _train(task: Task, strategy: tf.distribute.Strategy, options: RunOptions, config: TrainConfig,
           extra_callbacks: Sequence[keras.callbacks.Callback]) -> dict[str, float]:
    settings = loop_settings(config, strategy, options.jit_compile)
    for change in settings.changes:
        logging.warning(change)
    loop, fit_steps_per_execution = settings.loop, settings.fit_steps_per_execution
    options = dataclasses.replace(options, jit_compile=settings.jit_compile)
    out_dir = distribute.write_dir(options.model_dir, strategy)
    if distribute.is_parameter_server(strategy):
        # The chief reads and writes every checkpoint file: the parameter servers need no access to the model dir.
        checkpoints.route_io_through("/job:chief/replica:0/task:0/device:CPU:0")
    parts = build_components(task, strategy, options, fit_steps_per_execution)
    # Every worker restores the chief's newest checkpoint (a shared filesystem in a real cluster),
    # so all replicas start from the same state.
    restored_from = checkpoints.resume(parts.checkpoint, options.model_dir, writer=distribute.is_chief(strategy))
    manager = tf.train.CheckpointManager(
        parts.checkpoint, checkpoints.checkpoint_dir(out_dir), max_to_keep=config.max_checkpoints)
    start = int(parts.step.numpy())
    if distribute.is_multi_worker(strategy):
        distribute.check_same_start(strategy, start, restored_from, options.model_dir)
    if start >= config.train_steps:
        logging.info("Already trained to step %d (train_steps=%d); nothing to do.", start, config.train_steps)
        _write_average(config, parts.model, options.model_dir, out_dir, only_if_missing=True)
        return {}
    plan = loops.loop_plan(start, config)
    if loop == "fit" and plan[0].steps % fit_steps_per_execution:
        raise ConfigError(
            f"the checkpoint is at step {start}, so the first loop runs {plan[0].steps} steps to reach a multiple of "
            f"TrainConfig.steps_per_loop={config.steps_per_loop}, which fit cannot do in executions of "
            f"TrainConfig.steps_per_execution={fit_steps_per_execution}: use a steps_per_execution that "
            f"divides {plan[0].steps}, or TrainConfig.loop='custom'."
        )
    logging.info(
        "%s at step %d; loop=%s, %d replica(s), model_dir=%s",
        "Resumed" if restored_from else "Starting", start, loop, strategy.num_replicas_in_sync, options.model_dir,
    )
    if start:
        logging.info("Continuing the data stream: the input pipeline skips the batches of the first %d steps.", start)

    stream = loops.TrainingStream(task, strategy)
    eval_ds = evaluation.eval_dataset(task, strategy, "validation", config.eval_steps)
    parameter_server = distribute.is_parameter_server(strategy)
    with callbacks_lib.stop_at_step_on_interrupt(enabled=not distribute.is_multi_worker(strategy)) as interrupt:
        counter = callbacks_lib.StepCounter(parts.step, interrupt)
        callbacks = [counter, *_callbacks(config, parts, out_dir, manager), *extra_callbacks]
        try:
            train_ds = stream.per_worker(start) if parameter_server else stream.from_step(start)
            save_run_config(out_dir)  # after the datasets are built, so their configurables are recorded too
            board.write_run_config(out_dir, start, gin.operative_config_str(), FLAGS.flags_into_string())
            if parameter_server:
                try:
                    logs = loops.run_coordinator_loop(task, strategy, parts, config, plan, callbacks, train_ds, eval_ds)
                except tf.errors.UnavailableError as e:  # a lost worker is replaced; a lost server is not
                    raise UserError(
                        f"a task of the cluster stopped answering ({error_summary(e)}). A parameter server's "
                        "variables are lost with it: start the servers again and run the same command, which "
                        f"resumes from {manager.latest_checkpoint or 'the start (no checkpoint yet)'}.") from e
            elif loop == "fit":
                logs = loops.run_fit(parts.model, config, plan, stream, train_ds, eval_ds, callbacks)
            else:
                logs = loops.run_custom_loop(task, strategy, parts, config, plan, callbacks, train_ds, eval_ds,
                                             options.jit_compile)
        except callbacks_lib.TrainingInterrupted as stop:
            raise _stopped(stop.step, counter.loss, manager) from None
        if interrupt.requested:  # pressed during the last loop's evaluation or save: say so, exit 130
            raise _stopped(int(parts.step.numpy()), counter.loss, manager)
    logs.pop("step", None)
    logging.info("Finished at step %d: %s", int(parts.step.numpy()), format_results(logs))
    _write_average(config, parts.model, options.model_dir, out_dir)
    if out_dir != options.model_dir:
        shutil.rmtree(out_dir, ignore_errors=True)
    return logs
