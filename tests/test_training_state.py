"""Training state that cannot be silently mixed up or thrown away: one run per model dir, resume from the
newest checkpoint that reads (whatever happened to the index), the exact step, the same stream of batches,
and Ctrl-C that stops at a step with a checkpoint."""

import csv
import glob
import hashlib
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from core import callbacks, checkpoints, run_lock, testing, trainer
from core.config import ConfigError, RunOptions
from core.task import build_components
from tests.tiny_task import TinyTask, final_weights

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Fingerprint(keras.layers.Layer):
    """Records a hash of every training batch the model is called on (not those the pipeline skips)."""

    seen: list[str] = []

    def call(self, x, training=False):
        if training:
            tf.py_function(lambda t: _Fingerprint.seen.append(hashlib.sha1(t.numpy().tobytes()).hexdigest()),
                           [x], [])
        return x


class _RecordingTask(TinyTask):
    """TinyTask with dropout, a shuffled stream and Adam (every kind of state a resume must carry over)."""

    def __init__(self):
        super().__init__(dropout=0.3, shuffle=True, optimizer="adam", learning_rate=0.01)

    def build_model(self):
        inner = super().build_model()
        inputs = keras.Input((8,))
        return keras.Model(inputs, inner(_Fingerprint()(inputs)))


def _train(model_dir, extra_callbacks=(), strategy="default", task=None, **config):
    """One `train` call as one process would make it: seeded the same way at its start."""
    keras.utils.set_random_seed(7)
    defaults = dict(train_steps=40, steps_per_loop=10, steps_per_execution=5)
    options = RunOptions(model_dir=str(model_dir), seed=7, strategy=strategy)
    config = trainer.TrainConfig(**{**defaults, **config})
    return trainer.train(task or _RecordingTask(), options=options, config=config, callbacks=extra_callbacks)


def _uninterrupted(tmp_path, loop, **config):
    _Fingerprint.seen = []
    _train(tmp_path / "whole", loop=loop, **config)
    return list(_Fingerprint.seen), final_weights(str(tmp_path / "whole"), _RecordingTask())


def _assert_same_run(model_dir, expected_batches, expected_weights, seen):
    assert seen == expected_batches  # not one batch replayed or skipped
    for a, b in zip(final_weights(str(model_dir), _RecordingTask()), expected_weights, strict=True):
        np.testing.assert_array_equal(a, b)


def _steps_in_csv(model_dir):
    with open(os.path.join(model_dir, "training_log.csv")) as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


def _saved_steps(path):
    """(global step, optimizer iterations) saved in a checkpoint."""
    reader = tf.train.load_checkpoint(path)
    keys = ("step", "optimizer/_iterations")
    return tuple(int(reader.get_tensor(f"{key}/.ATTRIBUTES/VARIABLE_VALUE")) for key in keys)


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_resumed_run_sees_the_same_batches_and_ends_with_the_same_weights(tmp_path, loop):
    expected_batches, expected_weights = _uninterrupted(tmp_path, loop)
    assert len(expected_batches) == 40 and len(set(expected_batches)) > 20  # a shuffled, repeating stream
    _Fingerprint.seen = []
    for stop in (10, 20, 30, 40):  # four processes, each stopped at a loop boundary
        _train(tmp_path / "resumed", loop=loop, train_steps=stop)
    _assert_same_run(tmp_path / "resumed", expected_batches, expected_weights, _Fingerprint.seen)


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_changing_steps_per_loop_on_resume_keeps_the_step_exact(tmp_path, loop):
    expected_batches, expected_weights = _uninterrupted(tmp_path, loop, train_steps=80, steps_per_loop=20)
    model_dir = tmp_path / "resumed"
    _Fingerprint.seen = []
    _train(model_dir, loop=loop, train_steps=30, steps_per_loop=10)
    _train(model_dir, loop=loop, train_steps=80, steps_per_loop=20)  # a short loop 30->40, then 60, 80
    assert _steps_in_csv(model_dir) == [10, 20, 30, 40, 60, 80]
    newest = tf.train.latest_checkpoint(checkpoints.checkpoint_dir(str(model_dir)))
    assert newest.endswith("ckpt-80") and _saved_steps(newest) == (80, 80)
    _assert_same_run(model_dir, expected_batches, expected_weights, _Fingerprint.seen)


