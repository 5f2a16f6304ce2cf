"""Evaluates the newest checkpoint on the test split: RMSE, MAE and R^2, and a predicted-vs-true picture.

    python -m projects.wide_deep.evaluate --model_dir=runs/wide_deep/default [--split=test]

Uses the model dir's operative_config.gin unless --gin_file is given. Writes `<model_dir>/eval_<split>.json`
and `<model_dir>/predicted_vs_true_<split>.png`, and prints the results beside the gradient-boosted trees
baseline when `python -m projects.wide_deep.baseline` has scored the same data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import numpy as np
from absl import flags

from core import checkpoints, runtime
from core import config as core_config
from core.files import atomic_path, write_text_atomic

from .scoring import regression_scores
from .task import RegressionTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

flags.DEFINE_enum("split", "test", ["validation", "test"], "Which held-out split to evaluate.")
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


def evaluate_run(task: RegressionTask, options, split: str, show: Callable[[dict], None] | None = None) -> dict:
    """Scores the newest checkpoint on `split`; writes eval_<split>.json and the picture; returns the report.

    One pass over the split gives the predictions, from which the scores and the picture both come.
    `show(report)`, if given, is called before anything is written, so a model dir that cannot be
    written still shows the results.
    """
    model = task.build_model()
    checkpoint = checkpoints.restore_model(model, options.model_dir)
    y_true, y_pred = predict_split(task, model, split)
    scores = regression_scores(y_true, y_pred)
    report = {**scores, "examples": int(len(y_true)), "split": split,
              "target": task.target, "checkpoint": checkpoint}
    baseline_path = os.path.join(task.data_dir, "gbt_baseline.json")
    if os.path.exists(baseline_path):
        with open(baseline_path) as f:
            report["gbt_baseline"] = json.load(f)["median"]
    report["json"] = os.path.join(options.model_dir, f"eval_{split}.json")
    report["picture"] = os.path.join(options.model_dir, f"predicted_vs_true_{split}.png")
    if show is not None:
        show(report)
    write_text_atomic(report["json"], json.dumps(report, indent=2))
    plot_predictions(y_true, y_pred, report["picture"], f"{split}: RMSE {scores['rmse']:.2f}, MAE "
                     f"{scores['mae']:.2f}, R$^2$ {scores['r2']:.4f} ({len(y_true)} rows)", task.target)
    return report


def main(argv: list[str]) -> None:
    """Evaluates, writes the JSON report and the picture, prints the results and the baseline."""
    options = runtime.setup(default_gin_from_model_dir=True)
    task = RegressionTask()
    task.check_data(options.model_dir)
    report = evaluate_run(task, options, FLAGS.split, show=_print_report)
    print(f"Wrote {report['json']} and {report['picture']}")


def _print_report(report: dict) -> None:
    print(f"{report['split']} ({report['examples']} rows of {report['target']}): rmse={report['rmse']:.3f} "
          f"mae={report['mae']:.3f} r2={report['r2']:.4f}")
    if "gbt_baseline" in report and report["split"] == "test":
        gbt = report["gbt_baseline"]
        print(f"gradient-boosted trees on the test split: rmse={gbt['rmse']:.3f} mae={gbt['mae']:.3f} "
              f"r2={gbt['r2']:.4f} (this model's test RMSE is {report['rmse'] / gbt['rmse']:.3f}x)")


if __name__ == "__main__":
    runtime.run(main)
