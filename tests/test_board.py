"""TensorBoard outputs read back with TensorBoard's own reader, and the per-class report checked against
scikit-learn on the label arrays themselves."""

import io
import os

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import classification_report, confusion_matrix

from core import board, reports


def _png(width=6, height=4):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_evaluation_lands_under_its_split_with_the_right_kind_of_data(tmp_path):
    model_dir = str(tmp_path)
    picture = tmp_path / "confusion_test.png"
    picture.write_bytes(_png(5, 3))
    results = {"accuracy": 0.5, "fine_tuned": {"hard": {"f1": 0.25, "pairs": 12}}, "checkpoint": "ckpt-7",
               "flag": True, "missing": float("nan")}
    log_dir = board.write_evaluation(model_dir, "test", 700, results,
                                     images={"confusion_matrix": str(picture), "grid": _png()},
                                     texts={"translations": board.markdown_table(["a", "b"], [["x|y", "z"]])})
    assert log_dir == os.path.join(model_dir, "evaluate")
    assert board.tags(log_dir) == {
        "eval_test/accuracy": "scalars", "eval_test/fine_tuned/hard/f1": "scalars",
        "eval_test/fine_tuned/hard/pairs": "scalars", "eval_test/confusion_matrix": "images",
        "eval_test/grid": "images", "eval_test/translations": "text"}
    [(step, value)] = board.values(log_dir, "eval_test/fine_tuned/hard/f1")
    assert step == 700 and float(value) == pytest.approx(0.25)
    [(_, image)] = board.values(log_dir, "eval_test/confusion_matrix")
    assert [int(v) for v in image[:2]] == [5, 3]  # an image summary holds width, height, then the PNG
    [(_, text)] = board.values(log_dir, "eval_test/translations")
    assert "x\\|y" in text.item().decode()


def test_a_later_checkpoint_adds_a_point_to_the_same_curve(tmp_path):
    board.write_evaluation(str(tmp_path), "validation", 100, {"loss": 2.0})
    board.write_evaluation(str(tmp_path), "validation", 200, {"loss": 1.0})
    points = board.values(os.path.join(tmp_path, "evaluate"), "eval_validation/loss")
    assert [(step, float(v)) for step, v in points] == [(100, 2.0), (200, 1.0)]


def test_run_config_is_text_in_the_train_run(tmp_path):
    board.write_run_config(str(tmp_path), 0, "TrainConfig.train_steps = 5\n", "--seed=1\n")
    log_dir = os.path.join(tmp_path, "train")
    assert board.tags(log_dir) == {"config/operative_gin": "text", "config/flags": "text"}
    [(_, text)] = board.values(log_dir, "config/operative_gin")
    assert text.item().decode() == "    TrainConfig.train_steps = 5"


def test_checkpoint_step_reads_plain_and_averaged_prefixes():
    assert board.checkpoint_step("/m/checkpoints/ckpt-1200") == 1200
    assert board.checkpoint_step("/m/checkpoints/averaged-1200/ckpt-1200") == 1200
    assert board.checkpoint_step(None) == 0


def test_per_class_report_of_a_confusion_matrix_is_scikit_learns_on_the_labels():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 300)
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.integers(0, 4, 300))
    y_pred[y_pred == 3] = 2  # class 3 is never predicted: zero_division applies
    names = ["a", "b", "c", "d"]
    text, as_dict = reports.per_class_report(confusion_matrix(y_true, y_pred, labels=range(4)), names)
    kwargs = dict(labels=range(4), target_names=names, zero_division=0)
    assert text == classification_report(y_true, y_pred, digits=4, **kwargs)
    assert as_dict == classification_report(y_true, y_pred, output_dict=True, **kwargs)


def test_search_trials_land_in_the_hparams_dashboard(tmp_path):
    trials = [{"trial": "07", "val_rmse": 40.5, "wide_deep.hidden_units": (64, 32), "lr": 0.01, "seconds": ""},
              {"trial": "03", "val_rmse": 42.0, "wide_deep.hidden_units": (16,), "lr": 0.1, "seconds": 3.5}]
    log_dir = board.write_hparams(str(tmp_path / "hparams"), trials, ["wide_deep.hidden_units", "lr"],
                                  ["val_rmse", "seconds"], trial_key="trial")
    assert board.tags(log_dir) == {"_hparams_/experiment": "hparams"}
    assert sorted(p.name for p in (tmp_path / "hparams").iterdir() if p.is_dir()) == ["03", "07"]
    session = os.path.join(log_dir, "07")
    assert board.tags(session) == {"_hparams_/session_start_info": "hparams", "val_rmse": "scalars"}
    assert board.session_hparams(session) == {"wide_deep.hidden_units": "(64, 32)", "lr": 0.01}
    [(_, seconds)] = board.values(os.path.join(log_dir, "03"), "seconds")
    assert float(seconds) == 3.5
