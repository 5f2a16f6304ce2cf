"""Every model builds, trains in both loops, and comes back equal from `.keras` and from a SavedModel export."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from core import checkpoints, config, testing, trainer
from core import export as core_export
from core import task as task_lib
from core.config import ConfigError, RunOptions

from .. import columns as columns_lib
from .. import data, export, table
from .. import model as model_lib
from ..task import RegressionTask
from . import helpers

MODELS = ["mlp", "wide_deep", "wide_deep_multi_input", "wide_deep_multi_output", "wide_deep_subclass"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("bikeshare"))
    csv_path = helpers.write_bikeshare_slice(os.path.join(root, "b.csv"), rows=480)  # 20 days
    spec = table.TableSpec(source=csv_path, numeric=("temp", "hum", "windspeed"),
                           integer_categorical=("hr", "workingday", "weekday"),
                           string_categorical=("weathersit", "mnth"),
                           target="bikers", extra_targets=("casual", "registered"),
                           split=table.SplitSpec(column="day", seed=1))
    data.prepare(spec, os.path.join(root, "prepared"))
    return os.path.join(root, "prepared")


def _configure(data_dir, model, *bindings):
    keras.utils.set_random_seed(0)
    config.parse_gin([os.path.join(helpers.CONFIGS, "smoke.gin")], [
        f"RegressionTask.data_dir = '{data_dir}'", f"RegressionTask.model_fn = @{model}",
        *([f"{model}.crosses = [('hr', 'workingday'), ('hr', 'weathersit')]", f"{model}.cross_bins = 8",
           f"{model}.hidden_units = (8,)"] if model != "mlp" else ["mlp.hidden_units = (8,)"]),
        *bindings])
    return RegressionTask()


def _rows(data_dir, n=5):
    """n test rows as the export takes them: {column: [n]} with each column's dtype."""
    features, _ = data.load_arrays(data_dir, "test")
    return {c: v[:n] for c, v in features.items()}


def _prediction(task, model, rows):
    return task.prediction_of_target(model(task.model_inputs({c: v[:, None] for c, v in rows.items()}))).numpy()


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_model_trains_and_round_trips_through_keras_and_saved_model(data_dir, tmp_path, model_name, loop):
    task = _configure(data_dir, model_name, f"TrainConfig.loop = '{loop}'")
    model_dir = str(tmp_path / "run")
    logs = trainer.train(task, options=RunOptions(model_dir=model_dir), config=trainer.TrainConfig())
    rmse = "val_bikers_rmse" if model_name == "wide_deep_multi_output" else "val_rmse"
    assert np.isfinite(logs[rmse]) and logs[rmse] > 0
    model = task.build_model()
    checkpoints.restore_model(model, model_dir)
    rows = _rows(data_dir)
    expected = _prediction(task, model, rows)
    assert expected.shape == (5,) and np.all(np.isfinite(expected))

    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(_prediction(task, reloaded, rows), expected, rtol=1e-5, atol=1e-4)

    exported = core_export.export_saved_model(model, str(tmp_path / "export"),
                                              export.serving_signatures(task, model), version=1)
    serve = tf.saved_model.load(exported).signatures["serving_default"]
    outputs = serve(**{c: tf.constant(v) for c, v in rows.items()})
    np.testing.assert_allclose(outputs["prediction"].numpy(), expected, rtol=1e-5, atol=1e-4)
    if model_name == "wide_deep_multi_output":  # bikers = casual + registered, by construction
        np.testing.assert_allclose(outputs["casual"].numpy() + outputs["registered"].numpy(), expected, rtol=1e-5)


def test_multi_output_loss_is_weighted_as_configured(data_dir):
    weights = {"casual": 0.3, "registered": 0.7, "bikers": 2.0, "aux": 0.05}
    task = _configure(data_dir, "wide_deep_multi_output", f"RegressionTask.loss_weights = {weights}")
    loss = task.build_loss()
    assert loss.loss_weights == weights
    parts = task_lib.build_components(task, tf.distribute.get_strategy(), RunOptions(model_dir="unused"))
    features, labels = next(iter(task.build_inputs("validation")))
    predictions = parts.model(features, training=False)
    mse = keras.losses.MeanSquaredError()
    expected = sum(w * float(mse(labels[k], predictions[k])) for k, w in weights.items())
    reported = parts.model.evaluate(tf.data.Dataset.from_tensors((features, labels)), return_dict=True, verbose=0)
    np.testing.assert_allclose(reported["loss"], expected, rtol=1e-4)
    for key in weights:  # fit logs each output's own, unweighted loss beside the total
        np.testing.assert_allclose(reported[f"{key}_loss"], float(mse(labels[key], predictions[key])), rtol=1e-4)
    custom = float(tf.reduce_mean(task_lib.per_example_loss(loss, labels, predictions)))
    np.testing.assert_allclose(custom, expected, rtol=1e-4)


