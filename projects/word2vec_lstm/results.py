r"""The README's results table: every row over 5 stratified splits of BBC News (split seeds 0-4).

    make results-word2vec_lstm
    python -m projects.word2vec_lstm.results [--splits=0,1,2,3,4] [--seeds=1] [--table_rows=tfidf,default] \
        [--extra_row=name=path/to/candidate.gin] [--work_dir=runs/word2vec_lstm/results] [--write_readme]

Each split is prepared once (`prepare --split_seed=k`: 70/10/20 stratified). On it the TF-IDF +
LinearSVC baseline is fitted, and each config row runs the README's commands: `train_word2vec` on that
split's training articles only, `train` from its vectors, `evaluate` on validation and on test.
Finished runs are kept in `<work_dir>/results.jsonl`: run it again to resume, or to rewrite the table
without training. Choose settings on the validation column; the test column is what the README reports.
A config's `_ensemble` row scores the mean probabilities of its models trained with seeds 1, 2 and 3
(`evaluate --ensemble_with`): no training of its own, three times one model's cost to train and serve.
An `--extra_row`'s `_ensemble5` row does the same with seeds 1-5 (it trains seeds 4 and 5 if missing).
About 4 minutes per split, seed and config row on a 2-core CPU; the baseline takes seconds.
"""

from __future__ import annotations

import os

from core import results, runtime

CONFIGS = "projects/word2vec_lstm/configs"
WORD2VEC_GIN = f"{CONFIGS}/word2vec.gin"
SEEDS = (1, 2, 3)  # of every config row, and of its `_ensemble` row's members
SEEDS5 = (1, 2, 3, 4, 5)  # of an --extra_row's `_ensemble5` row's members

BASELINE = results.Row("tfidf", "TF-IDF (words + bigrams) + LinearSVC, `baseline.py`",
                       "baseline.py: TfidfVectorizer(1-2 grams, sublinear tf, min_df 2) + LinearSVC(C=1)",
                       seeded=False)


def config_rows(name: str, gin_file: str, label: str | None = None) -> list[results.Row]:
    """A config's row (one model per seed, on vectors from word2vec.gin, part of its spec), its `_ensemble`
    row (the mean of seeds 1-3's probabilities per split) and its `_ensemble5` row (of seeds 1-5)."""
    row = results.config_row(name, label or f"`{gin_file}`", [gin_file], also=[WORD2VEC_GIN])
    return [row, results.ensemble_row(row, SEEDS), results.ensemble_row(row, SEEDS5, name=f"{name}_ensemble5")]


TABLE = results.Table(
    project="word2vec_lstm",
    rows=[BASELINE, *config_rows("default", f"{CONFIGS}/default.gin",  # [:2]: its row and 3-seed ensemble
                                 "**default.gin**: word2vec on the split's training articles, then the BiLSTM")[:2]],
    metrics=[results.Metric("test_accuracy", "test accuracy %", higher_is_better=True, percent=True),
             results.Metric("test_macro_f1", "test macro-F1 %", higher_is_better=True, percent=True),
             results.Metric("validation_accuracy", "validation accuracy %", higher_is_better=True, percent=True)],
    splits=range(5), seeds=SEEDS, readme_block="bbc",
    extra_rows=config_rows)


class Runner(results.Runner):
    """Makes one run of a row on a split with a seed with the project's binaries, under `work_dir`."""

    def data_dir(self, split: int) -> str:
        """The prepared split, made on first use."""
        path = os.path.join(self.work_dir, "data", f"split_{split}")
        if not os.path.exists(os.path.join(path, "metadata.json")):  # written last by prepare
            self.run(results.python_module("projects.word2vec_lstm.prepare", f"--output_dir={path}",
                                           f"--split_seed={split}", "--overwrite"), self.log(split, "prepare"))
        return path

    def vectors_dir(self, split: int, seed: int) -> str:
        tag = results.config_row("word2vec", "", [WORD2VEC_GIN]).tag
        return os.path.join(self.work_dir, f"split_{split}", f"{tag}-seed_{seed}")

    def vectors(self, split: int, seed: int, data_dir: str, log: str) -> str:
        """word2vec on the split's training articles (never its validation or test ones), made on first use."""
        path = self.vectors_dir(split, seed)
        if not os.path.exists(os.path.join(path, "projector_config.pbtxt")):  # the last file it writes
            results.train_once(self.run, results.python_module(
                "projects.word2vec_lstm.train_word2vec", f"--gin_file={WORD2VEC_GIN}", f"--model_dir={path}",
                f"--seed={seed}", f"--gin_bindings=Word2VecTask.corpus='{data_dir}/train-*.tfrecord'"), log, path)
        return path

    def __call__(self, row: results.Row, split: int, seed: int) -> dict:
        data_dir = self.data_dir(split)
        if row.name == BASELINE.name:
            self.run(results.python_module("projects.word2vec_lstm.baseline", f"--data_dir={data_dir}"),
                     self.log(split, row.name))
            scores = results.read_json(os.path.join(data_dir, "tfidf_baseline.json"))
            return results.finite({f"{name}_{k}": scores[name][k] for name in ("validation", "test")
                                   for k in ("accuracy", "macro_f1")})
        log = self.log(split, f"{row.name}-seed_{seed}")
        seeds = row.ensemble_seeds if row.ensemble_of else (seed,)
        dirs = [self.model_dir(row.ensemble_of or row, split, s, data_dir, log) for s in seeds]
        if row.ensemble_of:
            for path in dirs:  # its members are scored alone too, as their own row would score them
                self.scores(path, log)
        # Its training time: word2vec and the classifier, of every model it averages.
        timed = dirs + [self.vectors_dir(split, s) for s in seeds]
        return self.scores(dirs[0], log, ensemble_with=dirs[1:], timed=timed)

    def model_dir(self, row: results.Row, split: int, seed: int, data_dir: str, log: str) -> str:
        """The classifier of `row` trained with `seed` on the split (from that seed's vectors), made on first use."""
        path = os.path.join(self.work_dir, f"split_{split}", f"{row.tag}-seed_{seed}")
        if not os.path.exists(os.path.join(path, "eval_test.json")):
            vectors = self.vectors(split, seed, data_dir, log)
            results.train_once(self.run, results.python_module(
                "projects.word2vec_lstm.train", *(f"--gin_file={p}" for p in row.gin_files),
                f"--model_dir={path}", f"--seed={seed}",
                f"--gin_bindings=TextClassificationTask.data_dir='{data_dir}'",
                f"--gin_bindings=TextClassificationTask.word2vec_dir='{vectors}'"), log, path)
        return path

    def scores(self, model_dir: str, log: str, ensemble_with: list[str] = (), timed: list[str] = ()) -> dict:
        """Validation and test accuracy and macro-F1 (of the mean, with `ensemble_with`); seconds of `timed`."""
        return self.evaluate("projects.word2vec_lstm.evaluate", model_dir, log, ("accuracy", "macro_f1"),
                             ensemble_with, timed)


def main(argv: list[str]) -> None:
    results.run_table(TABLE, Runner)


if __name__ == "__main__":
    runtime.run(main)
