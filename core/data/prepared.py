"""A prepared data folder: what every project's `prepare` writes and every Task reads.

    <data_dir>/metadata.json                    what the data is (class names, shapes, counts, ...)
    <data_dir>/<split>-00000-of-0000N.tfrecord  the records of each split (train, validation, test)

The readers here say which command writes a missing folder, so a user who skipped `prepare` is told
what to run rather than shown a traceback from inside tf.data.
"""

from __future__ import annotations

import glob
import inspect
import json
import os

import gin
import tensorflow as tf

from core.config import ConfigError, UserError


class DataError(UserError):
    """Unusable input data; the message names the file or folder and what was expected."""


def read_metadata(data_dir: str, prepare_command: str) -> dict:
    """The metadata.json `prepare` wrote into `data_dir`; names `prepare_command` when it is missing."""
    path = os.path.join(data_dir, "metadata.json")
    if not os.path.exists(path):
        raise DataError(f"{path} does not exist; prepare the data first:\n  {prepare_command}")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def split_files(data_dir: str, split: str, prepare_command: str, field: str) -> list[str]:
    """The TFRecord shards of one split, sorted. None is a config error: `field` is the binding that named
    `data_dir`, and `prepare_command` the command that writes the shards."""
    files = sorted(glob.glob(os.path.join(data_dir, f"{split}-*.tfrecord")))
    if not files:
        raise ConfigError(f"no {split}-*.tfrecord files in {data_dir}: run `{prepare_command}` first, or set {field}.")
    return files


def read_split(data_dir: str, split: str, feature_spec: dict, prepare_command: str, field: str) -> tf.data.Dataset:
    """The examples of one split parsed with `feature_spec`, one at a time, in file order (see `split_files`
    for the error when there are none, raised here, before anything is read)."""
    files = split_files(data_dir, split, prepare_command, field)
    return tf.data.TFRecordDataset(files).map(lambda record: tf.io.parse_single_example(record, feature_spec))


def shard(dataset: tf.data.Dataset, input_context: tf.distribute.InputContext | None) -> tf.data.Dataset:
    """This input pipeline's share of `dataset` (every n-th element) under a multi-worker strategy.

    Without an input context, or with one pipeline, the dataset is returned as it is. Shard before any
    shuffle or cache, so the pipelines split the same order and no element is read twice.
    """
    if input_context is None or input_context.num_input_pipelines == 1:
        return dataset
    return dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)


def _setting(configurable: str, name: str):
    """The value gin gives `configurable.name`: its binding, else the default in its signature."""
    try:
        with gin.config_scope(None):  # unscoped: inside a scope gin hands out a wrapper without the signature
            bound = gin.get_bindings(configurable, resolve_references=False)  # no macro is called
            function = gin.get_configurable(configurable)
    except ValueError as e:
        raise ConfigError(f"epoch_steps: no configurable {configurable!r} ({e}).") from e
    if name in bound:
        value = bound[name]
    else:
        parameter = inspect.signature(function).parameters.get(name)
        if parameter is None or parameter.default is inspect.Parameter.empty:
            raise ConfigError(f"epoch_steps: {configurable} has no {name} to read; set it, or set the steps by hand.")
        value = parameter.default
    if not isinstance(value, (str, int, list, tuple)):
        raise ConfigError(f"epoch_steps: {configurable}.{name} is bound to {value!r}; epoch_steps reads literal "
                          "values only (set the steps by hand).")
    return value


@gin.configurable
def epoch_steps(task: str = gin.REQUIRED, splits: tuple[str, ...] | None = None) -> int:
    """Training steps in one pass over a Task's prepared data, for gin: `EPOCH_STEPS = @epoch_steps()` with
    `epoch_steps.task = 'RegressionTask'`, so that a loop ("epoch" in the logs) is an epoch of whatever data
    the run trains on, not of the data the config was written for.

    Reads the Task's `data_dir` and `batch_size` (bindings or defaults) and the `metadata.json` counts of
    `splits` (default: the Task's `train_splits`, or "train"; a split's count may be per kind, as
    bert_similarity's are), and rounds rows / batch to the nearest multiple of
    TrainConfig.steps_per_execution (at least one), as the trainer requires of a loop.
    """
    data_dir, batch_size = _setting(task, "data_dir"), int(_setting(task, "batch_size"))
    if splits is None:
        try:
            splits = tuple(_setting(task, "train_splits"))
        except ConfigError:
            splits = ("train",)
    try:
        per_execution = int(_setting("TrainConfig", "steps_per_execution"))
    except ConfigError:  # no trainer in this binary (an export, say): the count alone
        per_execution = 1
    path = os.path.join(data_dir, "metadata.json")
    if not os.path.exists(path):
        # Not prepared (or not on this machine, for an export): the Task that reads the folder says what to run;
        # a binary that trains cannot get past it, so this count is never trained with.
        return per_execution
    with open(path, encoding="utf-8") as f:
        counts = json.load(f).get("counts", {})
    missing = [s for s in splits if s not in counts]
    if missing:
        raise DataError(f"epoch_steps: {path} has no count of {missing}; it counts {sorted(counts)}.")
    rows = sum(sum(c.values()) if isinstance(c, dict) else int(c) for c in (counts[s] for s in splits))
    return max(1, round(rows / batch_size / per_execution)) * per_execution


@gin.configurable
def train_steps(epochs: int = gin.REQUIRED, steps_per_epoch: int = gin.REQUIRED) -> int:
    """`epochs` loops of `steps_per_epoch` steps, for gin: `TRAIN_STEPS = @train_steps()` with
    `train_steps.steps_per_epoch = %EPOCH_STEPS` keeps a run's length in epochs on any data."""
    return int(epochs) * int(steps_per_epoch)
