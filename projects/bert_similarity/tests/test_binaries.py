"""End to end on a tiny BERT and a small QQP file: convert, prepare, train (both loops, both models), resume,
evaluate, export, reload, score raw pairs like the model in process, predict, serve."""

import json
import os
import re
import shutil

import gin
import numpy as np
import pytest
import requests
import tensorflow as tf

from core import board, checkpoints, testing
from core.config import ConfigError
from serving import processes

from .. import data
from .. import model as model_lib
from .. import task as task_lib
from . import helpers

SMOKE = f"--gin_file={helpers.CONFIGS}/smoke.gin"
PAIRS = (["how do i learn python", "jesus wept", "the cat sat on the mat", "我爱北京"],
         ["what is the best way to learn python", "jesus cried", "how do i cook rice", "我爱天安门"])


def _run(name, *args):
    return testing.run_module(f"projects.{helpers.PROJECT}.{name}", *args)


def _ok(result):
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert_similarity")
    hf_dir = helpers.write_tiny_bert(str(root / "hf"))
    models = str(root / "tiny_bert")
    converted = _ok(_run("convert", f"--hf_dir={hf_dir}", f"--output_dir={models}"))
    assert "Converted 39 tensors" in converted.stdout
    assert "Saving the TF Hub encoder (traces its training and inference functions): " in converted.stdout
    data_dir = str(root / "data")
    prepared = _ok(_run("prepare", "--format=qqp", f"--train={helpers.write_qqp(str(root / 'qqp.tsv'))}",
                        f"--output_dir={data_dir}"))
    assert "Prepared" in prepared.stdout
    bindings = [f"--gin_bindings=SimilarityTask.data_dir='{data_dir}'",
                f"--gin_bindings=SimilarityTask.preprocessor_handle='{models}/preprocessor'",
                f"--gin_bindings=SimilarityTask.encoder_handle='{models}/encoder'"]
    model_dir = str(root / "cross")
    _ok(_run("train", SMOKE, *bindings, f"--model_dir={model_dir}"))
    return {"root": root, "models": models, "data_dir": data_dir, "model_dir": model_dir, "bindings": bindings}


def test_convert_refuses_to_overwrite_and_names_missing_files(run, tmp_path):
    again = _run("convert", f"--hf_dir={run['root'] / 'hf'}", f"--output_dir={run['models']}")
    assert again.returncode == 2 and "already exists; pass --overwrite" in again.stderr
    missing = _run("convert", f"--hf_dir={tmp_path}", f"--output_dir={tmp_path / 'out'}")
    assert missing.returncode == 2 and "config.json not found" in missing.stderr


def test_train_writes_its_config_and_resumes(run):
    model_dir = run["model_dir"]
    for name in ("operative_config.gin", "flags.txt", "training_log.csv"):
        assert os.path.exists(os.path.join(model_dir, name)), name
    resumed = _ok(_run("train", SMOKE, *run["bindings"], f"--model_dir={model_dir}",
                       "--gin_bindings=TrainConfig.train_steps=6"))
    assert "Resumed at step 4" in resumed.stderr and "Finished at step 6" in resumed.stderr


def test_bi_encoder_trains_in_the_custom_loop_with_the_contrastive_loss(run):
    model_dir = str(run["root"] / "bi")
    result = _ok(_run("train", SMOKE, *run["bindings"], f"--model_dir={model_dir}",
                      "--gin_bindings=SimilarityTask.encoder='bi'",
                      "--gin_bindings=SimilarityTask.model_fn=@bi_encoder",
                      "--gin_bindings=SimilarityTask.loss='contrastive'", "--gin_bindings=TrainConfig.loop='custom'"))
    assert "Finished at step 4" in result.stderr and "val_auc=" in result.stdout
    _ok(_run("export", f"--model_dir={model_dir}", "--threshold=0.6"))
    loaded = tf.saved_model.load(os.path.join(model_dir, "export", "1"))
    embedding = loaded.signatures["embed"](text=tf.constant(PAIRS[0]))["embedding"].numpy()
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, rtol=1e-5)
    scores = loaded.signatures["serving_default"](text_a=tf.constant(PAIRS[0]), text_b=tf.constant(PAIRS[1]))
    np.testing.assert_allclose(scores["score"].numpy(), np.sum(embedding * loaded.signatures["embed"](
        text=tf.constant(PAIRS[1]))["embedding"].numpy(), axis=1), atol=1e-5)
    np.testing.assert_array_equal(scores["match"].numpy(), scores["score"].numpy() >= 0.6)  # on the cosine


