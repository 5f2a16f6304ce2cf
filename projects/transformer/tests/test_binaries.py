"""End to end on a small parallel file: prepare, train (both loops), resume, evaluate, export, translate."""

import json
import os
import re

import gin
import pytest
import requests
import tensorflow as tf

from core import board, checkpoints, testing
from serving import processes

from .. import decoding
from .. import task as task_lib
from . import helpers

SMOKE = f"--gin_file={helpers.CONFIGS}/smoke.gin"
TEXTS = ["could not open file", "Delete the printer?", "The key '%s' is missing", ""]


def _run(name, *args):
    return testing.run_module(f"projects.{helpers.PROJECT}.{name}", *args)


def _ok(result):
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("transformer")
    tsv, data_dir, model_dir = helpers.write_tsv(str(root / "pairs.tsv")), str(root / "data"), str(root / "run")
    prepared = _ok(_run("prepare", f"--tsv={tsv}", f"--output_dir={data_dir}", "--validation_percent=20",
                        "--test_percent=20"))
    assert "Prepared {'train': 34, 'validation': 15, 'test': 11} pairs (of 60 read)" in prepared.stdout
    binding = f"--gin_bindings=TranslationTask.data_dir='{data_dir}'"
    _ok(_run("train", SMOKE, binding, f"--model_dir={model_dir}"))
    return {"root": root, "data_dir": data_dir, "model_dir": model_dir, "binding": binding}


def test_train_writes_the_tokenizer_config_and_checkpoints_and_resumes(run):
    model_dir = run["model_dir"]
    for name in ("tokenizer.model", "operative_config.gin", "flags.txt", "training_log.csv"):
        assert os.path.exists(os.path.join(model_dir, name)), name
    tokenizer_bytes = open(os.path.join(model_dir, "tokenizer.model"), "rb").read()
    resumed = _ok(_run("train", SMOKE, run["binding"], f"--model_dir={model_dir}",
                       "--gin_bindings=TrainConfig.train_steps=30"))
    assert "Resumed at step 20" in resumed.stderr and "Finished at step 30" in resumed.stderr
    assert open(os.path.join(model_dir, "tokenizer.model"), "rb").read() == tokenizer_bytes  # ids kept on resume


def test_custom_loop_trains_with_xla_and_bfloat16(run):
    model_dir = str(run["root"] / "custom")
    result = _ok(_run("train", SMOKE, run["binding"], f"--model_dir={model_dir}",
                      "--gin_bindings=TrainConfig.loop='custom'", "--jit_compile", "--mixed_precision=mixed_bfloat16"))
    assert "Finished at step 20" in result.stderr and "val_accuracy=" in result.stdout
    assert "policy=mixed_bfloat16 jit_compile=True" in result.stderr


def test_evaluate_scores_the_test_split_with_sacrebleu(run):
    result = _ok(_run("evaluate", f"--model_dir={run['model_dir']}", "--beam_size=2"))
    assert "translating (beam 2): 11/11 sentences (100%)" in result.stdout  # progress in a log, not only a TTY
    results = json.load(open(os.path.join(run["model_dir"], "eval_test.json")))
    assert results["sentences"] == 11 and 0.0 <= results["bleu"] <= 100.0 and results["chrf"] > 0.0
    assert 0.0 <= results["bleu_plain"] <= 100.0
    assert 0.0 <= results["accuracy"] <= 1.0 and results["loss"] > 0.0
    rows = open(os.path.join(run["model_dir"], "translations_test.tsv"), encoding="utf-8").read().splitlines()
    assert len(rows) == 11 and all(len(row.split("\t")) == 3 for row in rows)
    log_dir = os.path.join(run["model_dir"], "evaluate")
    shown = board.tags(log_dir)
    assert {shown[f"eval_test/{name}"] for name in ("bleu", "chrf", "bleu_plain", "loss", "accuracy")} == {"scalars"}
    assert shown["eval_test/attention"] == "images" and shown["eval_test/translations"] == "text"
    [(step, bleu)] = board.values(log_dir, "eval_test/bleu")
    assert float(bleu) == pytest.approx(results["bleu"]) and step == board.checkpoint_step(results["checkpoint"]) > 0
    [(_, table)] = board.values(log_dir, "eval_test/translations")
    source, reference, translation = rows[0].split("\t")
    row = board.markdown_table(["source", "reference", "translation"], [[source, reference, translation]])
    assert row.splitlines()[-1] in table.item().decode().splitlines()


