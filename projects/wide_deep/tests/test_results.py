"""results.py's bookkeeping: the binaries each run starts, the ensemble's members, the table, with faked binaries."""

from __future__ import annotations

import json
import os
import time

from core import results as core_results
from core import results_table
from core.testing import FakeBinaries
from projects.wide_deep import results


def _binaries() -> FakeBinaries:
    def write(path, value):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(value, f)

    def evaluate(flags):
        model_dir, split = flags["model_dir"][0], flags["split"][0]
        members = [model_dir, *flags.get("ensemble_with", [])]
        rmse = sum(float(d.rsplit("_", 1)[-1]) for d in members) / len(members) + 40  # seed s scores 40 + s
        suffix, made_of = ("_ensemble", {"ensemble": {"model_dirs": members}}) if len(members) > 1 else ("", {})
        write(os.path.join(model_dir, f"eval_{split}{suffix}.json"), {"rmse": rmse - 1, "mae": 25.0, **made_of})

    return FakeBinaries({
        "projects.wide_deep.prepare": lambda f: write(os.path.join(f["output_dir"][0], "metadata.json"), {}),
        "projects.wide_deep.baseline": lambda f: write(os.path.join(f["data_dir"][0], "gbt_baseline.json"),
                                                       {"median": {"rmse": 40.0, "mae": 24.0}}),
        "projects.wide_deep.train": lambda f: os.makedirs(f["model_dir"][0], exist_ok=True),
        "projects.wide_deep.evaluate": evaluate,
    })


def test_a_seed_row_and_the_ensemble_of_seeds_1_2_3(tmp_path):
    binaries = _binaries()
    runner = results.Runner(str(tmp_path), run=binaries)
    gbt, default, ensemble, *_ = results.TABLE.rows
    assert runner(gbt, 2, 0) == {"test_rmse": 40.0, "test_mae": 24.0}
    scores = runner(default, 2, 1)
    assert scores.pop("train_seconds") >= 0  # as train_once timed the train command
    assert scores == {"validation_rmse": 40.0, "validation_mae": 25.0, "test_rmse": 40.0, "test_mae": 25.0}
    (_, prepare), _, (_, train), *_ = binaries.calls
    data_dir = prepare["output_dir"][0]
    assert prepare["gin_bindings"] == ["SplitSpec.seed=2"]
    assert train["gin_bindings"] == [f"RegressionTask.data_dir='{data_dir}'"] and train["seed"] == ["1"]
    del binaries.calls[:]
    # The ensemble reuses seed 1's model, trains and scores seeds 2 and 3, then scores their mean.
    assert runner(ensemble, 2, 0)["test_rmse"] == 41.0  # (1 + 2 + 3) / 3 + 40 - 1
    assert binaries.modules() == ["train", "train", "evaluate", "evaluate", "evaluate", "evaluate",
                                  "evaluate", "evaluate"]
    last = binaries.calls[-1][1]
    assert last["model_dir"] == [train["model_dir"][0]] and len(last["ensemble_with"]) == 2
    assert [d.rsplit("_", 1)[-1] for d in last["ensemble_with"]] == ["2", "3"]
    # Asked again: the reports are current and read; once a member is trained again, the mean is rescored.
    del binaries.calls[:]
    runner(ensemble, 2, 0)
    assert binaries.calls == []
    seconds = os.path.join(last["ensemble_with"][0], core_results.TRAIN_SECONDS)
    os.utime(seconds, (time.time() + 60, time.time() + 60))
    runner(ensemble, 2, 0)
    assert binaries.modules() == ["evaluate", "evaluate"] and binaries.calls[0][1]["ensemble_with"]


def test_the_table_gives_the_ratio_to_the_trees(tmp_path):
    store = core_results.Store(str(tmp_path / "results.jsonl"))
    runs = core_results.collect(store, results.TABLE.rows, [0], [1, 2, 3], results.Runner(str(tmp_path), _binaries()),
                                log=lambda _: None)
    table = results_table.markdown_table(results.TABLE.rows, runs, results.TABLE.metrics, baseline="gbt")
    lines = table.splitlines()
    assert lines[2].startswith("| gradient-boosted trees, `baseline.py` | 40.00 ± 0.00 (worst 40.00) | 24.00")
    assert "| - | 1.000x | 1 split × 1 seed |" in lines[2]  # the trees have no validation score
    assert "| 41.00 ± 1.00 (worst 42.00) |" in lines[3] and "1.025x | 1 split × 3 seeds" in lines[3]
    assert "mean prediction of seeds 1, 2, 3 | 41.00 ± 0.00 (worst 41.00)" in lines[4]
    assert "| 1.025x | 1 split, 3 models each |" in lines[4]
