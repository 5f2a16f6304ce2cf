"""Small tables for the tests: a slice of the real Bikeshare.csv, and CSV text with chosen faults."""

from __future__ import annotations

import os
import subprocess

from core import testing

from .. import table

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.basename(PROJECT_DIR)  # "wide_deep", or the copy's name
REPO = os.path.dirname(os.path.dirname(PROJECT_DIR))
CONFIGS = os.path.join(PROJECT_DIR, "configs")
BIKESHARE_GIN = os.path.join(CONFIGS, "data_bikeshare.gin")


def write_bikeshare_slice(path: str, rows: int = 720) -> str:
    """The first `rows` hours (30 days at 720) of the real Bikeshare.csv, header included."""
    text, _ = table.read_csv_text("package:ISLP/data/Bikeshare.csv")
    lines = text.splitlines()
    with open(path, "w") as f:
        f.write("\n".join(lines[: rows + 1]) + "\n")
    return path


def run_module(name: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m projects.<this project>.<name> args...` from the repository root."""
    return testing.run_module(f"projects.{PROJECT}.{name}", *args, timeout=timeout)


def prepare_slice(root: str, rows: int = 720) -> str:
    """The slice prepared with the default Bikeshare spec (whole days held out); returns the data dir."""
    csv_path = write_bikeshare_slice(os.path.join(root, "bikeshare.csv"), rows)
    result = run_module("prepare", f"--gin_file={BIKESHARE_GIN}", f"--gin_bindings=TableSpec.source='{csv_path}'",
                        f"--output_dir={os.path.join(root, 'prepared')}")
    assert result.returncode == 0, result.stderr[-3000:]
    return os.path.join(root, "prepared")
