"""The two training loops over one Task, and the plan of loops they run from a (resumed) step.

  fit     `model.fit` over "epochs" of `steps_per_loop` steps (two calls when the first loop is short).
  custom  `strategy.run(task.train_step)` inside a `tf.function` that runs `steps_per_execution`
          steps per call; the same Keras callbacks are driven by hand once per loop.

Both read the training batches from a TrainingStream: from any step on, the stream an uninterrupted
run reads.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import keras
import tensorflow as tf
from absl import logging
from tensorflow.python.eager import context

from core import distribute
from core.evaluation import PerWorkerSplit, make_evaluate_fn
from core.task import Components, Task, named_metrics

if TYPE_CHECKING:  # core.trainer imports this module
    from core.trainer import TrainConfig


@dataclasses.dataclass(frozen=True)
class Loop:
    """One loop of the plan: its index (fit's epoch), the step it starts at, and how many steps it runs."""

    index: int
    first_step: int
    steps: int


def loop_plan(start: int, config: TrainConfig) -> list[Loop]:
    """The loops from step `start` to `config.train_steps`; each ends at a multiple of steps_per_loop.

    A run resumed between two boundaries (after a Ctrl-C, or with another steps_per_loop) first runs
    a shorter loop up to the next boundary, so the step count stays exact.
    """
    plan, step = [], start
    while step < config.train_steps:
        index = step // config.steps_per_loop
        end = min((index + 1) * config.steps_per_loop, config.train_steps)
        plan.append(Loop(index, step, end - step))
        step = end
    return plan


class TrainingStream:
    """Builds the training batches from any step on, as the same stream an uninterrupted run reads.

    The pipeline is built again and skips what the steps before `first_step` consumed, so a resumed
    run neither replays its first batches nor depends on where it was stopped. Skipping re-reads those
    batches (about a second per thousand small batches); checkpointing the iterator instead would store
    tf.data's cache and shuffle buffer, often the whole dataset, in every checkpoint.

    A second build in one process (fit's call after a short first loop) must shuffle as the first did.
    tf.data draws the op seeds of `shuffle` from the global seed and a sequence that every random op
    advances, and a dataset iterated twice reshuffles, so each build starts that sequence where the
    first build found it. `tf.random.set_seed` would restart it too, but it also clears TensorFlow's
    eager kernel cache and so destroys resources that kernels own (the transformer's SentencePiece
    model); no public API saves the sequence, hence the private `_rng` of the eager context.
    """

    def __init__(self, task: Task, strategy: tf.distribute.Strategy):
        self.task, self.strategy = task, strategy
        rng = getattr(context.context(), "_rng", None)  # None without a global seed: nothing to repeat
        self._seed_state = rng.getstate() if rng is not None else None

    def from_step(self, first_step: int) -> tf.distribute.DistributedDataset:
        """The batches from step `first_step` on, for every replica."""
        if self._seed_state is not None:
            context.context()._rng.setstate(self._seed_state)

        def dataset_fn(input_context):
            dataset = self.task.build_inputs("train", input_context)
            batches_per_step = input_context.num_replicas_in_sync // input_context.num_input_pipelines
            return dataset.skip(first_step * batches_per_step) if first_step else dataset

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def per_worker(self, first_step: int) -> tf.distribute.experimental.coordinator.PerWorkerValues:
        """Under parameter servers: each worker's own stream, from about step `first_step` on.

        Every worker reads its share of the training split (the Task's input context names the worker
        as its input pipeline) with a whole global batch per step, as TensorFlow's guide to parameter
        server training does. The steps run asynchronously, so which worker ran how many of the first
        `first_step` steps is not recorded: each skips an equal share of them.
        """
        if self._seed_state is not None:
            context.context()._rng.setstate(self._seed_state)
        workers, replicas = distribute.num_workers(), self.strategy.num_replicas_in_sync  # replicas: per worker

        # The Task builds its pipeline in plain Python (branches on settings, file checks), also when it is
        # traced here: autograph would try to convert those calls, and warn about each it cannot.
        @tf.autograph.experimental.do_not_convert
        def dataset_fn(_):
            index = tf.distribute.coordinator.experimental_get_current_worker_index()
            input_context = tf.distribute.InputContext(num_input_pipelines=workers, input_pipeline_id=index,
                                                       num_replicas_in_sync=replicas)
            dataset = self.task.build_inputs("train", input_context)
            skip = first_step // workers * replicas  # a step takes a batch for each of the worker's replicas
            return dataset.skip(skip) if skip else dataset

        @tf.function
        def per_worker_dataset_fn():
            return self.strategy.distribute_datasets_from_function(dataset_fn)

        coordinator = tf.distribute.coordinator.ClusterCoordinator(self.strategy)  # the strategy's one coordinator
        return coordinator.create_per_worker_dataset(per_worker_dataset_fn)


def run_fit(model: keras.Model, config: TrainConfig, plan: list[Loop], stream: TrainingStream,
            train_ds: tf.distribute.DistributedDataset, eval_ds: tf.distribute.DistributedDataset,
            callbacks: list[keras.callbacks.Callback]) -> dict[str, float]:
    """Runs the plan with `model.fit` on `train_ds` (the stream from the plan's first step).

    fit's epochs all have `steps_per_epoch` steps, so a short first loop needs a call of its own; the
    call after it reads the stream again, from the step the short loop ended at.
    """
    calls = [plan[:1], plan[1:]] if plan[0].steps != config.steps_per_loop else [plan]
    logs = {}
    for group in filter(None, calls):
        if group[0].first_step != plan[0].first_step:
            train_ds = stream.from_step(group[0].first_step)
        history = model.fit(
            train_ds,
            epochs=group[0].index + len(group),
            initial_epoch=group[0].index,
            steps_per_epoch=group[0].steps,
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


def run_custom_loop(task: Task, strategy: tf.distribute.Strategy, parts: Components, config: TrainConfig,
                    plan: list[Loop], callbacks: list[keras.callbacks.Callback],
                    train_ds: tf.distribute.DistributedDataset, eval_ds: tf.distribute.DistributedDataset,
                    jit_compile: bool) -> dict[str, float]:
    """Runs the planned loops, driving the Keras callbacks by hand."""
    train_steps, train_loss = _train_function(task, strategy, parts, jit_compile)
    iterator = iter(train_ds)

    def advance(loop: Loop, done: int) -> int:
        # A tensor, so a shorter last execution (a short first loop) reuses the traced function.
        chunk = min(config.steps_per_execution, loop.steps - done)
        train_steps(iterator, tf.constant(chunk))
        return done + chunk

    return _run_plan(task, strategy, parts, config, plan, callbacks, train_loss, eval_ds, advance)


def run_coordinator_loop(task: Task, strategy: tf.distribute.Strategy, parts: Components, config: TrainConfig,
                         plan: list[Loop], callbacks: list[keras.callbacks.Callback],
                         train_ds: tf.distribute.experimental.coordinator.PerWorkerValues,
                         eval_ds: PerWorkerSplit) -> dict[str, float]:
    """The custom loop under ParameterServerStrategy: the chief schedules executions of `steps_per_execution`
    steps on whichever worker is free (`ClusterCoordinator.schedule`) and waits for them (`join`) a few
    times per loop, to report progress, and at its end, to evaluate, run the callbacks and checkpoint.

    A worker that fails mid-execution costs only that execution: the coordinator runs it again on another
    worker, and uses the failed one again once it is back (a restarted process, or a rescheduled pod).
    """
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    workers = distribute.num_workers()
    train_steps, train_loss = _train_function(task, strategy, parts, jit_compile=False)
    iterator = iter(train_ds)  # TrainingStream.per_worker

    def advance(loop: Loop, done: int) -> int:
        # Enough executions in flight to keep every worker busy between two progress reports, and about
        # ten reports per loop.
        executions = -(-loop.steps // config.steps_per_execution)
        for _ in range(max(4 * workers, -(-executions // 10))):
            if done == loop.steps:
                break
            chunk = min(config.steps_per_execution, loop.steps - done)
            coordinator.schedule(train_steps, args=(iterator, tf.constant(chunk)))
            done += chunk
        coordinator.join()
        return done

    return _run_plan(task, strategy, parts, config, plan, callbacks, train_loss, eval_ds, advance)


def _train_function(task: Task, strategy: tf.distribute.Strategy, parts: Components,
                    jit_compile: bool) -> tuple[tf.types.experimental.PolymorphicFunction, keras.metrics.Metric]:
    """f(iterator, num_steps), which runs `task.train_step` num_steps times under `strategy`, and the mean
    loss it adds to."""
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

    return train_steps, train_loss


def _run_plan(task: Task, strategy: tf.distribute.Strategy, parts: Components, config: TrainConfig,
              plan: list[Loop], callbacks: list[keras.callbacks.Callback], train_loss: keras.metrics.Metric,
              eval_ds, advance: Callable[[Loop, int], int]) -> dict[str, float]:
    """The loops of both custom loops: `advance(loop, done)` runs steps of `loop` from `done` on and returns the
    new count; after each call the progress bar and the callbacks hear of it, and at each loop's end the
    trainer's callbacks evaluate, write summaries and checkpoint."""
    model, metrics = parts.model, parts.metrics
    evaluate_fn = make_evaluate_fn(task, strategy, parts, config.eval_steps)
    callback_list = keras.callbacks.CallbackList(callbacks, model=model)
    callback_list.on_train_begin()
    logs = {}
    for loop in plan:
        callback_list.on_epoch_begin(loop.index)
        for _, m in [("loss", train_loss), *named_metrics(metrics)]:
            m.reset_state()
        progbar = keras.utils.Progbar(loop.steps, verbose=1 if sys.stdout.isatty() else 2)
        done = 0
        while done < loop.steps and not model.stop_training:
            done = advance(loop, done)
            logs = {"loss": float(train_loss.result())}
            progbar.update(done, list(logs.items()), finalize=False)
            callback_list.on_train_batch_end(done - 1, logs)
        logs.update({name: float(m.result()) for name, m in named_metrics(metrics)})
        logs.update({f"val_{k}": v for k, v in evaluate_fn(eval_ds).items()})
        progbar.update(done, list(logs.items()), finalize=True)
        callback_list.on_epoch_end(loop.index, logs)
        if model.stop_training:
            logging.info("Stopping early after loop %d.", loop.index)
            break
    callback_list.on_train_end(logs)
    return logs
