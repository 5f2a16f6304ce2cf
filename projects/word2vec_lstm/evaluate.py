"""Evaluates the newest checkpoint on the test split: accuracy, macro-F1 and the confusion matrix.

    python -m projects.word2vec_lstm.evaluate --model_dir=runs/word2vec_lstm/default [--split=test] [--checkpoint=-2]
    python -m projects.word2vec_lstm.evaluate --model_dir=runs/word2vec_lstm/seed1 \
        --ensemble_with=runs/word2vec_lstm/seed2 --ensemble_with=runs/word2vec_lstm/seed3  # mean probabilities

Uses the model dir's operative_config.gin unless --gin_file is given. Writes
`<model_dir>/eval_<split>.json` and `<model_dir>/confusion_<split>.png` (`..._ensemble` with
--ensemble_with, `..._ckpt-N` with --checkpoint), and prints the results.
"""

from __future__ import annotations

from absl import flags

from core import config as core_config
from core import evaluation, reports, runtime

from .task import TextClassificationTask, check_ensemble_members

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

evaluation.define_flags()
flags.DEFINE_multi_string("ensemble_with", [], "Further model dirs trained with the same config (another --seed) "
                          "on the same data: the mean of all their class probabilities is scored.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    """Evaluates, prints the confusion matrix and results, and writes them as JSON and PNG."""
    options = runtime.setup(default_gin_from_model_dir=True)
    task = TextClassificationTask.from_model_dir(options.model_dir)
    if FLAGS.ensemble_with:
        evaluation.check_one_checkpoint_source(FLAGS.checkpoint, FLAGS.ensemble_with)
        check_ensemble_members(options.model_dir, FLAGS.ensemble_with)
        reports.evaluate_classifier_ensemble(task, [options.model_dir, *FLAGS.ensemble_with], FLAGS.split)
    else:
        reports.evaluate_classifier(task, options, FLAGS.split, FLAGS.checkpoint)


if __name__ == "__main__":
    runtime.run(main)