def test_preprocessing_is_adapted_on_the_training_split_only(data_dir):
    task = _configure(data_dir, "wide_deep")
    columns = task.columns()
    train, _ = data.load_arrays(data_dir, "train")
    normalization = columns.normalization(columns.numeric)
    np.testing.assert_allclose(np.asarray(normalization.mean).reshape(-1),
                               [train[c].mean() for c in columns.numeric], rtol=1e-5)
    hours = columns.lookup("hr").get_vocabulary()
    assert hours[0] == -1 and sorted(hours[1:]) == sorted(set(train["hr"].tolist()))


def test_a_model_dir_refuses_data_prepared_differently(data_dir, tmp_path):
    task = _configure(data_dir, "wide_deep")
    task.check_data(str(tmp_path / "run"), record=True)
    task.check_data(str(tmp_path / "run"))  # the same data: fine
    other = tmp_path / "reprepared"
    other.mkdir()
    metadata = dict(task.metadata, split={**task.metadata["split"], "seed": 5})
    (other / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ConfigError, match=r"is not the data .*run was trained on: split differ"):
        RegressionTask(data_dir=str(other)).check_data(str(tmp_path / "run"))


def test_wide_models_need_a_categorical_column(data_dir):
    task = _configure(data_dir, "wide_deep")
    numeric = model_lib.Columns({"temp": "numeric"}, task.columns().train, task.metadata["target_stats"])
    with pytest.raises(ConfigError, match="the wide part needs categorical columns or crosses"):
        model_lib.wide_deep(numeric, crosses=())
    assert model_lib.mlp(numeric, hidden_units=(4,)).output.shape == (None, 1)


def test_crossing_an_unknown_column_names_it(data_dir):
    task = _configure(data_dir, "wide_deep", "wide_deep.crosses = [('hr', 'nope')]")
    with pytest.raises(ValueError, match=r"cross \('hr', 'nope'\): no column\(s\) \['nope'\]"):
        task.build_model()


def test_subclassed_model_config_rebuilds_the_same_network(data_dir):
    task = _configure(data_dir, "wide_deep_subclass")
    model = task.build_model()
    clone = model_lib.WideDeepModel.from_config(model.get_config())
    clone.build_from_config(model.get_build_config())  # what load_model does before loading weights
    clone.set_weights(model.get_weights())
    rows = _rows(data_dir)
    np.testing.assert_allclose(_prediction(task, clone, rows), _prediction(task, model, rows), rtol=1e-6)
    testing.check_model(model, task.model_inputs({c: v[:, None] for c, v in rows.items()}))


def test_matrix_columns_splits_a_matrix_into_typed_columns():
    kinds = {"temp": "numeric", "hr": "integer", "weathersit": "string"}
    matrix = np.array([[0.5, 3, 1], [0.25, 17, 0], [1.0, 23, 2]], "float32")
    testing.check_layer(columns_lib.MatrixColumns, {"kinds": kinds}, inputs=matrix, mixed_precision=False)
    columns = columns_lib.MatrixColumns(kinds)(matrix)
    assert columns["temp"].dtype == "float32" and columns["hr"].dtype == "int64"
    np.testing.assert_array_equal(columns["hr"].numpy()[:, 0], [3, 17, 23])


def test_cyclical_puts_the_ends_of_a_cycle_next_to_each_other():
    hours = np.array([[0], [1], [23], [6], [12]], "int64")
    testing.check_layer(columns_lib.Cyclical, {"period": 24}, inputs=hours)
    encoded = columns_lib.Cyclical(24)(hours).numpy()
    np.testing.assert_allclose(encoded[3], [1.0, 0.0], atol=1e-6)  # hour 6: a quarter of the day
    np.testing.assert_allclose(encoded[4], [0.0, -1.0], atol=1e-6)
    distance = np.linalg.norm(encoded[:, None] - encoded[None], axis=-1)
    np.testing.assert_allclose(distance[0, 2], distance[0, 1], rtol=1e-5)  # 23 -> 0 is one hour, as 0 -> 1
    with pytest.raises(ValueError, match="expected a positive period"):
        columns_lib.Cyclical(0)


def test_cyclical_columns_reach_the_deep_part_and_survive_keras_and_saved_model_round_trips(data_dir, tmp_path):
    task = _configure(data_dir, "wide_deep", "wide_deep.cyclical = {'hr': 24, 'weekday': 7}")
    model = task.build_model()
    assert model.get_layer("cyclical_hr").period == 24 and model.get_layer("cyclical_weekday").period == 7
    rows = _rows(data_dir)
    path = str(tmp_path / "cyclical.keras")
    model.save(path)
    expected = _prediction(task, model, rows)
    np.testing.assert_allclose(_prediction(task, keras.saving.load_model(path), rows), expected, rtol=1e-5)
    exported = core_export.export_saved_model(model, str(tmp_path / "export"),
                                              export.serving_signatures(task, model), version=1)
    serve = tf.saved_model.load(exported).signatures["serving_default"]
    np.testing.assert_allclose(serve(**{c: tf.constant(v) for c, v in rows.items()})["prediction"].numpy(), expected,
                               rtol=1e-5, atol=1e-4)
    with pytest.raises(ConfigError, match=r"wide_deep.cyclical names 'weathersit': expected a numeric or integer"):
        _configure(data_dir, "wide_deep", "wide_deep.cyclical = {'weathersit': 4}").build_model()


