"""Word-vector quality with gensim's evaluators and the test sets gensim ships (benchmark only).

WordSim-353 and SimLex-999 (Spearman correlation of cosine similarity with human ratings) and the Google
analogy questions (accuracy of 3CosAdd), each on the pairs or questions whose words are all in the
vocabulary. gensim is a development dependency (requirements-dev.txt); training never imports it.
"""

from __future__ import annotations

import numpy as np

from core.config import UserError


def _gensim():
    try:
        from gensim.models import KeyedVectors
        from gensim.test.utils import datapath
    except ImportError as error:
        raise UserError("gensim is not installed: run `make setup` (requirements-dev.txt pins it).") from error
    return KeyedVectors, datapath


def keyed_vectors(words: list[str], matrix: np.ndarray):
    """gensim KeyedVectors holding `matrix` row i as the vector of words[i]."""
    keyed_vectors_class, _ = _gensim()
    vectors = keyed_vectors_class(matrix.shape[1])
    vectors.add_vectors(words, np.asarray(matrix, np.float32))
    return vectors


def scores(vectors) -> dict[str, float]:
    """{wordsim353, simlex999: Spearman; analogies: accuracy; *_covered: share of the set scored}."""
    _, datapath = _gensim()
    results = {}
    for name, file in (("wordsim353", "wordsim353.tsv"), ("simlex999", "simlex999.txt")):
        _, spearman, oov_percent = vectors.evaluate_word_pairs(datapath(file))
        results[name], results[f"{name}_covered"] = float(spearman.statistic), 1 - oov_percent / 100
    accuracy, sections = vectors.evaluate_word_analogies(datapath("questions-words.txt"))
    results["analogies"] = float(accuracy)
    results["analogies_scored"] = float(sum(len(s["correct"]) + len(s["incorrect"]) for s in sections[-1:]))
    return results
