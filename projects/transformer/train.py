r"""Trains the Transformer; run it again with the same --model_dir to resume from the last checkpoint.

    python -m projects.transformer.train --gin_file=projects/transformer/configs/default.gin \
        --model_dir=runs/transformer/default [--jit_compile] [--gin_bindings='TrainConfig.loop="custom"']

The first run learns the subword vocabulary from the training split and writes it to
<model_dir>/tokenizer.model; a resumed run, evaluate and export read it from there.
"""

from __future__ import annotations

from absl import flags

from core import config as core_config
from core import evaluation, runtime, trainer

from .task import TranslationTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)


def main(argv: list[str]) -> None:
    """Trains with the gin-configured Task and TrainConfig under the flag-selected strategy."""
    options = runtime.setup()
    logs = trainer.train(TranslationTask(), options=options, config=trainer.TrainConfig())
    if logs:
        print(f"Final: {evaluation.format_results(logs)}")


if __name__ == "__main__":
    runtime.run(main)
