r"""The README's results table: the cross-encoder over 3 book splits of the Bible pairs, 3 seeds each, beside
the zero-shot baseline and keras-hub's fine-tune given the same minutes.

    make results-bert_similarity
    python -m projects.bert_similarity.results [--splits=0,1,2] [--seeds=1,2,3] \
        [--table_rows=zero_shot,keras_hub,default] [--extra_row=name=path/to/candidate.gin] \
        [--work_dir=runs/bert_similarity/results] [--store=FILE] [--write_readme]

Each split is prepared once (`prepare --book_split=k`: other books held out for validation and test, so
splits 1 and 2 are books the default config was not chosen on). On it the zero-shot baseline is scored
(`evaluate --baseline_only`: the pretrained encoder's cosine similarity), and each config row runs the
README's commands: `train` with each seed, `evaluate` (its threshold chosen on validation). The keras-hub
row (`train_keras_hub`) fine-tunes `BertTextClassifier` from the same pretrained folder on the same split
with the same seed for the wall time `default.gin`'s `train` took there (measured when it ran, and refused if
that training was resumed; its clock starts at the first step, after packing the pairs), and is scored the
same way. Finished runs are kept in `<work_dir>/results.jsonl`: run it again to resume, or to
rewrite the table without training. Choose settings on the validation column; the test columns are what
the README reports. On a 2-core CPU in its faster hours, per split and seed: about 11 minutes for a config
row (training 9.5, scoring 1) and 12 for keras-hub's; 3 per split for the baseline; up to twice that in
slower hours.
"""

from __future__ import annotations

import os

from core import results, runtime

CONFIGS = "projects/bert_similarity/configs"
DEFAULT_GIN = f"{CONFIGS}/default.gin"
MODELS = "models/all-MiniLM-L6-v2"  # what default.gin's handles name, made by `convert`

BASELINE = results.Row("zero_shot", "zero-shot baseline: all-MiniLM-L6-v2 mean-pooled, cosine",
                       "evaluate --baseline_only on " + results.gin_spec([DEFAULT_GIN]), seeded=False)


_KERAS_HUB_CODE = results.file_digest("projects/bert_similarity/keras_hub_baseline.py",
                                      "projects/bert_similarity/train_keras_hub.py")


def config_rows(name: str, gin_file: str, label: str | None = None) -> list[results.Row]:
    return [results.config_row(name, label or f"`{gin_file}`", [gin_file])]


DEFAULT = config_rows("default", DEFAULT_GIN, "`default.gin`: the cross-encoder, 400 steps")[0]
KERAS_HUB = results.Row("keras_hub", "keras-hub `BertTextClassifier` fine-tuned for the same minutes",
                        f"train_keras_hub.py (sha256 {_KERAS_HUB_CODE}) for the train seconds of {DEFAULT.spec}")

TABLE = results.Table(
    project="bert_similarity",
    rows=[BASELINE, KERAS_HUB, DEFAULT],
    metrics=[results.Metric("test_hard_accuracy", "test accuracy, hard pairs (%)", True, percent=True),
             results.Metric("test_accuracy", "test accuracy, all pairs (%)", True, percent=True),
             results.Metric("test_roc_auc", "test ROC-AUC, hard pairs", True, digits=4),
             results.Metric("validation_hard_accuracy", "validation accuracy, hard pairs (%)", True, percent=True)],
    splits=range(3), seeds=(1, 2, 3), readme_block="bible", baseline=BASELINE.name, extra_rows=config_rows)


def scores(report: dict, model: str) -> dict:
    """The table's metrics from an eval_test.json: on test and validation at the threshold chosen there."""
    found = report[model]
    return results.finite({"test_hard_accuracy": found["hard"]["accuracy"], "test_accuracy": found["all"]["accuracy"],
                           "test_roc_auc": found["hard"]["roc_auc"],
                           "validation_hard_accuracy": found["validation"]["hard"]["accuracy"],
                           "threshold": found["threshold"]})


class Runner(results.Runner):
    """Makes one run of a row on a book split with a seed with the project's binaries, under `work_dir`."""

    def data_dir(self, split: int) -> str:
        """The prepared book split, made on first use (and the converted encoder, where there is none)."""
        if not os.path.exists(os.path.join(MODELS, "conversion.json")):
            self.run(results.python_module("projects.bert_similarity.convert", f"--output_dir={MODELS}"),
                     self.log(split, "convert"))
        return self.prepared(split, "projects.bert_similarity.prepare", f"--book_split={split}")

    def ours(self, row: results.Row, split: int, seed: int, log: str) -> str:
        return self.trained("projects.bert_similarity.train", row, split, seed, log,
                            f"--gin_bindings=SimilarityTask.data_dir='{self.data_dir(split)}'")

    def __call__(self, row: results.Row, split: int, seed: int) -> dict:
        data_dir = self.data_dir(split)
        log = self.log(split, f"{row.name}-seed_{seed}")
        data = f"--gin_bindings=SimilarityTask.data_dir='{data_dir}'"
        if row.name == BASELINE.name:
            model_dir = os.path.join(self.work_dir, f"split_{split}", row.tag)
            if not os.path.exists(os.path.join(model_dir, "eval_test.json")):
                self.run(results.python_module("projects.bert_similarity.evaluate", "--baseline_only",
                                               f"--gin_file={DEFAULT_GIN}", data, f"--model_dir={model_dir}"), log)
            return scores(results.read_json(os.path.join(model_dir, "eval_test.json")), "zero_shot_baseline")
        if row.name == KERAS_HUB.name:
            budget = results.train_budget(self.ours(DEFAULT, split, seed, self.log(split, f"default-seed_{seed}")),
                                          "keras-hub")
            model_dir = os.path.join(self.work_dir, f"split_{split}", f"{row.tag}-seed_{seed}")
            report = os.path.join(model_dir, "eval_test.json")
            if not os.path.exists(report) or results.read_json(report).get("budget_seconds") != budget:
                self.run(results.python_module(
                    "projects.bert_similarity.train_keras_hub", f"--data_dir={data_dir}", f"--model_dir={model_dir}",
                    f"--seed={seed}", f"--train_seconds={budget}"), log)
            found = results.read_json(report)
            return {**scores(found, "keras_hub"), "train_seconds": found["keras_hub"]["train_seconds"]}
        model_dir = self.ours(row, split, seed, log)
        report = os.path.join(model_dir, "eval_test.json")
        if not os.path.exists(report):
            self.run(results.python_module("projects.bert_similarity.evaluate", f"--model_dir={model_dir}",
                                           "--nobaseline"), log)
        return {**scores(results.read_json(report), "fine_tuned"), **results.train_seconds([model_dir])}


def main(argv: list[str]) -> None:
    results.run_table(TABLE, Runner)


if __name__ == "__main__":
    runtime.run(main)
