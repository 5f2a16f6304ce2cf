import keras
import numpy as np
import pytest

from core import testing
from core.config import ConfigError

from .. import model as model_lib


def _train_steps(model, steps=3):
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ids = np.random.default_rng(0).integers(1, 20, size=(16, 6))
    model.fit(ids, np.arange(16) % 3, epochs=steps, verbose=0)


def test_frozen_embedding_does_not_move_until_thawed():
    pretrained = np.random.default_rng(1).normal(size=(20, 4)).astype("float32")
    model = model_lib.lstm_classifier(20, 3, 6, embedding_dim=4, embeddings=pretrained, freeze_embeddings=True,
                                      lstm_units=(4,), embedding_dropout=0.0)
    embedding = model.get_layer("embedding")
    lstm_before = model.get_layer("bilstm_0").get_weights()[0].copy()
    _train_steps(model)
    np.testing.assert_array_equal(embedding.embeddings.numpy(), pretrained)
    assert not np.allclose(model.get_layer("bilstm_0").get_weights()[0], lstm_before)  # the rest trains

    thaw = model_lib.ThawEmbeddings(thaw_step=10, steps_per_loop=10)
    thaw.set_model(model)
    thaw.on_epoch_begin(1)
    assert float(embedding.frozen.numpy()) == 0.0
    _train_steps(model)
    assert not np.allclose(embedding.embeddings.numpy(), pretrained)


def test_thaw_callback_freezes_before_the_thaw_step():
    model = model_lib.lstm_classifier(10, 2, 4, embedding_dim=3, lstm_units=(2,))
    thaw = model_lib.ThawEmbeddings(thaw_step=20, steps_per_loop=10)
    thaw.set_model(model)
    thaw.on_epoch_begin(0)
    assert float(model.get_layer("embedding").frozen.numpy()) == 1.0
    thaw.on_epoch_begin(2)
    assert float(model.get_layer("embedding").frozen.numpy()) == 0.0


@pytest.mark.parametrize("pooling", ["last", "max", "mean", "attention"])
def test_classifier_variants_give_logits_and_round_trip(pooling, tmp_path):
    model = model_lib.lstm_classifier(30, 5, 7, embedding_dim=8, lstm_units=(6, 4), bidirectional=pooling != "max",
                                      pooling=pooling)
    ids = np.array([[3, 4, 5, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7]])
    logits = np.asarray(model(ids))
    assert logits.shape == (2, 5)
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(tmp_path / "m.keras")(ids)), logits, atol=1e-6)


def test_freezable_embedding_round_trips():
    testing.check_layer(model_lib.FreezableEmbedding, {"input_dim": 9, "output_dim": 3, "frozen": True}, (5,),
                        mixed_precision=False)


def test_pretrained_width_must_match_the_configured_width():
    with pytest.raises(ConfigError, match="set lstm_classifier.embedding_dim = 50"):
        model_lib.lstm_classifier(10, 2, 4, embedding_dim=100, embeddings=np.zeros((10, 50), "float32"))


def test_word_dropout_pads_about_rate_of_the_words_while_training_only():
    layer = model_lib.WordDropout(0.3, seed=1)
    ids = np.random.default_rng(0).integers(1, 50, size=(64, 100)).astype("int32")
    ids[:, 90:] = 0  # padding stays padding
    dropped = np.asarray(layer(ids, training=True))
    kept = dropped != 0
    assert np.all(dropped[kept] == ids[kept]) and not kept[:, 90:].any()  # words are kept as they are or padded
    assert abs(1 - kept[:, :90].mean() - 0.3) < 0.02
    np.testing.assert_array_equal(np.asarray(layer(ids, training=False)), ids)
    with pytest.raises(ConfigError, match="word_dropout=1.0"):
        model_lib.WordDropout(1.0)


def test_a_classifier_with_word_dropout_round_trips_and_predicts_without_it(tmp_path):
    model = model_lib.lstm_classifier(30, 5, 7, embedding_dim=8, lstm_units=(6,), word_dropout=0.5)
    ids = np.array([[3, 4, 5, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7]])
    logits = np.asarray(model(ids))
    np.testing.assert_array_equal(np.asarray(model(ids)), logits)  # inference drops nothing
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(tmp_path / "m.keras")(ids)), logits, atol=1e-6)


def test_attention_pooling_weights_only_kept_steps_and_round_trips():
    layer = model_lib.AttentionPooling1D(units=4)
    x = np.random.default_rng(2).normal(size=(3, 5, 6)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=bool)
    pooled = np.asarray(layer(x, mask=mask))
    changed = x.copy()
    changed[0, 3:] = 100.0  # padded steps of row 0 must not move its pooling
    np.testing.assert_allclose(np.asarray(layer(changed, mask=mask))[0], pooled[0], atol=1e-6)
    np.testing.assert_array_equal(pooled[2], np.zeros(6))  # all padding: zeros
    # a convex combination of the kept steps: inside their range, feature by feature
    assert np.all(pooled[0] <= x[0, :3].max(0) + 1e-6) and np.all(pooled[0] >= x[0, :3].min(0) - 1e-6)
    one = model_lib.AttentionPooling1D(units=4)
    np.testing.assert_allclose(np.asarray(one(x[:1, :1])), x[0, :1], atol=1e-6)  # one step: itself
    testing.check_layer(model_lib.AttentionPooling1D, {"units": 4}, (5, 6), mixed_precision=False)


def test_word_dropout_goes_through_the_harness_on_int_ids():
    ids = np.array([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5], [7, 7, 0, 0, 0]], "int32")
    testing.check_layer(model_lib.WordDropout, {"rate": 0.5, "seed": 1}, inputs=ids)
