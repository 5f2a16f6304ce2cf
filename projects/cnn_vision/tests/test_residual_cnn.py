"""residual_cnn scores in inference mode what it scores in training mode once its statistics settle."""

import keras
import numpy as np

from .. import model as model_lib


def test_inference_matches_training_mode_after_100_steps_of_statistics():
    # resnet.gin after one epoch: 80% test accuracy in training mode, 30% in inference, because the
    # BatchNorms reading the small residual stream still held most of their initial moving variance.
    keras.utils.set_random_seed(0)
    model = model_lib.residual_cnn([28, 28, 1], 10, stem_filters=8, stage_filters=(8, 16), blocks_per_stage=1,
                                   layer_scale=0.1, dropout=0.0)
    images = np.random.default_rng(0).uniform(0, 255, (32, 28, 28, 1)).astype("float32")  # (batch, H, W, C)
    for _ in range(100):
        model(images, training=True)  # updates every BatchNorm's moving statistics, as fit's steps do
    np.testing.assert_allclose(np.asarray(model(images, training=False)), np.asarray(model(images, training=True)),
                               atol=0.02)
