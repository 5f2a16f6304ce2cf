"""results.py's bookkeeping: the binaries each run starts, on which split, and the table, with faked binaries."""

from __future__ import annotations

import json
import os

import pytest

from core import results as core_results
from core import results_table
from core.testing import FakeBinaries
from projects.word2vec_lstm import results


def _binaries() -> FakeBinaries:
    def touch(path, text="{}"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    def evaluate(flags):  # seed s scores 90 + s % alone; an ensemble scores the mean of its seeds + 1 %
        model_dir, split = flags["model_dir"][0], flags["split"][0]
        members = [model_dir, *flags.get("ensemble_with", [])]
        seed = sum(int(d.rsplit("_", 1)[-1]) for d in members) / len(members) + (len(members) > 1)
        suffix, made_of = ("_ensemble", {"ensemble": {"model_dirs": members}}) if len(members) > 1 else ("", {})
        touch(os.path.join(model_dir, f"eval_{split}{suffix}.json"),
              json.dumps({"accuracy": 0.9 + seed / 100, "macro_f1": 0.8 + seed / 100, **made_of}))

    scores = {"accuracy": 0.97, "macro_f1": 0.96}
    return FakeBinaries({
        "projects.word2vec_lstm.prepare": lambda f: touch(os.path.join(f["output_dir"][0], "metadata.json")),
        "projects.word2vec_lstm.baseline": lambda f: touch(os.path.join(f["data_dir"][0], "tfidf_baseline.json"),
                                                           json.dumps({"validation": scores, "test": scores})),
        "projects.word2vec_lstm.train_word2vec": lambda f: touch(os.path.join(f["model_dir"][0],
                                                                              "projector_config.pbtxt"), ""),
        "projects.word2vec_lstm.train": lambda f: os.makedirs(f["model_dir"][0], exist_ok=True),
        "projects.word2vec_lstm.evaluate": evaluate,
    })


def test_each_split_is_prepared_once_and_word2vec_reads_only_its_training_articles(tmp_path):
    binaries = _binaries()
    runner = results.Runner(str(tmp_path), run=binaries)
    rows = {row.name: row for row in results.TABLE.rows}
    assert list(rows) == ["tfidf", "default", "default_ensemble"]
    assert runner(rows["tfidf"], 3, 0) == {"validation_accuracy": 0.97, "validation_macro_f1": 0.96,
                                           "test_accuracy": 0.97, "test_macro_f1": 0.96}
    scores = runner(rows["default"], 3, 1)
    assert scores.pop("train_seconds") >= 0  # word2vec's and the classifier's, as train_once timed them
    assert scores == {"validation_accuracy": 0.91, "validation_macro_f1": 0.81, "test_accuracy": 0.91,
                      "test_macro_f1": 0.81}
    assert binaries.modules() == ["prepare", "baseline", "train_word2vec", "train", "evaluate", "evaluate"]
    (_, prepare), _, (_, word2vec), (_, train), *_ = binaries.calls
    data_dir = prepare["output_dir"][0]
    assert prepare["split_seed"] == ["3"] and data_dir.endswith("split_3")
    assert word2vec["gin_bindings"] == [f"Word2VecTask.corpus='{data_dir}/train-*.tfrecord'"]
    assert f"TextClassificationTask.data_dir='{data_dir}'" in train["gin_bindings"]
    assert f"TextClassificationTask.word2vec_dir='{word2vec['model_dir'][0]}'" in train["gin_bindings"]
    assert train["gin_file"] == ["projects/word2vec_lstm/configs/default.gin"] and train["seed"] == ["1"]

    # Another config on the same split and seed: same data and vectors, its own model dir.
    candidate = tmp_path / "candidate.gin"
    candidate.write_text("include 'projects/word2vec_lstm/configs/default.gin'\nlstm_classifier.pooling = 'mean'\n")
    del binaries.calls[:]
    row, ensemble, ensemble5 = results.TABLE.extra_rows("mean_pool", str(candidate))
    assert (ensemble.name, ensemble.ensemble_seeds) == ("mean_pool_ensemble", (1, 2, 3))
    assert (ensemble5.name, ensemble5.ensemble_seeds) == ("mean_pool_ensemble5", (1, 2, 3, 4, 5))
    runner(row, 3, 1)
    assert binaries.modules() == ["train", "evaluate", "evaluate"]
    assert binaries.calls[0][1]["model_dir"][0] != train["model_dir"][0]

    # The ensemble: seed 1's model reused, seeds 2 and 3 trained (each on its own vectors) and scored alone,
    # then the mean of the three scored.
    del binaries.calls[:]
    assert runner(rows["default_ensemble"], 3, 0)["test_accuracy"] == 0.93
    assert binaries.modules() == ["train_word2vec", "train", "train_word2vec", "train"] + ["evaluate"] * 6
    last = binaries.calls[-1][1]
    assert last["model_dir"] == train["model_dir"] and len(last["ensemble_with"]) == 2

    # The candidate's 5-seed ensemble: its seed 1 reused; seeds 2 and 3 trained on the vectors made above,
    # seeds 4 and 5 on new ones; the four new members scored alone, then the mean of the five.
    del binaries.calls[:]
    assert runner(ensemble5, 3, 0)["test_accuracy"] == pytest.approx(0.94)
    assert binaries.modules() == ["train", "train"] + ["train_word2vec", "train"] * 2 + ["evaluate"] * 10
    assert len(binaries.calls[-1][1]["ensemble_with"]) == 4


def test_the_table_over_splits_and_seeds(tmp_path):
    binaries = _binaries()
    store = core_results.Store(str(tmp_path / "results.jsonl"))
    runs = core_results.collect(store, results.TABLE.rows, [0, 1], [1, 2], results.Runner(str(tmp_path), binaries),
                                log=lambda _: None)
    # Seeds 1, 2 (the table's) and 3 (the ensemble's third member) per split.
    assert binaries.modules().count("prepare") == 2 and binaries.modules().count("train") == 6
    table = results_table.markdown_table(results.TABLE.rows, runs, results.TABLE.metrics)
    assert "| 97.00 ± 0.00 (worst 97.00) |" in table and "2 splits × 1 seed" in table
    # Seeds 1 and 2 score 91% and 92% on both splits: mean 91.50, sample std 0.58, worst 91.00.
    assert "| 91.50 ± 0.58 (worst 91.00) |" in table and "2 splits × 2 seeds" in table
    assert "mean prediction of seeds 1, 2, 3 | 93.00 ± 0.00 (worst 93.00)" in table
