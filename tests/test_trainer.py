import csv
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from core import checkpoints, evaluation, trainer
from core.config import ConfigError, RunOptions
from core.task import build_components
from tests.tiny_task import TinyMultiOutputTask, TinyTask, final_weights, make_data


@pytest.fixture(autouse=True)
def _float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def _train(tmp_path, name, task=None, options=None, **config):
    model_dir = str(tmp_path / name)
    defaults = dict(train_steps=20, steps_per_loop=10, steps_per_execution=5, csv_log=True)
    logs = trainer.train(task or TinyTask(), options=RunOptions(model_dir=model_dir, **(options or {})),
                         config=trainer.TrainConfig(**{**defaults, **config}))
    return model_dir, logs


def _assert_same_weights(a, b, atol=1e-5):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=atol, rtol=1e-4)


def test_fit_and_custom_loop_take_identical_steps(tmp_path):
    fit_dir, fit_logs = _train(tmp_path, "fit", loop="fit")
    custom_dir, custom_logs = _train(tmp_path, "custom", loop="custom")
    _assert_same_weights(final_weights(fit_dir), final_weights(custom_dir))
    assert set(fit_logs) == set(custom_logs) == {
        "loss", "accuracy", "macro_f1", "val_loss", "val_accuracy", "val_macro_f1"}
    for key in ("val_loss", "val_accuracy", "val_macro_f1"):
        np.testing.assert_allclose(fit_logs[key], custom_logs[key], rtol=1e-4, err_msg=key)
    assert fit_logs["val_accuracy"] > 0.6  # it learned something


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_mirrored_two_replicas_match_one_device(tmp_path, loop):
    one_dir, _ = _train(tmp_path, "one", loop=loop)
    two_dir, _ = _train(tmp_path, "two", loop=loop, options={"strategy": "mirrored"})
    # Same global batch split over 2 replicas: the averaged gradient, hence the weights, must agree.
    _assert_same_weights(final_weights(one_dir), final_weights(two_dir))


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_resume_continues_from_the_last_checkpoint(tmp_path, loop):
    model_dir, _ = _train(tmp_path, "run", loop=loop, train_steps=10)
    assert os.path.basename(tf.train.latest_checkpoint(checkpoints.checkpoint_dir(model_dir))) == "ckpt-10"
    _, logs = _train(tmp_path, "run", loop=loop, train_steps=30)
    assert logs
    assert os.path.basename(tf.train.latest_checkpoint(checkpoints.checkpoint_dir(model_dir))) == "ckpt-30"
    with open(os.path.join(model_dir, "training_log.csv")) as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == [0, 1, 2]  # loop 0 in the first run, loops 1 and 2 after resuming
    _, again = _train(tmp_path, "run", loop=loop, train_steps=30)
    assert again == {}  # already done: nothing retrained


