"""tf.Module vs keras.layers.Layer vs keras.Model: the same affine map three ways, and what each one adds.

Run from the repository root:

    python -m examples.module_layer_model

- `AffineModule(tf.Module)`: plain TensorFlow. It must be told both sizes, because it creates its variables in
  `__init__`; it tracks variables and checkpoints, and nothing more.
- `Affine(keras.layers.Layer)`: takes only `units`. Keras calls `build(input_shape)` before the first `call`,
  so the input size is read off the first input; `get_config` lets `load_model` rebuild it.
- `AffineModel(keras.Model)`: wraps an `Affine` and so gets compile / fit / evaluate / predict / save.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tempfile  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


class AffineModule(tf.Module):
    """x @ w + b as a tf.Module: both sizes are needed up front because the variables are made in __init__."""

    def __init__(self, in_features: int, out_features: int, seed: int = 0, name: str | None = None):
        super().__init__(name=name)
        self.w = tf.Variable(tf.random.stateless_normal([in_features, out_features], seed=[seed, 0]), name="w")
        self.b = tf.Variable(tf.zeros([out_features]), name="b")

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        """(batch, in_features) -> (batch, out_features)."""
        return x @ self.w + self.b  # (batch, in) @ (in, out) -> (batch, out)


class Affine(keras.layers.Layer):
    """x @ kernel + bias as a Keras layer: the input size is inferred in build() on the first call."""

    def __init__(self, units: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.seed = seed

    def build(self, input_shape: tuple) -> None:
        """Creates the weights once the input size, input_shape[-1], is known."""
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_shape[-1], self.units),
            initializer=keras.initializers.GlorotUniform(seed=self.seed),
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, x: tf.Tensor) -> tf.Tensor:
        """(batch, in) -> (batch, units)."""
        return keras.ops.matmul(x, self.kernel) + self.bias  # (batch, in) @ (in, units) -> (batch, units)

    def get_config(self) -> dict:
        """The constructor arguments, so that from_config (and load_model) can rebuild the layer."""
        return {**super().get_config(), "units": self.units, "seed": self.seed}


class AffineModel(keras.Model):
    """An Affine layer as a subclassed keras.Model, which brings compile/fit/evaluate/predict/save."""

    def __init__(self, units: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.seed = seed
        self.affine = Affine(units, seed=seed, name="affine")

    def call(self, x: tf.Tensor) -> tf.Tensor:
        """(batch, in) -> (batch, units)."""
        return self.affine(x)

    def get_config(self) -> dict:
        """The constructor arguments; the Affine sublayer is rebuilt by __init__."""
        return {**super().get_config(), "units": self.units, "seed": self.seed}


def lifecycle() -> list[str]:
    """The order in which Keras runs an Affine's __init__, build and call over construction and three calls."""
    events = []

    # A subclass that logs, so that Affine itself stays free of bookkeeping.
    class LoggedAffine(Affine):
        def __init__(self, units: int, **kwargs):
            events.append("__init__")
            super().__init__(units, **kwargs)

        def build(self, input_shape: tuple) -> None:
            events.append(f"build{tuple(input_shape)}")
            super().build(input_shape)

        def call(self, x: tf.Tensor) -> tf.Tensor:
            events.append(f"call{tuple(x.shape)}")
            return super().call(x)

    layer = LoggedAffine(2, seed=0)
    for batch in (1, 4, 4):
        layer(tf.ones([batch, 3]))
    return events


def _checkpoint_round_trip(obj, variables: list) -> bool:
    """Writes obj's variables to a checkpoint, overwrites them with zeros, restores, and checks they are back."""
    before = [v.numpy() for v in variables]
    with tempfile.TemporaryDirectory() as tmp:
        path = tf.train.Checkpoint(obj=obj).write(os.path.join(tmp, "ckpt"))
        for v in variables:
            v.assign(tf.zeros_like(v))
        tf.train.Checkpoint(obj=obj).restore(path)
    return all(np.array_equal(b, v.numpy()) for b, v in zip(before, variables))


