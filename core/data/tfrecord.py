"""Write `tf.train.Example` records in shards, and read them back as a fast tf.data pipeline.

A *feature spec* declares each field once, as for `tf.io.parse_example`:

    spec = {"image": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}

`write_shards` turns Python/NumPy values into records with that spec and `make_dataset` parses them
back in batches (one vectorised `parse_example` per batch is much cheaper than one per record).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import tensorflow as tf
from absl import logging

from core.config import UserError

FeatureSpec = Mapping[str, tf.io.FixedLenFeature | tf.io.VarLenFeature]


class RecordFileError(UserError):
    """A record file is missing, corrupt or truncated; the message names the file."""


def shard_paths(prefix: str, num_shards: int) -> list[str]:
    """File names of the shards under `prefix`: prefix-00000-of-00004.tfrecord, ..."""
    return [f"{prefix}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]


def _feature(value, spec, name: str) -> tf.train.Feature:
    dtype = spec.dtype
    if dtype == tf.string:
        values = [value] if isinstance(value, bytes | str) else list(value)
        values = [v.encode() if isinstance(v, str) else bytes(v) for v in values]
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    array = np.asarray(value).reshape(-1)
    if dtype == tf.int64:
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"feature {name!r}: spec says int64 but got {array.dtype} values.")
        return tf.train.Feature(int64_list=tf.train.Int64List(value=array.astype(np.int64)))
    if dtype == tf.float32:
        return tf.train.Feature(float_list=tf.train.FloatList(value=array.astype(np.float32)))
    raise ValueError(f"feature {name!r}: dtype {dtype!r} is not one of tf.string, tf.int64, tf.float32.")


def serialize_example(values: Mapping[str, object], spec: FeatureSpec) -> bytes:
    """One `tf.train.Example`, serialized; raises ValueError naming a missing or mistyped field."""
    missing = set(spec) - set(values)
    if missing:
        raise ValueError(f"example is missing features {sorted(missing)}; the spec declares {sorted(spec)}.")
    features = {name: _feature(values[name], spec[name], name) for name in spec}
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def write_shards(
    examples: Iterable[Mapping[str, object]],
    spec: FeatureSpec,
    prefix: str,
    num_shards: int = 4,
) -> list[str]:
    """Writes examples round-robin into `num_shards` files and returns their paths.

    Each shard is written under a temporary name and renamed only after every shard is complete,
    so an interrupted write never leaves files that look finished.
    """
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    paths = shard_paths(prefix, num_shards)
    tmp_paths = [f"{p}.tmp-{os.getpid()}" for p in paths]
    writers = [tf.io.TFRecordWriter(p) for p in tmp_paths]
    count = 0
    try:
        for count, values in enumerate(examples, start=1):
            writers[(count - 1) % num_shards].write(serialize_example(values, spec))
    except BaseException:
        for w, p in zip(writers, tmp_paths):
            w.close()
            os.remove(p)
        raise
    for w in writers:
        w.close()
    for tmp, final in zip(tmp_paths, paths):
        os.replace(tmp, final)
    logging.info("Wrote %d examples to %d shards at %s-*", count, num_shards, prefix)
    return paths


def resolve_files(file_pattern: str | list[str]) -> list[str]:
    """Expands a glob (or list of globs) into sorted files; raises RecordFileError if none match."""
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted(f for p in patterns for f in glob.glob(p))
    if not files:
        raise RecordFileError(f"no record files match {patterns}.")
    return files


def count_records(files: list[str]) -> int:
    """Reads every file once, checking record framing and CRCs; names the first bad file.

    tf.data reports a corrupt record without the file it came from, so pipelines call this up
    front (it reads at hundreds of MB/s) to turn a mid-training DataLossError into a clear error.
    """
    total = 0
    for path in files:
        try:
            # Eagerly even while a tf.function is traced: under parameter servers the chief traces the
            # workers' pipelines, so it reads (and checks) their files too.
            with tf.init_scope():
                total += int(tf.data.TFRecordDataset(path).reduce(np.int64(0), lambda n, _: n + 1))
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError, tf.errors.InvalidArgumentError) as e:
            raise RecordFileError(
                f"{path}: corrupt or truncated TFRecord file ({e.message.splitlines()[0]}); "
                "delete it and write the records again."
            ) from e
    return total


def make_dataset(
    file_pattern: str | list[str],
    spec: FeatureSpec,
    batch_size: int,
    *,
    map_fn: Callable[[dict[str, tf.Tensor]], object] | None = None,
    shuffle: bool = False,
    repeat: bool = False,
    cache: bool = False,
    shuffle_buffer: int = 10_000,
    seed: int | None = None,
    drop_remainder: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    verify: bool = True,
) -> tf.data.Dataset:
    """Returns batches parsed from the record files, ready to feed `fit` or a custom loop.

    Order of operations and why:
      files -> shard per input pipeline (multi-worker) -> interleave reads (parallel I/O)
      -> cache serialized records (each epoch after the first reads memory, not disk)
      -> shuffle records -> repeat -> batch -> parse_example on the whole batch (vectorised)
      -> map_fn on the batch (decode, augment; parallel) -> prefetch (overlap with training).
    `batch_size` is per input pipeline: under a strategy pass
    `input_context.get_per_replica_batch_size(global_batch_size)`.
    """
    files = resolve_files(file_pattern)
    if verify:
        count_records(files)
    pipelines = input_context.num_input_pipelines if input_context is not None else 1
    # Each input pipeline (one per worker) reads its own share: whole files when there are enough
    # of them, else every n-th record.
    shard_files = pipelines > 1 and len(files) >= pipelines
    shard_records = pipelines > 1 and not shard_files
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shard_files:
        ds = ds.shard(pipelines, input_context.input_pipeline_id)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed)
    ds = ds.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 4),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if shard_records:
        ds = ds.shard(pipelines, input_context.input_pipeline_id)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(lambda records: tf.io.parse_example(records, spec), num_parallel_calls=tf.data.AUTOTUNE)
    if map_fn is not None:
        ds = ds.map(map_fn, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
