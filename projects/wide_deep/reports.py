"""Ranked result tables, written by both searches: the same rows as CSV and as Markdown."""

from __future__ import annotations

import csv
import io
import os

from core.files import write_text_atomic


def write_ranked_tables(rows: list[dict], output_dir: str) -> tuple[str, str]:
    """results.csv and results.md in output_dir, rows in the given (ranked) order; returns their paths."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns)
    writer.writeheader()
    writer.writerows(rows)
    csv_path, md_path = os.path.join(output_dir, "results.csv"), os.path.join(output_dir, "results.md")
    write_text_atomic(csv_path, text.getvalue())
    lines = ["| rank | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    lines += [f"| {i} | " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for i, r in enumerate(rows, 1)]
    write_text_atomic(md_path, "\n".join(lines) + "\n")
    return csv_path, md_path
