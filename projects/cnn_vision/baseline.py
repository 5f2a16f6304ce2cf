"""The plain-Keras peer of bench.py's race and of the results table: the keras-io "Simple MNIST convnet".

What makes it the tutorial way: two valid-padded ReLU convolutions (32 and 64 filters) with max-pooling,
dropout 0.5 and a softmax, no normalisation, trained by bench.py as the recipe does (Adam's defaults,
batch 128, 15 epochs of `model.fit` on arrays scaled to [0, 1]). `keras_io_convnet` is the same model as
the project's Task expects it (pixels in 0..255, logits), for `configs/keras_io_recipe.gin`: the recipe's
settings, trained by core's trainer on the same data as `default.gin`. A reference only; the project's
models are model.py.
"""

from __future__ import annotations

import gin
import keras


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