def test_fit_refuses_a_first_loop_it_cannot_split_into_executions(tmp_path):
    _train(tmp_path, loop="fit", train_steps=15, steps_per_loop=5, steps_per_execution=5)
    with pytest.raises(ConfigError, match=r"step 15.*runs 5 steps.*steps_per_execution=10"):
        _train(tmp_path, loop="fit", train_steps=40, steps_per_loop=20, steps_per_execution=10)


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_a_lost_checkpoint_index_resumes_from_the_newest_checkpoint_file(tmp_path, loop):
    expected_batches, expected_weights = _uninterrupted(tmp_path, loop)
    model_dir = tmp_path / "resumed"
    _Fingerprint.seen = []
    _train(model_dir, loop=loop, train_steps=20)
    ckpt_dir = checkpoints.checkpoint_dir(str(model_dir))
    before = {p: open(p, "rb").read() for p in glob.glob(os.path.join(ckpt_dir, "ckpt-20.*"))}
    os.remove(os.path.join(ckpt_dir, "checkpoint"))
    _train(model_dir, loop=loop, train_steps=40)
    _assert_same_run(model_dir, expected_batches, expected_weights, _Fingerprint.seen)
    assert {p: open(p, "rb").read() for p in before} == before  # restored from, never rewritten
    state = tf.train.get_checkpoint_state(ckpt_dir)
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["ckpt-20", "ckpt-30", "ckpt-40"]
    assert not os.path.exists(os.path.join(ckpt_dir, "ckpt-10.index"))  # rotation goes on over the found ones


def _truncate_data(path):
    data = glob.glob(path + ".data-*")[0]
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_a_truncated_newest_checkpoint_is_set_aside_and_the_one_before_resumes(tmp_path, loop, capfd):
    expected_batches, expected_weights = _uninterrupted(tmp_path, loop)
    model_dir = tmp_path / "resumed"
    ckpt_dir = checkpoints.checkpoint_dir(str(model_dir))
    _train(model_dir, loop=loop, train_steps=20)
    _truncate_data(os.path.join(ckpt_dir, "ckpt-20"))
    _Fingerprint.seen = []
    _train(model_dir, loop=loop, train_steps=10)  # a process that only restores: nothing left to train
    assert _Fingerprint.seen == []
    err = capfd.readouterr().err
    assert f"skipped {ckpt_dir}/ckpt-20: checkpoint {ckpt_dir}/ckpt-20 cannot be read" in err
    assert "Read less bytes than requested" in err and f"Resuming from {ckpt_dir}/ckpt-10" in err
    [aside] = glob.glob(os.path.join(ckpt_dir, "unreadable", "ckpt-20-*"))
    assert sorted(os.listdir(aside)) == ["ckpt-20.data-00000-of-00001", "ckpt-20.index"]
    _Fingerprint.seen = list(expected_batches[:10])
    _train(model_dir, loop=loop, train_steps=40)
    _assert_same_run(model_dir, expected_batches, expected_weights, _Fingerprint.seen)


