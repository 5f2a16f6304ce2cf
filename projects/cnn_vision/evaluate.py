"""Evaluates the newest checkpoint on the test split: accuracy, macro-F1 and the confusion matrix.

    python -m projects.cnn_vision.evaluate --model_dir=runs/cnn_vision/default [--split=test]

Uses the model dir's operative_config.gin unless --gin_file is given. Writes
`<model_dir>/eval_<split>.json` and prints the results.
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import flags

from core import config as core_config
from core import evaluation, runtime
from core.files import write_text_atomic
from core.metrics import MacroF1

from .task import ImageClassificationTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

flags.DEFINE_enum("split", "test", ["validation", "test"], "Which held-out split to evaluate.")
FLAGS = flags.FLAGS


def format_confusion_matrix(matrix: np.ndarray, class_names: list[str]) -> str:
    """Rows are true classes, columns predicted classes."""
    width = max(6, *(len(n) for n in class_names))
    lines = [" " * width + " " + " ".join(f"{i:>6d}" for i in range(len(class_names)))]
    for i, (name, row) in enumerate(zip(class_names, matrix)):
        lines.append(f"{name:>{width}} " + " ".join(f"{int(v):>6d}" for v in row) + f"   <- true {i}")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """Evaluates, prints the confusion matrix and results, and writes them as JSON."""
    options = runtime.setup(default_gin_from_model_dir=True)
    task = ImageClassificationTask()
    results, metrics = evaluation.evaluate(task, options, split=FLAGS.split)
    matrix = next(np.asarray(m.confusion_matrix()) for m in metrics if isinstance(m, MacroF1))
    report = {**results, "split": FLAGS.split, "class_names": task.class_names,
              "confusion_matrix": matrix.astype(int).tolist()}
    path = os.path.join(options.model_dir, f"eval_{FLAGS.split}.json")
    write_text_atomic(path, json.dumps(report, indent=2))
    print(format_confusion_matrix(matrix, task.class_names))
    print(f"{FLAGS.split}: {evaluation.format_results(results)}")
    print(f"Wrote {path}")


if __name__ == "__main__":
    runtime.run(main)
