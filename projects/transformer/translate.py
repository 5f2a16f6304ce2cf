r"""Translates raw English text with an exported SavedModel: what a client of the export sees.

    python -m projects.transformer.translate --export_dir=runs/transformer/default/export "could not open file"
    python -m projects.transformer.translate --export_dir=... --input_file=messages.txt   # one text per line
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops the SavedModel uses)
from absl import app, flags

from core.export import resolve_export
from core.runtime import run

flags.DEFINE_string("export_dir", None, "An exported version folder (holding saved_model.pb), or its base folder "
                    "(the highest version is used).")
flags.DEFINE_string("input_file", None, "Translate each line of this UTF-8 file instead of the arguments.")
flags.DEFINE_enum("signature", "serving_default", ["serving_default", "greedy"],
                  "serving_default: beam search; greedy: one best token at a time.")
FLAGS = flags.FLAGS


def translate(export_dir: str, texts: list[str], signature: str = "serving_default") -> list[str]:
    """Runs one of the export's signatures on `texts`."""
    serve = tf.saved_model.load(export_dir).signatures[signature]
    return [t.decode("utf-8") for t in serve(text=tf.constant(texts))["translation"].numpy()]


def main(argv: list[str]) -> None:
    if FLAGS.export_dir is None:
        raise app.UsageError("--export_dir is required")
    if FLAGS.input_file:
        with open(FLAGS.input_file, encoding="utf-8") as f:
            texts = [line.strip() for line in f if line.strip()]
    else:
        texts = argv[1:]
    if not texts:
        raise app.UsageError('give the text to translate as arguments, e.g. "could not open file", or --input_file')
    for text, translation in zip(texts, translate(resolve_export(FLAGS.export_dir), texts, FLAGS.signature),
                                 strict=True):
        print(f"{text}\t{translation}")


if __name__ == "__main__":
    run(main)
