import numpy as np

from core import layers, testing


def test_masked_pooling_round_trips_and_ignores_padded_steps():
    testing.check_layer(layers.MaskedGlobalPooling1D, {"mode": "max"}, (5, 3))
    testing.check_layer(layers.MaskedGlobalPooling1D, {"mode": "mean"}, (5, 3))
    x = np.array([[[-1.0, 2.0], [-3.0, 4.0], [9.0, 9.0]],
                  [[5.0, -5.0], [0.0, 0.0], [0.0, 0.0]]], "float32")
    mask = np.array([[True, True, False], [False, False, False]])
    np.testing.assert_allclose(np.asarray(layers.MaskedGlobalPooling1D("max")(x, mask=mask)), [[-1, 4], [0, 0]])
    np.testing.assert_allclose(np.asarray(layers.MaskedGlobalPooling1D("mean")(x, mask=mask)), [[-2, 3], [0, 0]])
    np.testing.assert_allclose(np.asarray(layers.MaskedGlobalPooling1D("mean")(x)), x.mean(axis=1))


def test_masked_pooling_gets_the_mask_from_an_embedding():
    import keras

    ids = keras.Input((4,), dtype="int32")
    pooled = layers.MaskedGlobalPooling1D("max")(keras.layers.Embedding(5, 2, mask_zero=True)(ids))
    model = keras.Model(ids, pooled)
    table = model.layers[1].embeddings.numpy()
    out = np.asarray(model(np.array([[1, 2, 0, 0]])))
    np.testing.assert_allclose(out[0], table[[1, 2]].max(axis=0))  # row 0 (padding) excluded
