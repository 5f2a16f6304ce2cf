"""Results over seeds and splits: run every (row, split, seed) once, keep what it scored, write the table.

A project's `results.py` names its rows (the configs and the classical baseline), says how one run of a
row on one split with one seed is made (the same binaries a user runs) and which metrics it reports.
`collect` runs what is missing, in order, and keeps each finished run as one line of a JSON-lines file,
so a long job that is stopped resumes where it was and a finished one rewrites its table in seconds.
`core.results_table` turns the runs into the README's table (mean ± std and the worst run of every
metric, the headline metric per split where there are several) and puts it between the README's markers.

A stored run remembers its row's `spec` (what defines the row: config files, bindings). A row whose spec
has changed since its runs were stored is refused, not mixed with them: numbers made by another config
would silently enter its mean.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence

from absl import app, flags

from core.config import UserError
from core.files import write_text_atomic
from core.results_table import markdown_table, replace_block, split_table

flags.DEFINE_list("splits", None, "Split seeds to run (default: the project's table, e.g. 0-4).")
flags.DEFINE_list("seeds", None, "Training seeds per split (default: the project's table).")
flags.DEFINE_list("table_rows", None, "Rows to run and show, in order (default: the project's table).")
flags.DEFINE_multi_string("extra_row", [], "NAME=GIN_FILE: a further row trained from this gin file instead of "
                          "the default config (it may `include 'default.gin'` and change a few bindings).")
flags.DEFINE_string("work_dir", None, "Prepared splits, model dirs, logs and results.jsonl "
                    "(default: runs/<project>/results).")
flags.DEFINE_string("store", None, "The JSON-lines file of finished runs (default: <work_dir>/results.jsonl); "
                    "a project's committed results.jsonl holds the runs behind its README table.")
flags.DEFINE_bool("write_readme", False, "Write the table into the project's README, between its results markers.")
flags.DEFINE_bool("table_only", False, "Run nothing: the table of the runs already stored (the runs column says "
                  "how many each row has).")
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Metric:
    """A column of the table: the key in a run's results, and how to read and print it."""

    key: str
    label: str
    higher_is_better: bool
    percent: bool = False  # 0.9852 prints as 98.52
    digits: int = 2

    def format(self, value: float) -> str:
        return f"{100 * value if self.percent else value:.{self.digits}f}"


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the table: a config (or the baseline) run on every split and seed."""

    name: str         # the key of its runs in the store
    label: str        # what the README says it is
    spec: str         # what defines it; stored runs with another spec are refused
    seeded: bool = True  # False: deterministic given the split (one run per split, seed 0)
    gin_files: tuple[str, ...] = ()  # a config row's training configs
    ensemble_of: Row | None = None   # an ensemble row: the mean prediction of this row's models ...
    ensemble_seeds: tuple[int, ...] = ()  # ... trained with these seeds, on each split

    @property
    def tag(self) -> str:
        """A short name for its model dirs that changes with its spec: a changed config never resumes
        another config's checkpoints."""
        import hashlib

        return f"{self.name}-{hashlib.sha256(self.spec.encode()).hexdigest()[:10]}"


def config_row(name: str, label: str, gin_files: Sequence[str], also: Sequence[str] = ()) -> Row:
    """A row trained from `gin_files`; `also`: further files its runs read (another binary's config)."""
    return Row(name, label, gin_spec([*gin_files, *also]), gin_files=tuple(gin_files))


def ensemble_row(member: Row, seeds: Sequence[int], name: str | None = None) -> Row:
    """The row of `member`'s mean prediction over `seeds` per split: len(seeds) times its training cost.
    Named `<member>_ensemble` unless `name` is given."""
    seeds = tuple(seeds)
    label = f"{member.label}, mean prediction of seeds {', '.join(map(str, seeds))}"
    return Row(name or f"{member.name}_ensemble", label,
               f"{member.spec}, mean of seeds {seeds}", seeded=False, gin_files=member.gin_files,
               ensemble_of=member, ensemble_seeds=seeds)


@dataclasses.dataclass(frozen=True)
class Table:
    """What a project's results binary fills: its rows, splits, seeds, metrics and README block."""

    project: str
    rows: Sequence[Row]          # the README's rows, in order
    metrics: Sequence[Metric]    # the first is the headline
    splits: Sequence[int]
    seeds: Sequence[int]
    readme_block: str            # <!-- results:NAME --> in projects/<project>/README.md
    baseline: str | None = None  # a row name: the headline's mean is also given as a ratio to it
    extra_rows: Callable[[str, str], list[Row]] | None = None  # (name, gin file) -> the rows of an --extra_row
    fixed_splits: bool = False   # the data has one fixed test set: no --splits other than `splits`


