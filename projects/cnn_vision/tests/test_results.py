"""results.py's bookkeeping: data prepared once, each seed trained and scored, with faked binaries."""

from __future__ import annotations

import json
import os

import pytest

from core import results as core_results
from core import results_table
from core.config import UserError
from core.testing import FakeBinaries
from projects.cnn_vision import results


def _binaries() -> FakeBinaries:
    def write(path, value):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(value, f)

    def evaluate(flags):
        model_dir, split = flags["model_dir"][0], flags["split"][0]
        seed = int(model_dir.rsplit("_", 1)[-1])
        write(os.path.join(model_dir, f"eval_{split}.json"), {"accuracy": 0.92 + seed / 1000, "macro_f1": 0.9})

    return FakeBinaries({
        "projects.cnn_vision.prepare": lambda f: write(os.path.join(f["output_dir"][0], "metadata.json"), {}),
        "projects.cnn_vision.train": lambda f: os.makedirs(f["model_dir"][0], exist_ok=True),
        "projects.cnn_vision.evaluate": evaluate,
    })


def test_seeds_of_each_row_on_the_fixed_test_set(tmp_path):
    binaries = _binaries()
    store = core_results.Store(str(tmp_path / "results.jsonl"))
    runs = core_results.collect(store, results.TABLE.rows, [0], [1, 2, 3], results.Runner(str(tmp_path), binaries),
                                log=lambda _: None)
    assert binaries.modules().count("prepare") == 1 and binaries.modules().count("train") == 6
    trained = [flags for module, flags in binaries.calls if module.endswith("train")]
    assert [f["gin_file"][0].rsplit("/", 1)[-1] for f in trained[::3]] == ["keras_io_recipe.gin", "default.gin"]
    assert [f["seed"] for f in trained[:3]] == [["1"], ["2"], ["3"]]
    assert len({f["model_dir"][0] for f in trained}) == 6
    table = results_table.markdown_table(results.TABLE.rows, runs, results.TABLE.metrics)
    assert "| 92.20 ± 0.10 (worst 92.10) |" in table and "1 split × 3 seeds" in table
    with pytest.raises(UserError, match="one fixed test set"):
        results.Runner(str(tmp_path), binaries)(results.TABLE.rows[0], 1, 1)
