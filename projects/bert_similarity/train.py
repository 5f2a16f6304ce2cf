r"""Fine-tunes the pretrained BERT for similar-sentence detection; the same --model_dir again resumes.

    python -m projects.bert_similarity.convert      # once: all-MiniLM-L6-v2 as TF Hub SavedModels
    python -m projects.bert_similarity.prepare      # once: KJV/WEB verse pairs
    python -m projects.bert_similarity.train --gin_file=projects/bert_similarity/configs/default.gin \
        --model_dir=runs/bert_similarity/default [--gin_bindings='SimilarityTask.encoder_handle="<TF Hub handle>"']
"""

from __future__ import annotations

from absl import flags

from core import config as core_config
from core import evaluation, runtime, trainer

from .task import SimilarityTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)


def main(argv: list[str]) -> None:
    """Trains with the gin-configured Task and TrainConfig under the flag-selected strategy."""
    options = runtime.setup()
    logs = trainer.train(SimilarityTask(), options=options, config=trainer.TrainConfig())
    if logs:
        print(f"Final: {evaluation.format_results(logs)}")


if __name__ == "__main__":
    runtime.run(main)
