"""LayerScale and ResidualBlock: shapes, serialization, regularization, and moving statistics that settle."""

import numpy as np

from core import testing
from projects.cnn_vision import layers


def test_layer_scale_round_trips_and_scales_channels():
    testing.check_layer(layers.LayerScale, {"init_value": 0.5}, (4, 6))
    layer = layers.LayerScale(0.5)
    x = np.ones((2, 3), "float32")
    np.testing.assert_allclose(np.asarray(layer(x)), 0.5 * x)
    assert layer.scale.shape == (3,)


def test_residual_block_identity_shortcut_round_trips():
    testing.check_layer(layers.ResidualBlock, {"filters": 4}, (8, 8, 4))


def test_residual_block_projection_shortcut_downsamples():
    testing.check_layer(layers.ResidualBlock, {"filters": 8, "strides": 2, "layer_scale": 0.1}, (8, 8, 3))
    block = layers.ResidualBlock(8, strides=2)
    y = block(np.zeros((2, 8, 8, 3), "float32"))
    assert y.shape == (2, 4, 4, 8)
    assert block.shortcut is not None


def test_residual_block_weight_decay_adds_regularization_losses():
    block = layers.ResidualBlock(4, strides=2, weight_decay=1e-3)
    block(np.ones((1, 8, 8, 4), "float32"))
    assert len(block.losses) == 3  # conv1, conv2 and the projection shortcut


def test_residual_block_moving_statistics_settle_on_a_small_residual_stream():
    # norm1 reads the residual stream, never normalised in a pre-activation network: in residual_cnn
    # its variance is about 0.01. The moving variance starts at 1 and must forget that within about
    # 100 steps, or inference divides by the wrong std (resnet.gin: 80% in training mode, 30% in inference).
    block = layers.ResidualBlock(8, strides=2, layer_scale=0.1)  # projection shortcut: every sub-layer
    x = (0.05 + 0.1 * np.random.default_rng(0).standard_normal((64, 8, 8, 4))).astype("float32")
    block(x)
    moving = [v for v in block.non_trainable_variables if "moving" in v.path]
    assert len(moving) == 4  # mean and variance of norm1 and norm2
    before = [np.array(v) for v in moving]
    for _ in range(100):
        block(x, training=True)
    for v, start in zip(moving, before):
        assert not np.allclose(np.array(v), start), f"{v.path} did not update in training"
    np.testing.assert_allclose(np.array(block.norm1.moving_variance), np.var(x, axis=(0, 1, 2)), rtol=0.01)
    np.testing.assert_allclose(np.asarray(block(x, training=False)), np.asarray(block(x, training=True)),
                               atol=0.01)
