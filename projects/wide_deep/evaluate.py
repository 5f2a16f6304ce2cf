"""Evaluates the newest checkpoint on the test split: RMSE, MAE and R^2, and a predicted-vs-true picture.

    python -m projects.wide_deep.evaluate --model_dir=runs/wide_deep/default [--split=test] [--checkpoint=-2]
    python -m projects.wide_deep.evaluate --model_dir=runs/wide_deep/seed1 \
        --ensemble_with=runs/wide_deep/seed2 --ensemble_with=runs/wide_deep/seed3   # their mean prediction

Uses the model dir's operative_config.gin unless --gin_file is given. Writes `<model_dir>/eval_<split>.json`
and `<model_dir>/predicted_vs_true_<split>.png` (`eval_<split>_ensemble.json` and
`predicted_vs_true_<split>_ensemble.png` with --ensemble_with), and prints the results beside the
gradient-boosted trees baseline when `python -m projects.wide_deep.baseline` has scored the same data.
TensorBoard's run `<model_dir>/evaluate` gets the scores (and the baseline's) under `eval_<split>/` at the
checkpoint's step, and the picture.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import numpy as np
from absl import flags

from core import board, checkpoints, evaluation, runtime
from core import config as core_config
from core.files import atomic_path, write_text_atomic

from .scoring import regression_scores
from .task import RegressionTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

evaluation.define_flags()
flags.DEFINE_multi_string("ensemble_with", [], "Further model dirs trained with the same config (another --seed) "
                          "on the same data: the mean of all their predictions is scored.")
FLAGS = flags.FLAGS


def predict_split(task: RegressionTask, model, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(true targets, predicted targets) over a whole split, in file order."""
    truth, predicted = [], []
    for features, labels in task.build_inputs(split):
        predicted.append(task.prediction_of_target(model(features, training=False)).numpy())
        truth.append(np.reshape(labels[task.target] if isinstance(labels, dict) else labels, [-1]))
    return np.concatenate(truth), np.concatenate(predicted)


