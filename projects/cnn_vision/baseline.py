r"""The baselines of cnn_vision: a classical one, and the plain-Keras recipe of bench.py's race and the results table.

    python -m projects.cnn_vision.baseline [--data_dir=data/cnn_vision/fashion_mnist]

The binary fits the classical baseline: scikit-learn's multinomial logistic regression on the pixels
scaled to [0, 1], on the same prepared training split as the CNNs. It reports validation and test
accuracy and macro-F1 and writes them to `<data_dir>/logreg_baseline.json`. scikit-learn is a
benchmark-only dependency (requirements-dev.txt).

The keras-io "Simple MNIST convnet" is the tutorial way: two valid-padded ReLU convolutions (32 and 64
filters) with max-pooling, dropout 0.5 and a softmax, no normalisation, trained by bench.py as the recipe
does (Adam's defaults, batch 128, 15 epochs of `model.fit` on arrays scaled to [0, 1]). `keras_io_convnet`
is the same model as the project's Task expects it (pixels in 0..255, logits), for
`configs/keras_io_recipe.gin`: the recipe's settings, trained by core's trainer on the same data as
`default.gin`. A reference only; the project's models are model.py.
"""

from __future__ import annotations

import json
import os
import time

import gin
import keras
import numpy as np
from absl import flags

from core import runtime
from core.files import write_text_atomic

from . import data

FLAGS = flags.FLAGS


def _recipe_layers(num_classes: int, activation: str | None) -> list[keras.layers.Layer]:
    return [
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(num_classes, activation=activation, name="logits" if activation is None else None),
    ]


def simple_convnet(input_shape, num_classes: int) -> keras.Model:
    """The keras-io "simple MNIST convnet": two valid-padded ReLU convs with max-pooling, dropout 0.5, softmax."""
    return keras.Sequential([keras.Input(shape=tuple(input_shape)), *_recipe_layers(num_classes, "softmax")],
                            name="keras_io_simple_convnet")


@gin.configurable
def keras_io_convnet(input_shape, num_classes: int) -> keras.Model:
    """`simple_convnet` as the Task expects a model: pixels in 0..255 scaled inside, logits out (the loss
    applies the softmax)."""
    return keras.Sequential([keras.Input(shape=tuple(input_shape), name="images"), keras.layers.Rescaling(1.0 / 255),
                             *_recipe_layers(num_classes, None)], name="keras_io_convnet")


def read_split(data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Every image of a prepared split as flat pixels in [0, 1], and the labels."""
    images, labels = [], []
    for batch_images, batch_labels in data.make_dataset(data_dir, split, 4096, training=False):
        images.append(batch_images.numpy().reshape(len(batch_labels), -1) / 255.0)
        labels.append(batch_labels.numpy())
    return np.concatenate(images), np.concatenate(labels)


def main(argv: list[str]) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    class_names = data.read_metadata(FLAGS.data_dir)["class_names"]
    x, y = read_split(FLAGS.data_dir, "train")
    print(f"Fitting a logistic regression on {len(y)} training images ({x.shape[1]} pixels each) ...", flush=True)
    start = time.perf_counter()
    classifier = LogisticRegression(max_iter=FLAGS.max_iter).fit(x, y)
    seconds = time.perf_counter() - start
    scores = {"fit_seconds": round(seconds, 2), "train_examples": int(len(y)), "max_iter": FLAGS.max_iter}
    for split in ("validation", "test"):
        x, y = read_split(FLAGS.data_dir, split)
        predictions = classifier.predict(x)
        scores[split] = {"accuracy": accuracy_score(y, predictions), "examples": int(len(y)),
                         "macro_f1": f1_score(y, predictions, average="macro", labels=range(len(class_names)),
                                              zero_division=0)}
    test = scores["test"]
    print(f"Logistic regression baseline on {FLAGS.data_dir} ({len(class_names)} classes): test accuracy "
          f"{test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f} (validation accuracy "
          f"{scores['validation']['accuracy']:.4f}), fit {seconds:.1f} s")
    path = os.path.join(FLAGS.data_dir, "logreg_baseline.json")
    write_text_atomic(path, json.dumps(scores, indent=2))
    print(f"Wrote {path}")


if __name__ == "__main__":
    # Defined only when run: configs/keras_io_recipe.gin imports this module into `train`, which has no such flags.
    flags.DEFINE_string("data_dir", "data/cnn_vision/fashion_mnist",
                        "Prepared data (python -m projects.cnn_vision.prepare).")
    flags.DEFINE_integer("max_iter", 200, "L-BFGS iterations of the logistic regression.")
    runtime.run(main)
