import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from core import checkpoints, files
from core.config import ConfigError


def _model(width):
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(width)(inputs))


def _save(tmp_path, model):
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), checkpoints.checkpoint_dir(str(tmp_path)), 1)
    return manager.save()


def test_restore_model_loads_the_newest_checkpoint(tmp_path):
    source = _model(2)
    path = _save(tmp_path, source)
    target = _model(2)
    assert checkpoints.restore_model(target, str(tmp_path)) == path
    for a, b in zip(source.weights, target.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_checkpoint_of_another_shape_is_a_config_error(tmp_path):
    path = _save(tmp_path, _model(2))
    with pytest.raises(ConfigError, match=f"checkpoint {path} does not match"):
        checkpoints.restore_model(_model(5), str(tmp_path))


def test_a_checkpoint_missing_objects_is_a_config_error(tmp_path):
    path = _save(tmp_path, _model(2))
    bigger = tf.train.Checkpoint(model=_model(2), extra=tf.Variable(1.0))
    with pytest.raises(ConfigError, match="does not match"):
        checkpoints.restore(bigger, path)


def test_no_checkpoint_says_train_first(tmp_path):
    with pytest.raises(FileNotFoundError, match="train first"):
        checkpoints.restore_model(_model(2), str(tmp_path))


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "report.json"
    files.write_text_atomic(str(target), "old")
    with pytest.raises(RuntimeError):
        with files.atomic_path(str(target)) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["report.json"]


class _ListOfLayers(keras.Model):
    """Sublayers kept in a list: Keras 3's TrackedList, which tf.train.Checkpoint does not follow."""

    def __init__(self):
        super().__init__()
        self.blocks = [keras.layers.Dense(3), keras.layers.Dense(2)]
        self.head = keras.layers.Dense(1)

    def call(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def test_weights_a_checkpoint_cannot_reach_are_refused_before_training(tmp_path):
    model = _ListOfLayers()
    model(np.zeros((1, 4), "float32"))
    with pytest.raises(ValueError, match=r"4 weight\(s\) of .* would not be saved in checkpoints"):
        checkpoints.check_tracked(tf.train.Checkpoint(model=model), model)
    with pytest.raises(ValueError, match="keras-team/keras#18398"):
        checkpoints.restore_model(model, str(tmp_path))