def test_restore_model_skips_a_damaged_newest_checkpoint_and_names_it(tmp_path, capfd):
    _train(tmp_path, loop="custom", train_steps=20, steps_per_loop=10)
    ckpt_dir = checkpoints.checkpoint_dir(str(tmp_path))
    _truncate_data(os.path.join(ckpt_dir, "ckpt-20"))
    model = _RecordingTask().build_model()
    assert checkpoints.restore_model(model, str(tmp_path)) == os.path.join(ckpt_dir, "ckpt-10")
    assert f"skipped {ckpt_dir}/ckpt-20" in capfd.readouterr().err
    with pytest.raises(checkpoints.UnreadableCheckpoint, match=f"checkpoint {ckpt_dir}/ckpt-20 cannot be read"):
        checkpoints.restore_model(model, str(tmp_path), os.path.join(ckpt_dir, "ckpt-20"))


def test_training_refuses_when_no_checkpoint_reads_instead_of_starting_over(tmp_path):
    _train(tmp_path, loop="custom", train_steps=20)
    ckpt_dir = checkpoints.checkpoint_dir(str(tmp_path))
    for index in glob.glob(os.path.join(ckpt_dir, "ckpt-*.index")):
        open(index, "w").close()
    kept = sorted(os.listdir(ckpt_dir))
    with pytest.raises(checkpoints.UnreadableCheckpoint, match=r"none of the 2 checkpoint\(s\) .* can be read"):
        _train(tmp_path, loop="custom", train_steps=40)
    assert sorted(os.listdir(ckpt_dir)) == kept  # nothing moved, nothing overwritten


class _WriteCheckpointIndex(keras.callbacks.Callback):
    """Plays another run that writes `ckpt-<step>.index` into the same folder behind the trainer's back."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def on_train_batch_end(self, batch, logs=None):
        open(self.path, "w").close()


def test_a_checkpoint_step_that_exists_is_never_overwritten(tmp_path):
    model_dir = tmp_path / "run"
    _train(model_dir, loop="custom", train_steps=10)
    other = os.path.join(checkpoints.checkpoint_dir(str(model_dir)), "ckpt-20.index")
    with pytest.raises(FileExistsError, match="ckpt-20 already exists but is not the checkpoint this run"):
        _train(model_dir, loop="custom", train_steps=20, extra_callbacks=(_WriteCheckpointIndex(other),))
    assert os.path.getsize(other) == 0  # left as the other run wrote it


def test_a_second_training_into_a_held_model_dir_exits_2_naming_the_holder(tmp_path):
    with run_lock.hold_model_dir(str(tmp_path)):
        with pytest.raises(run_lock.ModelDirBusy, match=f"pid {os.getpid()} on host "):
            _train(tmp_path, loop="custom", train_steps=10)
        result = testing.run_module("tests.tiny_train", f"--model_dir={tmp_path}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"error: --model_dir={tmp_path} is in use by another training run (pid {os.getpid()} on host" in (
        result.stderr)
    assert not os.path.exists(os.path.join(tmp_path, "checkpoints"))


def test_a_lock_dies_with_its_process_even_under_kill_9(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from core import run_lock\n"
         f"with run_lock.hold_model_dir({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(120)"],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(run_lock.ModelDirBusy, match=f"pid {holder.pid} "):
        with run_lock.hold_model_dir(str(tmp_path)):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    result = testing.run_module("tests.tiny_train", f"--model_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]


class _InterruptAt(keras.callbacks.Callback):
    """Sends this process a SIGINT (what Ctrl-C sends) once the optimizer has taken `at` steps."""

    def __init__(self, at: int):
        super().__init__()
        self.at, self.sent = at, False

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.at and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize(("loop", "steps_per_execution", "steps_per_loop", "stopped"), [
    ("fit", 1, 10, 14), ("custom", 1, 10, 14),
    ("custom", 5, 20, 10),  # signalled after step 5: stops when the execution of steps 6-10 is done
])
def test_ctrl_c_saves_the_step_it_stopped_at_and_resumes_from_it(tmp_path, loop, steps_per_execution,
                                                                   steps_per_loop, stopped):
    config = dict(loop=loop, steps_per_execution=steps_per_execution, steps_per_loop=steps_per_loop)
    expected_batches, expected_weights = _uninterrupted(tmp_path, **config)
    model_dir = tmp_path / "resumed"
    _Fingerprint.seen = []
    before = signal.getsignal(signal.SIGINT)  # the default, or SIG_IGN when pytest runs in the background
    # The signal arrives after the execution that reaches step `stopped - steps_per_execution`; the trainer
    # stops once the steps running then are done.
    with pytest.raises(callbacks.TrainingInterrupted,
                       match=rf"interrupted at step {stopped}: saved .*ckpt-{stopped}; run the"):
        _train(model_dir, extra_callbacks=(_InterruptAt(stopped - steps_per_execution),), **config)
    assert signal.getsignal(signal.SIGINT) is before  # the trainer's handler is gone, the old one back
    _train(model_dir, **config)  # a short loop to the next multiple of steps_per_loop first
    assert _steps_in_csv(model_dir) == list(range(steps_per_loop, 41, steps_per_loop))
    _assert_same_run(model_dir, expected_batches, expected_weights, _Fingerprint.seen)


class _InterruptAtTheEnd(keras.callbacks.Callback):
    """Sends a SIGINT during the last loop's end (its evaluation and save), when no step is left to stop at."""

    def on_epoch_end(self, epoch, logs=None):
        if logs["step"] == 20:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_during_the_last_loop_still_exits_as_interrupted(tmp_path):
    with pytest.raises(callbacks.TrainingInterrupted, match=r"interrupted at step 20: saved .*ckpt-20; run"):
        _train(tmp_path, loop="custom", train_steps=20, extra_callbacks=(_InterruptAtTheEnd(),))


