"""The deep-MLP variant configs (configs/dnn_*.gin) build what they say, and plot_curves draws their logs."""

import glob
import os

import gin
import keras
import numpy as np
import pytest

from core import trainer  # registers TrainConfig, which the configs bind
from core.config import ConfigError, parse_gin

from .. import data, plot_curves, task  # noqa: F401 (task registers ImageClassificationTask for the configs)
from .. import model as model_lib
from . import helpers

# What each shipped variant must build: hidden activation and initializer, BatchNorm, dropout, input scaling.
VARIANTS = {
    "dnn_plain.gin": dict(activation="relu", initializer=keras.initializers.HeNormal, batch_norm=False,
                          dropout=None, standardize=True),
    "dnn_plain_nostd.gin": dict(activation="relu", initializer=keras.initializers.HeNormal, batch_norm=False,
                                dropout=None, standardize=False),
    "dnn_bn.gin": dict(activation="relu", initializer=keras.initializers.HeNormal, batch_norm=True,
                       dropout=None, standardize=True),
    "dnn_selu.gin": dict(activation="selu", initializer=keras.initializers.LecunNormal, batch_norm=False,
                         dropout=None, standardize=True),
    "dnn_selu_nostd.gin": dict(activation="selu", initializer=keras.initializers.LecunNormal, batch_norm=False,
                               dropout=None, standardize=False),
    "dnn_selu_alphadropout.gin": dict(activation="selu", initializer=keras.initializers.LecunNormal,
                                      batch_norm=False, dropout=keras.layers.AlphaDropout, standardize=True),
}
DEPTH = 20


@pytest.fixture(autouse=True)
def _fresh_gin():
    # parse_gin binds deep_mlp's arguments process-wide; without this a config would leak into later tests.
    gin.clear_config()
    yield
    gin.clear_config()


def _layers(model, cls):
    return [layer for layer in model.layers if type(layer) is cls]


def _build(config: str) -> keras.Model:
    parse_gin([os.path.join(helpers.CONFIGS, config)], [])
    assert gin.query_parameter("ImageClassificationTask.model_fn").selector == "deep_mlp"
    return model_lib.deep_mlp(input_shape=[28, 28, 1], num_classes=10)  # the bound values apply


def test_every_dnn_config_is_checked_here():
    shipped = {os.path.basename(p) for p in glob.glob(os.path.join(helpers.CONFIGS, "dnn_*.gin"))}
    assert shipped - {"dnn_base.gin"} == set(VARIANTS)


def test_variants_share_one_training_schedule():
    schedules = set()
    for config in VARIANTS:
        parse_gin([os.path.join(helpers.CONFIGS, config)], [])
        schedules.add((trainer.TrainConfig(), *(gin.query_parameter(f"ImageClassificationTask.{name}") for name in
                                                ("batch_size", "learning_rate", "weight_decay", "augment"))))
    assert len(schedules) == 1, schedules


@pytest.mark.parametrize("config", sorted(VARIANTS))
def test_variant_builds_what_its_config_says_and_survives_keras_round_trip(config, tmp_path):
    expected = VARIANTS[config]
    model = _build(config)

    dense = _layers(model, keras.layers.Dense)
    assert len(dense) == DEPTH + 1 and dense[-1].name == "logits"
    assert model.output.dtype == "float32"
    for layer in dense[:-1]:
        assert type(layer.kernel_initializer) is expected["initializer"], layer.name
    if expected["batch_norm"]:
        assert len(_layers(model, keras.layers.BatchNormalization)) == DEPTH
        assert [layer.activation.__name__ for layer in _layers(model, keras.layers.Activation)] == \
            [expected["activation"]] * DEPTH
        assert not any(layer.use_bias for layer in dense[:-1])
    else:
        assert not _layers(model, keras.layers.BatchNormalization)
        assert {layer.activation.__name__ for layer in dense[:-1]} == {expected["activation"]}
    dropouts = [layer for layer in model.layers if "dropout" in type(layer).__name__.lower()]
    assert [type(layer) for layer in dropouts] == ([expected["dropout"]] if expected["dropout"] else [])
    assert bool(_layers(model, keras.layers.Normalization)) == expected["standardize"]
    assert bool(_layers(model, keras.layers.Rescaling)) != expected["standardize"]

    pixels = np.random.default_rng(0).uniform(0, 255, size=(4, 28, 28, 1)).astype("float32")
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(pixels, verbose=0), model.predict(pixels, verbose=0), rtol=1e-5,
                               atol=1e-5)