def test_evaluate_an_older_checkpoint_on_a_few_pairs(run):
    _ok(_run("evaluate", f"--model_dir={run['model_dir']}", "--checkpoint=10", "--max_examples=4", "--beam_size=1",
             "--split=validation"))
    results = json.load(open(os.path.join(run["model_dir"], "eval_validation_ckpt-10_greedy.json")))
    assert results["sentences"] == 4 and results["checkpoint"].endswith("ckpt-10")
    wrong = _run("evaluate", f"--model_dir={run['model_dir']}", "--checkpoint=15")
    assert wrong.returncode == 2 and "no checkpoint of step 15" in wrong.stderr


def test_export_translates_raw_strings_like_the_model_in_process(run):
    model_dir = run["model_dir"]
    _ok(_run("export", f"--model_dir={model_dir}", "--beam_size=3", "--version=7"))
    export_dir = os.path.join(model_dir, "export", "7")
    loaded = tf.saved_model.load(export_dir)
    served = {name: [t.decode() for t in loaded.signatures[name](text=tf.constant(TEXTS))["translation"].numpy()]
              for name in ("serving_default", "greedy")}
    # The same checkpoint, rebuilt in this process from the run's config, decoding the same strings.
    gin.clear_config()
    gin.parse_config_file(os.path.join(model_dir, "operative_config.gin"))
    task = task_lib.TranslationTask(tokenizer_path=task_lib.tokenizer_file(model_dir))
    model = task.build_model()
    checkpoints.restore_model(model, model_dir)
    for name, beam in (("serving_default", 3), ("greedy", 1)):
        expected = decoding.translate_texts(model, task.tokenizer, tf.constant(TEXTS), beam_size=beam).numpy()
        assert served[name] == [t.decode() for t in expected], name
    gin.clear_config()
    printed = _ok(_run("translate", f"--export_dir={os.path.join(model_dir, 'export')}", *TEXTS[:2]))
    assert printed.stdout.splitlines() == [f"{t}\t{served['serving_default'][i]}" for i, t in enumerate(TEXTS[:2])]
    # A file: batches of --batch_size lines, progress on stderr, blank lines skipped, indentation kept in front
    # of the translation of the stripped text.
    lines = [TEXTS[0], "", "    " + TEXTS[1], TEXTS[2]]
    input_file = run["root"] / "to_translate.txt"
    input_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    from_file = _ok(_run("translate", f"--export_dir={os.path.join(model_dir, 'export')}",
                         f"--input_file={input_file}", "--batch_size=2"))
    assert from_file.stdout.splitlines() == [f"{TEXTS[0]}\t{served['serving_default'][0]}",
                                             f"    {TEXTS[1]}\t    {served['serving_default'][1]}",
                                             f"{TEXTS[2]}\t{served['serving_default'][2]}"]
    assert re.search(r"^translating: 3/3 texts \(100%\)", from_file.stderr, re.M)
    # The project's model server (TF Serving's REST API) loads the tokenizer ops and answers the same.
    with processes.start_server("--model_name=transformer", f"--model_base_path={os.path.join(model_dir, 'export')}",
                                "--file_system_poll_wait_seconds=0") as server:
        reply = requests.post(f"{server.url}/v1/models/transformer/versions/7:predict",
                              json={"instances": TEXTS}, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"predictions": served["serving_default"]}


def test_evaluate_and_translate_fail_clearly_on_a_missing_run(tmp_path):
    missing = _run("evaluate", f"--model_dir={tmp_path}")
    assert missing.returncode == 2 and "operative_config.gin does not exist" in missing.stderr
    no_export = _run("translate", f"--export_dir={tmp_path}", "hello")
    assert no_export.returncode == 2 and "no saved_model.pb" in no_export.stderr


@pytest.mark.slow  # builds the recipe's full-size model; its pieces are tested in test_baseline.py
def test_train_baseline_trains_the_recipe_for_its_budget_and_scores_it_like_evaluate(run):
    model_dir = str(run["root"] / "recipe")
    result = _ok(_run("train_baseline", f"--data_dir={run['data_dir']}", f"--model_dir={model_dir}",
                      "--train_seconds=2", "--max_examples=5", "--seed=3"))
    for split in ("validation", "test"):
        report = json.load(open(os.path.join(model_dir, f"eval_{split}.json")))
        assert report["sentences"] == 5 and report["steps"] >= 1 and report["train_seconds"] >= 2
        assert {"bleu", "chrf", "bleu_plain"} <= set(report) and 0 <= report["bleu_plain"] <= 100
        lines = open(os.path.join(model_dir, f"translations_{split}.tsv"), encoding="utf-8").read().splitlines()
        assert len(lines) == 5 and all(len(line.split("\t")) == 3 for line in lines)
    assert "--seed=3" in open(os.path.join(model_dir, "flags.txt")).read() and "translation:" in result.stdout
    missing = _run("train_baseline", f"--data_dir={run['root'] / 'nowhere'}", f"--model_dir={model_dir}")
    assert missing.returncode == 2 and "no metadata.json; run" in missing.stderr
