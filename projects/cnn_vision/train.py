r"""Trains cnn_vision; run it again with the same --model_dir to resume from the last checkpoint.

    python -m projects.cnn_vision.train --gin_file=projects/cnn_vision/configs/default.gin \
        --model_dir=runs/cnn_vision/default [--gin_bindings='TrainConfig.loop="custom"'] [--strategy=mirrored]
"""

from __future__ import annotations

from absl import flags

from core import config as core_config
from core import evaluation, runtime, trainer

from .task import ImageClassificationTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)


def main(argv: list[str]) -> None:
    """Trains with the gin-configured Task and TrainConfig under the flag-selected strategy."""
    options = runtime.setup()
    logs = trainer.train(ImageClassificationTask(), options=options, config=trainer.TrainConfig())
    if logs:
        print(f"Final: {evaluation.format_results(logs)}")


if __name__ == "__main__":
    runtime.run(main)
