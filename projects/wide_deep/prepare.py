r"""Reads a CSV table with a gin-declared column spec, checks every value, and writes the split as TFRecord shards.

    python -m projects.wide_deep.prepare --gin_file=projects/wide_deep/configs/data_bikeshare.gin
    python -m projects.wide_deep.prepare --gin_file=projects/wide_deep/configs/data_diamonds.gin \
        --output_dir=data/wide_deep/diamonds
    python -m projects.wide_deep.prepare --gin_file=my_table.gin \
        --gin_bindings="TableSpec.source='my.csv'" --output_dir=data/wide_deep/mine

A bad value stops it with the file, line and column: `error: Bikeshare.csv line 7, column 'temp': 'warm' is not
a finite number.`
"""

from __future__ import annotations

from absl import flags

from core import config, runtime

from . import data, table

flags.adopt_module_key_flags(config)
flags.DEFINE_string("output_dir", "data/wide_deep/bikeshare", "Where the shards and metadata.json go.")
flags.DEFINE_integer("num_shards", 2, "Shards per split.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    """Converts the configured table to TFRecord shards in --output_dir."""
    config.parse_gin(list(FLAGS.gin_file), list(FLAGS.gin_bindings))
    metadata = data.prepare(table.TableSpec(), FLAGS.output_dir, FLAGS.num_shards)
    print(f"Prepared {metadata['counts']} rows of {metadata['source']} in {FLAGS.output_dir} "
          f"(target {metadata['target']!r}, {len(metadata['features'])} feature columns)")


if __name__ == "__main__":
    runtime.run(main)