def test_standardize_maps_the_training_mean_to_zero_and_one_std_to_one():
    model = model_lib.deep_mlp(input_shape=[28, 28, 1], num_classes=10, depth=1, units=4)
    layer = _layers(model, keras.layers.Normalization)[0]
    std = model_lib.FASHION_MNIST_VARIANCE ** 0.5
    images = np.stack([np.full((28, 28, 1), model_lib.FASHION_MNIST_MEAN + k * std, "float32") for k in (0, 1)])
    standardized = np.asarray(layer(images))  # (2, 28, 28, 1)
    np.testing.assert_allclose(standardized[:, 0, 0, 0], [0.0, 1.0], atol=1e-5)


def test_selu_keeps_unit_variance_through_20_layers_only_from_standardized_inputs():
    # Self-normalisation at initialisation, on real training images: with standardised inputs every
    # hidden layer has std ~1 (measured 0.96-1.01); from [0, 1] pixels the first layers sit near 0.5
    # (measured 0.51 at layer 1) and only drift back towards 1 deeper down.
    images = data.load_idx(data.FASHION_MNIST_DIR)["train"][0][:2000].astype("float32")
    stds = {}
    for standardize in (True, False):
        keras.utils.set_random_seed(0)
        model = model_lib.deep_mlp(input_shape=[28, 28, 1], num_classes=10, activation="selu",
                                   kernel_initializer="lecun_normal", standardize=standardize)
        hidden = keras.Model(model.input, [layer.output for layer in _layers(model, keras.layers.Dense)[:-1]])
        stds[standardize] = [float(np.std(a)) for a in hidden(images)]
    assert all(0.85 < s < 1.15 for s in stds[True]), stds[True]
    assert stds[False][0] < 0.7, stds[False]


def test_alpha_dropout_without_a_rate_is_a_config_error():
    with pytest.raises(ConfigError, match="deep_mlp.dropout"):
        model_lib.deep_mlp(input_shape=[28, 28, 1], num_classes=10, alpha_dropout=True)


def _write_log(directory, rows):
    os.makedirs(directory)
    lines = ["epoch,accuracy,loss,macro_f1,val_accuracy,val_loss,val_macro_f1"]
    lines += [f"{e},{a},{loss},{a},{v},{loss},{v}" for e, a, loss, v in rows]
    (directory / "training_log.csv").write_text("\n".join(lines) + "\n")


def test_plot_curves_draws_two_runs_into_one_png(tmp_path):
    _write_log(tmp_path / "run_a", [(0, 0.7, 0.9, 0.75), (1, 0.8, 0.6, 0.82), (2, 0.85, 0.45, 0.84)])
    # run_b was resumed: epoch 1 appears twice and the later row must win.
    _write_log(tmp_path / "run_b", [(0, 0.5, 1.5, 0.55), (1, 0.6, 1.2, 0.6), (1, 0.65, 1.1, 0.66)])
    assert plot_curves.read_training_log(str(tmp_path / "run_b" / "training_log.csv"))["val_accuracy"] == \
        [0.55, 0.66]

    output = tmp_path / "out" / "curves.png"
    result = helpers.run_module("plot_curves", f"--model_dir={tmp_path / 'run_a'}",
                                f"--model_dir={tmp_path / 'run_b'}", f"--output={output}", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Wrote {output}" in result.stdout
    assert output.stat().st_size > 1000 and output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in output.parent.iterdir()] == ["curves.png"]  # no temporary file left behind


def test_plot_curves_names_the_file_missing_a_column(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "training_log.csv").write_text("epoch,loss\n0,1.0\n")
    with pytest.raises(ValueError, match=r"run/training_log.csv: no column \['val_accuracy'\]"):
        plot_curves.plot_curves([str(tmp_path / "run")], str(tmp_path / "x.png"))
