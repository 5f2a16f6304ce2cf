"""Prepared tables: CSV rows (table.py) to TFRecord shards and back, and the input pipeline.

    prepare()      CSV -> {train,validation,test}-*.tfrecord + metadata.json (columns, counts, target stats)
    make_dataset() shards -> batches of ({column: [batch, 1]}, target) for the Task
    load_arrays()  a split as in-memory columns (the baselines and the searches read them)
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os

import numpy as np
import tensorflow as tf
from absl import logging

from core.config import ConfigError
from core.data import prepared, tfrecord
from core.files import write_text_atomic

from .table import SPLITS, TableError, TableSpec, read_csv_text, read_table, split_rows

KINDS = ("numeric", "integer", "string")  # integer and string columns are categorical
# Each kind's dtype in the shards, in the models' inputs and in the export's signature.
DTYPES = {"numeric": tf.float32, "integer": tf.int64, "string": tf.string}


def feature_spec(features: dict[str, str], targets: list[str]) -> dict[str, tf.io.FixedLenFeature]:
    """The tf.train.Example spec of the shards: one value per column."""
    return {**{c: tf.io.FixedLenFeature([1], DTYPES[k]) for c, k in features.items()},
            **{t: tf.io.FixedLenFeature([1], tf.float32) for t in targets}}


def prepare(spec: TableSpec, output_dir: str, num_shards: int = 2) -> dict:
    """Reads and checks the CSV, splits it, writes the shards and then metadata.json; returns the metadata.

    Earlier shards in `output_dir` are removed first and metadata.json is written last, so a folder with
    metadata.json always holds a complete, matching set of shards.
    """
    text, name = read_csv_text(spec.source)
    table = read_table(spec, text, name)
    rows = split_rows(table, spec.split)
    empty = [s for s, index in rows.items() if not len(index)]
    if empty and spec.split.split_column:
        raise TableError(f"{name}: no row has {' or '.join(repr(s) for s in empty)} in column "
                         f"{spec.split.split_column!r} (SplitSpec.split_column); every split needs rows.")
    if empty:
        unit = f"values of column {spec.split.column!r}" if spec.split.column else "rows"
        raise ConfigError(f"SplitSpec.fractions={spec.split.fractions} leave the {', '.join(empty)} split(s) of {name} "
                          f"empty ({len(next(iter(table.values())))} rows); give them more {unit}.")
    for stale in glob.glob(os.path.join(output_dir, "gbt_baseline.json")):
        os.remove(stale)  # scored on the data being replaced
    for old in glob.glob(os.path.join(output_dir, "*.tfrecord")) + glob.glob(os.path.join(output_dir, "metadata.json")):
        os.remove(old)
    record_spec = feature_spec(spec.features, spec.targets)
    for split, index in rows.items():
        columns = {c: table[c][index] for c in record_spec}
        examples = ({c: [columns[c][i]] for c in record_spec} for i in range(len(index)))
        tfrecord.write_shards(examples, record_spec, os.path.join(output_dir, split), num_shards)
    train = rows["train"]
    metadata = {
        "source": spec.source,
        "features": spec.features,
        "target": spec.target,
        "extra_targets": list(spec.extra_targets),
        "split": dataclasses.asdict(spec.split),
        "counts": {s: int(len(i)) for s, i in rows.items()},
        "num_shards": num_shards,
        # Output layers start at the training targets' mean and scale, so no head starts 100x off.
        "target_stats": {t: {"mean": float(table[t][train].mean()), "std": float(table[t][train].std() or 1.0)}
                         for t in spec.targets},
    }
    write_text_atomic(os.path.join(output_dir, "metadata.json"), json.dumps(metadata, indent=2))
    logging.info("Prepared %s from %s into %s", metadata["counts"], name, output_dir)
    return metadata


def read_metadata(data_dir: str) -> dict:
    """The metadata.json `prepare` wrote; says how to prepare when it is missing."""
    return prepared.read_metadata(data_dir, "python -m projects.wide_deep.prepare "
                                  f"--gin_file=projects/wide_deep/configs/data_bikeshare.gin --output_dir={data_dir}")


def make_dataset(data_dir: str, split: str | tuple[str, ...], batch_size: int, *, training: bool,
                 seed: int | None = None, input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """Batches of ({feature column: [batch, 1]}, {target column: [batch, 1]}) from the shards of `split`
    (or of several splits, e.g. ("train", "validation") to retrain a chosen model on both).

    The tables are small, so the serialized records are cached in memory after the first pass.
    """
    splits = (split,) if isinstance(split, str) else tuple(split)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise ValueError(f"splits must be among {SPLITS}, got {split!r}.")
    metadata = read_metadata(data_dir)
    targets = [metadata["target"], *metadata["extra_targets"]]
    spec = feature_spec(metadata["features"], targets)

    def to_pair(batch):
        return {c: batch[c] for c in metadata["features"]}, {t: batch[t] for t in targets}

    return tfrecord.make_dataset(
        [os.path.join(data_dir, f"{s}-*.tfrecord") for s in splits], spec, batch_size, map_fn=to_pair, shuffle=training,
        repeat=training, cache=True, seed=seed, drop_remainder=training, input_context=input_context)


def load_arrays(data_dir: str, split: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A whole split in memory as ({column: [n]}, {target: [n]}) NumPy arrays (adapting layers, baselines)."""
    features, targets = {}, {}
    for batch_features, batch_targets in make_dataset(data_dir, split, 4096, training=False):
        for out, batch in ((features, batch_features), (targets, batch_targets)):
            for k, v in batch.items():
                out.setdefault(k, []).append(v.numpy()[:, 0])
    return ({k: np.concatenate(v) for k, v in features.items()}, {k: np.concatenate(v) for k, v in targets.items()})


def code_matrices(data_dir: str, unseen: float) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every split as one float64 matrix, for estimators that take one (scikit-learn's): numeric columns as they
    are, categories as their index in the sorted training vocabulary, `unseen` for a value training never saw.

    Returns (metadata, {split: [n, feature columns]}, {split: target [n]}).
    """
    metadata = read_metadata(data_dir)
    kinds = metadata["features"]
    splits = {s: load_arrays(data_dir, s) for s in SPLITS}
    matrices = {}
    for split, (features, _) in splits.items():
        columns = []
        for name, kind in kinds.items():
            if kind == "numeric":
                columns.append(features[name].astype(np.float64))
                continue
            vocabulary = np.unique(splits["train"][0][name])
            codes = np.searchsorted(vocabulary, features[name]).clip(0, len(vocabulary) - 1)
            columns.append(np.where(vocabulary[codes] == features[name], codes, unseen))
        matrices[split] = np.stack(columns, axis=1)
    return metadata, matrices, {s: targets[metadata["target"]] for s, (_, targets) in splits.items()}
