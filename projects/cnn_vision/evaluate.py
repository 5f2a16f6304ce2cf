"""Evaluates the newest checkpoint on the test split: accuracy, macro-F1 and the confusion matrix.

    python -m projects.cnn_vision.evaluate --model_dir=runs/cnn_vision/default [--split=test] [--checkpoint=-2]

Uses the model dir's operative_config.gin unless --gin_file is given. Writes
`<model_dir>/eval_<split>.json` and `<model_dir>/confusion_<split>.png` (`eval_<split>_ckpt-N.json`, ... for
a checkpoint given by --checkpoint), and prints the results.
"""

from __future__ import annotations

from absl import flags

from core import config as core_config
from core import evaluation, reports, runtime

from .task import ImageClassificationTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

evaluation.define_flags()
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    """Evaluates, prints the confusion matrix and results, and writes them as JSON and PNG."""
    options = runtime.setup(default_gin_from_model_dir=True)
    reports.evaluate_classifier(ImageClassificationTask.from_model_dir(options.model_dir), options, FLAGS.split,
                                FLAGS.checkpoint)


if __name__ == "__main__":
    runtime.run(main)
