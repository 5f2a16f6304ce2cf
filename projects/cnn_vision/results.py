r"""The README's results table: each row over 3 training seeds on Fashion-MNIST's fixed test set.

    make results-cnn_vision
    python -m projects.cnn_vision.results [--seeds=1,2,3] [--table_rows=recipe,default] \
        [--extra_row=name=path/to/candidate.gin] [--work_dir=runs/cnn_vision/results] [--write_readme]

The data is prepared once (`prepare`: the 60,000 training images split 55,000 / 5,000, the 10,000 test
images as they are). Each row runs the README's commands, `train` with each seed and `evaluate` on
validation and on test. The baseline row is the keras-io "Simple MNIST convnet" recipe as a config
(`configs/keras_io_recipe.gin`). Finished runs are kept in `<work_dir>/results.jsonl`: run it again to
resume, or to rewrite the table without training. About 7 minutes per seed of default.gin on a 2-core CPU.
"""

from __future__ import annotations

import os

from core import results, runtime
from core.config import UserError

CONFIGS = "projects/cnn_vision/configs"


def config_row(name: str, gin_file: str, label: str | None = None) -> results.Row:
    return results.config_row(name, label or f"`{gin_file}`", [gin_file])


TABLE = results.Table(
    project="cnn_vision",
    rows=[config_row("recipe", f"{CONFIGS}/keras_io_recipe.gin",
                     "the keras-io simple convnet recipe, `keras_io_recipe.gin`"),
          config_row("default", f"{CONFIGS}/default.gin", "**default.gin**")],
    metrics=[results.Metric("test_accuracy", "test accuracy %", higher_is_better=True, percent=True),
             results.Metric("test_macro_f1", "test macro-F1 %", higher_is_better=True, percent=True),
             results.Metric("validation_accuracy", "validation accuracy %", higher_is_better=True, percent=True)],
    splits=[0], seeds=[1, 2, 3], readme_block="fashion_mnist",
    extra_rows=lambda name, gin_file: [config_row(name, gin_file)])


class Runner(results.Runner):
    """Makes one run of a row with a seed with the project's binaries, under `work_dir` (split is always 0:
    Fashion-MNIST has one test set)."""

    def __call__(self, row: results.Row, split: int, seed: int) -> dict:
        if split != 0:
            raise UserError(f"--splits={split}: Fashion-MNIST has one fixed test set; use --splits=0")
        data_dir = os.path.join(self.work_dir, "data")
        log = os.path.join(self.work_dir, "logs", f"{row.name}-seed_{seed}.log")
        if not os.path.exists(os.path.join(data_dir, "metadata.json")):  # written last by prepare
            self.run(results.python_module("projects.cnn_vision.prepare", f"--output_dir={data_dir}"),
                     os.path.join(self.work_dir, "logs", "prepare.log"))
        model_dir = os.path.join(self.work_dir, f"{row.tag}-seed_{seed}")
        results.train_once(self.run, results.python_module(
            "projects.cnn_vision.train", *(f"--gin_file={p}" for p in row.gin_files), f"--model_dir={model_dir}",
            f"--seed={seed}", f"--gin_bindings=ImageClassificationTask.data_dir='{data_dir}'"), log, model_dir)
        return self.evaluate("projects.cnn_vision.evaluate", model_dir, log, ("accuracy", "macro_f1"),
                             timed=[model_dir])


def main(argv: list[str]) -> None:
    results.run_table(TABLE, Runner)


if __name__ == "__main__":
    runtime.run(main)
