"""The race's baseline model is the keras-io "Simple MNIST convnet" recipe's."""

import pytest

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


def test_the_recipe_config_builds_the_recipe_model_and_optimizer(tmp_path):
    import json

    import gin

    from core import config, trainer
    from projects.cnn_vision import task as task_lib

    (tmp_path / "metadata.json").write_text(json.dumps({"class_names": [str(i) for i in range(10)],
                                                        "image_shape": [28, 28, 1]}))
    gin.clear_config()
    try:
        config.parse_gin(["projects/cnn_vision/configs/keras_io_recipe.gin"],
                         [f"ImageClassificationTask.data_dir='{tmp_path}'"])
        task = task_lib.ImageClassificationTask()
        model, optimizer = task.build_model(), task.build_optimizer()
        steps = trainer.TrainConfig().train_steps
    finally:
        gin.clear_config()
    assert model.name == "keras_io_convnet" and model.count_params() == 34_826
    assert (task.batch_size, task.augment, task.label_smoothing, steps) == (128, False, 0.0, 15 * 429)
    assert float(optimizer.learning_rate) == pytest.approx(1e-3) and optimizer.weight_decay == 0.0
