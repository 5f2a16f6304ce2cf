"""Test harness for the serializable components (layers, models, losses, metrics, learning-rate schedules,
preprocessing layers) of core and the projects.

One call checks what users rely on when they save and reload models: config round trip, `.keras`
round trip with identical outputs, variable batch sizes and, for layers, mixed precision. A layer is
fed a float input of a given shape, or real example inputs of any structure: int ids, strings, a dict of
named arguments (an attention layer's query and value), as keras-hub's `run_layer_test` does. A
preprocessing layer (strings in, ids out, no weights) is checked where it runs: eagerly, in a
`tf.function` and in `tf.data.Dataset.map`, as keras-hub's `run_preprocessing_layer_test` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile

import keras
import numpy as np


def _round_trip_config(obj):
    config = obj.get_config()
    clone = type(obj).from_config(config)
    assert clone.get_config() == config, f"{type(obj).__name__}: get_config/from_config is not exact"
    return clone


def _symbolic(example: np.ndarray, name: str | None = None) -> keras.KerasTensor:
    dtype = "string" if example.dtype.kind in "SUO" else keras.backend.standardize_dtype(example.dtype)
    return keras.Input(shape=example.shape[1:], dtype=dtype, name=name)


def _leaves(structure) -> list[np.ndarray]:
    return [np.asarray(leaf) for leaf in keras.tree.flatten(structure)]


def check_layer(layer_cls, init_kwargs: dict, input_shape: tuple | None = None, batch_sizes=(1, 3),
                mixed_precision=True, *, inputs=None, dict_input: bool = False) -> None:
    """Checks a layer: config and `.keras` round trips, several batch sizes, mixed precision.

    The layer is called on a float batch of `input_shape`, or on `inputs`: one example batch (any dtype:
    int ids, strings), or a dict of them passed as the call's keyword arguments (or, with `dict_input`,
    as its one input, as a TF Hub encoder takes its id tensors). Every float output must be bfloat16
    under "mixed_bfloat16", with float32 weights.
    """
    if (input_shape is None) == (inputs is None):
        raise ValueError("check_layer takes input_shape or inputs, not both")
    if inputs is None:
        inputs = np.random.default_rng(0).normal(size=(max(batch_sizes), *input_shape)).astype("float32")
    inputs = {k: np.asarray(v) for k, v in inputs.items()} if isinstance(inputs, dict) else np.asarray(inputs)
    named = isinstance(inputs, dict) and not dict_input  # the call's keyword arguments
    layer = layer_cls(**init_kwargs)
    _round_trip_config(layer)
    symbolic = {k: _symbolic(v, k) for k, v in inputs.items()} if isinstance(inputs, dict) else _symbolic(inputs)
    model = keras.Model(symbolic, layer(**symbolic) if named else layer(symbolic))

    def first(n):
        return keras.tree.map_structure(lambda v: v[:n], inputs)

    expected = _leaves(model(inputs, training=False))
    for n in batch_sizes:
        outputs = _leaves(model(first(n), training=False))
        for y, e in zip(outputs, expected, strict=True):
            assert y.shape[0] == n, f"{layer_cls.__name__}: batch {n} gave output shape {y.shape}"
            np.testing.assert_allclose(y, e[:n], rtol=1e-5, atol=1e-5)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
    assert type(loaded.layers[-1]) is layer_cls, f"{layer_cls.__name__} did not come back from .keras"
    for y, e in zip(_leaves(loaded(inputs, training=False)), expected, strict=True):
        np.testing.assert_allclose(y, e, rtol=1e-6, atol=1e-6)
    if mixed_precision:
        mixed = layer_cls(**init_kwargs, dtype="mixed_bfloat16")
        outputs = mixed(**inputs) if named else mixed(inputs)
        for y in keras.tree.flatten(outputs):
            dtype = keras.backend.standardize_dtype(y.dtype)
            assert dtype == "bfloat16" or not dtype.startswith("float"), f"{layer_cls.__name__}: output {y.dtype}"
        for w in mixed.weights:
            assert keras.backend.standardize_dtype(w.dtype) == "float32", f"{w.path} is {w.dtype}, not float32"


def check_preprocessor(layer_cls, init_kwargs: dict, inputs: dict) -> None:
    """Checks a preprocessing layer called with `inputs` (a dict of its call's arguments, one batch):
    config and serialization round trips give a layer with the same outputs, and the outputs are the
    same eagerly, traced in a `tf.function` and mapped over a `tf.data.Dataset`."""
    import tensorflow as tf  # preprocessing layers are TensorFlow graphs (tf.data, tensorflow_text)

    layer = layer_cls(**init_kwargs)
    clone = _round_trip_config(layer)
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is layer_cls, f"{layer_cls.__name__} did not come back from serialize_keras_object"

    def arrays(structure) -> list[np.ndarray]:  # a ragged output as its values and row splits
        leaves = tf.nest.flatten(structure, expand_composites=True)
        return [np.asarray(leaf) for leaf in leaves]

    expected = arrays(layer(**inputs))
    mapped = next(iter(tf.data.Dataset.from_tensor_slices(inputs).batch(len(next(iter(inputs.values()))))
                       .map(lambda batch: layer(**batch))))
    for name, other in (("from_config", clone(**inputs)), ("deserialized", revived(**inputs)),
                        ("tf.function", tf.function(lambda batch: layer(**batch))(inputs)), ("tf.data", mapped)):
        outputs = arrays(other)
        assert len(outputs) == len(expected), f"{layer_cls.__name__}: {name} gave another structure"
        for y, e in zip(outputs, expected, strict=True):
            np.testing.assert_array_equal(y, e, err_msg=f"{layer_cls.__name__}: {name} differs from eager")


def check_model(model: keras.Model, inputs, batch_sizes=(1, 3)) -> None:
    """Checks a subclassed model on one batch of `inputs` (an array or a dict of them): `from_config` of its
    config with its weights gives the same outputs, and so does its `.keras` round trip (the same
    class), and every example's output is the same in a smaller batch."""
    inputs = keras.tree.map_structure(np.asarray, inputs)
    expected = _leaves(model(inputs, training=False))
    for n in batch_sizes:
        smaller = keras.tree.map_structure(lambda v, n=n: v[:n], inputs)
        for y, e in zip(_leaves(model(smaller, training=False)), expected, strict=True):
            np.testing.assert_allclose(y, e[:n], rtol=1e-5, atol=1e-5)
    name = type(model).__name__
    clone = type(model).from_config(model.get_config())
    clone.build_from_config(model.get_build_config())  # what load_model does before loading the weights
    if not clone.weights:
        clone(inputs, training=False)
    clone.set_weights(model.get_weights())
    for y, e in zip(_leaves(clone(inputs, training=False)), expected, strict=True):
        np.testing.assert_allclose(y, e, rtol=1e-6, atol=1e-6, err_msg=f"{name}: from_config")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
    assert type(loaded) is type(model), f"{name} came back from .keras as {type(loaded).__name__}"
    for y, e in zip(_leaves(loaded(inputs, training=False)), expected, strict=True):
        np.testing.assert_allclose(y, e, rtol=1e-6, atol=1e-6, err_msg=f"{name}: .keras")


def check_schedule(schedule: keras.optimizers.schedules.LearningRateSchedule, steps=(0, 1, 10, 1000)) -> None:
    """Checks a learning-rate schedule: the same values after serialize/deserialize, and inside an optimizer
    that comes back from a `.keras` file, evaluated at the optimizer's restored step."""
    name = type(schedule).__name__
    clone = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert type(clone) is type(schedule), f"{name} deserialized as {type(clone).__name__}"
    for step in steps:
        np.testing.assert_allclose(float(clone(step)), float(schedule(step)), rtol=1e-7, err_msg=f"{name} at {step}")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    model.fit(np.ones((8, 3)), np.ones((8, 1)), epochs=1, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.models.load_model(path).optimizer
    assert int(loaded.iterations) == 1
    np.testing.assert_allclose(float(loaded.learning_rate), float(schedule(1)), rtol=1e-6)
    # `_learning_rate` is private: where Keras 3 keeps a schedule (a Keras upgrade that moves it fails here).
    assert type(loaded._learning_rate) is type(schedule), f"{name} is not the optimizer's schedule after loading"


def check_loss(loss: keras.losses.Loss, y_true, y_pred) -> None:
    """Checks a loss: serialize/deserialize (through JSON) gives the same value, and it survives a `.keras`
    round trip. Labels and predictions may be dicts by output name (a multi-output loss); such a loss is
    checked through JSON only, since Keras compiles a multi-output model with one loss per output."""
    value = float(loss(y_true, y_pred))
    assert np.isfinite(value), f"{loss.name}: loss is {value}"
    clone = keras.losses.deserialize(json.loads(json.dumps(keras.losses.serialize(loss))))
    assert type(clone) is type(loss), f"{loss.name} deserialized as {type(clone).__name__}"
    np.testing.assert_allclose(float(clone(y_true, y_pred)), value, rtol=1e-6)
    if isinstance(y_pred, dict):
        return
    inputs = keras.Input(shape=np.shape(y_pred)[1:])
    model = keras.Model(inputs, keras.layers.Identity()(inputs))
    model.compile(loss=loss)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
    np.testing.assert_allclose(float(loaded.loss(y_true, y_pred)), value, rtol=1e-6)


def check_metric(metric: keras.metrics.Metric, y_true, y_pred) -> None:
    """Checks a metric: config round trip, split updates equal one update, reset_state restores it."""
    clone = _round_trip_config(metric)
    metric.reset_state()
    metric.update_state(y_true, y_pred)
    whole = float(metric.result())
    half = len(y_true) // 2
    clone.update_state(y_true[:half], y_pred[:half])
    clone.update_state(y_true[half:], y_pred[half:])
    np.testing.assert_allclose(float(clone.result()), whole, rtol=1e-6)
    fresh = type(metric).from_config(metric.get_config())
    metric.reset_state()
    np.testing.assert_allclose(float(metric.result()), float(fresh.result()))


def run_module(module: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs `python -m module args...` from the repository root, as a user would; captures the output."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=repo, capture_output=True, text=True, timeout=timeout,
        env=dict(os.environ, PYTHONPATH=repo, TF_CPP_MIN_LOG_LEVEL="2"),
    )


def run_under_parameter_servers(module: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`run_module` of `module args...` as the chief of a local cluster of 2 workers and 2 parameter servers
    (`python -m core.launch --ps=2 --workers=2 -- python -m module args...`)."""
    return run_module("core.launch", "--ps=2", "--workers=2", "--", sys.executable, "-m", module, *args,
                      timeout=timeout)


@contextlib.contextmanager
def read_only(path: str):
    """Makes the folder tree at `path` unwritable for the block, for root too (tests of read-only model dirs).

    Root ignores permission bits, so as root the tree is made immutable with `chattr +i` (ext4, xfs, ...);
    other users get `chmod a-w`.
    """
    if os.geteuid() == 0:
        made = subprocess.run(["chattr", "-R", "+i", path], capture_output=True, text=True)
        if made.returncode:
            import pytest  # the harness runs under pytest; only this case needs it

            subprocess.run(["chattr", "-R", "-i", path], capture_output=True)
            pytest.skip(f"cannot make {path} read-only for root here (chattr: {made.stderr.strip()})")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-R", "-i", path], check=True)
        return
    modes = {}
    for root, _, files in os.walk(path):
        for name in [root, *(os.path.join(root, f) for f in files)]:
            modes[name] = os.stat(name).st_mode
            os.chmod(name, modes[name] & ~0o222)
    try:
        yield
    finally:
        for name, mode in modes.items():
            os.chmod(name, mode)


class FakeBinaries:
    """Stands in for `core.results.run_command` in tests of a results table's bookkeeping.

    Records every binary a Runner starts (module, {flag: [values]}) and lets `outputs[module](flags)`
    write the files that binary would, so the table's plumbing is tested in milliseconds, without training.
    """

    def __init__(self, outputs: dict):
        self.outputs, self.calls = outputs, []

    def __call__(self, argv: list[str], log_path: str) -> None:
        module = argv[argv.index("-m") + 1]
        flags: dict[str, list[str]] = {}
        for arg in argv[argv.index("-m") + 2:]:
            name, _, value = arg.removeprefix("--").partition("=")
            flags.setdefault(name, []).append(value)
        self.calls.append((module, flags))
        self.outputs[module](flags)

    def modules(self) -> list[str]:
        return [module.rsplit(".", 1)[-1] for module, _ in self.calls]
