"""A prepared data folder: what every project's `prepare` writes and every Task reads.

    <data_dir>/metadata.json                    what the data is (class names, shapes, counts, ...)
    <data_dir>/<split>-00000-of-0000N.tfrecord  the records of each split (train, validation, test)

The readers here say which command writes a missing folder, so a user who skipped `prepare` is told
what to run rather than shown a traceback from inside tf.data.
"""

from __future__ import annotations

import glob
import json
import os

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
