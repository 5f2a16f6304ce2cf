"""End-to-end on a small real corpus: prepare, word2vec, classifier (both loops), evaluate, export, predict."""

import json
import os

import gin
import numpy as np
import pytest
import tensorflow as tf

from core import board, checkpoints, testing

from .. import task as task_lib
from . import helpers

W2V_SMOKE = f"--gin_file={helpers.CONFIGS}/word2vec_smoke.gin"
SMOKE = f"--gin_file={helpers.CONFIGS}/smoke.gin"
TEXTS = ["Shares in the bank fell after profits missed forecasts and the market slid",
         "The striker scored twice as the club won the cup final",
         "中文 text with unknown words zzzqqq"]


def _ok(result):
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("w2v")
    source = helpers.write_bbc_subset(str(root / "bbc"), per_class=30)
    data_dir, w2v_dir = str(root / "prepared"), str(root / "word2vec")
    prepared = _ok(helpers.run_module("prepare", f"--source_dir={source}", f"--output_dir={data_dir}"))
    assert "Prepared {'train': 105, 'validation': 15, 'test': 30} (5 classes" in prepared.stdout
    corpus = f"--gin_bindings=Word2VecTask.corpus='{data_dir}/train-*.tfrecord'"
    trained = _ok(helpers.run_module("train_word2vec", W2V_SMOKE, corpus, f"--model_dir={w2v_dir}"))
    assert "Wrote " in trained.stdout and "vectors.tsv" in trained.stdout
    bindings = [f"--gin_bindings=TextClassificationTask.data_dir='{data_dir}'",
                f"--gin_bindings=TextClassificationTask.word2vec_dir='{w2v_dir}'"]
    return {"root": root, "data_dir": data_dir, "w2v_dir": w2v_dir, "bindings": bindings}


def test_word2vec_writes_vectors_for_the_projector_and_neighbors_reads_them(runs):
    w2v_dir = runs["w2v_dir"]
    words = open(os.path.join(w2v_dir, "metadata.tsv"), encoding="utf-8").read().splitlines()
    vocabulary = open(os.path.join(w2v_dir, "vocabulary.tsv"), encoding="utf-8").read().splitlines()
    matrix = np.load(os.path.join(w2v_dir, "embeddings.npy"))
    assert matrix.shape == (len(words), 16) and words == [line.split("\t")[0] for line in vocabulary]
    assert len(open(os.path.join(w2v_dir, "vectors.tsv")).read().splitlines()) == len(words)
    assert 'tensor_path: "vectors.tsv"' in open(os.path.join(w2v_dir, "projector_config.pbtxt")).read()
    # The projector reads configs in runs (folders with event files): the training's train/ has one, by path.
    run_config = open(os.path.join(w2v_dir, "train", "projector_config.pbtxt")).read()
    assert 'tensor_path: "../vectors.tsv"' in run_config and 'metadata_path: "../metadata.tsv"' in run_config
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(os.path.join(w2v_dir, "train")))
    assert os.path.exists(os.path.join(w2v_dir, "operative_config.gin"))
    result = _ok(helpers.run_module("neighbors", f"--model_dir={w2v_dir}", "--word=Market", "--k=3"))
    assert result.stdout.startswith("market: ") and result.stdout.count(",") == 2
    missing = helpers.run_module("neighbors", f"--model_dir={w2v_dir}", "--word=zzzqqq")
    assert missing.returncode == 2 and "'zzzqqq' is not among the" in missing.stderr


def _restored(model_dir):
    """The run's Task and model, rebuilt from its operative config and newest checkpoint."""
    gin.clear_config()
    try:
        gin.parse_config_file(os.path.join(model_dir, "operative_config.gin"))
        task = task_lib.TextClassificationTask(pretrained="none", encoder_file=task_lib.encoder_file(model_dir))
        model = task.build_model()  # lstm_classifier reads its bindings here
    finally:
        gin.clear_config()
    checkpoints.restore_model(model, model_dir)
    return task, model


@pytest.fixture(scope="module")
def classifier(runs):
    """smoke.gin trained with the default seed: (its model dir, train's output)."""
    model_dir = str(runs["root"] / "classifier")
    return model_dir, _ok(helpers.run_module("train", SMOKE, *runs["bindings"], f"--model_dir={model_dir}"))


