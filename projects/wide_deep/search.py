r"""Hyperparameter search with KerasTuner: each trial is a normal training run with sampled gin bindings.

    python -m projects.wide_deep.search --gin_file=projects/wide_deep/configs/default.gin \
        --search_space=projects/wide_deep/configs/search_space.json --model_dir=runs/wide_deep/search \
        [--tuner=random|hyperband] [--max_trials=12] [--max_epochs=60]

The search space is a JSON object of gin binding -> distribution:
    {"RegressionTask.learning_rate": {"type": "float", "min": 1e-4, "max": 1e-2, "sampling": "log"},
     "wide_deep.hidden_units": {"type": "choice", "values": ["(64,)", "(256, 128)"]},
     "wide_deep.dropout": {"type": "float", "min": 0.0, "max": 0.3, "step": 0.1},
     "wide_deep.embedding_dim": {"type": "int", "min": 4, "max": 16, "step": 4}}
("choice" values are gin literals, written into the bindings as they are).

Every trial trains with core's trainer into `<model_dir>/trials/<id>/` (checkpoints, operative_config.gin,
TensorBoard summaries, like any run) and reports its best validation RMSE. Random search runs `--max_trials`
trials of TrainConfig.train_steps each; Hyperband gives many trials a few epochs and the best ones more,
up to `--max_epochs` (an epoch here is TrainConfig.steps_per_loop steps); a promoted trial starts from a copy
of the checkpoint it was promoted from and trains only the added epochs. After the search:
  <model_dir>/results.csv, results.md   every trial ranked by validation RMSE, with its bindings
  <model_dir>/hparams/                  the same trials for TensorBoard's HParams dashboard
  <model_dir>/best/                     the best bindings retrained on train + validation, for the same
                                        number of epochs, then scored on the test split (eval_test.json)
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
import time

import gin
from absl import flags, logging

from core import board, runtime, trainer
from core import config as core_config
from core.config import ConfigError, RunOptions, UserError
from core.files import write_text_atomic

from . import reports
from .task import RegressionTask

flags.adopt_module_key_flags(core_config)
flags.DEFINE_string("search_space", None, "JSON file: gin binding -> distribution (see the module docstring).")
flags.DEFINE_enum("tuner", "random", ["random", "hyperband"], "KerasTuner algorithm.")
flags.DEFINE_integer("max_trials", 12, "Random search: how many trials.")
flags.DEFINE_integer("max_epochs", 60, "Hyperband: most epochs (loops of steps_per_loop) a trial trains.")
flags.DEFINE_integer("hyperband_factor", 3, "Hyperband: the reduction factor between brackets.")
flags.DEFINE_string("objective", "val_rmse", "Log to minimise (val_bikers_rmse for the multi-output model).")
flags.DEFINE_bool("retrain_best", True, "Retrain the best bindings on train + validation and score it on test.")
FLAGS = flags.FLAGS

_TYPES = ("float", "int", "choice")


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One searched gin binding and its distribution."""

    binding: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    values: tuple = ()

    def sample(self, hp):
        """Registers the dimension with KerasTuner's HyperParameters and returns the sampled value."""
        if self.kind == "float":
            return hp.Float(self.binding, self.low, self.high, step=self.step, sampling="log" if self.log else "linear")
        if self.kind == "int":
            return hp.Int(self.binding, int(self.low), int(self.high), step=int(self.step or 1),
                          sampling="log" if self.log else "linear")
        return hp.Choice(self.binding, list(self.values))


def read_search_space(path: str) -> list[Dimension]:
    """The dimensions of a search-space JSON file; a ConfigError names the file, key and problem."""
    if not path:
        raise ConfigError("--search_space is required: a JSON file of gin binding -> distribution.")
    try:
        with open(path) as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"--search_space={path}: no such file.") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"--search_space={path}: not valid JSON ({e}).") from e
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"--search_space={path}: expected a non-empty JSON object of binding -> distribution.")
    dimensions = []
    for binding, spec in raw.items():
        where = f"--search_space={path}, {binding!r}"
        if "." not in binding or not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected 'Configurable.parameter': {{\"type\": ...}}.")
        kind = spec.get("type")
        if kind not in _TYPES:
            raise ConfigError(f"{where}: \"type\" must be one of {_TYPES}, got {kind!r}.")
        if kind == "choice":
            values = spec.get("values")
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{where}: a choice needs a non-empty \"values\" list.")
            dimensions.append(Dimension(binding, kind, values=tuple(str(v) for v in values)))
            continue
        low, high = spec.get("min"), spec.get("max")
        if not isinstance(low, int | float) or not isinstance(high, int | float) or not low < high:
            raise ConfigError(f"{where}: needs numbers \"min\" < \"max\", got {low!r} and {high!r}.")
        log = spec.get("sampling", "linear") == "log"
        if log and low <= 0:
            raise ConfigError(f"{where}: log sampling needs \"min\" > 0.")
        dimensions.append(Dimension(binding, kind, float(low), float(high), spec.get("step"), log))
    return dimensions


