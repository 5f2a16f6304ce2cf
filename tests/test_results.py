"""core.results: the bookkeeping behind every README results table, on tiny made-up runs."""

from __future__ import annotations

import glob
import importlib
import json
import os
import statistics
import sys

import numpy as np
import pytest

from core import results, results_table
from core.config import UserError

ACCURACY = results.Metric("accuracy", "accuracy %", higher_is_better=True, percent=True)
RMSE = results.Metric("rmse", "RMSE", higher_is_better=False)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_summarize_matches_numpy():
    values = [0.97, 0.99, 0.95, 0.98]
    s = results_table.summarize(values, higher_is_better=True)
    assert s.mean == pytest.approx(np.mean(values))
    assert s.std == pytest.approx(np.std(values, ddof=1))
    assert (s.worst, s.n) == (0.95, 4)
    assert results_table.summarize(values, higher_is_better=False).worst == 0.99
    assert results_table.summarize([3.0], higher_is_better=False) == results_table.Summary(3.0, 0.0, 3.0, 1)
    with pytest.raises(ValueError):
        results_table.summarize([], higher_is_better=True)


def test_store_keeps_runs_across_reopening_and_refuses_another_spec(tmp_path):
    path = str(tmp_path / "results.jsonl")
    row = results.Row("default", "default.gin", "spec A")
    results.Store(path).put(row, 3, 1, {"accuracy": 0.9}, seconds=12.0)
    reopened = results.Store(path)
    assert reopened.get(row, 3, 1)["metrics"] == {"accuracy": 0.9}
    assert reopened.get(row, 3, 2) is None
    with pytest.raises(UserError, match="other settings"):
        reopened.get(results.Row("default", "default.gin", "spec B"), 3, 1)


def test_store_names_the_broken_line(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({"row": "a", "split": 0, "seed": 0, "spec": "", "metrics": {}}) + "\n{not json\n")
    with pytest.raises(UserError, match="line 2"):
        results.Store(str(path))


def test_collect_runs_only_what_is_missing_and_resumes_after_a_failure(tmp_path):
    path = str(tmp_path / "results.jsonl")
    rows = [results.Row("baseline", "trees", "b", seeded=False), results.Row("ours", "ours", "o")]
    calls = []

    def run_fn(row, split, seed):
        calls.append((row.name, split, seed))
        if len(calls) == 4 and fail:
            raise RuntimeError("killed")
        return {"rmse": 10.0 * split + seed + (row.name == "ours")}

    fail = True
    with pytest.raises(RuntimeError):
        results.collect(results.Store(path), rows, [0, 1], [1, 2], run_fn, log=lambda _: None)
    assert calls == [("baseline", 0, 0), ("ours", 0, 1), ("ours", 0, 2), ("baseline", 1, 0)]
    fail, calls[:] = False, []
    runs = results.collect(results.Store(path), rows, [0, 1], [1, 2], run_fn, log=lambda _: None)
    assert calls == [("baseline", 1, 0), ("ours", 1, 1), ("ours", 1, 2)]  # the three that never finished
    assert [r["metrics"]["rmse"] for r in runs["ours"]] == [2.0, 3.0, 12.0, 13.0]
    assert len(runs["baseline"]) == 2  # one per split: it has no seed
    calls[:] = []
    results.collect(results.Store(path), rows, [0, 1], [1, 2], run_fn, log=lambda _: None)
    assert calls == []


def _run(row, split, seed, seconds=60.0, **metrics):
    return {"row": row, "split": split, "seed": seed, "metrics": metrics, "seconds": seconds}


def test_markdown_table_gives_mean_std_worst_ratio_and_counts():
    rows = [results.Row("gbt", "trees", "", seeded=False), results.Row("ours", "**ours**", ""),
            results.Row("later", "not yet", "")]
    ours = [2.0, 4.0, 6.0]
    runs = {"gbt": [_run("gbt", k, 0, rmse=4.0) for k in range(3)],
            "ours": [_run("ours", k, 1, seconds=120.0, rmse=v) for k, v in enumerate(ours)]}
    table = results_table.markdown_table(rows, runs, [RMSE], baseline="gbt").splitlines()
    assert table[0] == "| row | RMSE | RMSE vs baseline | runs | training minutes per run |"
    assert table[2] == "| trees | 4.00 ± 0.00 (worst 4.00) | 1.000x | 3 splits × 1 seed | 1.0 |"
    std = statistics.stdev(ours)
    assert table[3] == f"| **ours** | 4.00 ± {std:.2f} (worst 6.00) | 1.000x | 3 splits × 1 seed | 2.0 |"
    assert table[4] == "| not yet | not run | not run | not run | not run |"


