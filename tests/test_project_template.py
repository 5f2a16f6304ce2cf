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


def _copy(tmp_path, project: str, new: str):
    """`cp -r projects/<project> projects/<new>` into a tree of its own; returns the copy's configs folder."""
    os.makedirs(tmp_path / "projects")
    (tmp_path / "projects" / "__init__.py").write_text("")
    shutil.copytree(os.path.join(REPO, "projects", project), tmp_path / "projects" / new,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "projects" / new / "configs"


@pytest.mark.parametrize("project", ["cnn_vision"])
def test_copied_project_prepares_trains_and_evaluates(tmp_path, project):
    new = f"my_{project}_copy"
    _copy(tmp_path, project, new)
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
    configs = _copy(tmp_path, "wide_deep", new)
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
    assert "test (" in evaluated.stdout and "rows of y), the model: rmse=" in evaluated.stdout
    _run(tmp_path, f"projects.{new}.export", f"--model_dir={model_dir}")
    assert os.path.exists(model_dir / "export" / "1" / "saved_model.pb")


@pytest.mark.slow
def test_copied_word2vec_lstm_trains_both_models_evaluates_and_exports(tmp_path):
    from projects.word2vec_lstm.tests import helpers

    new = "my_text_classifier"
    configs = _copy(tmp_path, "word2vec_lstm", new)
    source = helpers.write_bbc_subset(str(tmp_path / "bbc"), per_class=20)
    data_dir, w2v_dir, model_dir = tmp_path / "prepared", tmp_path / "word2vec", tmp_path / "run"
    _run(tmp_path, f"projects.{new}.prepare", f"--source_dir={source}", f"--output_dir={data_dir}")
    _run(tmp_path, f"projects.{new}.train_word2vec", f"--gin_file={configs / 'word2vec_smoke.gin'}",
         f"--gin_bindings=Word2VecTask.corpus='{data_dir}/train-*.tfrecord'", f"--model_dir={w2v_dir}")
    _run(tmp_path, f"projects.{new}.train", f"--gin_file={configs / 'smoke.gin'}",
         f"--gin_bindings=TextClassificationTask.data_dir='{data_dir}'",
         f"--gin_bindings=TextClassificationTask.word2vec_dir='{w2v_dir}'", f"--model_dir={model_dir}")
    evaluated = _run(tmp_path, f"projects.{new}.evaluate", f"--model_dir={model_dir}")
    assert "accuracy" in evaluated.stdout
    _run(tmp_path, f"projects.{new}.export", f"--model_dir={model_dir}")
    assert os.path.exists(model_dir / "export" / "1" / "saved_model.pb")


@pytest.mark.slow
def test_copied_transformer_trains_evaluates_exports_and_translates(tmp_path):
    from projects.transformer.tests import helpers

    new = "my_translator"
    configs = _copy(tmp_path, "transformer", new)
    data_dir, model_dir = tmp_path / "prepared", tmp_path / "run"
    _run(tmp_path, f"projects.{new}.prepare", f"--tsv={helpers.write_tsv(str(tmp_path / 'pairs.tsv'))}",
         f"--output_dir={data_dir}", "--validation_percent=20", "--test_percent=20")
    _run(tmp_path, f"projects.{new}.train", f"--gin_file={configs / 'smoke.gin'}",
         f"--gin_bindings=TranslationTask.data_dir='{data_dir}'", f"--model_dir={model_dir}")
    evaluated = _run(tmp_path, f"projects.{new}.evaluate", f"--model_dir={model_dir}", "--beam_size=1")
    assert "bleu" in evaluated.stdout.lower()
    _run(tmp_path, f"projects.{new}.export", f"--model_dir={model_dir}")
    translated = _run(tmp_path, f"projects.{new}.translate", f"--export_dir={model_dir / 'export'}", "Open file")
    assert translated.stdout.strip()


@pytest.mark.slow
def test_copied_bert_similarity_converts_trains_evaluates_and_exports(tmp_path):
    from projects.bert_similarity.tests import helpers

    new = "my_pair_scorer"
    configs = _copy(tmp_path, "bert_similarity", new)
    models, data_dir, model_dir = tmp_path / "tiny_bert", tmp_path / "prepared", tmp_path / "run"
    _run(tmp_path, f"projects.{new}.convert", f"--hf_dir={helpers.write_tiny_bert(str(tmp_path / 'hf'))}",
         f"--output_dir={models}")
    _run(tmp_path, f"projects.{new}.prepare", "--format=qqp", f"--train={helpers.write_qqp(str(tmp_path / 'q.tsv'))}",
         f"--output_dir={data_dir}")
    _run(tmp_path, f"projects.{new}.train", f"--gin_file={configs / 'smoke.gin'}",
         f"--gin_bindings=SimilarityTask.data_dir='{data_dir}'",
         f"--gin_bindings=SimilarityTask.preprocessor_handle='{models}/preprocessor'",
         f"--gin_bindings=SimilarityTask.encoder_handle='{models}/encoder'", f"--model_dir={model_dir}")
    evaluated = _run(tmp_path, f"projects.{new}.evaluate", f"--model_dir={model_dir}")
    assert "fine_tuned" in evaluated.stdout
    _run(tmp_path, f"projects.{new}.export", f"--model_dir={model_dir}")
    predicted = _run(tmp_path, f"projects.{new}.predict", f"--export_dir={model_dir / 'export'}", "jesus wept",
                     "jesus cried")
    assert "match" in predicted.stdout
