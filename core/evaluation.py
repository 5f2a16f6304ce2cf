"""Evaluation over a Task: the distributed eval loop used after every training loop and by `evaluate`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import flags, logging

from core import checkpoints, distribute
from core.config import ConfigError, RunOptions, UserError
from core.task import Components, Task, build_components, named_metrics


def define_flags() -> None:
    """The flags of every project's `evaluate` binary: --split and --checkpoint."""
    flags.DEFINE_enum("split", "test", ["validation", "test"], "Which held-out split to evaluate.")
    checkpoints.define_checkpoint_flag("evaluate")


def check_one_checkpoint_source(checkpoint: str | None, ensemble_with) -> None:
    """--checkpoint and --ensemble_with (evaluate's mean of several model dirs) exclude each other."""
    if checkpoint and ensemble_with:
        raise UserError("--checkpoint picks a checkpoint of one model dir; --ensemble_with scores each model dir's "
                        "newest (or averaged) one. Give one or the other.")


def report_name(split: str, checkpoint: str | None) -> str:
    """`split`, or `split_ckpt-500` for a checkpoint given by --checkpoint: what the report files are named
    after, so evaluating an older checkpoint does not overwrite the newest one's report."""
    return f"{split}_{os.path.basename(checkpoint)}" if checkpoint else split


def make_evaluate_fn(
    task: Task, strategy: tf.distribute.Strategy, parts: Components, eval_steps: int | None = None
) -> Callable[[tf.distribute.DistributedDataset], dict[str, float]]:
    """Returns f(distributed dataset) -> {"loss": ..., <metric name>: ...} over `eval_steps` batches or all
    (under parameter servers, f takes the per-worker dataset of `eval_dataset`)."""
    with strategy.scope():
        eval_loss = keras.metrics.Mean("loss")
    limit = eval_steps if eval_steps is not None else 2**31 - 1

    def replica_step(inputs):
        eval_loss.update_state(task.validation_step(inputs, parts.model, parts.loss_fn, parts.metrics))

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

    @tf.function
    def run_counted(iterator, batches):
        # A counted loop: a per-worker lookup table inside a branch of the loop (the end-of-data test above)
        # is not fed to the function on the worker, a TensorFlow limit.
        for _ in tf.range(batches):
            strategy.run(replica_step, args=(next(iterator),))

    def evaluate(dataset) -> dict[str, float]:
        named = named_metrics(parts.metrics)
        for metric in [eval_loss, *(m for _, m in named)]:
            metric.reset_state()
        if isinstance(dataset, PerWorkerSplit):
            # One worker evaluates the whole split and the chief waits for it: the chief cannot run the model
            # itself, since the lookup tables a model builds under the strategy live on the workers.
            coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)  # the strategy's one coordinator
            batches = min(dataset.batches, limit)
            coordinator.schedule(run_counted, args=(iter(dataset.dataset), tf.constant(batches)))
            coordinator.join()
        else:
            run(dataset)
        return {"loss": float(eval_loss.result()), **{name: float(m.result()) for name, m in named}}

    return evaluate


@dataclasses.dataclass(frozen=True)
class PerWorkerSplit:
    """A held-out split under parameter servers: a dataset on every worker, and its number of batches."""

    dataset: object  # a tf.distribute.coordinator.PerWorkerValues of datasets
    batches: int


def eval_dataset(task: Task, strategy: tf.distribute.Strategy, split: str, steps: int | None = None):
    """The batches of `split` that the function of `make_evaluate_fn` reads under `strategy` (`steps`: at most
    this many, TrainConfig.eval_steps; under parameter servers the chief counts them here)."""
    if distribute.is_parameter_server(strategy):  # a dataset on every worker, each the whole split
        coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
        local = task.build_inputs(split, None)
        if steps is not None:
            local = local.take(steps)
        batches = int(local.cardinality())
        if batches == tf.data.INFINITE_CARDINALITY:
            raise ConfigError(f"{type(task).__name__}.build_inputs({split!r}) never ends: set TrainConfig.eval_steps "
                              "to evaluate that many batches.")
        if batches < 0:  # unknown (after a filter): count them once
            batches = int(local.reduce(np.int64(0), lambda n, _: n + 1))
        build = tf.autograph.experimental.do_not_convert(lambda: task.build_inputs(split, None))  # plain Python
        return PerWorkerSplit(coordinator.create_per_worker_dataset(build), batches)
    return strategy.distribute_datasets_from_function(lambda ctx: task.build_inputs(split, ctx))


def evaluate(
    task: Task, options: RunOptions, split: str = "test", checkpoint: str | None = None
) -> tuple[dict[str, float], list[keras.metrics.Metric]]:
    """Restores the newest checkpoint of `options.model_dir` (or `checkpoint`) and evaluates on `split`.

    Returns the results and the metric objects (for anything beyond a scalar, such as a confusion matrix).
    """
    results, metrics, _ = evaluate_checkpoint(task, options, split, checkpoint)
    return results, metrics


def evaluate_checkpoint(
    task: Task, options: RunOptions, split: str = "test", checkpoint: str | None = None
) -> tuple[dict[str, float], list[keras.metrics.Metric], str]:
    """`evaluate`, plus the path of the checkpoint it restored (the newest that reads, or its average, when
    `checkpoint` is None): what a report names and TensorBoard keys by step."""
    strategy = distribute.create_strategy(options.strategy, options.tpu)
    parts = build_components(task, strategy, options, for_training=False)
    checkpoint = checkpoints.restore_model(parts.model, options.model_dir, checkpoint)
    logging.info("Evaluating %s on split %r", checkpoint, split)
    dataset = eval_dataset(task, strategy, split)
    return make_evaluate_fn(task, strategy, parts)(dataset), parts.metrics, checkpoint


def format_results(results: dict[str, float]) -> str:
    """`name=value` pairs on one line, for logs and terminal output."""
    return " ".join(f"{k}={v:.4f}" for k, v in results.items())
