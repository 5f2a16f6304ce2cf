"""End to end as a user runs it: prepare, train, evaluate, export, serve (embedded server + middleware), search."""

import csv
import json
import os
import re
import time

import numpy as np
import pytest
import requests
import tensorflow as tf

from core import board, testing
from serving import middleware, processes

from .. import data
from . import helpers

SMOKE = f"--gin_file={helpers.CONFIGS}/smoke.gin"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return helpers.prepare_slice(str(tmp_path_factory.mktemp("bikeshare")))


def _ok(result):
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def test_train_evaluate_export_and_serve_one_csv_row(data_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    binding = f"--gin_bindings=RegressionTask.data_dir='{data_dir}'"
    trained = _ok(helpers.run_module("train", SMOKE, binding, f"--model_dir={model_dir}"))
    assert "Final:" in trained.stdout and "val_rmse=" in trained.stdout
    assert os.path.exists(os.path.join(model_dir, "operative_config.gin"))

    evaluated = _ok(helpers.run_module("evaluate", f"--model_dir={model_dir}"))
    report = json.load(open(os.path.join(model_dir, "eval_test.json")))
    assert f"rmse={report['rmse']:.3f}" in evaluated.stdout and report["examples"] > 0
    assert os.path.getsize(os.path.join(model_dir, "predicted_vs_true_test.png")) > 5000
    # evaluate's NumPy scores from predictions agree with the Keras metrics training logged on the last loop.
    _ok(helpers.run_module("evaluate", f"--model_dir={model_dir}", "--split=validation"))
    with open(os.path.join(model_dir, "training_log.csv")) as f:
        last = list(csv.DictReader(f))[-1]
    validation = json.load(open(os.path.join(model_dir, "eval_validation.json")))
    np.testing.assert_allclose(validation["rmse"], float(last["val_rmse"]), rtol=1e-4)
    np.testing.assert_allclose(validation["r2"], float(last["val_r2"]), rtol=1e-4)

    # Another seed of the same config, and the two models' mean prediction: no worse than their mean RMSE
    # (the triangle inequality), written beside the single model's report, not over it.
    other = str(tmp_path / "seed2")
    _ok(helpers.run_module("train", SMOKE, binding, f"--model_dir={other}", "--seed=2"))
    _ok(helpers.run_module("evaluate", f"--model_dir={model_dir}", f"--ensemble_with={other}"))
    ensemble = json.load(open(os.path.join(model_dir, "eval_test_ensemble.json")))
    members = ensemble["ensemble"]["member_rmse"]
    assert members[0] == pytest.approx(report["rmse"]) and members[1] != members[0]
    assert ensemble["rmse"] <= np.mean(members) + 1e-6 and ensemble["rmse"] not in members
    assert json.load(open(os.path.join(model_dir, "eval_test.json"))) == report
    log_dir = os.path.join(model_dir, "evaluate")
    shown = board.tags(log_dir)
    for split in ("test", "validation", "test_ensemble"):
        assert {shown.get(f"eval_{split}/{name}") for name in ("rmse", "mae", "r2")} == {"scalars"}
        assert shown.get(f"eval_{split}/predicted_vs_true") == "images"
    [(step, rmse)] = board.values(log_dir, "eval_test/rmse")
    assert float(rmse) == pytest.approx(report["rmse"]) and step == board.checkpoint_step(report["checkpoint"]) > 0
    refused = helpers.run_module("evaluate", f"--model_dir={model_dir}", f"--ensemble_with={tmp_path}")
    assert refused.returncode == 2 and "no operative_config.gin" in refused.stderr

    _ok(helpers.run_module("export", f"--model_dir={model_dir}"))
    export_dir = os.path.join(model_dir, "export")
    served = tf.saved_model.load(os.path.join(export_dir, "1")).signatures["serving_default"]
    csv_path = os.path.join(os.path.dirname(data_dir), "bikeshare.csv")
    with open(csv_path) as f:
        row = next(csv.DictReader(f))  # a row as it appears in the CSV, strings and all
    kinds = json.load(open(os.path.join(data_dir, "metadata.json")))["features"]
    typed = {c: (float(row[c]) if k == "numeric" else int(row[c]) if k == "integer" else row[c])
             for c, k in kinds.items()}
    columns = {c: tf.constant([v], data.DTYPES[kinds[c]]) for c, v in typed.items()}
    expected = float(served(**columns)["prediction"][0])
    predicted = _ok(helpers.run_module("predict", f"--export_dir={export_dir}", f"--source={csv_path}", "--rows=1"))
    assert f"row 0: prediction={expected:.1f}  (true bikers={row['bikers']})" in predicted.stdout

    with processes.start_server(f"--model_name={helpers.PROJECT}", f"--model_base_path={export_dir}") as server:
        deadline = time.monotonic() + 60
        while requests.get(f"{server.url}/v1/models/{helpers.PROJECT}", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, server.log()[-2000:]
            time.sleep(0.2)
        app = middleware.create_app(middleware.Upstream(server.url, timeout=30.0)).test_client()
        # The CSV's own strings: the middleware converts "8" to the int64 the hr column takes.
        response = app.post(f"/v1/predict/{helpers.PROJECT}", json={c: row[c] for c in kinds})
        assert response.status_code == 200, response.get_json()
        np.testing.assert_allclose(response.get_json()["predictions"][0]["prediction"], expected, rtol=1e-5)
        missing = app.post(f"/v1/predict/{helpers.PROJECT}", json={c: row[c] for c in list(kinds)[1:]})
        assert missing.status_code == 400 and list(kinds)[0] in missing.get_json()["error"]


def test_training_with_a_target_as_input_is_refused(data_dir, tmp_path):
    result = helpers.run_module("prepare", f"--gin_file={helpers.BIKESHARE_GIN}",
                                "--gin_bindings=TableSpec.numeric=['temp', 'casual']", f"--output_dir={tmp_path}")
    assert result.returncode == 2 and "column 'casual' is declared twice" in result.stderr


def test_unprepared_data_dir_says_how_to_prepare(tmp_path):
    result = helpers.run_module("train", SMOKE, f"--gin_bindings=RegressionTask.data_dir='{tmp_path}'",
                                f"--model_dir={tmp_path / 'run'}")
    assert result.returncode == 2 and "prepare the data first" in result.stderr


@pytest.mark.parametrize("tuner", ["random", pytest.param("hyperband", marks=pytest.mark.slow)])
def test_search_runs_two_trials_writes_its_table_and_retrains_the_best(data_dir, tmp_path, tuner):
    model_dir = tmp_path / "search"
    result = _ok(helpers.run_module(
        "search", SMOKE, f"--gin_bindings=RegressionTask.data_dir='{data_dir}'",
        f"--search_space={helpers.CONFIGS}/search_space_smoke.json", f"--model_dir={model_dir}",
        f"--tuner={tuner}", "--max_trials=2", "--max_epochs=2", "--hyperband_factor=2"))
    with open(model_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 2 and [float(r["val_rmse"]) for r in rows] == sorted(float(r["val_rmse"]) for r in rows)
    assert {"RegressionTask.learning_rate", "wide_deep.hidden_units", "wide_deep.embedding_dim"} <= set(rows[0])
    for row in rows:  # every trial is a normal run in its own model dir
        assert os.path.exists(os.path.join(row["model_dir"], "operative_config.gin"))
    assert (model_dir / "results.md").read_text().startswith("| rank | trial | val_rmse |")
    hparams = model_dir / "hparams"  # the same trials in TensorBoard's HParams dashboard
    assert board.tags(str(hparams)) == {"_hparams_/experiment": "hparams"}
    session = board.session_hparams(str(hparams / rows[0]["trial"]))
    assert session["wide_deep.hidden_units"] == rows[0]["wide_deep.hidden_units"]
    assert session["RegressionTask.learning_rate"] == pytest.approx(float(rows[0]["RegressionTask.learning_rate"]))
    [(_, score)] = board.values(str(hparams / rows[0]["trial"]), "val_rmse")
    assert float(score) == pytest.approx(float(rows[0]["val_rmse"]))
    best = model_dir / "best"
    operative = (best / "operative_config.gin").read_text()
    assert "RegressionTask.train_splits = ('train', 'validation')" in operative
    assert f"wide_deep.hidden_units = {rows[0]['wide_deep.hidden_units']}" in operative
    report = json.load(open(best / "eval_test.json"))
    assert f"test rmse={report['rmse']:.3f}" in result.stdout


def test_search_space_errors_name_the_file_and_key(tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"RegressionTask.learning_rate": {"type": "float", "min": 0.1, "max": 0.01}}))
    result = helpers.run_module("search", SMOKE, f"--search_space={space}", f"--model_dir={tmp_path / 'm'}")
    assert result.returncode == 2
    assert f"--search_space={space}, 'RegressionTask.learning_rate': needs numbers \"min\" < \"max\"" in result.stderr
    # A space for another model than the config trains would search nothing: every trial the same model.
    result = helpers.run_module("search", f"--gin_file={helpers.CONFIGS}/mlp.gin",
                                f"--search_space={helpers.CONFIGS}/search_space_smoke.json",
                                f"--model_dir={tmp_path / 'm'}")
    assert result.returncode == 2 and "configures wide_deep, but the gin config trains" in result.stderr


def test_sklearn_search_tunes_the_wrapped_model_and_scores_the_refit(data_dir, tmp_path):
    result = _ok(helpers.run_module(
        "sklearn_search", SMOKE, f"--gin_bindings=RegressionTask.data_dir='{data_dir}'", f"--output_dir={tmp_path}",
        "--n_iter=2", "--epochs=2"))
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and float(rows[0]["val_rmse"]) <= float(rows[1]["val_rmse"])
    best = json.load(open(tmp_path / "best.json"))
    assert f"test rmse={best['test']['rmse']:.3f}" in result.stdout and best["test"]["rmse"] > 0
    assert best["refit_epochs"] == 2  # --epochs reached model.fit (a clone of the wrapper once dropped it)
    finished = re.findall(r"^\[CV 1/1\] END .*score=(-[\d.]+) total time=", result.stdout, re.M)
    assert len(finished) == 2, result.stdout[-2000:]  # a progress line per candidate, with its score
    assert sorted(-float(score) for score in finished) == pytest.approx([float(r["val_rmse"]) for r in rows], abs=1e-3)
    assert sorted(p.name for p in (tmp_path / "hparams").iterdir() if p.is_dir()) == ["rank_001", "rank_002"]
    [(_, score)] = board.values(str(tmp_path / "hparams" / "rank_001"), "val_rmse")
    assert float(score) == pytest.approx(float(rows[0]["val_rmse"]))
    assert set(board.session_hparams(str(tmp_path / "hparams" / "rank_001"))) == set(rows[0]) - {"val_rmse",
                                                                                                  "fit_seconds"}


@pytest.mark.slow
def test_trains_under_parameter_servers_and_evaluates_without_them(data_dir, tmp_path):
    model_dir = str(tmp_path / "ps")
    binding = f"--gin_bindings=RegressionTask.data_dir='{data_dir}'"
    trained = _ok(testing.run_under_parameter_servers(f"projects.{helpers.PROJECT}.train", SMOKE, binding,
                                                      f"--model_dir={model_dir}"))
    assert "[chief] Final:" in trained.stdout and "val_rmse=" in trained.stdout
    evaluated = _ok(helpers.run_module("evaluate", f"--model_dir={model_dir}"))  # the chief's checkpoint, one process
    assert "rmse=" in evaluated.stdout