def run_table(table: Table, make_run_fn: Callable[[str], Callable[[Row, int, int], dict]]) -> str:
    """The results binary's main: runs the flag-selected rows, splits and seeds, prints (and writes) the table.

    `make_run_fn(work_dir)` returns the function that makes one run of a row on a split with a seed.
    """
    known, extra_names = {row.name: row for row in table.rows}, []
    for item in FLAGS.extra_row:
        name, sep, path = item.partition("=")
        if not sep or not name or not os.path.isfile(path) or table.extra_rows is None or name in known:
            raise app.UsageError(f"--extra_row={item!r}: expected NAME=GIN_FILE with a new name and an existing "
                                 "file" + ("" if table.extra_rows else " (this project's rows take no gin file)"))
        extra = table.extra_rows(name, path)
        known.update({row.name: row for row in extra})
        extra_names += [row.name for row in extra]
    names = FLAGS.table_rows or [row.name for row in table.rows] + extra_names
    unknown = [name for name in names if name not in known]
    if unknown:
        raise app.UsageError(f"--table_rows: unknown row(s) {unknown}; expected some of {sorted(known)}")
    rows = [known[name] for name in names]
    try:
        splits = [int(s) for s in FLAGS.splits] if FLAGS.splits else list(table.splits)
        seeds = [int(s) for s in FLAGS.seeds] if FLAGS.seeds else list(table.seeds)
    except ValueError as e:
        raise app.UsageError(f"--splits and --seeds take integers: {e}") from e
    if table.fixed_splits and splits != list(table.splits):
        raise app.UsageError(f"--splits={FLAGS.splits}: {table.project}'s data has one fixed test set; "
                             f"expected --splits={','.join(map(str, table.splits))}")
    readme = os.path.join("projects", table.project, "README.md")
    if FLAGS.write_readme:  # checked before hours of training, not after
        if (splits, seeds) != (list(table.splits), list(table.seeds)):
            raise app.UsageError("--write_readme writes the README's table, of every split and seed: drop "
                                 "--splits and --seeds, or add --nowrite_readme to see a smaller table")
        replace_block(readme, table.readme_block, None)
    work_dir = FLAGS.work_dir or os.path.join("runs", table.project, "results")
    if FLAGS.table_only and FLAGS.store and not os.path.exists(FLAGS.store):
        raise UserError(f"--store={FLAGS.store}: no such file, so there are no runs to show")
    store = Store(FLAGS.store or os.path.join(work_dir, "results.jsonl"))
    if FLAGS.table_only:
        runs = {row.name: store.runs(row, splits, seeds) for row in rows}
    else:
        runs = collect(store, rows, splits, seeds, make_run_fn(work_dir))
    text = markdown_table(rows, runs, table.metrics, table.baseline if table.baseline in names else None)
    if len(splits) > 1:
        text += (f"\nPer split, {table.metrics[0].label}: mean ± std over the seeds run on it, or the one value "
                 "of a row with one run per split:\n\n" + split_table(rows, runs, table.metrics[0]))
    print(text)
    if FLAGS.write_readme:
        replace_block(readme, table.readme_block, text)
        print(f"Wrote the table into {readme}")
    return text