def test_msle_is_the_squared_error_of_log1p_counts_as_scikit_learn_computes_it(data_dir):
    from sklearn.metrics import mean_squared_log_error

    loss = _configure(data_dir, "wide_deep", "wide_deep.link = 'log'", "RegressionTask.loss = 'msle'").build_loss()
    y_true = np.array([[0.0], [3.0], [120.0], [640.0]], "float32")
    y_pred = np.array([[1.5], [2.0], [150.0], [500.0]], "float32")
    np.testing.assert_allclose(float(loss(y_true, y_pred)), mean_squared_log_error(y_true, y_pred), rtol=1e-5)
    with pytest.raises(ValueError, match="RegressionTask.loss='rmsle': expected one of 'mse', 'huber'"):
        RegressionTask(data_dir=data_dir, loss="rmsle")


def test_log_link_starts_at_the_training_mean_trains_on_poisson_and_exports_counts(data_dir, tmp_path):
    task = _configure(data_dir, "wide_deep", "wide_deep.link = 'log'", "RegressionTask.loss = 'poisson'")
    assert isinstance(task.build_loss(), keras.losses.Poisson)
    model = task.build_model()
    rows = _rows(data_dir)
    inputs = {c: v[:, None] for c, v in rows.items()}
    mean = task.metadata["target_stats"]["bikers"]["mean"]
    # The head is exp(log(mean) + wide + deep): with both parts zero every row predicts the mean, and a
    # wide bias of log(2) doubles it (the identity head would give mean + std * log(2)).
    for name in ("wide", "deep"):
        layer = model.get_layer(name)
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    np.testing.assert_allclose(model(inputs).numpy()[:, 0], mean, rtol=1e-5)
    kernel, _ = model.get_layer("wide").get_weights()
    model.get_layer("wide").set_weights([kernel, np.full([1], np.log(2.0), "float32")])
    np.testing.assert_allclose(model(inputs).numpy()[:, 0], 2 * mean, rtol=1e-5)
    model_dir = str(tmp_path / "run")
    logs = trainer.train(task, options=RunOptions(model_dir=model_dir), config=trainer.TrainConfig())
    assert np.isfinite(logs["val_rmse"])
    trained = task.build_model()
    checkpoints.restore_model(trained, model_dir)
    expected = _prediction(task, trained, rows)
    assert np.all(expected > 0)  # counts through exp, never negative
    exported = core_export.export_saved_model(trained, str(tmp_path / "export"),
                                              export.serving_signatures(task, trained), version=1)
    serve = tf.saved_model.load(exported).signatures["serving_default"]
    outputs = serve(**{c: tf.constant(v) for c, v in rows.items()})
    np.testing.assert_allclose(outputs["prediction"].numpy(), expected, rtol=1e-5, atol=1e-4)


def test_an_unknown_link_is_refused(data_dir):
    task = _configure(data_dir, "wide_deep", "wide_deep.link = 'logit'")
    with pytest.raises(ConfigError, match="wide_deep.link='logit': expected 'identity' or 'log'"):
        task.build_model()


def test_multi_output_log_link_sums_two_counts_each_through_its_own_exp(data_dir):
    task = _configure(data_dir, "wide_deep_multi_output", "wide_deep_multi_output.link = 'log'",
                      "RegressionTask.loss = 'poisson'")
    model = task.build_model()
    stats = task.metadata["target_stats"]
    for layer in model.layers:  # every head's wide and deep part to zero: exp(log(mean) + 0) per head
        if layer.name.endswith(("_wide", "_deep")):
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    # A wide bias of log(2) doubles the casual head (the identity head would add std * log(2)).
    kernel, _ = model.get_layer("casual_wide").get_weights()
    model.get_layer("casual_wide").set_weights([kernel, np.full([1], np.log(2.0), "float32")])
    outputs = model({c: v[:, None] for c, v in _rows(data_dir).items()})
    casual, registered = 2 * stats["casual"]["mean"], stats["registered"]["mean"]
    np.testing.assert_allclose(outputs["casual"].numpy()[:, 0], casual, rtol=1e-5)
    np.testing.assert_allclose(outputs["registered"].numpy()[:, 0], registered, rtol=1e-5)
    np.testing.assert_allclose(outputs["bikers"].numpy()[:, 0], casual + registered, rtol=1e-5)
    np.testing.assert_allclose(outputs["aux"].numpy()[:, 0], stats["bikers"]["mean"], rtol=1e-5)
    with pytest.raises(ConfigError, match="wide_deep_multi_output.link='logit'"):
        _configure(data_dir, "wide_deep_multi_output", "wide_deep_multi_output.link = 'logit'").build_model()