def class_relations() -> dict:
    """How the three classes relate in Keras 3 / TF 2, computed at run time, and what they share."""
    module = AffineModule(3, 2, name="module")
    layer = Affine(2, seed=0, name="layer")
    model = AffineModel(2, seed=0, name="model")
    x = tf.ones([1, 3])
    for obj in (module, layer, model):
        obj(x)  # the Layer and Model create their weights here
    return {
        # Keras 3 is its own package that runs on a backend; `import keras` here means Keras on TensorFlow.
        "keras version, backend": f"{keras.__version__}, {keras.backend.backend()} {tf.__version__}",
        "issubclass(keras.Model, keras.layers.Layer)": issubclass(keras.Model, keras.layers.Layer),
        # True for tf.keras (Keras 2); a Keras 3 Layer is not a tf.Module.
        "isinstance(Affine(2), tf.Module)": isinstance(layer, tf.Module),
        "isinstance(AffineModel(2), tf.Module)": isinstance(model, tf.Module),
        "isinstance(AffineModule(3, 2), keras.layers.Layer)": isinstance(module, keras.layers.Layer),
        # What they do share: TF's trackable base classes, which is all tf.train.Checkpoint needs.
        "Layer bases": [c.__name__ for c in keras.layers.Layer.__mro__],
        "tf.Module bases": [c.__name__ for c in tf.Module.__mro__],
        # tf.Module sorts its variables by attribute name and does not prefix their names; Keras weights carry
        # the path of the layers that own them.
        "AffineModule.trainable_variables": [v.name for v in module.trainable_variables],
        "Affine.trainable_weights": [w.path for w in layer.trainable_weights],
        "AffineModel.trainable_weights": [w.path for w in model.trainable_weights],
        "checkpoint round trip": {
            "AffineModule": _checkpoint_round_trip(module, module.trainable_variables),
            "Affine": _checkpoint_round_trip(layer, layer.trainable_weights),
            "AffineModel": _checkpoint_round_trip(model, model.trainable_weights),
        },
    }


def _rounded(array: np.ndarray, digits: int) -> list[float]:
    return [round(float(v), digits) for v in array.ravel()]  # float32 -> Python floats that print short


def max_abs_error(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """A metric as a plain (y_true, y_pred) function: the largest absolute error in one batch."""
    return keras.ops.max(keras.ops.abs(y_true - y_pred))


def fit_model(epochs: int = 30) -> dict:
    """Compiles, fits, evaluates and predicts with AffineModel, then round-trips it through a .keras file."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    true_w = np.array([[1.0], [-2.0], [0.5]], np.float32)
    y = x @ true_w + 0.3 + rng.normal(0.0, 0.05, size=(64, 1)).astype(np.float32)  # (64, 1)
    x, x_val, y, y_val = x[:48], x[48:], y[:48], y[48:]  # hold 16 examples out for validation
    model = AffineModel(1, seed=0)
    # Keras wraps a plain metric function in a running mean: it reports the mean of the per-batch values (here the
    # mean of the batch maxima, not the largest error overall).
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse", metrics=[max_abs_error])
    before = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)  # builds the model on its first batch
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = os.path.join(tmp, "logs")
        # validation_data is scored after every epoch (val_loss, val_max_abs_error) and never trained on.
        history = model.fit(x, y, epochs=epochs, batch_size=16, shuffle=False, verbose=0,
                            validation_data=(x_val, y_val), callbacks=[keras.callbacks.TensorBoard(log_dir)])
        tensorboard_dirs = sorted(os.listdir(log_dir))
        after = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
        predictions = model.predict(x[:4], verbose=0)
        path = os.path.join(tmp, "affine.keras")
        model.save(path)
        # AffineModel and max_abs_error are not registered (compare cnn_vision's LayerScale, which is), so the
        # file names classes that load_model cannot find by itself...
        try:
            keras.models.load_model(path)
            load_without_custom_objects = "loaded"
        except TypeError as e:
            load_without_custom_objects = type(e).__name__
        # ...until custom_objects maps those names to the Python objects.
        reloaded = keras.models.load_model(
            path, custom_objects={"AffineModel": AffineModel, "max_abs_error": max_abs_error}
        )
    reloaded_predictions = reloaded.predict(x[:4], verbose=0)
    return {
        "loss before fit": before["loss"],
        "loss after fit": after["loss"],
        "max_abs_error after fit": after["max_abs_error"],
        "epochs run": len(history.history["loss"]),
        "last val_loss": history.history["val_loss"][-1],
        "TensorBoard log dirs": tensorboard_dirs,
        "learned kernel (true 1, -2, 0.5)": _rounded(model.affine.kernel.numpy(), 3),
        "learned bias (true 0.3)": _rounded(model.affine.bias.numpy(), 3),
        "predictions": _rounded(predictions, 3),
        "targets": _rounded(y[:4], 3),
        "load_model without custom_objects": load_without_custom_objects,
        "reloaded type": type(reloaded).__name__,
        "reloaded predictions match": bool(np.allclose(predictions, reloaded_predictions)),
    }


def main() -> None:
    """Prints every demonstration with a label."""
    keras.utils.set_random_seed(0)
    print("== lifecycle of Affine(2): construct, then call on batches of 1, 4, 4")
    print(" -> ".join(lifecycle()))
    print("== class relations")
    for key, value in class_relations().items():
        print(f"{key}: {value}")
    print("== AffineModel: compile / fit / evaluate / predict / .keras round trip")
    for key, value in fit_model().items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
