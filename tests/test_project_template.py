"""Copying a project folder under a new name must give a working project: that is how users start one."""

import gzip
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_idx(path, array):
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
                + array.astype(np.uint8).tobytes())


def _run(root, module, *args):
    # `root` comes first on the path, so `projects` is the package holding only the copy: any
    # leftover absolute import of the original project would fail here.
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=root, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=f"{root}:{REPO}", TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert result.returncode == 0, f"{module} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.parametrize("project", ["cnn_vision"])
def test_copied_project_prepares_trains_and_evaluates(tmp_path, project):
    new = f"my_{project}_copy"
    os.makedirs(tmp_path / "projects")
    (tmp_path / "projects" / "__init__.py").write_text("")
    shutil.copytree(os.path.join(REPO, "projects", project), tmp_path / "projects" / new,
                    ignore=shutil.ignore_patterns("__pycache__"))
    raw = tmp_path / "raw"
    os.makedirs(raw)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 300), ("t10k", 100)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, size=(n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, size=(n,)))

    data_dir = tmp_path / "prepared"
    _run(tmp_path, f"projects.{new}.prepare", f"--source_dir={raw}", f"--output_dir={data_dir}",
         "--validation_size=50")
    model_dir = tmp_path / "run"
    configs = tmp_path / "projects" / new / "configs"
    trained = _run(tmp_path, f"projects.{new}.train", f"--gin_file={configs / 'smoke.gin'}",
                   f"--gin_bindings=ImageClassificationTask.data_dir='{data_dir}'", f"--model_dir={model_dir}")
    assert "Final:" in trained.stdout
    assert os.path.exists(model_dir / "checkpoints" / "ckpt-20.index")
    evaluated = _run(tmp_path, f"projects.{new}.evaluate", f"--model_dir={model_dir}")
    assert "test: loss=" in evaluated.stdout


@pytest.mark.slow
def test_copied_wide_deep_prepares_trains_evaluates_and_exports(tmp_path):
    new = "my_tables"
    os.makedirs(tmp_path / "projects")
    (tmp_path / "projects" / "__init__.py").write_text("")
    shutil.copytree(os.path.join(REPO, "projects", "wide_deep"), tmp_path / "projects" / new,
                    ignore=shutil.ignore_patterns("__pycache__"))
    configs = tmp_path / "projects" / new / "configs"
    table = tmp_path / "table.csv"
    rng = np.random.default_rng(0)
    with open(table, "w") as f:  # a small table of its own: y depends on x and on the day's category
        f.write("day,kind,x,y\n")
        for i in range(300):
            x, kind = rng.normal(), "ab"[i % 2]
            f.write(f"{i // 10},{kind},{x:.4f},{3 * x + (5 if kind == 'a' else 0):.4f}\n")
    data_dir = tmp_path / "prepared"
    _run(tmp_path, f"projects.{new}.prepare", f"--gin_file={configs / 'data_bikeshare.gin'}",
         f"--gin_bindings=TableSpec.source='{table}'", "--gin_bindings=TableSpec.numeric=['x']",
         "--gin_bindings=TableSpec.integer_categorical=[]", "--gin_bindings=TableSpec.string_categorical=['kind']",
         "--gin_bindings=TableSpec.target='y'", "--gin_bindings=TableSpec.extra_targets=[]",
         f"--output_dir={data_dir}")
    model_dir = tmp_path / "run"
    _run(tmp_path, f"projects.{new}.train", f"--gin_file={configs / 'smoke.gin'}",
         f"--gin_bindings=RegressionTask.data_dir='{data_dir}'", "--gin_bindings=wide_deep.crosses=[]",
         f"--model_dir={model_dir}")
    evaluated = _run(tmp_path, f"projects.{new}.evaluate", f"--model_dir={model_dir}")
    assert "test (" in evaluated.stdout and "rows of y): rmse=" in evaluated.stdout
    _run(tmp_path, f"projects.{new}.export", f"--model_dir={model_dir}")
    assert os.path.exists(model_dir / "export" / "1" / "saved_model.pb")