def test_ctrl_c_after_the_loss_went_non_finite_saves_nothing(tmp_path):
    diverging = TinyTask(learning_rate=1e30)
    with pytest.raises(callbacks.TrainingInterrupted, match=r"interrupted at step 6: not saved, the loss is nan"):
        _train(tmp_path, task=diverging, loop="custom", steps_per_execution=1, terminate_on_nan=False,
               extra_callbacks=(_InterruptAt(5),))
    assert not glob.glob(os.path.join(checkpoints.checkpoint_dir(str(tmp_path)), "ckpt-*"))


def test_a_checkpoint_saved_without_seed_states_still_resumes(tmp_path):
    _train(tmp_path, loop="custom", train_steps=10)
    prefix = os.path.join(checkpoints.checkpoint_dir(str(tmp_path)), "ckpt-10")
    # Rewrite ckpt-10 as checkpoints were before they held the layers' seed states.
    parts = build_components(_RecordingTask(), tf.distribute.get_strategy(), RunOptions(model_dir=str(tmp_path)))
    parts.checkpoint.restore(prefix).assert_consumed()
    for file in glob.glob(prefix + ".*"):
        os.remove(file)
    old_layout = tf.train.Checkpoint(model=parts.model, optimizer=parts.optimizer, step=parts.step)
    tf.train.CheckpointManager(old_layout, checkpoints.checkpoint_dir(str(tmp_path)), 3).save(checkpoint_number=10)
    assert not [key for key, _ in tf.train.list_variables(prefix) if key.startswith("seeds/")]
    _train(tmp_path, loop="custom", train_steps=20)
    assert _saved_steps(os.path.join(checkpoints.checkpoint_dir(str(tmp_path)), "ckpt-20")) == (20, 20)


def test_resume_on_two_mirrored_replicas_continues_the_stream(tmp_path):
    # Each step takes two per-replica batches from the one input pipeline: the resumed run must skip both.
    _train(tmp_path / "whole", strategy="mirrored", loop="custom")
    for stop in (20, 40):
        _train(tmp_path / "resumed", strategy="mirrored", loop="custom", train_steps=stop)
    for a, b in zip(final_weights(str(tmp_path / "resumed"), _RecordingTask()),
                    final_weights(str(tmp_path / "whole"), _RecordingTask()), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
