"""The plain-Keras peer of bench.py's race: the keras-io "Simple MNIST convnet" recipe's model.

What makes it the tutorial way: two valid-padded ReLU convolutions (32 and 64 filters) with max-pooling,
dropout 0.5 and a softmax, no normalisation, trained by bench.py as the recipe does (Adam's defaults,
batch 128, 15 epochs of `model.fit` on arrays scaled to [0, 1]). A benchmark reference only; the
project's models are model.py.
"""

from __future__ import annotations

import keras


def simple_convnet(input_shape, num_classes: int) -> keras.Model:
    """The keras-io "simple MNIST convnet": two valid-padded ReLU convs with max-pooling, dropout 0.5, softmax."""
    return keras.Sequential([
        keras.Input(shape=tuple(input_shape)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(num_classes, activation="softmax"),
    ], name="keras_io_simple_convnet")