def test_evaluate_reports_the_fine_tuned_model_and_the_zero_shot_baseline(run):
    result = _ok(_run("evaluate", f"--model_dir={run['model_dir']}"))
    report = json.load(open(os.path.join(run["model_dir"], "eval_test.json")))
    assert re.search(r"^scoring: [\d,]+/[\d,]+ pairs \(100%\)", result.stdout, re.M)  # progress in a log
    for name in ("fine_tuned", "zero_shot_baseline"):
        assert set(report[name]["all"]) == {"accuracy", "precision", "recall", "f1", "roc_auc", "pairs"}
        assert 0.0 <= report[name]["all"]["accuracy"] <= 1.0
    assert "zero_shot_baseline all" in result.stdout
    rows = open(os.path.join(run["model_dir"], "scores_test.tsv"), encoding="utf-8").read().splitlines()
    assert rows[0].split("\t") == ["label", "kind", "fine_tuned", "zero_shot_baseline", "text_a", "text_b"]
    assert len(rows) - 1 == report["fine_tuned"]["all"]["pairs"]
    assert open(os.path.join(run["model_dir"], "scores_test.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    log_dir = os.path.join(run["model_dir"], "evaluate")
    shown = board.tags(log_dir)
    assert shown["eval_test/scores"] == "images" and shown["eval_test/fine_tuned/threshold"] == "scalars"
    for name in ("fine_tuned", "zero_shot_baseline"):
        assert {shown[f"eval_test/{name}/all/{m}"] for m in ("accuracy", "f1", "roc_auc")} == {"scalars"}
    [(step, accuracy)] = board.values(log_dir, "eval_test/fine_tuned/all/accuracy")
    assert float(accuracy) == pytest.approx(report["fine_tuned"]["all"]["accuracy"])
    assert step == board.checkpoint_step(report["checkpoint"]) > 0


def test_evaluate_bounds_the_pairs_it_scores_by_a_fixed_sample(run, tmp_path):
    model_dir = str(tmp_path / "copy")
    shutil.copytree(run["model_dir"], model_dir, ignore=shutil.ignore_patterns("eval_*", "export", "evaluate"))
    result = _ok(_run("evaluate", f"--model_dir={model_dir}", "--nobaseline", "--max_pairs=3"))
    report = json.load(open(os.path.join(model_dir, "eval_test.json")))
    assert report["max_pairs"] == 3 and report["fine_tuned"]["all"]["pairs"] == 3
    assert report["fine_tuned"]["validation"]["all"]["pairs"] == 3
    assert re.search(r"^--max_pairs=3: scoring a random sample of 3 of the [\d,]+ test pairs$", result.stdout, re.M)
    rows = open(os.path.join(model_dir, "scores_test.tsv"), encoding="utf-8").read().splitlines()[1:]
    in_file = [(p["text_a"].decode(), p["text_b"].decode())
               for p in data.read_pairs(run["data_dir"], "test").as_numpy_iterator()]
    positions = [in_file.index(tuple(r.split("\t")[-2:])) for r in rows]
    assert positions == sorted(positions)  # a sample in file order


def test_evaluate_scores_the_baseline_alone_without_a_checkpoint(run, tmp_path):
    result = _ok(_run("evaluate", SMOKE, *run["bindings"], f"--model_dir={tmp_path}", "--baseline_only"))
    report = json.load(open(tmp_path / "eval_test.json"))
    assert "fine_tuned" not in report and report["checkpoint"] is None
    assert 0.0 <= report["zero_shot_baseline"]["all"]["accuracy"] <= 1.0
    assert "no checkpoint" in result.stdout


def test_export_decides_at_the_threshold_evaluate_chose_for_its_checkpoint(run, tmp_path):
    model_dir = str(tmp_path / "copy")
    shutil.copytree(run["model_dir"], model_dir, ignore=shutil.ignore_patterns("eval_*", "export"))
    refused = _run("export", f"--model_dir={model_dir}")
    assert refused.returncode == 2 and "eval_test.json" in refused.stderr and "pass --threshold" in refused.stderr
    assert not os.path.exists(os.path.join(model_dir, "export"))
    _ok(_run("evaluate", f"--model_dir={model_dir}", "--nobaseline"))
    report = json.load(open(os.path.join(model_dir, "eval_test.json")))
    assert set(report["fine_tuned"]["validation"]["all"]) >= {"accuracy", "roc_auc"}
    exported = _ok(_run("export", f"--model_dir={model_dir}"))
    threshold = report["fine_tuned"]["threshold"]
    assert f"Decision threshold {threshold:.4f} (chosen on validation by evaluate)" in exported.stdout
    rows = [line.split("\t") for line in open(os.path.join(model_dir, "scores_test.tsv"), encoding="utf-8")][1:]
    text_a, text_b = [r[-2] for r in rows], [r[-1].rstrip("\n") for r in rows]
    serve = tf.saved_model.load(os.path.join(model_dir, "export", "1")).signatures["serving_default"]
    served = serve(text_a=tf.constant(text_a), text_b=tf.constant(text_b))
    # The served decisions are the ones evaluate scored, pair for pair (but for a score within float
    # rounding of the threshold: evaluate batches and pads the pairs differently).
    evaluated = np.array([float(r[2]) for r in rows])
    np.testing.assert_allclose(served["probability"].numpy(), evaluated, atol=1e-5)
    differ = served["match"].numpy() != (evaluated >= threshold)
    assert np.all(np.abs(evaluated[differ] - threshold) < 1e-5)
    np.testing.assert_array_equal(served["match"].numpy(), served["probability"].numpy() >= threshold)


def test_export_scores_raw_pairs_like_the_model_in_process(run):
    model_dir = run["model_dir"]
    _ok(_run("export", f"--model_dir={model_dir}", "--version=3", "--threshold=0.5"))
    loaded = tf.saved_model.load(os.path.join(model_dir, "export", "3"))
    served = loaded.signatures["serving_default"](text_a=tf.constant(PAIRS[0]), text_b=tf.constant(PAIRS[1]))
    np.testing.assert_array_equal(served["match"].numpy(), served["probability"].numpy() >= 0.5)
    gin.clear_config()
    gin.parse_config_file(os.path.join(model_dir, "operative_config.gin"))
    task = task_lib.SimilarityTask()
    model = task.build_model()
    checkpoints.restore_model(model, model_dir)
    gin.clear_config()
    expected = tf.sigmoid(model(task.preprocessor(tf.constant(PAIRS[0]), tf.constant(PAIRS[1])), training=False))
    np.testing.assert_allclose(served["probability"].numpy(), expected.numpy(), atol=1e-5)
    printed = _ok(_run("predict", f"--export_dir={os.path.join(model_dir, 'export')}", PAIRS[0][0], PAIRS[1][0]))
    decision = "match" if served["match"].numpy()[0] else "no match"
    assert printed.stdout.startswith(f"{served['probability'].numpy()[0]:.4f}\t{decision}\t")
    with processes.start_server("--model_name=similarity", f"--model_base_path={os.path.join(model_dir, 'export')}",
                                "--file_system_poll_wait_seconds=0") as server:
        reply = requests.post(f"{server.url}/v1/models/similarity:predict",
                              json={"inputs": {"text_a": PAIRS[0], "text_b": PAIRS[1]}}, timeout=60)
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(reply.json()["outputs"]["probability"], served["probability"].numpy(), atol=1e-6)


def test_missing_converted_model_is_a_clear_error(run, tmp_path):
    result = _run("train", SMOKE, f"--gin_bindings=SimilarityTask.data_dir='{run['data_dir']}'",
                  f"--gin_bindings=SimilarityTask.encoder_handle='{tmp_path}/nowhere'",
                  f"--gin_bindings=SimilarityTask.preprocessor_handle='{run['models']}/preprocessor'",
                  f"--model_dir={tmp_path / 'run'}")
    assert result.returncode == 2 and "SimilarityTask.encoder_handle" in result.stderr
    assert "python -m projects.bert_similarity.convert" in result.stderr


def test_a_builder_of_the_other_encoder_kind_is_a_clear_error(run):
    models = run["models"]
    task = task_lib.SimilarityTask(data_dir=run["data_dir"], preprocessor_handle=f"{models}/preprocessor",
                                   encoder_handle=f"{models}/encoder", model_fn=model_lib.bi_encoder)
    with pytest.raises(ConfigError, match="SimilarityTask.encoder='cross' feeds .* bind SimilarityTask.encoder"):
        task.build_model()
    bi = task_lib.SimilarityTask(data_dir=run["data_dir"], preprocessor_handle=f"{models}/preprocessor",
                                 encoder_handle=f"{models}/encoder", encoder="bi", loss="cosine",
                                 model_fn=model_lib.bi_encoder)
    assert {tensor.name for tensor in bi.build_model().inputs} == set(bi.preprocessor(["a"], ["b"]))


@pytest.mark.slow  # a keras-hub fine-tune; its scoring and the results row's bookkeeping are in the default suite
def test_train_keras_hub_fine_tunes_for_its_budget_and_reports_like_evaluate(run):
    pytest.importorskip("keras_hub")  # a test-only dependency (requirements-dev.txt)
    model_dir = str(run["root"] / "keras_hub")
    result = _ok(_run("train_keras_hub", f"--hf_dir={run['root'] / 'hf'}", f"--data_dir={run['data_dir']}",
                      f"--model_dir={model_dir}", "--train_seconds=1", "--sequence_length=32", "--max_examples=3",
                      "--seed=3"))
    report = json.load(open(os.path.join(model_dir, "eval_test.json")))
    tuned, argmax = report["keras_hub"], report["keras_hub_argmax"]
    assert tuned["steps"] >= 1 and tuned["train_seconds"] >= 1 and tuned["all"]["pairs"] == 3
    assert tuned["validation"]["all"]["pairs"] == 3 and argmax["threshold"] == 0.5
    assert 0 <= tuned["all"]["accuracy"] <= 1 and tuned["all"]["roc_auc"] == argmax["all"]["roc_auc"]
    assert "--seed=3" in open(os.path.join(model_dir, "flags.txt")).read() and "keras_hub_argmax:" in result.stdout
    missing = _run("train_keras_hub", f"--data_dir={run['root'] / 'nowhere'}", f"--model_dir={model_dir}")
    assert missing.returncode == 2 and "no metadata.json; run" in missing.stderr