def test_classifier_trains_from_word2vec_evaluates_exports_and_serves_raw_text(runs, classifier):
    model_dir, trained = classifier
    assert "embedding: trainable from step 10" in trained.stderr
    assert "Pretrained vectors cover" in trained.stderr
    saved = json.load(open(os.path.join(model_dir, "text_encoder.json"), encoding="utf-8"))
    assert saved["class_names"] == ["business", "entertainment", "politics", "sports", "tech"]

    evaluated = _ok(helpers.run_module("evaluate", f"--model_dir={model_dir}"))
    assert "test: loss=" in evaluated.stdout
    report = json.load(open(os.path.join(model_dir, "eval_test.json")))
    assert np.sum(report["confusion_matrix"]) == 30 and {"accuracy", "macro_f1"} <= set(report)
    assert open(os.path.join(model_dir, "confusion_test.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n"

    _ok(helpers.run_module("export", f"--model_dir={model_dir}"))
    export_dir = os.path.join(model_dir, "export", "1")
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    served = serve(text=tf.constant(TEXTS))

    # The same texts in process: the training-time encoder and the restored Keras model.
    task, model = _restored(model_dir)
    expected = tf.nn.softmax(model(task.encoder(tf.constant(TEXTS)), training=False)).numpy()
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)
    _check_board(os.path.join(model_dir, "evaluate"), task, model)
    names = [n.decode() for n in served["class_names"].numpy()]
    assert names == [task.class_names[i] for i in expected.argmax(axis=1)]
    assert [n.decode() for n in served["label_names"].numpy()[0]] == task.class_names

    predicted = _ok(helpers.run_module("predict", f"--export_dir={os.path.join(model_dir, 'export')}", *TEXTS))
    lines = predicted.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == names


def _check_board(log_dir, task, model):
    """TensorBoard's evaluate run: scalars, the confusion matrix, the per-class report, and the projector's
    table equal to the classifier's embedding rows of [UNK] and the most frequent words."""
    shown = board.tags(log_dir)
    assert {tag: shown.get(tag) for tag in ("eval_test/accuracy", "eval_test/confusion_matrix",
                                            "eval_test/classification_report")} == {
        "eval_test/accuracy": "scalars", "eval_test/confusion_matrix": "images",
        "eval_test/classification_report": "text"}
    assert 'tensor_path: "vectors.tsv"' in open(os.path.join(log_dir, "projector_config.pbtxt")).read()
    words = open(os.path.join(log_dir, "metadata.tsv"), encoding="utf-8").read().splitlines()
    assert words == ["[UNK]", *task.encoder.vocabulary][:5001]
    table = np.loadtxt(os.path.join(log_dir, "vectors.tsv"), delimiter="\t", ndmin=2)
    np.testing.assert_allclose(table, model.get_layer("embedding").embeddings.numpy()[1:len(words) + 1], atol=1e-5)


def test_custom_loop_trains_the_classifier_with_frozen_embeddings(runs):
    model_dir = str(runs["root"] / "custom")
    _ok(helpers.run_module("train", SMOKE, *runs["bindings"], "--gin_bindings=TrainConfig.loop='custom'",
                           "--gin_bindings=TextClassificationTask.freeze_embedding_steps=-1",
                           f"--model_dir={model_dir}"))
    task, model = _restored(model_dir)
    trained = model.get_layer("embedding").embeddings.numpy()
    # Frozen all along: rows of words word2vec knows are still its vectors.
    words = open(os.path.join(runs["w2v_dir"], "metadata.tsv"), encoding="utf-8").read().splitlines()
    vectors = np.load(os.path.join(runs["w2v_dir"], "embeddings.npy"))
    row = task.encoder.vocabulary.index("the") + 2
    np.testing.assert_allclose(trained[row], vectors[words.index("the")], atol=1e-6)


@pytest.mark.slow  # a second training; the ensemble's arithmetic and member checks are in the default suite
def test_evaluate_scores_the_mean_of_two_seeds_and_refuses_another_config(runs, classifier, tmp_path):
    dirs = [classifier[0], str(tmp_path / "seed2")]
    _ok(helpers.run_module("train", SMOKE, *runs["bindings"], f"--model_dir={dirs[1]}", "--seed=2"))
    evaluated = _ok(helpers.run_module("evaluate", f"--model_dir={dirs[0]}", f"--ensemble_with={dirs[1]}"))
    assert "the mean of 2 models: accuracy=" in evaluated.stdout
    report = json.load(open(os.path.join(dirs[0], "eval_test_ensemble.json")))
    # The same mean in process, from the two restored models.
    probabilities, labels = [], None
    for model_dir in dirs:
        task, model = _restored(model_dir)
        batches = list(task.build_inputs("test"))
        probabilities.append(np.concatenate([tf.nn.softmax(model(x, training=False)).numpy() for x, _ in batches]))
        labels = np.concatenate([y.numpy() for _, y in batches])
    assert report["accuracy"] == pytest.approx(np.mean(np.mean(probabilities, 0).argmax(1) == labels))
    members = [np.mean(p.argmax(1) == labels) for p in probabilities]
    assert report["ensemble"]["member_accuracy"] == pytest.approx(members)
    refused = helpers.run_module("evaluate", f"--model_dir={dirs[0]}", f"--ensemble_with={runs['w2v_dir']}")
    assert refused.returncode == 2 and "differs from --model_dir" in refused.stderr


def test_classifier_without_word2vec_vectors_says_what_to_run(runs, tmp_path):
    result = helpers.run_module("train", SMOKE, f"--gin_bindings=TextClassificationTask.data_dir='{runs['data_dir']}'",
                                f"--gin_bindings=TextClassificationTask.word2vec_dir='{tmp_path}/none'",
                                f"--model_dir={tmp_path}/run")
    assert result.returncode == 2
    assert "train word2vec first" in result.stderr and "train_word2vec" in result.stderr


def test_predict_explains_a_missing_export(tmp_path):
    result = helpers.run_module("predict", f"--export_dir={tmp_path}", "some text")
    assert result.returncode == 2 and "run export first" in result.stderr


@pytest.mark.slow
def test_word2vec_trains_under_parameter_servers_with_its_tables_in_shards(runs, tmp_path):
    model_dir = str(tmp_path / "ps")
    corpus = f"--gin_bindings=Word2VecTask.corpus='{runs['data_dir']}/train-*.tfrecord'"
    # Shards of any size, so the small test vocabulary is split over both servers too.
    trained = _ok(testing.run_under_parameter_servers(
        f"projects.{helpers.PROJECT}.train_word2vec", W2V_SMOKE, corpus, f"--model_dir={model_dir}",
        "--gin_bindings=partitioner.kind='fixed_shards'"))
    assert "[chief] Wrote " in trained.stdout and "Finished at step 20" in trained.stdout
    matrix = np.load(os.path.join(model_dir, "embeddings.npy"))
    words = open(os.path.join(model_dir, "metadata.tsv"), encoding="utf-8").read().splitlines()
    assert matrix.shape == (len(words), 16) and np.isfinite(matrix).all()
    assert words == open(os.path.join(runs["w2v_dir"], "metadata.tsv"), encoding="utf-8").read().splitlines()
