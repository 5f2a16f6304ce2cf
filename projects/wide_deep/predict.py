r"""Asks an exported model about rows of a CSV file, as a client would: raw column values in, predictions out.

    python -m projects.wide_deep.predict --export_dir=runs/wide_deep/default/export --rows=5
    python -m projects.wide_deep.predict --export_dir=... --source=my.csv --first_row=100 --rows=3

Reads the columns the export's signature takes (by name, converting each to the signature's dtype) from the
source CSV (default: the Bikeshare.csv that ISLP ships) and prints each row's prediction, and the true value
when the CSV has the target column.
"""

from __future__ import annotations

import csv
import io

import tensorflow as tf
from absl import flags

from core import export, runtime
from core.config import UserError

from . import table

flags.DEFINE_string("export_dir", None, "An export version folder, or the base folder (its newest version).")
flags.DEFINE_string("source", "package:ISLP/data/Bikeshare.csv", "CSV source (a path, package:..., #tar member).")
flags.DEFINE_integer("first_row", 0, "Index of the first data row to send (0: the row after the header).")
flags.DEFINE_integer("rows", 5, "How many rows to send.")
flags.DEFINE_string("target", "bikers", "Column printed beside the prediction, if the CSV has it.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    """Loads the export, converts the rows to its input dtypes, prints predictions."""
    if not FLAGS.export_dir:
        raise UserError("--export_dir is required (e.g. runs/wide_deep/default/export).")
    path = export.resolve_export(FLAGS.export_dir)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    inputs = serve.structured_input_signature[1]
    text, name = table.read_csv_text(FLAGS.source)
    rows = list(csv.DictReader(io.StringIO(text)))[FLAGS.first_row:FLAGS.first_row + FLAGS.rows]
    if not rows:
        raise UserError(f"{name} has no rows from --first_row={FLAGS.first_row}.")
    missing = sorted(set(inputs) - set(rows[0]))
    if missing:
        raise UserError(f"{name} lacks the column(s) {missing} that {path} takes.")
    columns = {}
    for column, spec in inputs.items():
        try:
            columns[column] = tf.constant([float(r[column]) if spec.dtype.is_floating else int(float(r[column]))
                                           if spec.dtype.is_integer else r[column] for r in rows], spec.dtype)
        except ValueError as e:
            raise UserError(f"{name}, column {column!r}: a value is not {spec.dtype.name} ({e}).") from e
    outputs = serve(**columns)
    for i, row in enumerate(rows):
        shown = " ".join(f"{k}={float(v[i]):.1f}" for k, v in sorted(outputs.items()))
        truth = f"  (true {FLAGS.target}={row[FLAGS.target]})" if FLAGS.target in row else ""
        print(f"row {FLAGS.first_row + i}: {shown}{truth}")


if __name__ == "__main__":
    runtime.run(main)