def test_run_writes_summaries_and_operative_config(tmp_path):
    model_dir, _ = _train(tmp_path, "run", loop="custom")
    assert os.listdir(os.path.join(model_dir, "train")) and os.listdir(os.path.join(model_dir, "eval"))
    assert os.path.exists(os.path.join(model_dir, "operative_config.gin"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(os.path.join(model_dir, "eval")).Reload()
    steps = [e.step for e in events.Tensors("accuracy")]
    assert steps == [10, 20]


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_deterministic_runs_give_identical_weights(tmp_path, loop):
    task = TinyTask(dropout=0.3, shuffle=True, optimizer="adam", learning_rate=0.01)
    runs = []
    for name in ("a", "b"):
        keras.utils.set_random_seed(7)
        model_dir, _ = _train(tmp_path, name, task=task, loop=loop)
        runs.append(final_weights(model_dir, task))
    for x, y in zip(*runs):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("loop", ["fit", "custom"])
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_in_both_loops(tmp_path, loop, policy):
    keras.mixed_precision.set_global_policy(policy)
    _, logs = _train(tmp_path, "run", loop=loop, options={"mixed_precision": policy}, train_steps=40)
    assert np.isfinite(logs["loss"]) and logs["val_accuracy"] > 0.5


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_jit_compile_matches_eager_graph(tmp_path, loop):
    plain_dir, _ = _train(tmp_path, "plain", loop=loop)
    jit_dir, _ = _train(tmp_path, "jit", loop=loop, options={"jit_compile": True})
    _assert_same_weights(final_weights(plain_dir), final_weights(jit_dir), atol=1e-4)


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_jit_compile_on_mirrored_replicas_falls_back_to_plain_graphs(tmp_path, loop):
    _, logs = _train(tmp_path, "run", loop=loop, options={"strategy": "mirrored", "jit_compile": True})
    assert logs["val_accuracy"] > 0.5


def test_early_stopping_ends_training_in_both_loops(tmp_path):
    for loop in ("fit", "custom"):
        # A zero learning rate never improves val_loss, so patience 1 stops after the second loop.
        task = TinyTask(learning_rate=0.0)
        model_dir, _ = _train(tmp_path, loop, task=task, loop=loop, train_steps=100, early_stopping_patience=1,
                              monitor="val_loss")
        latest = tf.train.latest_checkpoint(checkpoints.checkpoint_dir(model_dir))
        assert latest.endswith("ckpt-20"), (loop, latest)


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_reduce_lr_on_plateau_lowers_the_rate(tmp_path, loop):
    # A tiny rate leaves val_loss flat, so every loop after the first is a plateau.
    model_dir, _ = _train(tmp_path, "run", task=TinyTask(learning_rate=1e-9), loop=loop, train_steps=40,
                          reduce_lr_on_plateau_patience=1)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(os.path.join(model_dir, "train")).Reload()
    rates = [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors("learning_rate")]
    assert len(rates) == 4
    # Logged as each loop ends, before the callback halves it: loop 2 is the first plateau.
    np.testing.assert_allclose(rates, [1e-9, 1e-9, 5e-10, 2.5e-10], rtol=1e-3)


def test_reduce_lr_on_plateau_with_a_schedule_is_a_config_error(tmp_path):
    class ScheduledTask(TinyTask):
        def build_optimizer(self):
            return keras.optimizers.SGD(keras.optimizers.schedules.CosineDecay(0.1, 100))

    with pytest.raises(ConfigError, match="reduce_lr_on_plateau_patience"):
        _train(tmp_path, "run", task=ScheduledTask(), reduce_lr_on_plateau_patience=2)


def test_optimizers_keep_their_schedule_in_the_private_attribute_the_trainer_reads():
    # The trainer tells a schedule from a constant learning rate by `optimizer._learning_rate` (Keras 3 has no
    # public accessor: `learning_rate` is the value at the current step). A Keras that renames it fails here.
    schedule = keras.optimizers.schedules.CosineDecay(0.1, 100)
    for optimizer in (keras.optimizers.SGD(schedule), keras.optimizers.AdamW(schedule),
                      keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(schedule)).inner_optimizer):
        assert optimizer._learning_rate is schedule
    assert not isinstance(keras.optimizers.Adam(0.1)._learning_rate, keras.optimizers.schedules.LearningRateSchedule)


def test_loop_settings_change_only_what_keras_cannot_run_and_say_why():
    one = tf.distribute.get_strategy()
    assert trainer.loop_settings(trainer.TrainConfig(steps_per_execution=5), one, True) == trainer.LoopSettings(
        "fit", 5, True, ())

    class TwoReplicas:  # what loop_settings reads of a MirroredStrategy over two devices
        num_replicas_in_sync = 2

    settings = trainer.loop_settings(trainer.TrainConfig(steps_per_execution=5), TwoReplicas(), True)
    assert (settings.loop, settings.fit_steps_per_execution, settings.jit_compile) == ("fit", 1, False)
    assert len(settings.changes) == 2 and "keras-team/keras#19246" in settings.changes[0]
    assert "--jit_compile is ignored on 2 replicas" in settings.changes[1]
    custom = trainer.loop_settings(trainer.TrainConfig(loop="custom", steps_per_execution=5), TwoReplicas(), False)
    assert custom == trainer.LoopSettings("custom", 5, False, ())


def test_the_task_keeps_its_artifacts_before_training_and_adds_its_callbacks(tmp_path):
    events = []

    class Recording(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            events.append(("epoch", epoch))

    class KeepingTask(TinyTask):
        def save_artifacts(self, model_dir):
            started = os.path.exists(os.path.join(model_dir, "checkpoints"))
            events.append(("artifacts", os.path.isdir(model_dir), started))

        def callbacks(self, config):
            return [Recording()]

    _train(tmp_path, "run", task=KeepingTask())
    assert events == [("artifacts", True, False), ("epoch", 0), ("epoch", 1)]
    assert isinstance(TinyTask.from_model_dir(str(tmp_path / "run")), TinyTask)


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_nan_loss_stops_training_without_checkpointing_nan_weights(tmp_path, loop):
    class Exploding(TinyTask):
        def build_optimizer(self):
            return keras.optimizers.SGD(1e30)

    model_dir, logs = _train(tmp_path, "run", task=Exploding(), loop=loop, train_steps=100)
    assert not np.isfinite(logs["loss"])
    with open(os.path.join(model_dir, "training_log.csv")) as f:
        assert len(list(csv.DictReader(f))) == 1  # stopped in the first of ten loops
    latest = tf.train.latest_checkpoint(checkpoints.checkpoint_dir(model_dir))
    if latest is not None:
        assert all(np.isfinite(w).all() for w in final_weights(model_dir))


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"loop": "keras"}, "TrainConfig.loop"),
        ({"steps_per_loop": 10, "steps_per_execution": 3}, "steps_per_execution=3"),
        ({"train_steps": 25, "steps_per_loop": 10}, "train_steps=25 must be a multiple"),
        ({"steps_per_loop": 10, "steps_per_execution": 5, "eval_steps": 4}, "eval_steps=4 must be a multiple"),
        ({"train_steps": "abc"}, "train_steps='abc': expected an integer"),
        ({"train_steps": 20.0, "steps_per_loop": 10}, "expected an integer"),
        ({"train_steps": 40, "steps_per_loop": 10, "average_checkpoints": 4}, "at most TrainConfig.max_checkpoints=3"),
        ({"train_steps": 20, "steps_per_loop": 10, "average_checkpoints": 3}, "the run's 2 loop"),
        ({"average_checkpoints": 0}, "average_checkpoints=0: must be >= 1"),
    ],
)
def test_bad_train_config_names_the_fields(fields, message):
    with pytest.raises(ConfigError, match=message):
        trainer.TrainConfig(**fields)


