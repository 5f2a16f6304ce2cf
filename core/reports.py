"""Classification reports written by every project's `evaluate`: JSON, a text confusion matrix, and a picture."""

from __future__ import annotations

import json
import os

import numpy as np

from core.files import atomic_path, write_text_atomic


def format_confusion_matrix(matrix: np.ndarray, class_names: list[str]) -> str:
    """Rows are true classes, columns predicted classes."""
    width = max(6, *(len(n) for n in class_names))
    lines = [" " * width + " " + " ".join(f"{i:>6d}" for i in range(len(class_names)))]
    for i, (name, row) in enumerate(zip(class_names, matrix)):
        lines.append(f"{name:>{width}} " + " ".join(f"{int(v):>6d}" for v in row) + f"   <- true {i}")
    return "\n".join(lines)


def plot_confusion_matrix(matrix: np.ndarray, class_names: list[str], path: str, title: str = "") -> None:
    """Saves the matrix as a labelled heat map (PNG), counts in the cells, rows normalised for colour."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    n = len(class_names)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 2.5 + 0.6 * n
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center",
                    color="white" if rates[i, j] > 0.5 else "black", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_classification_report(
    results: dict[str, float], matrix: np.ndarray, class_names: list[str], model_dir: str, split: str
) -> dict[str, str]:
    """Writes `eval_<split>.json` and `confusion_<split>.png` into model_dir; returns the paths."""
    report = {**results, "split": split, "class_names": class_names,
              "confusion_matrix": np.asarray(matrix).astype(int).tolist()}
    paths = {"json": os.path.join(model_dir, f"eval_{split}.json"),
             "picture": os.path.join(model_dir, f"confusion_{split}.png")}
    write_text_atomic(paths["json"], json.dumps(report, indent=2, ensure_ascii=False))
    plot_confusion_matrix(np.asarray(matrix), class_names, paths["picture"],
                          title=f"{split}: accuracy {results.get('accuracy', float('nan')):.4f}")
    return paths


def evaluate_classifier(task, options, split: str) -> dict[str, float]:
    """Evaluates a classification Task (one of its metrics a MacroF1) on `split` and writes the report.

    Used by every classifier's `evaluate` binary; prints the confusion matrix and the results before
    writing anything, so a model dir that cannot be written loses no result.
    """
    from core import evaluation  # keeps this module importable without TensorFlow-heavy imports
    from core.metrics import MacroF1

    results, metrics = evaluation.evaluate(task, options, split=split)
    matrix = next((np.asarray(m.confusion_matrix()) for m in metrics if isinstance(m, MacroF1)), None)
    if matrix is None:
        raise ValueError(f"{type(task).__name__}.build_metrics() has no MacroF1, so there is no confusion matrix.")
    print(format_confusion_matrix(matrix, task.class_names))
    print(f"{split}: {evaluation.format_results(results)}", flush=True)
    paths = write_classification_report(results, matrix, task.class_names, options.model_dir, split)
    print(f"Wrote {paths['json']} and {paths['picture']}")
    return results
