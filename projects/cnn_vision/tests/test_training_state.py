"""The binaries as a user meets them when something goes wrong: a second run into a busy model dir, Ctrl-C,
a read-only model dir, and (slow) a run killed with SIGKILL again and again."""

import glob
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from core import testing

from . import helpers

SMOKE = f"--gin_file={helpers.CONFIGS}/smoke.gin"
ENV = dict(os.environ, PYTHONPATH=helpers.REPO, TF_CPP_MIN_LOG_LEVEL="2")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fashion")
    helpers.write_fashion_subset(str(root / "raw"), train=600, test=100)
    result = helpers.run_module("prepare", f"--source_dir={root / 'raw'}", f"--output_dir={root / 'prepared'}",
                                "--validation_size=100")
    assert result.returncode == 0, result.stderr[-3000:]
    return str(root / "prepared")


def _train_command(data_dir, model_dir, *args):
    return [sys.executable, "-m", f"projects.{helpers.PROJECT}.train", SMOKE,
            f"--gin_bindings=ImageClassificationTask.data_dir='{data_dir}'", f"--model_dir={model_dir}", *args]


def _steps(model_dir) -> list[int]:
    return sorted(int(p.rsplit("-", 1)[1][: -len(".index")])
                  for p in glob.glob(os.path.join(model_dir, "checkpoints", "ckpt-*.index")))


def _wait_for(condition, process, seconds=120):
    deadline = time.time() + seconds
    while not condition() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert condition(), "the training did not get there in time"


def test_a_busy_model_dir_is_refused_and_ctrl_c_stops_at_a_saved_step(data_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    long_run = _train_command(data_dir, model_dir, "--gin_bindings=TrainConfig.train_steps=100000")
    first = subprocess.Popen(long_run, cwd=helpers.REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        _wait_for(lambda: _steps(model_dir), first)  # training, with a checkpoint saved
        second = subprocess.run(_train_command(data_dir, model_dir, "--seed=7"), cwd=helpers.REPO, env=ENV,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr[-2000:]
        assert (f"error: --model_dir={model_dir} is in use by another training run (pid {first.pid} on host "
                in second.stderr) and ", started 20" in second.stderr
        assert "Traceback" not in second.stderr
        first.send_signal(signal.SIGINT)  # what Ctrl-C sends
        _, stderr = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    stopped = _steps(model_dir)[-1]
    last = stderr.strip().splitlines()[-1]
    assert last == (f"Interrupted at step {stopped}: saved {model_dir}/checkpoints/ckpt-{stopped}; "
                    "run the same command to resume from there."), last
    assert stopped % 5 == 0  # a whole execution of steps_per_execution=5 steps: a safe point
    target = (stopped // 10 + 2) * 10
    resumed = subprocess.run(_train_command(data_dir, model_dir, f"--gin_bindings=TrainConfig.train_steps={target}"),
                             cwd=helpers.REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resumed at step {stopped}" in resumed.stderr
    assert _steps(model_dir)[-1] == target


def test_a_read_only_model_dir_gets_one_line_errors_and_keeps_the_results(data_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    trained = subprocess.run(_train_command(data_dir, model_dir), cwd=helpers.REPO, env=ENV, capture_output=True,
                             text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr[-3000:]
    before = sorted(os.listdir(model_dir))
    with testing.read_only(model_dir):
        again = subprocess.run(_train_command(data_dir, model_dir, "--gin_bindings=TrainConfig.train_steps=40"),
                               cwd=helpers.REPO, env=ENV, capture_output=True, text=True, timeout=300)
        evaluated = helpers.run_module("evaluate", f"--model_dir={model_dir}")
        exported = helpers.run_module("export", f"--model_dir={model_dir}")
        elsewhere = helpers.run_module("export", f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'served'}")
    for result, path in ((again, "training.lock"), (evaluated, "eval_test.json"), (exported, "export")):
        assert result.returncode == 2, result.stderr[-3000:]
        assert f"error: {model_dir}/{path}: " in result.stderr, result.stderr[-3000:]
        assert "Traceback" not in result.stderr
    assert "test: loss=" in evaluated.stdout and "accuracy=" in evaluated.stdout  # printed before the write failed
    assert elsewhere.returncode == 0, elsewhere.stderr[-3000:]
    assert os.path.exists(tmp_path / "served" / "1" / "saved_model.pb")
    assert sorted(os.listdir(model_dir)) == before


def _saved_values(model_dir, step):
    reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints", f"ckpt-{step}"))
    # Every saved value (weights, BatchNorm statistics, optimizer slots, seeds, step) but the count of saves.
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if not k.startswith("save_counter")}


@pytest.mark.slow
def test_killed_five_times_with_sigkill_ends_with_an_uninterrupted_runs_weights(data_dir, tmp_path):
    steps = 2000
    args = ("--deterministic", "--seed=5", f"--gin_bindings=TrainConfig.train_steps={steps}",
            "--gin_bindings=TrainConfig.steps_per_loop=50")
    whole = str(tmp_path / "whole")
    result = subprocess.run(_train_command(data_dir, whole, *args), cwd=helpers.REPO, env=ENV, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    model_dir = str(tmp_path / "killed")
    rng = random.Random(0)
    kills = []
    for _ in range(5):
        process = subprocess.Popen(_train_command(data_dir, model_dir, *args), cwd=helpers.REPO, env=ENV,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        done = (_steps(model_dir) or [0])[-1]
        if rng.random() < 0.6:  # a random moment of training or saving, once this life has saved something
            _wait_for(lambda d=done: (_steps(model_dir) or [0])[-1] > d, process)
            time.sleep(rng.uniform(0.0, 1.0))
        else:  # a random moment of starting up, restoring or skipping the batches trained on
            time.sleep(rng.uniform(0.5, 6.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills.append((_steps(model_dir) or [0])[-1])
    assert 0 < kills[-1] < steps, f"checkpoints at the kills: {kills}"
    result = subprocess.run(_train_command(data_dir, model_dir, *args), cwd=helpers.REPO, env=ENV,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    expected, found = _saved_values(whole, steps), _saved_values(model_dir, steps)
    assert expected.keys() == found.keys() and len(expected) > 20
    for key in expected:
        np.testing.assert_array_equal(found[key], expected[key], err_msg=f"{key} (checkpoints at the kills: {kills})")
