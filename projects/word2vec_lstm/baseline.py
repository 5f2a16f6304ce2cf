r"""The classical baseline on the same split: TF-IDF (words and bigrams) + a linear SVM, with scikit-learn.

    python -m projects.word2vec_lstm.baseline [--data_dir=data/word2vec_lstm/bbc]

scikit-learn is a benchmark-only dependency (requirements-dev.txt); nothing else in the project needs it.
It reads the same TFRecord shards as the LSTM, fits on train, reports validation and test accuracy and
macro-F1, and writes them to `<data_dir>/tfidf_baseline.json`.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import tensorflow as tf
from absl import flags

from core import runtime
from core.files import write_text_atomic

from . import data

flags.DEFINE_string("data_dir", "data/word2vec_lstm/bbc", "Prepared data (python -m projects.word2vec_lstm.prepare).")
FLAGS = flags.FLAGS


def read_split(data_dir: str, split: str) -> tuple[list[str], np.ndarray]:
    """All texts and labels of a prepared split."""
    texts, labels = [], []
    for batch_texts, batch_labels in data.make_dataset(data_dir, split, 512, None, training=False):
        texts += [t.decode("utf-8") for t in batch_texts.numpy()]
        labels.append(batch_labels.numpy())
    return texts, np.concatenate(labels)


def main(argv: list[str]) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.svm import LinearSVC

    class_names = data.read_metadata(FLAGS.data_dir)["class_names"]
    train_texts, train_labels = read_split(FLAGS.data_dir, "train")
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)
    classifier = LinearSVC(C=1.0).fit(vectorizer.fit_transform(train_texts), train_labels)
    seconds = time.perf_counter() - start
    scores = {"fit_seconds": round(seconds, 2), "train_examples": len(train_texts)}
    for split in ("validation", "test"):
        texts, labels = read_split(FLAGS.data_dir, split)
        predictions = classifier.predict(vectorizer.transform(texts))
        scores[split] = {"accuracy": accuracy_score(labels, predictions),
                         "macro_f1": f1_score(labels, predictions, average="macro"), "examples": len(texts)}
    test = scores["test"]
    print(f"TF-IDF + LinearSVC baseline on {FLAGS.data_dir} ({len(class_names)} classes, {len(train_texts)} train, "
          f"{test['examples']} test, tf {tf.__version__}): test accuracy {test['accuracy']:.4f}, macro-F1 "
          f"{test['macro_f1']:.4f} (validation accuracy {scores['validation']['accuracy']:.4f}), fit {seconds:.1f} s")
    path = os.path.join(FLAGS.data_dir, "tfidf_baseline.json")
    write_text_atomic(path, json.dumps(scores, indent=2))
    print(f"Wrote {path}")

if __name__ == "__main__":
    runtime.run(main)