def plot_predictions(y_true: np.ndarray, y_pred: np.ndarray, path: str, title: str, unit: str) -> None:
    """A scatter of predicted against true values with the diagonal y = x, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.scatter(y_true, y_pred, s=6, alpha=0.35, edgecolors="none")
    top = float(max(y_true.max(), y_pred.max()))
    low = float(min(0.0, y_pred.min()))
    ax.plot([low, top], [low, top], color="black", linewidth=1, label="predicted = true")
    ax.set_xlabel(f"true {unit}")
    ax.set_ylabel(f"predicted {unit}")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def evaluate_run(task: RegressionTask, options, split: str, show: Callable[[dict], None] | None = None,
                 ensemble_with: tuple[str, ...] = (), checkpoint: str | None = None) -> dict:
    """Scores the newest checkpoint on `split`; writes eval_<split>.json and the picture; returns the report.

    One pass over the split gives the predictions, from which the scores and the picture both come.
    With `ensemble_with` (more model dirs of the same config), the mean of every model's predictions is
    scored, and the files are named `..._ensemble`; with `checkpoint` (--checkpoint's value), that
    checkpoint is scored and the files are named `..._ckpt-N`. `show(report)`, if given, is called before
    anything is written, so a model dir that cannot be written still shows the results.
    """
    evaluation.check_one_checkpoint_source(checkpoint, ensemble_with)
    chosen = checkpoints.checkpoint_path(options.model_dir, checkpoint)
    predictions, checkpoints_used, y_first = [], [], None
    for model_dir in (options.model_dir, *ensemble_with):
        model = task.build_model()
        checkpoints_used.append(checkpoints.restore_model(model, model_dir, chosen if model_dir == options.model_dir
                                                          else None))
        y_true, y_pred = predict_split(task, model, split)
        if y_first is not None and not np.array_equal(y_true, y_first):
            raise ValueError(f"{model_dir}: the {split} split came in another order than for {options.model_dir}")
        y_first = y_true
        predictions.append(y_pred)
    y_pred = np.mean(predictions, axis=0)
    scores = regression_scores(y_true, y_pred)
    report = {**scores, "examples": int(len(y_true)), "split": split,
              "target": task.target, "checkpoint": checkpoints_used[0]}
    if ensemble_with:
        report["ensemble"] = {"model_dirs": [options.model_dir, *ensemble_with], "checkpoints": checkpoints_used,
                              "member_rmse": [regression_scores(y_true, p)["rmse"] for p in predictions]}
    baseline_path = os.path.join(task.data_dir, "gbt_baseline.json")
    if os.path.exists(baseline_path):
        with open(baseline_path) as f:
            report["gbt_baseline"] = json.load(f)["median"]
    name = evaluation.report_name(split, chosen) + ("_ensemble" if ensemble_with else "")
    report["json"] = os.path.join(options.model_dir, f"eval_{name}.json")
    report["picture"] = os.path.join(options.model_dir, f"predicted_vs_true_{name}.png")
    if show is not None:
        show(report)
    write_text_atomic(report["json"], json.dumps(report, indent=2))
    members = f", mean of {len(predictions)} models" if ensemble_with else ""
    plot_predictions(y_true, y_pred, report["picture"], f"{split}: RMSE {scores['rmse']:.2f}, MAE "
                     f"{scores['mae']:.2f}, R$^2$ {scores['r2']:.4f} ({len(y_true)} rows{members})", task.target)
    shown = {**scores, "gbt_baseline": {k: v for k, v in report.get("gbt_baseline", {}).items() if k in scores}}
    board.write_evaluation(options.model_dir, split + ("_ensemble" if ensemble_with else ""),
                           board.checkpoint_step(checkpoints_used[0]), shown,
                           images={"predicted_vs_true": report["picture"]})
    return report


def check_ensemble(model_dir: str, others: list[str]) -> None:
    """Refuses ensemble members trained with another gin config than `model_dir` (the seed is a flag)."""
    def config_of(path: str, flag: str) -> str:
        config_path = os.path.join(path, "operative_config.gin")
        if not os.path.exists(config_path):
            raise core_config.ConfigError(f"--{flag}={path}: no operative_config.gin there; train it first.")
        with open(config_path) as f:
            return f.read()

    if not others:
        return
    mine = config_of(model_dir, "model_dir")
    for other in others:
        if config_of(other, "ensemble_with") != mine:
            raise core_config.ConfigError(f"--ensemble_with={other} was trained with another gin config than "
                                          f"--model_dir={model_dir}; an ensemble averages one config's seeds.")


def main(argv: list[str]) -> None:
    """Evaluates, writes the JSON report and the picture, prints the results and the baseline."""
    options = runtime.setup(default_gin_from_model_dir=True)
    task = RegressionTask.from_model_dir(options.model_dir)
    check_ensemble(options.model_dir, FLAGS.ensemble_with)
    for model_dir in FLAGS.ensemble_with:
        task.check_data(model_dir)
    report = evaluate_run(task, options, FLAGS.split, show=_print_report, ensemble_with=tuple(FLAGS.ensemble_with),
                          checkpoint=FLAGS.checkpoint)
    print(f"Wrote {report['json']}, {report['picture']} and TensorBoard's {board.EVALUATE_RUN}/ run")


def _print_report(report: dict) -> None:
    if "ensemble" in report:
        members = ", ".join(f"{rmse:.3f}" for rmse in report["ensemble"]["member_rmse"])
        print(f"{report['split']}, each model alone: rmse={members}")
    what = f"the mean of {len(report['ensemble']['model_dirs'])} models" if "ensemble" in report else "the model"
    print(f"{report['split']} ({report['examples']} rows of {report['target']}), {what}: rmse={report['rmse']:.3f} "
          f"mae={report['mae']:.3f} r2={report['r2']:.4f}")
    if "gbt_baseline" in report and report["split"] == "test":
        gbt = report["gbt_baseline"]
        print(f"gradient-boosted trees on the test split: rmse={gbt['rmse']:.3f} mae={gbt['mae']:.3f} "
              f"r2={gbt['r2']:.4f} (this model's test RMSE is {report['rmse'] / gbt['rmse']:.3f}x)")


if __name__ == "__main__":
    runtime.run(main)
