r"""Classifies raw text with an exported SavedModel: what a client of the export sees.

    python -m projects.word2vec_lstm.predict --export_dir=runs/word2vec_lstm/default/export/1 \
        "Shares in the bank fell after its profits missed forecasts"
    python -m projects.word2vec_lstm.predict --export_dir=... --input_file=articles.txt   # one text per line
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from absl import app, flags

from core.export import resolve_export
from core.runtime import run

flags.DEFINE_string("export_dir", None, "An exported version folder (holding saved_model.pb), or its base folder "
                    "(the highest version is used).")
flags.DEFINE_string("input_file", None, "Classify each line of this UTF-8 file instead of the arguments.")
flags.DEFINE_integer("top_k", 3, "Labels to print per text, by probability.")
FLAGS = flags.FLAGS


def predict(export_dir: str, texts: list[str]) -> dict[str, np.ndarray]:
    """Runs the export's serving_default signature on `texts`."""
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    return {k: v.numpy() for k, v in serve(text=tf.constant(texts)).items()}


def main(argv: list[str]) -> None:
    if FLAGS.export_dir is None:
        raise app.UsageError("--export_dir is required")
    if FLAGS.input_file:
        with open(FLAGS.input_file, encoding="utf-8") as f:
            texts = [line.strip() for line in f if line.strip()]
    else:
        texts = argv[1:]
    if not texts:
        raise app.UsageError('give the text to classify as arguments, e.g. "shares fell", or --input_file')
    export_dir = resolve_export(FLAGS.export_dir)
    outputs = predict(export_dir, texts)
    order = np.argsort(-outputs["probabilities"], axis=1)[:, : FLAGS.top_k]
    for i, text in enumerate(texts):
        labels = [n.decode() for n in outputs["label_names"][i]]
        scores = ", ".join(f"{labels[j]} {outputs['probabilities'][i, j]:.3f}" for j in order[i])
        print(f"{outputs['class_names'][i].decode()}\t{scores}\t{text[:60]!r}")


if __name__ == "__main__":
    run(main)
