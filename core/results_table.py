"""The results table as the README shows it: mean ± std and the worst run of every metric per row, the
headline metric per split, and the README block the table stands in.

`core/results.py` runs the rows and keeps their runs; this module only reads runs.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.config import UserError
from core.files import write_text_atomic

if TYPE_CHECKING:  # core.results imports this module
    from core.results import Metric, Row


@dataclasses.dataclass(frozen=True)
class Summary:
    mean: float
    std: float  # the sample standard deviation (n - 1); 0 for a single run
    worst: float
    n: int


def summarize(values: Sequence[float], higher_is_better: bool) -> Summary:
    """Mean, sample standard deviation and the worst of `values`."""
    if not values:
        raise ValueError("summarize: no values")
    values = [float(v) for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    worst = min(values) if higher_is_better else max(values)
    return Summary(statistics.fmean(values), std, worst, len(values))


def _minutes(run: dict) -> float:
    """A run's training minutes: what its Runner measured (`train_seconds`), else the run's wall time."""
    return run["metrics"].get("train_seconds", run["seconds"]) / 60


def markdown_table(rows: Sequence[Row], runs: dict[str, list[dict]], metrics: Sequence[Metric],
                   baseline: str | None = None) -> str:
    """The README table: per row, mean ± std (worst) of each metric, the runs it averages, and the time.

    With `baseline` (a row name) the first metric's mean is also given as a ratio to the baseline's mean
    on the same splits.
    """
    headline = metrics[0].key
    header = ["row", *(m.label for m in metrics)]
    if baseline is not None:
        header.append(f"{metrics[0].label} vs baseline")
    header += ["runs", "training minutes per run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    base_runs = [r for r in runs.get(baseline) or [] if headline in r["metrics"]]
    for row in rows:
        row_runs = runs.get(row.name) or []
        if not row_runs:
            lines.append("| " + " | ".join([row.label] + ["not run"] * (len(header) - 1)) + " |")
            continue
        cells = [row.label]
        for metric in metrics:
            values = [r["metrics"][metric.key] for r in row_runs if metric.key in r["metrics"]]
            if not values:  # a metric this row has no value for (the trees' early-stopping validation split)
                cells.append("-")
                continue
            s = summarize(values, metric.higher_is_better)
            cells.append(f"{metric.format(s.mean)} ± {metric.format(s.std)} (worst {metric.format(s.worst)})")
        if baseline is not None:
            common = {r["split"] for r in row_runs if headline in r["metrics"]} & {r["split"] for r in base_runs}
            mine = [r["metrics"][headline] for r in row_runs if r["split"] in common and headline in r["metrics"]]
            theirs = [r["metrics"][headline] for r in base_runs if r["split"] in common]
            cells.append(f"{statistics.fmean(mine) / statistics.fmean(theirs):.3f}x" if common else "no baseline")
        splits = len({r["split"] for r in row_runs})
        seeds = len({r["seed"] for r in row_runs})
        plural = "s" * (splits != 1)
        if row.ensemble_of:
            cells.append(f"{splits} split{plural}, {len(row.ensemble_seeds)} models each")
        elif len(row_runs) == splits * seeds:
            cells.append(f"{splits} split{plural} × {seeds} seed{'s' * (seeds != 1)}")
        else:  # an interrupted grid: say how many runs, not a product that overstates them
            cells.append(f"{len(row_runs)} runs on {splits} split{plural}")
        member_runs = runs.get(row.ensemble_of.name) if row.ensemble_of else None
        if member_runs and "train_seconds" not in row_runs[0]["metrics"]:
            # Stored before runs recorded their training time: its own seconds were the scoring only.
            cells.append(f"{len(row.ensemble_seeds) * statistics.median(map(_minutes, member_runs)):.1f}")
        else:
            cells.append(f"{statistics.median(map(_minutes, row_runs)):.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def split_table(rows: Sequence[Row], runs: dict[str, list[dict]], metric: Metric) -> str:
    """The headline metric per split: a column per split, mean ± std over the seeds run there (one value
    where a row has one run per split), so "on every split" reads off a line rather than out of the store."""
    splits = sorted({r["split"] for row in rows for r in runs.get(row.name) or [] if metric.key in r["metrics"]})
    lines = ["| row | " + " | ".join(f"split {k}" for k in splits) + " |", "|" + "---|" * (len(splits) + 1)]
    for row in rows:
        cells = [row.label]
        for split in splits:
            values = [r["metrics"][metric.key] for r in runs.get(row.name) or []
                      if r["split"] == split and metric.key in r["metrics"]]
            if not values:
                cells.append("-")
                continue
            s = summarize(values, metric.higher_is_better)
            cells.append(metric.format(s.mean) if s.n == 1 else f"{metric.format(s.mean)} ± {metric.format(s.std)}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def replace_block(path: str, name: str, text: str | None) -> None:
    """Replaces what stands between `<!-- results:name -->` and `<!-- /results:name -->` in `path`.

    With `text=None` it only checks that the markers are there.
    """
    begin, end = f"<!-- results:{name} -->", f"<!-- /results:{name} -->"
    with open(path) as f:
        content = f.read()
    if content.count(begin) != 1 or content.count(end) != 1 or content.index(begin) > content.index(end):
        raise UserError(f"{path}: expected one {begin} line followed by one {end} line around the table")
    if text is None:
        return
    head, rest = content.split(begin)
    _, tail = rest.split(end)
    write_text_atomic(path, f"{head}{begin}\n{text.rstrip()}\n{end}{tail}")
