import os
import socket
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf

from core import checkpoints, export, testing
from core.config import UserError


def _model():
    inputs = keras.Input((3,), name="x")
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


def _signatures(model):
    def default(x):
        return {"scores": model(x)}

    def doubled(x):
        return {"scores": model(2.0 * x)}

    spec = [tf.TensorSpec([None, 3], tf.float32, name="x")]
    return {"serving_default": (default, spec), "doubled": (doubled, spec)}


def test_versions_increase_and_signatures_serve(tmp_path):
    model = _model()
    first = export.export_saved_model(model, str(tmp_path), _signatures(model))
    second = export.export_saved_model(model, str(tmp_path), _signatures(model))
    assert [os.path.basename(first), os.path.basename(second)] == ["1", "2"]
    assert sorted(os.listdir(tmp_path)) == ["1", "2"]  # no temporary folders left
    loaded = tf.saved_model.load(second)
    assert set(loaded.signatures) == {"serving_default", "doubled"}
    x = np.ones((4, 3), "float32")
    np.testing.assert_allclose(loaded.signatures["serving_default"](x=tf.constant(x))["scores"], model(x), rtol=1e-6)
    np.testing.assert_allclose(loaded.signatures["doubled"](x=tf.constant(x))["scores"], model(2 * x), rtol=1e-6)


def test_an_existing_version_is_never_overwritten(tmp_path):
    model = _model()
    export.export_saved_model(model, str(tmp_path), _signatures(model), version=5)
    with pytest.raises(FileExistsError):
        export.export_saved_model(model, str(tmp_path), _signatures(model), version=5)


def test_failed_export_leaves_no_version(tmp_path):
    model = _model()

    def broken(x):
        raise RuntimeError("tracing failed")

    with pytest.raises(RuntimeError):
        export.export_saved_model(model, str(tmp_path), {"serving_default": (broken, [tf.TensorSpec([None, 3])])})
    assert export.existing_versions(str(tmp_path)) == []
    assert os.listdir(tmp_path) == []  # the temporary folder is gone too


def test_onnx_and_litert_files_land_in_the_version_folder_or_not_at_all(tmp_path):
    model = _model()
    spec = [tf.TensorSpec([None, 3], tf.float32, name="x")]
    batch = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    seen = {}

    def portable(folder):
        paths = {"onnx": export.write_onnx(model, folder, spec), "litert": export.write_litert(model, folder, spec)}
        seen.update(export.check_portable(paths, lambda x: model(x), batch))

    path = export.export_saved_model(model, str(tmp_path), _signatures(model), extras=portable)
    assert {export.ONNX_FILE, export.LITERT_FILE} <= set(os.listdir(path)) and set(seen) == {"onnx", "litert"}
    assert max(seen.values()) < 1e-5
    np.testing.assert_allclose(export.onnx_runner(os.path.join(path, export.ONNX_FILE))(batch), model(batch),
                               atol=1e-5)

    def wrong(folder):  # checked against another model: refused, and no version 2 appears
        export.check_portable({"onnx": export.write_onnx(model, folder, spec)}, lambda x: model(x) + 1.0, batch)

    with pytest.raises(UserError, match=r"/2/model.onnx differs from the Keras model by 1.00e\+00 \(more than "
                                         r"1e-05\). Version 2 was not written."):
        export.export_saved_model(model, str(tmp_path), _signatures(model), extras=wrong)
    assert export.existing_versions(str(tmp_path)) == [1]


