"""results.py's bookkeeping: the binaries each run starts, the recipe's budget, and the table, faked."""

from __future__ import annotations

import json
import os

import pytest

from core import results as core_results
from core import results_table
from core.config import UserError
from core.testing import FakeBinaries
from projects.transformer import results


def _write(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f)


def _seed(model_dir: str) -> int:
    return int(model_dir.rsplit("_", 1)[-1])


def _binaries() -> FakeBinaries:
    def evaluate(flags):  # seed s: beam 20 + s, greedy 18 + s (plain form); cased 25 + s
        model_dir, seed = flags["model_dir"][0], _seed(flags["model_dir"][0])
        greedy = flags.get("beam_size") == ["1"]
        name = flags["split"][0] + ("_greedy" if greedy else "")
        _write(os.path.join(model_dir, f"eval_{name}.json"),
               {"bleu_plain": (18 if greedy else 20) + seed, "bleu": 25.0 + seed, "chrf": 40.0})

    def train_baseline(flags):  # seed s: 10 + s, whatever the budget
        model_dir, seconds = flags["model_dir"][0], float(flags["train_seconds"][0])
        for split in ("validation", "test"):
            _write(os.path.join(model_dir, f"eval_{split}.json"),
                   {"bleu_plain": 10.0 + _seed(model_dir), "bleu": 5.0, "chrf": 30.0, "train_seconds": seconds,
                    "budget_seconds": seconds, "epochs": 2.5})

    return FakeBinaries({
        "projects.transformer.prepare": lambda f: _write(os.path.join(f["output_dir"][0], "metadata.json"), {}),
        "projects.transformer.train": lambda f: os.makedirs(f["model_dir"][0], exist_ok=True),
        "projects.transformer.evaluate": evaluate,
        "projects.transformer.train_baseline": train_baseline,
    })


def test_the_recipe_trains_for_the_minutes_ours_took_on_the_same_split_and_seed(tmp_path):
    binaries = _binaries()
    runner = results.Runner(str(tmp_path / "work"), run=binaries)
    recipe, default = results.TABLE.rows
    scores = runner(recipe, 2, 3)
    assert binaries.modules() == ["prepare", "train", "train_baseline"]
    (_, prepare), (_, train), (_, baseline) = binaries.calls
    assert prepare["split_salt"] == ["2"] and train["seed"] == baseline["seed"] == ["3"]
    data_dir = prepare["output_dir"][0]
    assert train["gin_bindings"] == [f"TranslationTask.data_dir='{data_dir}'"] and baseline["data_dir"] == [data_dir]
    ours = core_results.read_json(os.path.join(train["model_dir"][0], core_results.TRAIN_SECONDS))["seconds"]
    assert float(baseline["train_seconds"][0]) == ours == scores["train_seconds"]
    assert scores["test_bleu_plain"] == scores["test_bleu_plain_greedy"] == 13.0
    assert "test_bleu" not in scores  # the recipe's output has no case or punctuation to score
    del binaries.calls[:]
    scores = runner(default, 2, 3)  # trained above for the budget: only scored now
    assert binaries.modules() == ["evaluate"] * 3
    assert [(f["split"], f.get("beam_size")) for _, f in binaries.calls] == [
        (["test"], None), (["test"], ["1"]), (["validation"], ["1"])]
    assert {k: v for k, v in scores.items() if k != "train_seconds"} == {
        "test_bleu_plain": 23, "test_bleu_plain_greedy": 21, "test_bleu": 28.0, "test_chrf": 40.0,
        "validation_bleu_plain_greedy": 21}
    del binaries.calls[:]
    runner(recipe, 2, 3), runner(default, 2, 3)  # done before: read, nothing run
    assert binaries.calls == []
    timed = os.path.join(train["model_dir"][0], core_results.TRAIN_SECONDS)
    with open(timed, "w") as f:  # ours trained again since, in other minutes: the recipe's run is stale
        json.dump({"seconds": ours + 60, "resumed": False}, f)
    runner(recipe, 2, 3)
    assert binaries.modules() == ["train_baseline"] and binaries.calls[0][1]["train_seconds"] == [str(ours + 60)]


def test_a_model_trained_without_its_time_gives_the_recipe_no_budget(tmp_path):
    runner = results.Runner(str(tmp_path / "work"), run=_binaries())
    recipe, default = results.TABLE.rows
    runner(default, 0, 1)
    ours = os.path.join(str(tmp_path / "work"), "split_0", f"{default.tag}-seed_1")
    os.remove(os.path.join(ours, core_results.TRAIN_SECONDS))
    with pytest.raises(UserError, match="no train_seconds.json: the recipe's budget"):
        runner(recipe, 0, 1)


def test_the_table_gives_the_ratio_to_the_recipe_on_the_same_splits(tmp_path):
    store = core_results.Store(str(tmp_path / "results.jsonl"))
    runs = core_results.collect(store, results.TABLE.rows, [0, 1], [1, 2, 3],
                                results.Runner(str(tmp_path / "work"), _binaries()), log=lambda _: None)
    lines = results_table.markdown_table(results.TABLE.rows, runs, results.TABLE.metrics,
                                        baseline="recipe").splitlines()
    assert "| 12.0 ± 0.9 (worst 11.0) |" in lines[2] and "| - | - |" in lines[2] and "| 1.000x |" in lines[2]
    assert "| 22.0 ± 0.9 (worst 21.0) |" in lines[3] and "| 1.833x | 2 splits × 3 seeds |" in lines[3]


def test_the_recipe_spec_names_its_code_and_the_config_that_sets_its_minutes():
    recipe, default = results.TABLE.rows
    code = core_results.file_digest("projects/transformer/baseline.py", "projects/transformer/train_baseline.py")
    assert code in recipe.spec and default.spec in recipe.spec
    assert default.spec == core_results.gin_spec([results.DEFAULT_GIN])


def test_a_resumed_training_gives_the_recipe_no_budget(tmp_path):
    runner = results.Runner(str(tmp_path / "work"), run=_binaries())
    recipe, default = results.TABLE.rows
    ours = os.path.join(str(tmp_path / "work"), "split_0", f"{default.tag}-seed_1")
    os.makedirs(os.path.join(ours, "checkpoints"))
    open(os.path.join(ours, "checkpoints", "ckpt-100.index"), "w").close()  # an attempt that was stopped
    with pytest.raises(UserError, match="resumed from a checkpoint"):
        runner(recipe, 0, 1)
