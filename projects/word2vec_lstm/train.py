r"""Trains the news classifier; run it again with the same --model_dir to resume from the last checkpoint.

    python -m projects.word2vec_lstm.train --gin_file=projects/word2vec_lstm/configs/default.gin \
        --model_dir=runs/word2vec_lstm/default [--gin_bindings='TrainConfig.loop="custom"']

default.gin starts from the vectors of `train_word2vec` (TextClassificationTask.word2vec_dir); glove.gin
from GloVe 6B 50d.
"""

from __future__ import annotations

from absl import flags

from core import config as core_config
from core import evaluation, runtime, trainer

from .task import TextClassificationTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)


def main(argv: list[str]) -> None:
    """Trains with the gin-configured Task and TrainConfig under the flag-selected strategy."""
    options = runtime.setup()
    logs = trainer.train(TextClassificationTask(), options=options, config=trainer.TrainConfig())
    if logs:
        print(f"Final: {evaluation.format_results(logs)}")


if __name__ == "__main__":
    runtime.run(main)
