"""End-to-end: prepare, train, kill -9 and resume, evaluate, export, and serve the SavedModel."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from core import board, testing

from .. import data
from . import helpers

SMOKE = f"--gin_file={helpers.CONFIGS}/smoke.gin"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fashion")
    helpers.write_fashion_subset(str(root / "raw"))
    result = helpers.run_module("prepare", f"--source_dir={root / 'raw'}", f"--output_dir={root / 'prepared'}",
                                "--validation_size=200")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Prepared {'train': 1800, 'validation': 200, 'test': 500}" in result.stdout
    return str(root / "prepared")


def _data_binding(data_dir):
    return f"--gin_bindings=ImageClassificationTask.data_dir='{data_dir}'"


def _latest_step(model_dir) -> int:
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def test_killed_training_resumes_then_evaluates_and_exports(data_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    command = [sys.executable, "-m", f"projects.{helpers.PROJECT}.train", SMOKE, _data_binding(data_dir),
               "--gin_bindings=TrainConfig.train_steps=400", f"--model_dir={model_dir}"]
    env = dict(os.environ, PYTHONPATH=helpers.REPO, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(command, cwd=helpers.REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while _latest_step(model_dir) < 20 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = _latest_step(model_dir)
    assert 20 <= killed_at < 400, f"kill came at step {killed_at}"
    assert os.path.exists(os.path.join(model_dir, "operative_config.gin"))
    assert "--model_dir=" in open(os.path.join(model_dir, "flags.txt")).read()

    resumed = subprocess.run(command, cwd=helpers.REPO, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resumed at step {killed_at}" in resumed.stderr
    assert _latest_step(model_dir) == 400

    evaluated = helpers.run_module("evaluate", f"--model_dir={model_dir}")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    report = json.load(open(os.path.join(model_dir, "eval_test.json")))
    assert report["accuracy"] > 0.5  # 400 small steps on 1,800 images: well above 10% chance
    assert np.sum(report["confusion_matrix"]) == 500
    assert f"accuracy={report['accuracy']:.4f}" in evaluated.stdout
    assert report["per_class"]["accuracy"] == pytest.approx(report["accuracy"])
    assert set(report["per_class"]) >= {*report["class_names"], "macro avg", "weighted avg"}
    shown = board.tags(os.path.join(model_dir, "evaluate"))
    assert {tag: shown.get(tag) for tag in ("eval_test/accuracy", "eval_test/macro_f1", "eval_test/confusion_matrix",
                                            "eval_test/predictions", "eval_test/classification_report")} == {
        "eval_test/accuracy": "scalars", "eval_test/macro_f1": "scalars", "eval_test/confusion_matrix": "images",
        "eval_test/predictions": "images", "eval_test/classification_report": "text"}
    [(step, accuracy)] = board.values(os.path.join(model_dir, "evaluate"), "eval_test/accuracy")
    assert step == 400 and float(accuracy) == pytest.approx(report["accuracy"])
    assert board.tags(os.path.join(model_dir, "train"))["config/operative_gin"] == "text"

    exported = helpers.run_module("export", f"--model_dir={model_dir}")
    assert exported.returncode == 0, exported.stderr[-3000:]
    export_dir = os.path.join(model_dir, "export", "1")
    assert f"Exported SavedModel to {export_dir}" in exported.stdout
    _check_export(export_dir, model_dir, data_dir)
    _check_predict(export_dir, data_dir, tmp_path)

    older = helpers.run_module("evaluate", f"--model_dir={model_dir}", "--checkpoint=-2", "--split=validation")
    assert older.returncode == 0, older.stderr[-3000:]
    [older_report] = [name for name in os.listdir(model_dir) if name.startswith("eval_validation_ckpt-")]
    assert np.sum(json.load(open(os.path.join(model_dir, older_report)))["confusion_matrix"]) == 200
    assert json.load(open(os.path.join(model_dir, "eval_test.json"))) == report  # the newest's report is kept
    older_step = int(older_report.split("ckpt-")[1].split(".")[0])
    assert [step for step, _ in board.values(os.path.join(model_dir, "evaluate"), "eval_validation/accuracy")] == [
        older_step]  # under the split's name, at the older checkpoint's step


def _check_predict(export_dir, data_dir, tmp_path):
    images, _ = next(iter(data.make_dataset(data_dir, "test", 2, training=False)))
    paths = []
    for i, image in enumerate(tf.cast(images, tf.uint8)):
        paths.append(str(tmp_path / f"{i}.png"))
        tf.io.write_file(paths[-1], tf.io.encode_png(image))
    predicted = helpers.run_module("predict", f"--export_dir={os.path.dirname(export_dir)}", *paths)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    served = tf.saved_model.load(export_dir).signatures["serving_default"](images=tf.cast(images, tf.uint8))
    names = [n.decode() for n in served["class_names"].numpy()]
    assert [line.split("\t")[0] for line in predicted.stdout.splitlines()] == names
    (tmp_path / "notes.txt").write_text("not an image")
    refused = helpers.run_module("predict", f"--export_dir={export_dir}", str(tmp_path / "notes.txt"))
    assert refused.returncode == 2 and "notes.txt: not a PNG or JPEG file" in refused.stderr


def _check_export(export_dir, model_dir, data_dir):
    shown = subprocess.run(["saved_model_cli", "show", "--dir", export_dir, "--all"], capture_output=True, text=True,
                           env=dict(os.environ, PATH=os.path.dirname(sys.executable) + ":" + os.environ["PATH"]))
    assert "signature_def['serving_default']" in shown.stdout and "signature_def['serving_bytes']" in shown.stdout
    images, labels = next(iter(data.make_dataset(data_dir, "test", 16, training=False)))
    images_uint8 = tf.cast(images, tf.uint8)
    served = tf.saved_model.load(export_dir)
    outputs = served.signatures["serving_default"](images=images_uint8)
    keras_model = keras.models.load_model(os.path.join(model_dir, "model.keras"))
    expected = tf.nn.softmax(keras_model(images, training=False)).numpy()
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(outputs["class_ids"].numpy(), expected.argmax(-1))
    names = json.load(open(os.path.join(data_dir, "metadata.json")))["class_names"]
    assert [n.decode() for n in outputs["class_names"].numpy()] == [names[i] for i in expected.argmax(-1)]
    png = tf.stack([tf.io.encode_png(image) for image in images_uint8])
    from_bytes = served.signatures["serving_bytes"](image_bytes=png)
    np.testing.assert_allclose(from_bytes["probabilities"].numpy(), outputs["probabilities"].numpy(), atol=1e-6)
    _check_portable(export_dir, images.numpy(), outputs["probabilities"].numpy())
    # A larger file is resized as prepare resizes a folder's images (bilinear, no antialias; test_data checks
    # prepare's side), so serving it matches serving those pixels.
    big = tf.cast(tf.image.resize(images_uint8[:3], [56, 56], method="nearest"), tf.uint8)
    from_big = served.signatures["serving_bytes"](image_bytes=tf.stack([tf.io.encode_png(b) for b in big]))
    prepared_pixels = np.clip(np.round(tf.image.resize(tf.cast(big, tf.float32), [28, 28]).numpy()), 0, 255)
    as_prepared = served.signatures["serving_default"](images=tf.constant(prepared_pixels.astype(np.uint8)))
    np.testing.assert_allclose(from_big["probabilities"].numpy(), as_prepared["probabilities"].numpy(), atol=1e-6)
    for name in ("model.keras", "model.weights.h5", "model_summary.txt"):
        assert os.path.exists(os.path.join(model_dir, name)), name


def _check_portable(export_dir, images, probabilities):
    """model.onnx in ONNX Runtime and model.tflite in the LiteRT interpreter give the SavedModel's probabilities
    on real test images (raw pixel values in)."""
    import onnxruntime
    from ai_edge_litert.interpreter import Interpreter

    session = onnxruntime.InferenceSession(os.path.join(export_dir, "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    np.testing.assert_allclose(session.run(None, {"images": images})[0], probabilities, atol=1e-5)
    interpreter = Interpreter(model_path=os.path.join(export_dir, "model.tflite"))
    [entry], [exit_] = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(entry["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(entry["index"], images)
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(exit_["index"]), probabilities, atol=1e-5)


def test_custom_loop_on_two_mirrored_cpu_replicas(data_dir, tmp_path):
    result = helpers.run_module("train", SMOKE, _data_binding(data_dir), "--gin_bindings=TrainConfig.loop='custom'",
                                "--strategy=mirrored", "--num_cpu_devices=2", f"--model_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loop=custom, 2 replica(s)" in result.stderr
    assert _latest_step(str(tmp_path)) == 20


def test_misspelled_binding_fails_with_its_name(data_dir, tmp_path):
    result = helpers.run_module("train", SMOKE, "--gin_bindings=TrainConfig.train_stepz=5", f"--model_dir={tmp_path}")
    assert result.returncode == 2
    assert "train_stepz" in result.stderr and "Traceback" not in result.stderr


def test_unprepared_data_dir_says_how_to_prepare(tmp_path):
    result = helpers.run_module("train", SMOKE, _data_binding(tmp_path / "nothing"), f"--model_dir={tmp_path}")
    assert result.returncode == 2
    assert "prepare --output_dir=" in result.stderr


def test_evaluate_before_training_says_train_first(tmp_path):
    result = helpers.run_module("evaluate", f"--model_dir={tmp_path}")
    assert result.returncode == 2 and "train first" in result.stderr


def test_deterministic_runs_with_the_same_seed_give_identical_weights(data_dir, tmp_path):
    weights = []
    for name in ("a", "b"):
        model_dir = tmp_path / name
        result = helpers.run_module("train", SMOKE, _data_binding(data_dir), "--seed=3", "--deterministic",
                                    f"--model_dir={model_dir}")
        assert result.returncode == 0, result.stderr[-3000:]
        reader = tf.train.load_checkpoint(str(model_dir / "checkpoints" / "ckpt-20"))
        # Every saved value: model weights, BatchNorm statistics, optimizer slots, step.
        weights.append({k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()})
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 20
    for key in weights[0]:
        np.testing.assert_array_equal(weights[0][key], weights[1][key], err_msg=key)


def test_logistic_regression_baseline_scores_the_held_out_splits(data_dir, tmp_path):
    import shutil

    copy = str(tmp_path / "prepared")
    shutil.copytree(data_dir, copy)  # the baseline writes its report into the data dir
    result = helpers.run_module("baseline", f"--data_dir={copy}", "--max_iter=50")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(os.path.join(copy, "logreg_baseline.json")))
    assert report["train_examples"] == 1800 and report["test"]["examples"] == 500
    assert report["validation"]["examples"] == 200
    assert report["test"]["accuracy"] > 0.3  # ten classes: chance is 0.1
    assert f"test accuracy {report['test']['accuracy']:.4f}" in result.stdout


@pytest.mark.slow
def test_trains_under_parameter_servers_and_evaluates_without_them(data_dir, tmp_path):
    model_dir = str(tmp_path / "ps")
    trained = testing.run_under_parameter_servers(f"projects.{helpers.PROJECT}.train", SMOKE, _data_binding(data_dir),
                                                  f"--model_dir={model_dir}")
    assert trained.returncode == 0, trained.stdout[-4000:]
    assert "[chief] Final:" in trained.stdout and _latest_step(model_dir) == 20
    evaluated = helpers.run_module("evaluate", f"--model_dir={model_dir}")  # one process reads the chief's checkpoint
    assert evaluated.returncode == 0 and "accuracy" in evaluated.stdout, evaluated.stderr[-3000:]