def test_a_broken_onnx_file_is_refused_by_name(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(UserError, match=r"model.onnx does not run"):
        export.check_portable({"onnx": str(tmp_path / "model.onnx")}, lambda x: x, np.zeros((1, 3), np.float32))


def test_save_model_files_round_trip(tmp_path):
    model = _model()
    paths = export.save_model_files(model, str(tmp_path))
    x = np.ones((2, 3), "float32")
    np.testing.assert_allclose(keras.models.load_model(paths[".keras"])(x), model(x), rtol=1e-6)
    clone = _model()
    clone.load_weights(paths[".weights.h5"])
    np.testing.assert_allclose(clone(x), model(x), rtol=1e-6)
    assert "dense" in open(paths["summary"]).read()
    assert not any(name.startswith(".tmp") for name in os.listdir(tmp_path))


def test_classifier_outputs_follow_the_serving_contract():
    logits = tf.constant([[2.0, 0.0, -1.0], [0.0, 0.0, 5.0]])
    outputs = export.classifier_outputs(logits, ["cat", "dog", "fox"])
    np.testing.assert_allclose(outputs["probabilities"].numpy(), tf.nn.softmax(logits).numpy(), rtol=1e-6)
    assert outputs["class_ids"].numpy().tolist() == [0, 2]
    assert outputs["class_names"].numpy().tolist() == [b"cat", b"fox"]
    assert outputs["label_names"].numpy().tolist() == [[b"cat", b"dog", b"fox"]] * 2


def test_checkpoint_path_by_step_position_or_path(tmp_path):
    model = _model()
    checkpoint = tf.train.Checkpoint(model=model)
    manager = tf.train.CheckpointManager(checkpoint, str(tmp_path / "checkpoints"), max_to_keep=3)
    paths = [manager.save(checkpoint_number=step) for step in (10, 20, 30)]
    model_dir = str(tmp_path)
    assert checkpoints.checkpoint_path(model_dir, None) is None  # the newest, chosen by restore_model
    assert checkpoints.checkpoint_path(model_dir, "-1") == paths[-1]
    assert checkpoints.checkpoint_path(model_dir, "-2") == paths[1]
    assert checkpoints.checkpoint_path(model_dir, "10") == paths[0]
    assert checkpoints.checkpoint_path(model_dir, paths[0]) == paths[0]
    with pytest.raises(ValueError, match="keeps only 3"):
        checkpoints.checkpoint_path(model_dir, "-4")
    with pytest.raises(ValueError, match="kept steps: 10, 20, 30"):
        checkpoints.checkpoint_path(model_dir, "15")
    with pytest.raises(ValueError, match="no such checkpoint"):
        checkpoints.checkpoint_path(model_dir, str(tmp_path / "nope"))


def _dead_pid() -> int:
    """The id of a process that has ended (its number is not reused this soon)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_export_removes_the_temporaries_of_killed_exports_only(tmp_path):
    model = _model()
    checkpoint = tf.train.Checkpoint(model=model)
    tf.train.CheckpointManager(checkpoint, str(tmp_path / "checkpoints"), max_to_keep=1).save(checkpoint_number=5)
    dead, alive, host = _dead_pid(), os.getpid(), socket.gethostname()
    half_export = tmp_path / "export" / f".tmp-{dead}-{host}-1"
    half_export.mkdir(parents=True)
    (half_export / "saved_model.pb").write_bytes(b"half")
    (tmp_path / f".tmp-{dead}-{host}-model.keras").write_bytes(b"half")
    kept = [f".tmp-{alive}-{host}-9",  # a live process's: still being written
            f".tmp-{dead}-otherhost-8"]  # another host's (a shared filesystem): its pid means nothing here
    for name in kept:
        (tmp_path / "export" / name).mkdir()
    path = export.export_checkpoint(model, str(tmp_path), _signatures(model))
    assert path == str(tmp_path / "export" / "1")
    assert sorted(os.listdir(tmp_path / "export")) == sorted([*kept, "1"])
    assert not [name for name in os.listdir(tmp_path) if name.startswith(f".tmp-{dead}")]


def test_export_elsewhere_needs_no_writable_model_dir(tmp_path, capsys):
    model = _model()
    checkpoint = tf.train.Checkpoint(model=model)
    tf.train.CheckpointManager(checkpoint, str(tmp_path / "run" / "checkpoints"), max_to_keep=1).save()
    with testing.read_only(str(tmp_path / "run")):
        path = export.export_checkpoint(model, str(tmp_path / "run"), _signatures(model),
                                        export_dir=str(tmp_path / "served"))
        with pytest.raises(OSError):  # into the model dir itself it cannot
            export.export_checkpoint(model, str(tmp_path / "run"), _signatures(model))
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    assert "cannot be written" in capsys.readouterr().out
    assert not os.path.exists(tmp_path / "run" / "model.keras")


def test_export_setup_builds_float32_layers_whatever_policy_the_flags_name(tmp_path):
    from absl import flags
    from absl.testing import flagsaver

    (tmp_path / "operative_config.gin").write_text("")  # what training leaves; setup reads it by default
    flags.FLAGS(["test"], known_only=True)
    with flagsaver.flagsaver(model_dir=str(tmp_path), mixed_precision="mixed_bfloat16", gin_file=[]):
        try:
            options = export.setup()
            assert options.mixed_precision == "mixed_bfloat16"
            assert keras.mixed_precision.global_policy().name == "float32"
            assert keras.layers.Dense(1).compute_dtype == "float32"
        finally:
            keras.mixed_precision.set_global_policy("float32")