def configured_model_name() -> str:
    """The model function the parsed gin config trains, read from the config alone (no data needed)."""
    try:
        reference = gin.query_parameter("RegressionTask.model_fn")
    except ValueError:
        return "wide_deep"  # unbound: RegressionTask's default model_fn
    return reference.configurable.name


def check_dimensions(dimensions: list[Dimension], model_name: str) -> None:
    """Refuses a dimension that binds another model function than the one trained: gin would accept the
    binding and never use it, and every trial would train the same model."""
    from . import model as model_lib

    for d in dimensions:
        configurable = d.binding.split(".")[0]
        if configurable in model_lib.MODEL_FUNCTIONS and configurable != model_name:
            raise ConfigError(f"--search_space: {d.binding!r} configures {configurable}, but the gin config trains "
                              f"RegressionTask.model_fn = @{model_name}; bind {model_name}.* instead.")


def bindings_for(dimensions: list[Dimension], values: dict) -> list[str]:
    """Gin binding strings of a trial's values (choices are gin literals; numbers are written as numbers)."""
    out = []
    for d in dimensions:
        value = values[d.binding]
        out.append(f"{d.binding} = {value}" if d.kind == "choice" else f"{d.binding} = {value!r}")
    return out


def train_run(gin_files: list[str], bindings: list[str], options: RunOptions, objective: str) -> tuple[dict, float]:
    """One normal training run with extra bindings; returns (last logs, best value of `objective`)."""
    core_config.parse_gin(gin_files, bindings)
    runtime.configure(options)
    config = trainer.TrainConfig()
    task = RegressionTask(seed=options.seed)
    logs = trainer.train(task, options=options, config=config)
    history = os.path.join(options.model_dir, "training_log.csv")
    best = math.inf
    if os.path.exists(history):
        with open(history) as f:
            values = [float(row[objective]) for row in csv.DictReader(f) if row.get(objective)]
        if not values:
            raise UserError(f"--objective={objective}: not in {history}; its columns are "
                            f"{list(csv.DictReader(open(history)).fieldnames or [])}.")
        best = min(values)
    return logs, best


def make_tuner(dimensions: list[Dimension], gin_files: list[str], base_bindings: list[str], options: RunOptions):
    """A KerasTuner tuner whose `run_trial` trains with core's trainer under sampled bindings."""
    import keras_tuner

    steps_per_loop = trainer.TrainConfig().steps_per_loop
    space = keras_tuner.HyperParameters()
    for d in dimensions:  # declared up front: Hyperband starts no trial over a space it has not seen
        d.sample(space)
    oracle_kwargs = dict(objective=keras_tuner.Objective(FLAGS.objective, direction="min"), seed=options.seed,
                         hyperparameters=space)
    if FLAGS.tuner == "random":
        oracle = keras_tuner.oracles.RandomSearchOracle(max_trials=FLAGS.max_trials, **oracle_kwargs)
    else:
        oracle = keras_tuner.oracles.HyperbandOracle(max_epochs=FLAGS.max_epochs, factor=FLAGS.hyperband_factor,
                                                     **oracle_kwargs)

    class TrainerTuner(keras_tuner.Tuner):
        """Each trial: sample the space, bind it in gin, run the trainer in the trial's own model dir."""

        def run_trial(self, trial, *args, **kwargs):
            values = {d.binding: d.sample(trial.hyperparameters) for d in dimensions}
            bindings = bindings_for(dimensions, values)
            if "tuner/epochs" in trial.hyperparameters.values:  # Hyperband's budget for this trial
                epochs = trial.hyperparameters.get("tuner/epochs")
                bindings.append(f"TrainConfig.train_steps = {epochs * steps_per_loop}")
            trial_dir = os.path.join(options.model_dir, "trials", trial.trial_id)
            previous = trial.hyperparameters.values.get("tuner/trial_id")
            if previous and not os.path.exists(trial_dir):
                # Hyperband promotes a trial to a longer budget: start from its checkpoint, train the rest.
                shutil.copytree(os.path.join(options.model_dir, "trials", previous), trial_dir)
            start = time.perf_counter()
            _, best = train_run(gin_files, base_bindings + bindings,
                                dataclasses.replace(options, model_dir=trial_dir), FLAGS.objective)
            trial.metrics.update("seconds", time.perf_counter() - start)
            logging.info("Trial %s: %s=%.4f with %s", trial.trial_id, FLAGS.objective, best, bindings)
            return {FLAGS.objective: best}

    return TrainerTuner(oracle=oracle, directory=options.model_dir, project_name="tuner", overwrite=False)


