"""Reads parallel text once and writes TFRecord shards that training reads.

    python -m projects.transformer.prepare                                  # en->de gettext catalogs
    python -m projects.transformer.prepare --target_lang=fr --output_dir=data/transformer/gettext_fr
    python -m projects.transformer.prepare --tsv=deu.txt --output_dir=data/transformer/tatoeba_de
"""

from __future__ import annotations

import os

from absl import flags

from core import runtime

from . import data

flags.DEFINE_string("locale_dir", data.LOCALE_DIR, "Root of the gettext catalogs (<dir>/<lang>/LC_MESSAGES/*.mo).")
flags.DEFINE_string("target_lang", "de", "Language folder of the translations under --locale_dir.")
flags.DEFINE_string("tsv", None, "Read source<TAB>target lines from this file instead of the gettext catalogs.")
flags.DEFINE_string("output_dir", "data/transformer/gettext_de", "Where the shards and metadata.json go.")
flags.DEFINE_integer("validation_percent", 5, "Share of source texts (by hash) held out for validation.")
flags.DEFINE_integer("test_percent", 5, "Share of source texts (by hash) held out for the test set.")
flags.DEFINE_integer("split_salt", 0, "Hash the source texts with this number in front: another fixed split of the "
                     "same pairs (0: the default split, the one the configs were chosen on).")
flags.DEFINE_integer("min_chars", 2, "Drop pairs with a side shorter than this.")
flags.DEFINE_integer("max_chars", 200, "Drop pairs with a side longer than this.")
flags.DEFINE_integer("num_shards", 2, "Shards per split.")
flags.DEFINE_bool("overwrite", False, "Replace an already prepared --output_dir.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    """Reads --tsv or the gettext catalogs and writes the prepared folder."""
    if FLAGS.tsv:
        pairs, description = data.read_tsv(FLAGS.tsv), os.path.abspath(FLAGS.tsv)
    else:
        pairs = data.read_gettext(FLAGS.locale_dir, FLAGS.target_lang)
        description = f"gettext catalogs {os.path.join(FLAGS.locale_dir, FLAGS.target_lang, 'LC_MESSAGES')}"
    metadata = data.prepare(pairs, FLAGS.output_dir, source_description=description,
                            validation_percent=FLAGS.validation_percent, test_percent=FLAGS.test_percent,
                            min_chars=FLAGS.min_chars, max_chars=FLAGS.max_chars, num_shards=FLAGS.num_shards,
                            overwrite=FLAGS.overwrite, split_salt=FLAGS.split_salt)
    print(f"Prepared {metadata['counts']} pairs (of {metadata['pairs_read']} read) in {FLAGS.output_dir}")


if __name__ == "__main__":
    runtime.run(main)