def test_markdown_table_prints_percentages():
    runs = {"a": [_run("a", 0, s, accuracy=v) for s, v in [(1, 0.98), (2, 0.99)]]}
    table = results_table.markdown_table([results.Row("a", "a", "")], runs, [ACCURACY])
    assert "| a | 98.50 ± 0.71 (worst 98.00) | 1 split × 2 seeds | 1.0 |" in table


def test_replace_block_rewrites_only_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# P\nbefore\n<!-- results:bbc -->\nold table\n<!-- /results:bbc -->\nafter\n")
    results_table.replace_block(str(readme), "bbc", "| new |\n")
    assert readme.read_text() == "# P\nbefore\n<!-- results:bbc -->\n| new |\n<!-- /results:bbc -->\nafter\n"
    with pytest.raises(UserError, match="results:other"):
        results_table.replace_block(str(readme), "other", "x")


def test_gin_spec_changes_with_an_included_file(tmp_path):
    (tmp_path / "base.gin").write_text("A.x = 1\n")
    (tmp_path / "row.gin").write_text("include 'base.gin'\nA.y = 2\n")
    row = str(tmp_path / "row.gin")
    first = results.gin_spec([row])
    assert results.gin_spec([row]) == first
    assert results.gin_spec([row], ["A.z=3"]) != first
    (tmp_path / "base.gin").write_text("A.x = 5\n")
    assert results.gin_spec([row]) != first


def test_gin_spec_ignores_comments_and_blank_lines_but_not_what_they_surround(tmp_path):
    path = tmp_path / "row.gin"
    path.write_text("# row: what it reproduces\nA.x = 1\nA.y = 2\n")
    first = results.gin_spec([str(path)])
    path.write_text("# row: what it reproduces, measured again\n# Run: ...\n\nA.x = 1\n  # a note\nA.y = 2  \n")
    assert results.gin_spec([str(path)]) == first
    path.write_text("# row: what it reproduces\nA.x = 1\nA.y = 3\n")
    assert results.gin_spec([str(path)]) != first


def test_run_command_raises_with_the_tail_of_the_log(tmp_path):
    log = str(tmp_path / "logs" / "run.log")
    results.run_command([sys.executable, "-c", "print('fine')"], log)
    with pytest.raises(RuntimeError, match=r"exit status 3(.|\n)*boom"):
        results.run_command([sys.executable, "-c", "print('boom'); raise SystemExit(3)"], log)
    assert "fine" in open(log).read()


def test_finite_refuses_nan():
    assert results.finite({"a": 1.0}) == {"a": 1.0}
    with pytest.raises(ValueError, match="rmse"):
        results.finite({"rmse": float("nan")})


