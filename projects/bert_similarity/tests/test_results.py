"""results.py's bookkeeping: the binaries each run starts and the table, with faked binaries."""

from __future__ import annotations

import json
import os

from core import results as core_results
from core.testing import FakeBinaries
from projects.bert_similarity import results


def _report(accuracy: float) -> dict:
    subset = {"accuracy": accuracy, "roc_auc": 0.99}
    return {"threshold": 0.9, "all": subset, "hard": subset, "validation": {"all": subset, "hard": subset}}


def _binaries(tmp_path) -> FakeBinaries:
    def write(path, value):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(value, f)

    def evaluate(flags):
        model_dir = flags["model_dir"][0]
        if "baseline_only" in flags:
            write(os.path.join(model_dir, "eval_test.json"), {"zero_shot_baseline": _report(0.98), "checkpoint": None})
        else:  # seed s scores 0.99 - s / 1000
            seed = int(model_dir.rsplit("_", 1)[-1])
            write(os.path.join(model_dir, "eval_test.json"), {"fine_tuned": _report(0.99 - seed / 1000)})

    return FakeBinaries({
        "projects.bert_similarity.convert": lambda f: write(os.path.join(f["output_dir"][0], "conversion.json"), {}),
        "projects.bert_similarity.prepare": lambda f: write(os.path.join(f["output_dir"][0], "metadata.json"), {}),
        "projects.bert_similarity.train": lambda f: os.makedirs(f["model_dir"][0], exist_ok=True),
        "projects.bert_similarity.evaluate": evaluate,
    })


def test_each_book_split_is_prepared_once_and_each_seed_trained_and_scored(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "MODELS", str(tmp_path / "models"))
    binaries = _binaries(tmp_path)
    runner = results.Runner(str(tmp_path / "work"), run=binaries)
    baseline, default = results.TABLE.rows
    assert runner(baseline, 2, 0)["test_hard_accuracy"] == 0.98
    assert binaries.modules() == ["convert", "prepare", "evaluate"]
    (_, _), (_, prepare), (_, evaluate) = binaries.calls
    assert prepare["book_split"] == ["2"] and "baseline_only" in evaluate
    data_dir = prepare["output_dir"][0]
    assert evaluate["gin_bindings"] == [f"SimilarityTask.data_dir='{data_dir}'"]
    del binaries.calls[:]
    scores = runner(default, 2, 3)
    assert scores.pop("train_seconds") >= 0
    assert scores == {"test_hard_accuracy": 0.987, "test_accuracy": 0.987, "test_roc_auc": 0.99,
                      "validation_hard_accuracy": 0.987, "threshold": 0.9}
    (_, train), (_, evaluate) = binaries.calls
    assert train["seed"] == ["3"] and train["gin_bindings"] == [f"SimilarityTask.data_dir='{data_dir}'"]
    assert evaluate["model_dir"] == train["model_dir"] and "nobaseline" in evaluate
    del binaries.calls[:]
    runner(default, 2, 3)  # done before: read, nothing run
    assert binaries.calls == []


def test_the_table_gives_the_ratio_to_the_zero_shot_baseline(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "MODELS", str(tmp_path / "models"))
    store = core_results.Store(str(tmp_path / "results.jsonl"))
    runs = core_results.collect(store, results.TABLE.rows, [0, 1], [1, 2, 3],
                                results.Runner(str(tmp_path / "work"), _binaries(tmp_path)), log=lambda _: None)
    lines = core_results.markdown_table(results.TABLE.rows, runs, results.TABLE.metrics,
                                        baseline="zero_shot").splitlines()
    assert "| 98.00 ± 0.00 (worst 98.00) |" in lines[2] and "| 1.000x | 2 splits × 1 seed |" in lines[2]
    assert "| 98.80 ± 0.09 (worst 98.70) |" in lines[3] and "| 1.008x | 2 splits × 3 seeds |" in lines[3]
