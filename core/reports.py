"""Classification reports that cnn_vision's and word2vec_lstm's `evaluate` write: JSON, a text confusion matrix,
and a picture."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

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


def per_class_report(matrix: np.ndarray, class_names: list[str]) -> tuple[str, dict]:
    """scikit-learn's `classification_report` (precision, recall, F1 and support per class, and their averages)
    of a confusion matrix, as text and as a dict: the matrix holds every (true, predicted) pair's count, so
    expanding it gives the label arrays the report needs."""
    from sklearn.metrics import classification_report

    matrix = np.asarray(matrix).astype(int)
    n = len(class_names)
    y_true = np.repeat(np.repeat(np.arange(n), n), matrix.ravel())
    y_pred = np.repeat(np.tile(np.arange(n), n), matrix.ravel())
    kwargs = dict(labels=list(range(n)), target_names=list(class_names), zero_division=0)
    return (classification_report(y_true, y_pred, digits=4, **kwargs),
            classification_report(y_true, y_pred, output_dict=True, **kwargs))


def write_classification_report(
    results: dict, matrix: np.ndarray, class_names: list[str], model_dir: str, split: str, suffix: str = "",
    step: int = 0, images: Callable[[], dict[str, bytes]] | None = None
) -> dict[str, str]:
    """Writes `eval_<split><suffix>.json` (with the per-class report) and `confusion_<split><suffix>.png` into
    model_dir, then all of it to TensorBoard at `step`, with the pictures `images()` makes (after the JSON, so
    that a failure there loses no result); returns the paths."""
    text, per_class = per_class_report(matrix, class_names)
    report = {**results, "split": split, "class_names": class_names,
              "confusion_matrix": np.asarray(matrix).astype(int).tolist(), "per_class": per_class}
    paths = {"json": os.path.join(model_dir, f"eval_{split}{suffix}.json"),
             "picture": os.path.join(model_dir, f"confusion_{split}{suffix}.png")}
    write_text_atomic(paths["json"], json.dumps(report, indent=2, ensure_ascii=False))
    plot_confusion_matrix(np.asarray(matrix), class_names, paths["picture"],
                          title=f"{split}: accuracy {results.get('accuracy', float('nan')):.4f}")
    from core import board

    # Under the split's name whichever checkpoint was scored: the step tells them apart, and a curve forms.
    board.write_evaluation(model_dir, split + suffix.split("_ckpt-")[0], step, results,
                           images={"confusion_matrix": paths["picture"], **(images() if images else {})},
                           texts={"classification_report": board.code_block(text)})
    return paths


def evaluate_classifier(task, options, split: str, checkpoint: str | None = None,
                        images: Callable[..., dict[str, bytes]] | None = None) -> dict[str, float]:
    """Evaluates a classification Task (one of its metrics a MacroF1) on `split` and writes the report.

    `images(task, options, split, checkpoint_path)`, if given, makes a project's own pictures (name -> PNG
    bytes) for TensorBoard, beside the confusion matrix.

    `checkpoint`: --checkpoint's value (a path, a step, or -1, -2, ...; default the newest), whose name the
    report files then carry. Prints the confusion matrix and the results before writing anything, so a
    model dir that cannot be written loses no result.
    """
    from core import checkpoints, evaluation  # keeps this module importable without TensorFlow-heavy imports
    from core.metrics import MacroF1

    path = checkpoints.checkpoint_path(options.model_dir, checkpoint)
    results, metrics, restored = evaluation.evaluate_checkpoint(task, options, split=split, checkpoint=path)
    matrix = next((np.asarray(m.confusion_matrix()) for m in metrics if isinstance(m, MacroF1)), None)
    if matrix is None:
        raise ValueError(f"{type(task).__name__}.build_metrics() has no MacroF1, so there is no confusion matrix.")
    print(format_confusion_matrix(matrix, task.class_names))
    print(per_class_report(matrix, task.class_names)[0])
    print(f"{split}: {evaluation.format_results(results)}", flush=True)
    name = evaluation.report_name(split, path)
    from core import board

    paths = write_classification_report(results, matrix, task.class_names, options.model_dir, split,
                                        suffix=name[len(split):], step=board.checkpoint_step(restored),
                                        images=(lambda: images(task, options, split, restored)) if images else None)
    print(f"Wrote {paths['json']}, {paths['picture']} and TensorBoard's {board.EVALUATE_RUN}/ run")
    return results


def evaluate_classifier_ensemble(task, model_dirs: list[str], split: str) -> dict:
    """Scores the mean softmax of several models of one config (other seeds) on `split` and writes the report.

    Each model is built by `task` and restored from its newest checkpoint; their probabilities are averaged
    per example, and accuracy, macro-F1 and the confusion matrix are those of the mean. Writes
    `eval_<split>_ensemble.json` and `confusion_<split>_ensemble.png` into the first model dir.
    """
    import tensorflow as tf

    from core import checkpoints
    from core.metrics import MacroF1

    probabilities, labels, used = [], None, []
    for model_dir in model_dirs:
        model = task.build_model()
        used.append(checkpoints.restore_model(model, model_dir))
        batches = [(tf.nn.softmax(model(x, training=False)).numpy(), y.numpy()) for x, y in task.build_inputs(split)]
        member_labels = np.concatenate([y for _, y in batches])
        if labels is not None and not np.array_equal(labels, member_labels):
            raise ValueError(f"{model_dir}: the {split} split came in another order than for {model_dirs[0]}")
        labels = member_labels
        probabilities.append(np.concatenate([p for p, _ in batches]))
    mean = np.mean(probabilities, axis=0)
    macro_f1 = MacroF1(mean.shape[1])
    macro_f1.update_state(labels, mean)
    matrix = np.asarray(macro_f1.confusion_matrix())
    members = [float(np.mean(np.argmax(p, axis=1) == labels)) for p in probabilities]
    results = {"accuracy": float(np.mean(np.argmax(mean, axis=1) == labels)), "macro_f1": float(macro_f1.result()),
               "ensemble": {"model_dirs": list(model_dirs), "checkpoints": used, "member_accuracy": members}}
    print(format_confusion_matrix(matrix, task.class_names))
    print(per_class_report(matrix, task.class_names)[0])
    print(f"{split}, each model alone: accuracy=" + ", ".join(f"{a:.4f}" for a in members))
    print(f"{split}, the mean of {len(model_dirs)} models: accuracy={results['accuracy']:.4f} "
          f"macro_f1={results['macro_f1']:.4f}", flush=True)
    from core import board

    paths = write_classification_report(results, matrix, task.class_names, model_dirs[0], split, suffix="_ensemble",
                                        step=board.checkpoint_step(used[0]))
    print(f"Wrote {paths['json']}, {paths['picture']} and TensorBoard's {board.EVALUATE_RUN}/ run")
    return results