def test_run_table_runs_writes_the_readme_and_rewrites_it_from_the_store(tmp_path, monkeypatch):
    from absl import app
    from absl.testing import flagsaver

    from core.results import FLAGS

    monkeypatch.chdir(tmp_path)
    os.makedirs("projects/demo")
    with open("projects/demo/README.md", "w") as f:
        f.write("# demo\n<!-- results:t -->\n<!-- /results:t -->\nend\n")
    (tmp_path / "other.gin").write_text("A.x = 1\n")
    table = results.Table(project="demo", rows=[results.Row("base", "the baseline", "b", seeded=False)],
                          metrics=[RMSE], splits=[0, 1], seeds=[1], readme_block="t", baseline="base",
                          extra_rows=lambda name, path: [results.config_row(name, f"`{path}`", [path])])
    calls = []

    def make_run_fn(work_dir):
        assert work_dir == os.path.join("runs", "demo", "results")
        return lambda row, split, seed: calls.append((row.name, split, seed)) or {"rmse": 2.0 + (row.name == "x")}

    with flagsaver.flagsaver(extra_row=["x=other.gin"], write_readme=True):
        FLAGS.mark_as_parsed()
        text = results.run_table(table, make_run_fn)
    assert calls == [("base", 0, 0), ("x", 0, 1), ("base", 1, 0), ("x", 1, 1)]
    assert "| `other.gin` | 3.00 ± 0.00 (worst 3.00) | 1.500x | 2 splits × 1 seed |" in text
    assert ("| row | split 0 | split 1 |\n|---|---|---|\n"
            "| the baseline | 2.00 | 2.00 |\n| `other.gin` | 3.00 | 3.00 |") in text
    readme = open("projects/demo/README.md").read()
    assert readme.startswith("# demo\n<!-- results:t -->\n| row |") and readme.endswith("<!-- /results:t -->\nend\n")
    with flagsaver.flagsaver(extra_row=["x=other.gin"], table_only=True, splits=["0"]):
        text = results.run_table(table, make_run_fn)
    assert "1 split × 1 seed" in text and "Per split" not in text  # one split: the table says it all
    assert len(calls) == 4  # nothing run again
    os.rename(os.path.join("runs", "demo", "results", "results.jsonl"), "kept.jsonl")  # e.g. committed beside a README
    with flagsaver.flagsaver(extra_row=["x=other.gin"], store="kept.jsonl"):
        assert "1.500x | 2 splits × 1 seed |" in results.run_table(table, make_run_fn)
    assert len(calls) == 4  # the runs were found in --store
    with flagsaver.flagsaver(table_only=True, store="mistyped.jsonl"), pytest.raises(UserError, match="no such file"):
        results.run_table(table, make_run_fn)
    with flagsaver.flagsaver(extra_row=["x=missing.gin"]), pytest.raises(app.UsageError, match="existing file"):
        results.run_table(table, make_run_fn)
    with flagsaver.flagsaver(table_rows=["nope"]), pytest.raises(app.UsageError, match="unknown row"):
        results.run_table(table, make_run_fn)
    # A smaller table never replaces the README's; a README without the markers is refused before any run.
    with flagsaver.flagsaver(write_readme=True, splits=["0"]), pytest.raises(app.UsageError, match="every split"):
        results.run_table(table, make_run_fn)
    with open("projects/demo/README.md", "w") as f:
        f.write("# demo\n")
    with flagsaver.flagsaver(write_readme=True, work_dir="elsewhere"), pytest.raises(UserError, match="results:t"):
        results.run_table(table, make_run_fn)
    assert len(calls) == 4


def test_an_ensemble_row_costs_its_members_training():
    member = results.Row("ours", "ours", "o")
    ensemble = results.ensemble_row(member, [1, 2, 3])
    assert (ensemble.name, ensemble.seeded, ensemble.ensemble_of) == ("ours_ensemble", False, member)
    assert ensemble.label == "ours, mean prediction of seeds 1, 2, 3" and ensemble.spec != member.spec
    runs = {"ours": [_run("ours", 0, s, seconds=90.0, rmse=4.0) for s in (1, 2, 3)],
            "ours_ensemble": [_run("ours_ensemble", 0, 0, seconds=6.0, rmse=3.5)]}
    table = results_table.markdown_table([member, ensemble], runs, [RMSE])
    # Stored without its training time: its members' median, three times.
    assert table.splitlines()[3].endswith("| 1 split, 3 models each | 4.5 |")
    runs["ours_ensemble"][0]["metrics"]["train_seconds"] = 300.0  # what the Runner measured
    assert results_table.markdown_table([member, ensemble], runs, [RMSE]).splitlines()[3].endswith("| 5.0 |")