def test_evaluate_restores_the_checkpoint_and_matches_training_eval(tmp_path):
    model_dir, logs = _train(tmp_path, "run", loop="custom")
    results, metrics = evaluation.evaluate(TinyTask(), RunOptions(model_dir=model_dir), split="validation")
    np.testing.assert_allclose(results["accuracy"], logs["val_accuracy"], rtol=1e-5)
    np.testing.assert_allclose(results["loss"], logs["val_loss"], rtol=1e-5)
    assert any(hasattr(m, "confusion_matrix") for m in metrics)


def test_keras_evaluate_and_predict_match_metric_objects_and_model_calls(tmp_path):
    model_dir, _ = _train(tmp_path, "run", loop="custom")
    ours, _ = evaluation.evaluate(TinyTask(), RunOptions(model_dir=model_dir), split="validation")
    # The tutorial way: the model compiled with the same loss and metrics, then model.evaluate / model.predict.
    parts = build_components(TinyTask(), tf.distribute.get_strategy(), RunOptions(model_dir=model_dir))
    checkpoints.restore_model(parts.model, model_dir)
    keras_results = parts.model.evaluate(TinyTask().build_inputs("validation"), return_dict=True, verbose=0)
    assert set(keras_results) == set(ours) == {"loss", "accuracy", "macro_f1"}
    for key in ours:
        np.testing.assert_allclose(keras_results[key], ours[key], rtol=1e-5, err_msg=key)
    x, _ = make_data(96, seed=1)
    predicted = parts.model.predict(x, batch_size=32, verbose=0)  # batched, NumPy out
    called = parts.model(x, training=False)  # one call, a tensor out; training=False for dropout and BN
    np.testing.assert_allclose(predicted, called.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_average_checkpoints_writes_the_mean_of_the_newest_and_evaluate_restores_it(tmp_path, loop):
    model_dir, _ = _train(tmp_path, "run", loop=loop, train_steps=40, max_checkpoints=3, average_checkpoints=3)
    kept = checkpoints.find_checkpoints(model_dir)
    assert [os.path.basename(p) for p in kept] == ["ckpt-40", "ckpt-30", "ckpt-20"]
    members = []
    for path in kept:
        model = TinyTask().build_model()
        checkpoints.restore_model(model, model_dir, path)
        members.append([w.numpy() for w in model.weights])
    expected = [np.mean(values, axis=0) for values in zip(*members)]
    averaged = TinyTask().build_model()
    path = checkpoints.restore_model(averaged, model_dir)  # the default restore: the mean, not ckpt-40
    assert path == os.path.join(model_dir, "checkpoints", "averaged-40", "ckpt-40")
    _assert_same_weights([w.numpy() for w in averaged.weights], expected, atol=1e-6)
    assert not all(np.allclose(a, b) for a, b in zip(expected, members[0]))  # it is not the newest's
    with open(os.path.join(model_dir, "checkpoints", "averaged-40", "averaged.json")) as f:
        assert json.load(f) == {"step": 40, "checkpoints": kept}
    # evaluate scores the mean: the same as Keras' evaluate of a model holding the expected weights.
    results, _ = evaluation.evaluate(TinyTask(), RunOptions(model_dir=model_dir), split="validation")
    parts = build_components(TinyTask(), tf.distribute.get_strategy(), RunOptions(model_dir=model_dir))
    parts.model.set_weights(expected)
    keras_results = parts.model.evaluate(TinyTask().build_inputs("validation"), return_dict=True, verbose=0)
    np.testing.assert_allclose(results["loss"], keras_results["loss"], rtol=1e-5)


def test_a_relative_model_dir_finds_and_restores_its_checkpoints(tmp_path, monkeypatch):
    _train(tmp_path, "run", train_steps=30)
    monkeypatch.chdir(tmp_path)  # `--model_dir=run`, as the Makefile's runs/<project>/default
    assert checkpoints.find_checkpoints("run") == [os.path.join("run", "checkpoints", f"ckpt-{step}")
                                                   for step in (30, 20, 10)]
    older = checkpoints.checkpoint_path("run", "-2")
    assert older == os.path.join("run", "checkpoints", "ckpt-20")
    assert checkpoints.restore_model(TinyTask().build_model(), "run", older) == older


def test_average_checkpoints_follows_the_run_when_it_resumes(tmp_path):
    model_dir, _ = _train(tmp_path, "run", train_steps=30, average_checkpoints=2)
    folder = os.path.join(model_dir, "checkpoints")
    assert sorted(os.listdir(folder)) == ["averaged-30", "checkpoint"] + [
        f"ckpt-{s}.{e}" for s in (10, 20, 30) for e in ("data-00000-of-00001", "index")]
    shutil.rmtree(os.path.join(folder, "averaged-30"))  # e.g. killed after the last save: a rerun writes it
    assert _train(tmp_path, "run", train_steps=30, average_checkpoints=2)[1] == {}
    assert os.path.exists(checkpoints.averaged_path(model_dir, 30) + ".index")
    _train(tmp_path, "run", train_steps=50, average_checkpoints=2)  # trained on: a new mean, the old one gone
    assert [n for n in sorted(os.listdir(folder)) if n.startswith("averaged")] == ["averaged-50"]
    restored = TinyTask().build_model()
    assert checkpoints.restore_model(restored, model_dir).endswith("averaged-50/ckpt-50")
    newest = TinyTask().build_model()  # an explicit checkpoint is that checkpoint, not the mean
    assert checkpoints.restore_model(newest, model_dir, os.path.join(folder, "ckpt-50")).endswith("ckpt-50")


def test_evaluate_without_checkpoint_says_train_first(tmp_path):
    with pytest.raises(FileNotFoundError, match="train first"):
        evaluation.evaluate(TinyTask(), RunOptions(model_dir=str(tmp_path)), split="validation")


def test_multi_output_task_trains_alike_in_both_loops_with_weighted_losses(tmp_path):
    task = TinyMultiOutputTask(learning_rate=0.02)
    fit_dir, fit_logs = _train(tmp_path, "fit", task=task, loop="fit")
    custom_dir, custom_logs = _train(tmp_path, "custom", task=task, loop="custom")
    _assert_same_weights(final_weights(fit_dir, task), final_weights(custom_dir, task))
    # fit also logs each output's own loss; both report the weighted total and the per-output metrics.
    assert {"loss", "total_rmse", "total_mae", "val_loss", "val_total_rmse"} <= set(fit_logs) & set(custom_logs)
    for key in ("val_loss", "val_total_rmse", "val_total_mae"):
        np.testing.assert_allclose(fit_logs[key], custom_logs[key], rtol=1e-4, err_msg=key)
    weighted = sum(w * fit_logs[f"val_{k}_loss"] for k, w in task.loss_weights.items())
    np.testing.assert_allclose(fit_logs["val_loss"], weighted, rtol=1e-5)
    results, _ = evaluation.evaluate(task, RunOptions(model_dir=custom_dir), split="validation")
    np.testing.assert_allclose(results["total_rmse"], custom_logs["val_total_rmse"], rtol=1e-5)
