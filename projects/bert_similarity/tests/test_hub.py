"""hub.py: a Keras model written as a reusable SavedModel, loaded back as a fine-tunable Keras 3 layer."""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from core import checkpoints, testing
from core.config import UserError
from projects.bert_similarity import hub


def small_model():
    inputs = {"x": keras.Input((4,), name="x")}
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs["x"])
    outputs = {"y": keras.layers.Dense(2, name="out")(keras.layers.Dropout(0.5)(hidden)), "hidden": hidden}
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = small_model()
    path = str(tmp_path_factory.mktemp("hub") / "model")
    hub.save_reusable(model, path, {"x": tf.TensorSpec([None, 4], tf.float32)})
    return model, path


X = {"x": np.random.default_rng(0).normal(size=(16, 4)).astype("float32")}


def test_saved_model_has_the_reusable_interface_and_a_serving_signature(saved):
    model, path = saved
    loaded = tf.saved_model.load(path)
    assert len(loaded.variables) == len(model.variables) and len(loaded.trainable_variables) == 4
    np.testing.assert_allclose(loaded(X, training=False)["y"], model(X)["y"], atol=1e-6)
    served = loaded.signatures["serving_default"](x=tf.constant(X["x"]))
    np.testing.assert_allclose(served["y"], model(X)["y"], atol=1e-6)


def test_hub_layer_passes_training_through_and_fine_tunes(saved):
    model, path = saved
    layer = hub.HubLayer(path, output_key="y")
    assert not any(":" in w.name for w in layer.weights)
    np.testing.assert_allclose(layer(X), model(X)["y"], atol=1e-6)
    assert not np.allclose(layer(X, training=True), layer(X))  # dropout only when training
    inputs = {"x": keras.Input((4,), name="x")}
    wrapper = keras.Model(inputs, layer(inputs))
    wrapper.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    before = wrapper.evaluate(X, np.zeros((16, 2)), verbose=0)
    for _ in range(20):
        wrapper.train_on_batch(X, np.zeros((16, 2), "float32"))
    assert wrapper.evaluate(X, np.zeros((16, 2)), verbose=0) < before / 2


def test_hub_layer_round_trips_through_config_and_keras_files(saved):
    _, path = saved
    testing.check_layer(hub.HubLayer, {"handle": path, "output_key": "y"}, inputs=X,
                        dict_input=True, mixed_precision=False)  # the SavedModel's graph is float32


def test_fine_tuned_hub_weights_are_in_checkpoints(saved, tmp_path):
    _, path = saved
    layer = hub.HubLayer(path, output_key="y")
    inputs = {"x": keras.Input((4,), name="x")}
    wrapper = keras.Model(inputs, layer(inputs))
    checkpoint = tf.train.Checkpoint(model=wrapper)
    checkpoints.check_tracked(checkpoint, wrapper)
    layer.trainable_weights[0].assign(layer.trainable_weights[0] + 1.0)
    expected = wrapper(X).numpy()
    saved_path = checkpoint.save(str(tmp_path / "ckpt"))
    fresh = hub.HubLayer(path, output_key="y")
    fresh_model = keras.Model(inputs, fresh(inputs))
    checkpoints.restore(tf.train.Checkpoint(model=fresh_model), saved_path)
    np.testing.assert_allclose(fresh_model(X), expected, atol=1e-6)


def test_bad_handles_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="no saved_model.pb"):
        hub.HubLayer(str(tmp_path))
    with pytest.raises(UserError, match="no such folder, and not a URL"):
        hub.HubLayer("nowhere/encoder")


def test_a_url_handle_without_the_tensorflow_hub_extra_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_hub", None)  # as if the extra were not installed
    with pytest.raises(UserError, match=r"needs tensorflow-hub, an extra: pip install -r requirements-extras.txt"):
        hub.resolve_handle("https://tfhub.dev/google/some/encoder/1")
