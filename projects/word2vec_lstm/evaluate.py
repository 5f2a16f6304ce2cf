"""Evaluates the newest checkpoint on the test split: accuracy, macro-F1 and the confusion matrix.

    python -m projects.word2vec_lstm.evaluate --model_dir=runs/word2vec_lstm/default [--split=test] [--checkpoint=-2]
    python -m projects.word2vec_lstm.evaluate --model_dir=runs/word2vec_lstm/seed1 \
        --ensemble_with=runs/word2vec_lstm/seed2 --ensemble_with=runs/word2vec_lstm/seed3  # mean probabilities

Uses the model dir's operative_config.gin unless --gin_file is given. Writes
`<model_dir>/eval_<split>.json` and `<model_dir>/confusion_<split>.png` (`..._ensemble` with
--ensemble_with, `..._ckpt-N` with --checkpoint), and prints the results. TensorBoard's run
`<model_dir>/evaluate` gets the scalars, the confusion matrix and the per-class report, and the
classifier's learned word vectors (the --projector_words most frequent words) for the embedding projector.
"""

from __future__ import annotations

import os

import keras
import numpy as np
from absl import flags

from core import board, checkpoints, evaluation, reports, runtime
from core import config as core_config

from .task import TextClassificationTask, check_ensemble_members
from .text import OOV

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

evaluation.define_flags()
flags.DEFINE_multi_string("ensemble_with", [], "Further model dirs trained with the same config (another --seed) "
                          "on the same data: the mean of all their class probabilities is scored.")
flags.DEFINE_integer("projector_words", 5000, "Most frequent words whose learned vectors go to TensorBoard's "
                     "projector (0: none).")
FLAGS = flags.FLAGS


def write_projector(task: TextClassificationTask, options, checkpoint: str | None, words: int) -> str:
    """The classifier's embedding rows of [UNK] and the `words` most frequent words (the vocabulary is in order
    of frequency; row 0, the padding, is left out) into the run `<model_dir>/evaluate`; returns its config."""
    model = task.build_model()
    checkpoints.restore_model(model, options.model_dir, checkpoint)
    [embedding] = [layer for layer in model.layers if isinstance(layer, keras.layers.Embedding)]
    matrix = np.asarray(embedding.embeddings)[1:words + 2]
    return board.write_projector(os.path.join(options.model_dir, board.EVALUATE_RUN), "lstm_classifier_embedding",
                                 [OOV, *task.encoder.vocabulary][:len(matrix)], matrix)


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
        if FLAGS.projector_words:
            path = write_projector(task, options, checkpoints.checkpoint_path(options.model_dir, FLAGS.checkpoint),
                                   FLAGS.projector_words)
            print(f"Wrote the classifier's word vectors for TensorBoard's projector: {path}")


if __name__ == "__main__":
    runtime.run(main)
