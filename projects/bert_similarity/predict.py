r"""Scores raw sentence pairs with an exported SavedModel: what a client of the export sees.

Prints, per pair, the probability that the two say the same and the export's decision ("match" or
"no match", at the threshold evaluate chose on validation), then the two texts.

    python -m projects.bert_similarity.predict --export_dir=runs/bert_similarity/default/export \
        "Jesus wept." "Jesus cried."
    python -m projects.bert_similarity.predict --export_dir=... --input_file=pairs.tsv   # text_a<TAB>text_b lines
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from absl import app, flags

from core.export import resolve_export
from core.runtime import run

flags.DEFINE_string("export_dir", None, "An exported version folder (holding saved_model.pb), or its base folder "
                    "(the highest version is used).")
flags.DEFINE_string("input_file", None, "Score each text_a<TAB>text_b line of this UTF-8 file, not the arguments.")
FLAGS = flags.FLAGS


def predict(export_dir: str, text_a: list[str], text_b: list[str]) -> dict[str, np.ndarray]:
    """Runs the export's serving_default signature on the pairs."""
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops the export uses)

    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    return {k: v.numpy() for k, v in serve(text_a=tf.constant(text_a), text_b=tf.constant(text_b)).items()}


def read_pairs_file(path: str) -> tuple[list[str], list[str]]:
    """text_a and text_b columns of a two-column TSV; names the line that is not."""
    text_a, text_b = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 2:
                raise app.UsageError(f"{path}:{number}: expected text_a<TAB>text_b, got {len(fields)} fields.")
            text_a.append(fields[0])
            text_b.append(fields[1])
    return text_a, text_b


def main(argv: list[str]) -> None:
    if FLAGS.export_dir is None:
        raise app.UsageError("--export_dir is required")
    if FLAGS.input_file:
        text_a, text_b = read_pairs_file(FLAGS.input_file)
    elif len(argv) == 3:
        text_a, text_b = [argv[1]], [argv[2]]
    else:
        raise app.UsageError('give two sentences, e.g. "Jesus wept." "Jesus cried.", or --input_file=pairs.tsv')
    outputs = predict(resolve_export(FLAGS.export_dir), text_a, text_b)
    matches = outputs.get("match", [None] * len(text_a))  # exports made before the decision was added lack it
    for a, b, probability, match in zip(text_a, text_b, outputs["probability"], matches, strict=True):
        decision = "" if match is None else "match\t" if match else "no match\t"
        print(f"{probability:.4f}\t{decision}{a[:60]!r}\t{b[:60]!r}")


if __name__ == "__main__":
    run(main)