def test_the_table_says_when_a_grid_is_incomplete_and_compares_on_common_splits():
    rows = [results.Row("gbt", "trees", "", seeded=False), results.Row("ours", "ours", "")]
    runs = {"gbt": [_run("gbt", 0, 0, rmse=4.0), _run("gbt", 1, 0, rmse=8.0)],
            "ours": [_run("ours", 0, 1, rmse=5.0), _run("ours", 0, 2, rmse=5.0), _run("ours", 1, 1, rmse=6.0)]}
    line = results_table.markdown_table(rows, runs, [RMSE], baseline="gbt").splitlines()[3]
    assert "| 3 runs on 2 splits |" in line and "| 0.889x |" in line  # (5 + 5 + 6) / 3 over (4 + 8) / 2
    del runs["ours"][2]  # split 1 not run yet: the ratio is split 0's only
    line = results_table.markdown_table(rows, runs, [RMSE], baseline="gbt").splitlines()[3]
    assert "| 1.250x |" in line and "| 1 split × 2 seeds |" in line


def test_split_table_gives_each_split_its_own_column():
    rows = [results.Row("gbt", "trees", "", seeded=False), results.Row("ours", "ours", ""),
            results.Row("later", "later", "")]
    runs = {"gbt": [_run("gbt", 0, 0, rmse=4.0), _run("gbt", 2, 0, rmse=8.0)],
            "ours": [_run("ours", 0, 1, rmse=5.0), _run("ours", 0, 2, rmse=7.0), _run("ours", 2, 1, rmse=6.0)]}
    table = results_table.split_table(rows, runs, RMSE).splitlines()
    assert table[0] == "| row | split 0 | split 2 |"
    assert table[2] == "| trees | 4.00 | 8.00 |"
    assert table[3] == f"| ours | 6.00 ± {statistics.stdev([5.0, 7.0]):.2f} | 6.00 |"
    assert table[4] == "| later | - | - |"


@pytest.mark.parametrize("project", sorted(os.path.basename(os.path.dirname(p))
                                           for p in glob.glob(os.path.join(REPO, "projects", "*", "results.py"))))
def test_every_results_table_has_its_block_in_its_readme_and_its_row_configs_exist(project):
    table = importlib.import_module(f"projects.{project}.results").TABLE
    assert table.project == project
    readme = os.path.join(REPO, "projects", project, "README.md")
    results_table.replace_block(readme, table.readme_block, None)  # raises
    for row in table.rows:
        for path in row.gin_files:
            assert os.path.isfile(os.path.join(REPO, path)), (row.name, path)
    assert table.baseline is None or table.baseline in {row.name for row in table.rows}


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "projects", "*", "results.jsonl"))))
def test_committed_runs_are_runs_of_the_rows_their_table_defines_now(path):
    """A project's committed results.jsonl holds the runs its README quotes: a row edited since (its config, or
    a baseline's code) must be run again, not quoted."""
    project = os.path.basename(os.path.dirname(path))
    table = importlib.import_module(f"projects.{project}.results").TABLE
    rows = {row.name: row for row in table.rows}
    store = results.Store(path)
    assert store.keys()
    for name, split, seed in store.keys():
        assert name in rows, f"{path}: a run of row {name!r}, which {project}'s table no longer has"
        assert table.metrics[0].key in store.get(rows[name], split, seed)["metrics"]  # raises if the spec changed


def test_train_once_times_a_training_and_a_budget_refuses_a_resumed_one(tmp_path):
    model_dir = str(tmp_path / "run")
    calls = []
    results.train_once(lambda argv, log: calls.append(argv), ["train"], str(tmp_path / "log"), model_dir)
    assert calls == [["train"]] and results.train_budget(model_dir, "the baseline") >= 0
    results.train_once(lambda argv, log: calls.append(argv), ["train"], str(tmp_path / "log"), model_dir)
    assert len(calls) == 1  # finished: not run again
    stopped = str(tmp_path / "stopped")
    os.makedirs(os.path.join(stopped, "checkpoints"))
    open(os.path.join(stopped, "checkpoints", "ckpt-1.index"), "w").close()
    results.train_once(lambda argv, log: None, ["train"], str(tmp_path / "log"), stopped)
    with pytest.raises(UserError, match="resumed from a checkpoint.*delete"):
        results.train_budget(stopped, "the baseline")
    with pytest.raises(UserError, match="has no train_seconds.json: the baseline's budget"):
        results.train_budget(str(tmp_path / "never"), "the baseline")