class Store:
    """The finished runs, one JSON object per line of `path`; a line is written only when its run is done."""

    def __init__(self, path: str):
        self.path = path
        self._runs: dict[tuple[str, int, int], dict] = {}
        if os.path.exists(path):
            with open(path) as f:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        run = json.loads(line)
                        key = (run["row"], int(run["split"]), int(run["seed"]))
                        run["spec"], run["metrics"]
                    except (ValueError, KeyError, TypeError) as e:
                        raise UserError(f"{path}, line {number}: expected a JSON object with row, split, seed, "
                                         f"spec and metrics ({e}); fix or delete the line") from e
                    self._runs[key] = run

    def get(self, row: Row, split: int, seed: int) -> dict | None:
        """The stored run, or None; a run stored with another spec of the row raises."""
        run = self._runs.get((row.name, split, seed))
        if run is not None and run["spec"] != row.spec:
            raise UserError(
                f"{self.path} holds runs of row {row.name!r} made with other settings:\n  stored: {run['spec']}\n"
                f"  now:    {row.spec}\nDelete its lines (or the file) to rerun the row, or use another work dir.")
        return run

    def put(self, row: Row, split: int, seed: int, metrics: dict, seconds: float) -> dict:
        run = {"row": row.name, "split": split, "seed": seed, "spec": row.spec, "metrics": metrics,
               "seconds": round(seconds, 1), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "a") as f:  # one line per run: a killed job loses at most the run it was in
            f.write(json.dumps(run, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._runs[(row.name, split, seed)] = run
        return run

    def keys(self) -> list[tuple[str, int, int]]:
        """(row name, split, seed) of every stored run, in the file's order."""
        return list(self._runs)

    def runs(self, row: Row, splits: Iterable[int], seeds: Iterable[int]) -> list[dict]:
        """The stored runs of `row` on these splits and seeds (seed 0 only for unseeded rows)."""
        seeds = list(seeds) if row.seeded else [0]
        found = [self.get(row, split, seed) for split in splits for seed in seeds]
        return [run for run in found if run is not None]


def collect(store: Store, rows: Sequence[Row], splits: Sequence[int], seeds: Sequence[int],
            run_fn: Callable[[Row, int, int], dict], log: Callable[[str], None] = print) -> dict[str, list[dict]]:
    """Runs every missing (row, split, seed) with `run_fn` (it returns the metrics) and returns all runs by row."""
    todo = [(row, split, seed) for split in splits for row in rows for seed in (seeds if row.seeded else [0])]
    missing = [job for job in todo if store.get(*job) is None]
    log(f"{len(todo) - len(missing)} of {len(todo)} runs already in {store.path}; {len(missing)} to run")
    for number, (row, split, seed) in enumerate(missing, 1):
        log(f"[{number}/{len(missing)}] {row.name}, split {split}, seed {seed}")
        start = time.perf_counter()
        metrics = run_fn(row, split, seed)
        run = store.put(row, split, seed, metrics, time.perf_counter() - start)
        log(f"[{number}/{len(missing)}] {row.name}, split {split}, seed {seed}: "
            + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
            + f" ({run['seconds']:.0f} s)")
    return {row.name: store.runs(row, splits, seeds) for row in rows}


def run_command(argv: Sequence[str], log_path: str) -> None:
    """Runs one binary of the project, its output appended to `log_path`; a failure raises with its tail."""
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(log_path, "a") as log:
        log.write(f"\n$ {' '.join(argv)}\n")
        log.flush()
        code = subprocess.run(list(argv), stdout=log, stderr=subprocess.STDOUT).returncode
    if code:
        with open(log_path) as f:
            tail = "".join(f.readlines()[-25:])
        raise RuntimeError(f"exit status {code} from\n  {' '.join(argv)}\nLast lines of {log_path}:\n{tail}")


TRAIN_SECONDS = "train_seconds.json"  # written into a model dir by `train_once` when its training finished


def train_once(run: Callable[[Sequence[str], str], None], argv: Sequence[str], log_path: str, model_dir: str) -> None:
    """Runs the `train` command `argv` into `model_dir` unless a finished run is there; records its wall time,
    and whether the command resumed an earlier attempt's checkpoints (then the time is of the rest only).

    A model dir with `eval_test.json` but no time (trained before times were kept) counts as finished.
    """
    if any(os.path.exists(os.path.join(model_dir, name)) for name in (TRAIN_SECONDS, "eval_test.json")):
        return
    checkpoints = os.path.join(model_dir, "checkpoints")
    resumed = os.path.isdir(checkpoints) and bool(os.listdir(checkpoints))  # its time covers only the rest
    start = time.perf_counter()
    run(argv, log_path)
    os.makedirs(model_dir, exist_ok=True)
    write_text_atomic(os.path.join(model_dir, TRAIN_SECONDS),
                      json.dumps({"seconds": round(time.perf_counter() - start, 1), "resumed": resumed}))


def train_budget(model_dir: str, baseline: str) -> float:
    """The wall time of the training in `model_dir` (made by `train_once`): the budget of a `baseline` trained
    for the same minutes. A training that was resumed timed only its last part, so it is refused."""
    path = os.path.join(model_dir, TRAIN_SECONDS)
    if not os.path.exists(path):
        raise UserError(f"{model_dir} has no {TRAIN_SECONDS}: {baseline}'s budget is the wall time of that "
                        "training; delete the folder to train it again with its time measured")
    found = read_json(path)
    if found.get("resumed"):
        raise UserError(f"{path}: that training was resumed from a checkpoint, so its time covers only its last "
                        f"part, not the budget {baseline} should get; delete {model_dir} to train it in one go")
    return float(found["seconds"])


def train_seconds(model_dirs: Sequence[str]) -> dict:
    """{"train_seconds": the summed training time of `model_dirs`}, or {} when one of them has none."""
    total = 0.0
    for model_dir in model_dirs:
        path = os.path.join(model_dir, TRAIN_SECONDS)
        if not os.path.exists(path):
            return {}
        total += read_json(path)["seconds"]
    return {"train_seconds": total}


def ensemble_report_is_current(path: str, model_dirs: Sequence[str]) -> bool:
    """True if the ensemble report at `path` exists, was made of exactly `model_dirs`, and is newer than the
    training of each (a member trained again since makes it stale)."""
    if not os.path.exists(path) or read_json(path).get("ensemble", {}).get("model_dirs") != list(model_dirs):
        return False
    trained = [os.path.join(d, TRAIN_SECONDS) for d in model_dirs]
    return all(os.path.getmtime(path) >= os.path.getmtime(t) for t in trained if os.path.exists(t))


class Runner:
    """The base of a project's Runner: makes one run of a row by running the project's binaries.

    `run(argv, log_path)` runs one binary (run_command; tests pass core.testing.FakeBinaries).
    """

    def __init__(self, work_dir: str, run: Callable[[Sequence[str], str], None] = None):
        self.work_dir, self.run = work_dir, run or run_command

    def log(self, split: int, name: str) -> str:
        return os.path.join(self.work_dir, "logs", f"split_{split}-{name}.log")

    def prepared(self, split: int, module: str, *args: str) -> str:
        """`<work_dir>/split_<split>/data`, made on first use by `module args --output_dir=...` (a `prepare`
        binary that writes metadata.json last)."""
        path = os.path.join(self.work_dir, f"split_{split}", "data")
        if not os.path.exists(os.path.join(path, "metadata.json")):
            self.run(python_module(module, *args, f"--output_dir={path}"), self.log(split, "prepare"))
        return path

    def trained(self, module: str, row: Row, split: int, seed: int, log: str, *args: str) -> str:
        """The model dir of config `row` trained by `module` with `seed` on the split (`args`: where its data
        is), trained on first use with its time recorded (`train_once`)."""
        model_dir = os.path.join(self.work_dir, f"split_{split}", f"{row.tag}-seed_{seed}")
        train_once(self.run, python_module(module, *(f"--gin_file={p}" for p in row.gin_files),
                                           f"--model_dir={model_dir}", f"--seed={seed}", *args), log, model_dir)
        return model_dir

    def evaluate(self, module: str, model_dir: str, log: str, keys: Sequence[str], ensemble_with: Sequence[str] = (),
                 timed: Sequence[str] = ()) -> dict:
        """{split_key: value} for `keys` of `module`'s eval_<split>.json on validation and test (of the mean of
        the models, with `ensemble_with`), and the training seconds of the `timed` dirs. A split scored before
        is read, not evaluated again (an ensemble's only if it is current)."""
        metrics, suffix = train_seconds(timed) if timed else {}, "_ensemble" if ensemble_with else ""
        for name in ("validation", "test"):
            path = os.path.join(model_dir, f"eval_{name}{suffix}.json")
            current = (ensemble_report_is_current(path, [model_dir, *ensemble_with]) if ensemble_with
                       else os.path.exists(path))
            if not current:
                self.run(python_module(module, f"--model_dir={model_dir}", f"--split={name}",
                                       *(f"--ensemble_with={d}" for d in ensemble_with)), log)
            report = read_json(path)
            metrics.update({f"{name}_{k}": report[k] for k in keys})
        return finite(metrics)


def python_module(module: str, *args: str) -> list[str]:
    """The argv that runs `python -m module args` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def finite(metrics: dict) -> dict:
    """`metrics` checked: every number finite (a NaN would make the whole row's mean NaN)."""
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"metric {key} is {value}")
    return metrics


def file_digest(*paths: str) -> str:
    """The first 12 hex digits of the sha256 of the files' contents: a spec for rows defined by code, not gin."""
    import hashlib

    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            digest.update(path.encode() + b"\0" + f.read() + b"\0")
    return digest.hexdigest()[:12]


def gin_spec(gin_files: Sequence[str], bindings: Sequence[str] = ()) -> str:
    """A row's spec from its gin files (and the files they include) and bindings: any edit of what they bind
    changes it. Comment lines and blank lines are left out, so a config's header can be brought up to date
    without making its stored runs look like runs of another config.

    `include` lines are followed as gin resolves them under core.config: the name as given (from the
    working directory) first, then beside the including file.
    """
    import hashlib

    from core.config import _INCLUDE

    digest = hashlib.sha256()
    seen: list[str] = []

    def add(path: str) -> None:
        if path in seen:
            return
        seen.append(path)
        with open(path) as f:
            text = f.read()
        bound = "\n".join(line.rstrip() for line in text.splitlines()
                           if line.strip() and not line.lstrip().startswith("#"))
        digest.update(path.encode() + b"\0" + bound.encode() + b"\0")
        for name in _INCLUDE.findall(text):
            add(name if os.path.exists(name) else os.path.join(os.path.dirname(path), name))

    for path in gin_files:
        add(path)
    digest.update("\0".join(bindings).encode())
    flags_text = "".join(f" --gin_bindings={b}" for b in bindings)
    return f"{' + '.join(gin_files)}{flags_text} (sha256 {digest.hexdigest()[:12]})"
