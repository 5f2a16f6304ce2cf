r"""Translates raw English text with an exported SavedModel: what a client of the export sees.

    python -m projects.transformer.translate --export_dir=runs/transformer/default/export "could not open file"
    python -m projects.transformer.translate --export_dir=... --input_file=messages.txt   # one text per line

Prints `source<TAB>translation` per text. The model gets each text stripped of surrounding whitespace, as
`prepare` stripped every training pair; leading whitespace (the indentation of a line) is put back in front
of its translation. A file is translated in batches of --batch_size lines, with progress lines on stderr; its
empty lines are skipped.
"""

from __future__ import annotations

import sys

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops the SavedModel uses)
from absl import app, flags

from core.config import UserError
from core.export import resolve_export
from core.progress import Progress
from core.runtime import run

flags.DEFINE_string("export_dir", None, "An exported version folder (holding saved_model.pb), or its base folder "
                    "(the highest version is used).")
flags.DEFINE_string("input_file", None, "Translate each line of this UTF-8 file instead of the arguments.")
flags.DEFINE_enum("signature", "serving_default", ["serving_default", "greedy"],
                  "serving_default: beam search; greedy: one best token at a time.")
flags.DEFINE_integer("batch_size", 64, "Texts sent to the model in one call.", lower_bound=1)
FLAGS = flags.FLAGS


def translate(export_dir: str, texts: list[str], signature: str = "serving_default", batch_size: int = 64,
              progress: bool = False) -> list[str]:
    """Runs one of the export's signatures on `texts`, `batch_size` at a time; each text is stripped for the
    model, as the training pairs were, and its leading whitespace put back in front of the translation."""
    serve = tf.saved_model.load(export_dir).signatures[signature]
    # Lines on stderr, so that stdout holds only the translations (a Progbar would write to stdout).
    counter = Progress(len(texts), "text", "translating", stream=sys.stderr, bar=False) if progress else None
    translations = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start:start + batch_size]
        outputs = serve(text=tf.constant([t.strip() for t in batch]))["translation"].numpy()
        translations += [t[: len(t) - len(t.lstrip())] + o.decode("utf-8") for t, o in zip(batch, outputs, strict=True)]
        if counter is not None:
            counter.add(len(batch))
    return translations


def read_lines(path: str) -> list[str]:
    """The non-empty lines of a UTF-8 file, without their line ends."""
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\r\n") for line in f if line.strip()]
    except UnicodeDecodeError as e:
        raise UserError(f"--input_file={path}: not UTF-8 text ({e}).") from e
    except OSError as e:
        raise UserError(f"--input_file={path}: cannot read it ({e.strerror}).") from e


def main(argv: list[str]) -> None:
    if FLAGS.export_dir is None:
        raise app.UsageError("--export_dir is required")
    texts = read_lines(FLAGS.input_file) if FLAGS.input_file else argv[1:]
    if not texts:
        raise app.UsageError('give the text to translate as arguments, e.g. "could not open file", or --input_file')
    translations = translate(resolve_export(FLAGS.export_dir), texts, FLAGS.signature, FLAGS.batch_size,
                             progress=bool(FLAGS.input_file))
    for text, translation in zip(texts, translations, strict=True):
        print(f"{text}\t{translation}")


if __name__ == "__main__":
    run(main)
