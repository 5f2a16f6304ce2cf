"""Evaluates the newest checkpoint on the test split: accuracy, macro-F1 and the confusion matrix.

    python -m projects.word2vec_lstm.evaluate --model_dir=runs/word2vec_lstm/default [--split=test]

Uses the model dir's operative_config.gin unless --gin_file is given. Writes
`<model_dir>/eval_<split>.json` and `<model_dir>/confusion_<split>.png`, and prints the results.
"""

from __future__ import annotations

from absl import flags

from core import config as core_config
from core import reports, runtime

from .task import TextClassificationTask, encoder_file

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

flags.DEFINE_enum("split", "test", ["validation", "test"], "Which held-out split to evaluate.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    """Evaluates, prints the confusion matrix and results, and writes them as JSON and PNG."""
    options = runtime.setup(default_gin_from_model_dir=True)
    # The checkpoint holds the trained embeddings (no pretrained vectors needed); the run's own
    # text_encoder.json says which word each embedding row is.
    task = TextClassificationTask(pretrained="none", encoder_file=encoder_file(options.model_dir))
    reports.evaluate_classifier(task, options, FLAGS.split)


if __name__ == "__main__":
    runtime.run(main)
