"""The race's baseline model is the keras-io "Simple MNIST convnet" recipe's."""

from projects.cnn_vision import baseline


def test_baseline_is_the_keras_io_simple_convnet():
    model = baseline.simple_convnet((28, 28, 1), 10)
    assert model.count_params() == 34_826  # the recipe's model summary
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dropout", "Dense"]
    assert [layer.padding for layer in model.layers if hasattr(layer, "padding")][0] == "valid"


def test_keras_io_convnet_is_the_same_model_with_rescaling_and_logits():
    import numpy as np

    model = baseline.keras_io_convnet((28, 28, 1), 10)
    assert model.count_params() == baseline.simple_convnet((28, 28, 1), 10).count_params()
    logits = np.asarray(model(np.full((2, 28, 28, 1), 255.0, "float32")))
    assert logits.shape == (2, 10) and not np.allclose(logits.sum(axis=1), 1.0)  # logits, not probabilities
