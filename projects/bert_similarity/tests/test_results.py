"""results.py's bookkeeping: the binaries each run starts and the table, with faked binaries."""

from __future__ import annotations

import json
import os

from core import results as core_results
from core import results_table
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

    def train_keras_hub(flags):  # seed s scores 0.98 - s / 1000, at a threshold of 0.7
        model_dir, seed = flags["model_dir"][0], int(flags["seed"][0])
        write(os.path.join(model_dir, "eval_test.json"), {
            "keras_hub": {**_report(0.98 - seed / 1000), "threshold": 0.7,
                          "train_seconds": float(flags["train_seconds"][0])},
            "budget_seconds": float(flags["train_seconds"][0])})

    return FakeBinaries({
        "projects.bert_similarity.train_keras_hub": train_keras_hub,
        "projects.bert_similarity.convert": lambda f: write(os.path.join(f["output_dir"][0], "conversion.json"), {}),
        "projects.bert_similarity.prepare": lambda f: write(os.path.join(f["output_dir"][0], "metadata.json"), {}),
        "projects.bert_similarity.train": lambda f: os.makedirs(f["model_dir"][0], exist_ok=True),
        "projects.bert_similarity.evaluate": evaluate,
    })


def test_each_book_split_is_prepared_once_and_each_seed_trained_and_scored(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "MODELS", str(tmp_path / "models"))
    binaries = _binaries(tmp_path)
    runner = results.Runner(str(tmp_path / "work"), run=binaries)
    baseline, keras_hub, default = results.TABLE.rows
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
    hub = runner(keras_hub, 2, 3)  # default.gin with seed 3 was trained: its wall time is keras-hub's budget
    assert binaries.modules() == ["train_keras_hub"]
    (_, flags), = binaries.calls
    budget = core_results.read_json(os.path.join(train["model_dir"][0], core_results.TRAIN_SECONDS))["seconds"]
    assert flags["seed"] == ["3"] and flags["data_dir"] == [data_dir] and float(flags["train_seconds"][0]) == budget
    assert hub == {"test_hard_accuracy": 0.977, "test_accuracy": 0.977, "test_roc_auc": 0.99,
                   "validation_hard_accuracy": 0.977, "threshold": 0.7, "train_seconds": budget}
    del binaries.calls[:]
    runner(keras_hub, 1, 2)  # no default.gin run with seed 2 on split 1 yet: it is trained first, for the budget
    assert binaries.modules() == ["prepare", "train", "train_keras_hub"]
    assert binaries.calls[1][1]["seed"] == ["2"] and binaries.calls[1][1]["model_dir"][0].endswith("seed_2")


def test_the_table_gives_the_ratio_to_the_zero_shot_baseline(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "MODELS", str(tmp_path / "models"))
    store = core_results.Store(str(tmp_path / "results.jsonl"))
    runs = core_results.collect(store, results.TABLE.rows, [0, 1], [1, 2, 3],
                                results.Runner(str(tmp_path / "work"), _binaries(tmp_path)), log=lambda _: None)
    lines = results_table.markdown_table(results.TABLE.rows, runs, results.TABLE.metrics,
                                        baseline="zero_shot").splitlines()
    assert "| 98.00 ± 0.00 (worst 98.00) |" in lines[2] and "| 1.000x | 2 splits × 1 seed |" in lines[2]
    assert "| 97.80 ± 0.09 (worst 97.70) |" in lines[3] and "| 0.998x | 2 splits × 3 seeds |" in lines[3]
    assert "| 98.80 ± 0.09 (worst 98.70) |" in lines[4] and "| 1.008x | 2 splits × 3 seeds |" in lines[4]


def test_the_keras_hub_spec_names_its_code_and_the_config_that_sets_its_minutes():
    _, keras_hub, default = results.TABLE.rows
    code = core_results.file_digest("projects/bert_similarity/keras_hub_baseline.py",
                                    "projects/bert_similarity/train_keras_hub.py")
    assert code in keras_hub.spec and default.spec in keras_hub.spec
