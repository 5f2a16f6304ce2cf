r"""The README's results table: ours against the keras-io recipe for the same minutes, over 3 hash salts of the
gettext split and 3 seeds each.

    make results-transformer
    python -m projects.transformer.results [--splits=0,1,2] [--seeds=1,2,3] [--table_rows=recipe,default] \
        [--extra_row=name=path/to/candidate.gin] [--work_dir=runs/transformer/results] [--store=FILE] \
        [--write_readme]

Each split is prepared once (`prepare --split_salt=k`: salt 0 is the split the configs were chosen on,
1 and 2 are not). A config row runs the README's commands: `train` with the seed, then `evaluate` on
test with beam search and greedily, and greedily on validation. The recipe's row (`train_baseline`) trains
the keras-io recipe on the same split with the same seed for the wall time `default.gin`'s `train` command
took there (measured when it ran, and refused if that training was resumed), then translates both held-out
splits with the tutorial's greedy decoding (its only one). The budget favours the recipe: ours counts the
interpreter's start, SentencePiece training and caching the data, the recipe's clock starts at its first
step. Both are scored by one sacrebleu call; `bleu_plain` (lower case, punctuation deleted as the recipe's
standardization deletes it, both sides) is the measure the recipe's word-level output can be compared on,
and the headline: ours with beam search against the recipe's greedy output, and ours greedy beside it.
Finished runs are kept in
`<work_dir>/results.jsonl`: run it again to resume, or to rewrite the table without training. Choose
settings on the validation column. About 40 to 60 minutes per split and seed on a 2-core CPU: 16 to 24
minutes of training for each model, 4 to 6 of evaluating ours, 3 to 8 of the recipe's greedy translating.
"""

from __future__ import annotations

import os

from core import results, runtime

CONFIGS = "projects/transformer/configs"
DEFAULT_GIN = f"{CONFIGS}/default.gin"


def config_rows(name: str, gin_file: str, label: str | None = None) -> list[results.Row]:
    return [results.config_row(name, label or f"`{gin_file}`", [gin_file])]


DEFAULT = config_rows("default", DEFAULT_GIN, "`default.gin`: 3 + 3 blocks, 500 steps, beam 4")[0]
_RECIPE_CODE = results.file_digest("projects/transformer/baseline.py", "projects/transformer/train_baseline.py")
RECIPE = results.Row("recipe", "keras-io recipe (`baseline.py`: words, 1 + 1 blocks), greedy, same minutes",
                     f"train_baseline.py (sha256 {_RECIPE_CODE}) for the train seconds of {DEFAULT.spec}")

TABLE = results.Table(
    project="transformer",
    rows=[RECIPE, DEFAULT],
    metrics=[results.Metric("test_bleu_plain", "test BLEU, plain form", True, digits=1),
             results.Metric("test_bleu_plain_greedy", "test BLEU, plain form, greedy", True, digits=1),
             results.Metric("test_bleu", "test BLEU, cased", True, digits=1),
             results.Metric("test_chrf", "test chrF, cased", True, digits=1),
             results.Metric("validation_bleu_plain_greedy", "validation BLEU, plain form, greedy", True, digits=1)],
    splits=range(3), seeds=(1, 2, 3), readme_block="gettext", baseline=RECIPE.name, extra_rows=config_rows)


class Runner(results.Runner):
    """Makes one run of a row on a hash salt of the split with a seed with the project's binaries."""

    def data_dir(self, split: int) -> str:
        """The split prepared with salt `split`, made on first use."""
        return self.prepared(split, "projects.transformer.prepare", f"--split_salt={split}")

    def ours(self, row: results.Row, split: int, seed: int, log: str) -> str:
        return self.trained("projects.transformer.train", row, split, seed, log,
                            f"--gin_bindings=TranslationTask.data_dir='{self.data_dir(split)}'")

    def __call__(self, row: results.Row, split: int, seed: int) -> dict:
        log = self.log(split, f"{row.name}-seed_{seed}")
        if row.name == RECIPE.name:
            budget = results.train_budget(self.ours(DEFAULT, split, seed, self.log(split, f"default-seed_{seed}")),
                                          "the recipe")
            model_dir = os.path.join(self.work_dir, f"split_{split}", f"{row.tag}-seed_{seed}")
            report = os.path.join(model_dir, "eval_test.json")  # written last
            if not os.path.exists(report) or results.read_json(report).get("budget_seconds") != budget:
                self.run(results.python_module(
                    "projects.transformer.train_baseline", f"--data_dir={self.data_dir(split)}",
                    f"--model_dir={model_dir}", f"--seed={seed}", f"--train_seconds={budget}"), log)
            test = results.read_json(os.path.join(model_dir, "eval_test.json"))
            validation = results.read_json(os.path.join(model_dir, "eval_validation.json"))
            return results.finite({"test_bleu_plain": test["bleu_plain"], "test_bleu_plain_greedy": test["bleu_plain"],
                                   "validation_bleu_plain_greedy": validation["bleu_plain"],
                                   "train_seconds": test["train_seconds"], "epochs": test["epochs"]})
        model_dir = self.ours(row, split, seed, log)
        reports = {}
        for name, args in (("test", ["--split=test"]), ("test_greedy", ["--split=test", "--beam_size=1"]),
                           ("validation_greedy", ["--split=validation", "--beam_size=1"])):
            path = os.path.join(model_dir, f"eval_{name}.json")
            if not os.path.exists(path):
                self.run(results.python_module("projects.transformer.evaluate", f"--model_dir={model_dir}", *args),
                         log)
            reports[name] = results.read_json(path)
        return results.finite({"test_bleu_plain": reports["test"]["bleu_plain"],
                               "test_bleu_plain_greedy": reports["test_greedy"]["bleu_plain"],
                               "test_bleu": reports["test"]["bleu"], "test_chrf": reports["test"]["chrf"],
                               "validation_bleu_plain_greedy": reports["validation_greedy"]["bleu_plain"],
                               **results.train_seconds([model_dir])})


def main(argv: list[str]) -> None:
    results.run_table(TABLE, Runner)


if __name__ == "__main__":
    runtime.run(main)
