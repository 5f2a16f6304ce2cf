"""A bare GradientTape linear regression on a tf.Module, what a tape watches, and saving it two ways.

Run from the repository root:

    python -m examples.linear_regression

No Keras model and no `fit`: a tf.Module holds two variables, a tf.function computes the loss under a
GradientTape, and a Keras optimizer applies the gradients. Then the module goes through a checkpoint
(variables only) and a SavedModel (variables and the traced graph), each into a temporary directory.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tempfile  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

TRUE_A, TRUE_B = 3.0, 2.0


class Linear(tf.Module):
    """y = a * x + b with scalar variables a and b, both starting at 0."""

    def __init__(self, name: str | None = None):
        super().__init__(name=name)
        self.a = tf.Variable(0.0, name="a")
        self.b = tf.Variable(0.0, name="b")

    # The signature fixes one graph for any batch length, and lets tf.saved_model.save export it as the
    # serving signature without being told which function to use.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        """(batch,) -> (batch,)."""
        return self.a * x + self.b


def make_data(num_points: int = 200, seed: int = 0) -> tuple[tf.Tensor, tf.Tensor]:
    """x uniform in [-1, 1] and y = 3x + 2 + noise (std 0.1), both float32 of shape (num_points,)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, num_points).astype(np.float32)
    y = (TRUE_A * x + TRUE_B + rng.normal(0.0, 0.1, num_points)).astype(np.float32)
    return tf.constant(x), tf.constant(y)


def train(model: Linear, x: tf.Tensor, y: tf.Tensor, steps: int = 100, learning_rate: float = 0.2) -> list[float]:
    """Full-batch gradient descent on the mean squared error; returns the loss before each step."""
    optimizer = keras.optimizers.SGD(learning_rate=learning_rate)

    # One graph for the whole step: forward pass, gradient and update run without returning to Python. x and y
    # are arguments, not captured, so the graph does not bake the data in as constants.
    @tf.function
    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return [float(step(x, y)) for _ in range(steps)]


def watched_gradients() -> dict:
    """Which sources a GradientTape differentiates: watched constants and trainable Variables, not the rest."""
    constant = tf.constant(3.0)
    trainable = tf.Variable(3.0)
    frozen = tf.Variable(3.0, trainable=False)
    # persistent=True lets one tape answer several gradient calls; a plain tape is freed after the first.
    with tf.GradientTape(persistent=True) as tape:
        from_constant = constant * constant
        from_trainable = trainable * trainable
        from_frozen = frozen * frozen
    with tf.GradientTape() as watching:
        watching.watch(constant)  # constants are recorded only when asked for
        watched_constant = constant * constant
    gradient = {
        "constant, not watched": tape.gradient(from_constant, constant),
        "constant, tape.watch": watching.gradient(watched_constant, constant),
        "trainable Variable": tape.gradient(from_trainable, trainable),
        "Variable(trainable=False)": tape.gradient(from_frozen, frozen),
    }
    del tape  # a persistent tape holds its resources until it is dropped
    return {key: None if g is None else float(g) for key, g in gradient.items()}


def save_and_restore(model: Linear, directory: str) -> dict:
    """A checkpoint restored into a fresh Linear and a reloaded SavedModel; returns what each predicts."""
    probe = tf.constant([-1.0, 0.0, 2.0])
    # Checkpoint: variables only, matched by attribute path (model.a, model.b); the code must be at hand.
    path = tf.train.Checkpoint(model=model).write(os.path.join(directory, "ckpt"))
    checkpoint_files = sorted(os.listdir(directory))
    fresh = Linear()
    tf.train.Checkpoint(model=fresh).restore(path)  # existing variables take their values immediately
    # SavedModel: variables plus the traced graph, loadable without the Linear class.
    export_dir = os.path.join(directory, "saved_model")
    tf.saved_model.save(model, export_dir)
    loaded = tf.saved_model.load(export_dir)
    serving = loaded.signatures["serving_default"]
    # A signature takes keyword tensors (no Python lists) and returns a dict of named outputs.
    outputs = serving(x=probe)
    return {
        "trained": model(probe).numpy(),
        "checkpoint files": checkpoint_files,
        "checkpoint variables equal": [fresh.a.numpy(), fresh.b.numpy()] == [model.a.numpy(), model.b.numpy()],
        "checkpoint-restored": fresh(probe).numpy(),
        "saved_model contents": sorted(os.listdir(export_dir)),
        "saved_model variables/": sorted(os.listdir(os.path.join(export_dir, "variables"))),
        "saved_model called directly": loaded(probe).numpy(),
        "serving_default output keys": sorted(outputs),
        "serving_default": outputs["output_0"].numpy(),
    }


def main() -> None:
    """Trains, prints the loss curve and learned parameters, the tape facts and the restored predictions."""
    np.set_printoptions(precision=4, suppress=True)
    x, y = make_data()
    model = Linear()
    losses = train(model, x, y)
    print("== training (full batch, SGD)")
    for i in range(0, len(losses), 20):
        print(f"step {i:3d}: loss {losses[i]:.4f}")
    print(f"final loss: {losses[-1]:.4f}")
    print(f"learned a = {model.a.numpy():.3f} (true {TRUE_A}), b = {model.b.numpy():.3f} (true {TRUE_B})")
    print("== what a GradientTape watches (d(v*v)/dv at v=3)")
    for key, value in watched_gradients().items():
        print(f"{key}: {value}")
    print("== checkpoint and SavedModel round trips (predictions at x = -1, 0, 2)")
    with tempfile.TemporaryDirectory() as tmp:
        for key, value in save_and_restore(model, tmp).items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
