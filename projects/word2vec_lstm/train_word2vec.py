r"""Trains skip-gram word2vec with the core custom loop, then saves the vectors; rerun to resume.

    python -m projects.word2vec_lstm.train_word2vec --gin_file=projects/word2vec_lstm/configs/word2vec.gin \
        --model_dir=runs/word2vec_lstm/word2vec

Writes to the model dir: vocabulary.tsv (word, count), embeddings.npy (float32, row i = word i), and
vectors.tsv + metadata.tsv + projector_config.pbtxt for TensorBoard's embedding projector
(`tensorboard --logdir=<model_dir>`, "Projector" tab).
"""

from __future__ import annotations

import os

import numpy as np
from absl import flags

from core import board, checkpoints, evaluation, runtime, trainer
from core import config as core_config
from core.config import ConfigError
from core.files import atomic_path

from . import text as text_lib
from . import vectors
from .word2vec_task import Word2VecTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

def save_vectors(model_dir: str, words: list[str], matrix: np.ndarray) -> None:
    """embeddings.npy, and the projector's TSV files (one vector / one word per line, same order)."""
    with atomic_path(os.path.join(model_dir, vectors.EMBEDDINGS_FILE)) as tmp:
        np.save(tmp, matrix.astype(np.float32))
    # A copy of the projector's config in the training's `train/` run, where TensorBoard's projector looks.
    board.write_projector(model_dir, "word2vec", words, matrix, config_dirs=(os.path.join(model_dir, "train"),))


def main(argv: list[str]) -> None:
    """Trains (or resumes) and exports the center-word vectors of the newest checkpoint."""
    options = runtime.setup()
    vocabulary_path = os.path.join(options.model_dir, vectors.VOCABULARY_FILE)
    # A resumed run must keep the word ids of its checkpoints, so the saved vocabulary wins.
    saved = text_lib.read_vocabulary(vocabulary_path) if os.path.exists(vocabulary_path) else None
    task = Word2VecTask(vocabulary=saved)
    if saved is None:
        text_lib.write_vocabulary(vocabulary_path, task.vocabulary)
    config = trainer.TrainConfig()
    if options.mixed_precision == "mixed_float16":
        # Its LossScaleOptimizer cannot run inside the step's loop of updates; float16 would also round
        # away word2vec's small updates.
        raise ConfigError("--mixed_precision=mixed_float16: word2vec trains in float32 or mixed_bfloat16.")
    if task.decay_steps != config.train_steps:
        raise ConfigError(f"Word2VecTask.decay_steps={task.decay_steps} but TrainConfig.train_steps="
                          f"{config.train_steps}: the rate decays to its minimum at decay_steps; set both "
                          "(word2vec.gin binds them to W2V_TRAIN_STEPS).")
    if config.loop != "custom":
        raise ConfigError(f"TrainConfig.loop={config.loop!r}: word2vec trains with the custom loop only "
                          "(its train step runs many sparse updates, which model.fit cannot); set it to 'custom'.")
    print(f"Vocabulary: {len(task.vocabulary)} words, {sum(c for _, c in task.vocabulary)} tokens in {task.corpus}; "
          f"{config.train_steps} steps of {task.tokens_per_step} words = "
          f"{config.train_steps / task.steps_per_pass:.2f} passes after subsampling")
    logs = trainer.train(task, options=options, config=config)
    if logs:
        print(f"Final: {evaluation.format_results(logs)}")
    model = task.build_model()
    checkpoints.restore_model(model, options.model_dir)
    matrix = model.get_layer("target_embedding").embeddings.numpy()
    save_vectors(options.model_dir, [w for w, _ in task.vocabulary], matrix)
    print(f"Wrote {matrix.shape[0]} x {matrix.shape[1]} vectors to {options.model_dir}/{vectors.EMBEDDINGS_FILE} "
          "and vectors.tsv/metadata.tsv for the TensorBoard projector")


if __name__ == "__main__":
    runtime.run(main)