def results_table(tuner, dimensions: list[Dimension], objective: str, model_dir: str) -> list[dict]:
    """Every finished trial as a row, best first."""
    rows = []
    for trial in tuner.oracle.trials.values():
        score = trial.score
        if score is None:
            continue
        hp = trial.hyperparameters.values
        row = {"trial": trial.trial_id, objective: round(float(score), 4)}
        row.update({d.binding: hp.get(d.binding) for d in dimensions})
        if "tuner/epochs" in hp:
            row["epochs"] = hp["tuner/epochs"]
        seconds = trial.metrics.get_best_value("seconds") if trial.metrics.exists("seconds") else None
        row["seconds"] = round(float(seconds), 1) if seconds is not None else ""
        row["model_dir"] = os.path.join(model_dir, "trials", trial.trial_id)
        rows.append(row)
    return sorted(rows, key=lambda r: r[objective])


def retrain_best(best: dict, dimensions: list[Dimension], gin_files: list[str], base_bindings: list[str],
                 options: RunOptions) -> dict:
    """Retrains the best bindings on train + validation for as many epochs, then scores it on the test split."""
    from . import evaluate as evaluate_lib

    values = {d.binding: best[d.binding] for d in dimensions}
    # A binding, not an argument, so the run's operative_config.gin records what it trained on.
    bindings = [*base_bindings, *bindings_for(dimensions, values),
                "RegressionTask.train_splits = ('train', 'validation')"]
    if "epochs" in best:
        # Loops of the retrain's own length: its data (train + validation) can make an epoch's steps differ.
        core_config.parse_gin(gin_files, bindings)
        steps_per_loop = trainer.TrainConfig().steps_per_loop
        bindings.append(f"TrainConfig.train_steps = {best['epochs'] * steps_per_loop}")
    best_dir = os.path.join(options.model_dir, "best")
    train_run(gin_files, bindings, dataclasses.replace(options, model_dir=best_dir), FLAGS.objective)
    report = evaluate_lib.evaluate_run(RegressionTask(), dataclasses.replace(options, model_dir=best_dir), "test")
    write_text_atomic(os.path.join(best_dir, "bindings.gin"), "\n".join(bindings) + "\n")
    return report


def main(argv: list[str]) -> None:
    """Runs the search, writes the ranked table, retrains and scores the best."""
    options = RunOptions.from_flags()
    dimensions = read_search_space(FLAGS.search_space)
    gin_files, base_bindings = list(FLAGS.gin_file), list(FLAGS.gin_bindings)
    core_config.parse_gin(gin_files, base_bindings)  # fail on a bad config before the first trial
    check_dimensions(dimensions, configured_model_name())
    tuner = make_tuner(dimensions, gin_files, base_bindings, options)
    tuner.search()
    rows = results_table(tuner, dimensions, FLAGS.objective, options.model_dir)
    if not rows:
        raise UserError(f"no trial finished; see the logs under {options.model_dir}/trials.")
    csv_path, md_path = reports.write_ranked_tables(rows, options.model_dir)
    hparams_dir = board.write_hparams(
        os.path.join(options.model_dir, "hparams"), rows,
        [d.binding for d in dimensions] + (["epochs"] if "epochs" in rows[0] else []),
        [FLAGS.objective, "seconds"], trial_key="trial")
    with open(md_path) as f:
        print(f.read())
    print(f"Wrote {csv_path}, {md_path} and the trials for TensorBoard's HParams dashboard ({hparams_dir})")
    if FLAGS.retrain_best:
        report = retrain_best(rows[0], dimensions, gin_files, base_bindings, options)
        print(f"Best trial {rows[0]['trial']} retrained on train + validation: test rmse={report['rmse']:.3f} "
              f"mae={report['mae']:.3f} r2={report['r2']:.4f} ({os.path.join(options.model_dir, 'best')})")


if __name__ == "__main__":
    runtime.run(main)
