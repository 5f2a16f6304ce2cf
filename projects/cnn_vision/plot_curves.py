r"""Draws the learning curves of several runs side by side, from each run's `training_log.csv`.

    python -m projects.cnn_vision.plot_curves --model_dir=runs/cnn_vision/dnn_plain \
        --model_dir=runs/cnn_vision/dnn_selu --output=projects/cnn_vision/dnn_variants.png

One PNG, two panels: validation accuracy and training loss against the epoch, one line per run,
labelled with the run's folder name. `core.trainer` writes `training_log.csv` (Keras' CSVLogger:
epoch, accuracy, loss, ..., val_accuracy, val_loss, ...) once per loop of `steps_per_loop` steps.
"""

from __future__ import annotations

import csv
import os

from absl import app, flags

from core.files import atomic_path

FLAGS = flags.FLAGS

PANELS = (("val_accuracy", "validation accuracy"), ("loss", "training loss"))


def read_training_log(path: str) -> dict[str, list[float]]:
    """The columns of a CSVLogger file as lists of floats, one entry per epoch, in epoch order.

    A run resumed after a crash logs again the epochs after its last checkpoint; the later row wins.
    """
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "epoch" not in rows[0]:
        raise ValueError(f"{path}: expected a CSV with an 'epoch' column and at least one row.")
    by_epoch = {int(row["epoch"]): row for row in rows}
    ordered = [by_epoch[e] for e in sorted(by_epoch)]
    return {name: [float(row[name]) for row in ordered] for name in ordered[0]}


def plot_curves(model_dirs: list[str], output: str, panels=PANELS) -> None:
    """Saves one PNG with a panel per (column, title) in `panels`, one line per run, labelled by folder name."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    logs = {}
    for model_dir in model_dirs:
        path = os.path.join(model_dir, "training_log.csv")
        log = read_training_log(path)
        missing = [column for column, _ in panels if column not in log]
        if missing:
            raise ValueError(f"{path}: no column {missing}; found {sorted(log)}.")
        logs[os.path.basename(os.path.normpath(model_dir))] = log

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, (column, title) in zip(axes[0], panels):
        for label, log in logs.items():
            epochs = [e + 1 for e in log["epoch"]]  # CSVLogger counts from 0; "after epoch 1" reads better
            ax.plot(epochs, log[column], marker=".", label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def define_flags() -> None:
    """--model_dir (repeated) and --output, defined only when this file runs as the binary.

    core.config defines --model_dir as one string; defining a list of the same name at import time
    would clash in any process that imports both (the tests do).
    """
    flags.DEFINE_multi_string("model_dir", [], "A run folder holding training_log.csv; repeat for several runs.")
    flags.DEFINE_string("output", "learning_curves.png", "Where the PNG goes.")


def main(argv: list[str]) -> None:
    """Plots the runs named by --model_dir into --output."""
    if not FLAGS.model_dir:
        raise app.UsageError("give at least one --model_dir (a run folder holding training_log.csv).")
    for model_dir in FLAGS.model_dir:
        if not os.path.isfile(os.path.join(model_dir, "training_log.csv")):
            raise app.UsageError(f"--model_dir={model_dir}: no training_log.csv there (train with "
                                 "TrainConfig.csv_log=True, the default).")
    plot_curves(FLAGS.model_dir, FLAGS.output)
    print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
