r"""The README's results table: every row over 5 whole-day splits of Bikeshare (SplitSpec.seed 0-4), 3 seeds.

    make results-wide_deep
    python -m projects.wide_deep.results [--splits=0,1,2,3,4] [--seeds=1,2,3] [--table_rows=gbt,default] \
        [--extra_row=name=path/to/candidate.gin] [--work_dir=runs/wide_deep/results] [--write_readme]

Each split is prepared once (`prepare` with `SplitSpec.seed=k`: a seeded 70/15/15 of the days). On it the
gradient-boosted trees are fitted (`baseline.py`), and each config row runs the README's commands: `train`
with each seed, `evaluate` on validation and on test. A config's `_ensemble` row scores the mean
prediction of its models trained with seeds 1, 2 and 3 (`evaluate --ensemble_with`, whatever --seeds
says): three models' training, and three times one model's serving cost. Finished runs are kept in
`<work_dir>/results.jsonl`:
run it again to resume, or to rewrite the table without training. Choose settings on the validation
column; the test column is what the README reports. About a minute per split, seed and config row.
"""

from __future__ import annotations

import os

from core import results, runtime

CONFIGS = "projects/wide_deep/configs"
DATA_GIN = f"{CONFIGS}/data_bikeshare.gin"
ENSEMBLE_SEEDS = (1, 2, 3)

BASELINE = results.Row("gbt", "gradient-boosted trees, `baseline.py`",
                       "baseline.py: HistGradientBoostingRegressor(lr 0.05, early-stopped on validation) on "
                       + results.gin_spec([DATA_GIN]), seeded=False)
# The prepared splits' folder changes with the data config, so an edited one is prepared anew.
DATA_TAG = results.config_row("data", "", [DATA_GIN]).tag


def config_rows(name: str, gin_file: str, label: str | None = None) -> list[results.Row]:
    """A config's row (one model per seed) and its `_ensemble` row (the mean of seeds 1-3 per split)."""
    row = results.config_row(name, label or f"`{gin_file}`", [gin_file], also=[DATA_GIN])
    return [row, results.ensemble_row(row, ENSEMBLE_SEEDS)]


TABLE = results.Table(
    project="wide_deep",
    rows=[BASELINE, *config_rows("default", f"{CONFIGS}/default.gin", "`default.gin`"),
          *config_rows("poisson", f"{CONFIGS}/poisson.gin", "`poisson.gin`: log link, Poisson loss, 15 epochs"),
          *config_rows("cyclical", f"{CONFIGS}/cyclical.gin",
                       "**`cyclical.gin`**: `poisson.gin` plus the hour and weekday as sine and cosine")],
    metrics=[results.Metric("test_rmse", "test RMSE", higher_is_better=False),
             results.Metric("test_mae", "test MAE", higher_is_better=False),
             results.Metric("validation_rmse", "validation RMSE", higher_is_better=False)],
    splits=range(5), seeds=ENSEMBLE_SEEDS, readme_block="bikeshare", baseline=BASELINE.name, extra_rows=config_rows)


class Runner(results.Runner):
    """Makes one run of a row on a split with a seed with the project's binaries, under `work_dir`."""

    def data_dir(self, split: int) -> str:
        """The prepared split, made on first use."""
        path = os.path.join(self.work_dir, DATA_TAG, f"split_{split}")
        if not os.path.exists(os.path.join(path, "metadata.json")):  # written last by prepare
            self.run(results.python_module("projects.wide_deep.prepare", f"--gin_file={DATA_GIN}",
                                           f"--gin_bindings=SplitSpec.seed={split}", f"--output_dir={path}"),
                     self.log(split, "prepare"))
        return path

    def model_dir(self, row: results.Row, split: int, seed: int, data_dir: str, log: str) -> str:
        """The model of `row` trained with `seed` on the split, trained on first use."""
        path = os.path.join(self.work_dir, f"split_{split}", f"{row.tag}-seed_{seed}")
        results.train_once(self.run, results.python_module(
            "projects.wide_deep.train", *(f"--gin_file={p}" for p in row.gin_files), f"--model_dir={path}",
            f"--seed={seed}", f"--gin_bindings=RegressionTask.data_dir='{data_dir}'"), log, path)
        return path

    def scores(self, model_dir: str, log: str, ensemble_with: list[str] = ()) -> dict:
        """Validation and test RMSE and MAE (of the mean prediction, with `ensemble_with`), and training seconds."""
        return self.evaluate("projects.wide_deep.evaluate", model_dir, log, ("rmse", "mae"), ensemble_with,
                             timed=[model_dir, *ensemble_with])

    def __call__(self, row: results.Row, split: int, seed: int) -> dict:
        data_dir = self.data_dir(split)
        log = self.log(split, f"{row.name}-seed_{seed}")
        if row.name == BASELINE.name:
            self.run(results.python_module("projects.wide_deep.baseline", f"--data_dir={data_dir}"), log)
            trees = results.read_json(os.path.join(data_dir, "gbt_baseline.json"))["median"]
            return results.finite({"test_rmse": trees["rmse"], "test_mae": trees["mae"]})
        if row.ensemble_of:
            dirs = [self.model_dir(row.ensemble_of, split, s, data_dir, log) for s in row.ensemble_seeds]
            for path in dirs:  # a member trained here is scored alone too, as its own row would be
                self.scores(path, log)
            return self.scores(dirs[0], log, ensemble_with=dirs[1:])
        return self.scores(self.model_dir(row, split, seed, data_dir, log), log)


def main(argv: list[str]) -> None:
    results.run_table(TABLE, Runner)


if __name__ == "__main__":
    runtime.run(main)
