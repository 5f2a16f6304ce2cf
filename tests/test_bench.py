"""core.bench's race clock: when it probes, what it counts, and when it stops training."""

import time

import keras
import numpy as np
import pytest

from core import bench
from core.config import RunOptions
from tests.tiny_task import TinyTask


def _clock(targets=(0.5, 0.8), time_limit_s=float("inf")):
    clock = bench.TimeToAccuracy(np.zeros((4, 2), "float32"), np.zeros(4), targets, batch_size=8,
                                 probe_examples=16, time_limit_s=time_limit_s)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.stop_training = False  # as fit sets it
    clock.set_model(model)
    return clock


def test_each_target_keeps_its_first_crossing_and_training_stops_when_all_are_reached():
    clock = _clock()
    clock.record(1.0, 16, 0.3)
    assert clock.seconds_to(0.5) is None and not clock.model.stop_training
    clock.record(2.0, 32, 0.6)
    clock.record(3.0, 48, 0.4)  # a dip below does not undo the crossing
    clock.record(4.0, 64, 0.7)
    assert clock.reached == {0.5: (2.0, 32)} and not clock.model.stop_training
    clock.record(5.0, 80, 0.85)
    assert clock.seconds_to(0.8) == 5.0 and clock.model.stop_training


def test_one_probe_can_cross_several_targets_and_time_up_stops_without_them():
    clock = _clock()
    clock.record(1.0, 16, 0.9)
    assert clock.reached == {0.5: (1.0, 16), 0.8: (1.0, 16)} and clock.model.stop_training
    late = _clock(time_limit_s=10.0)
    late.record(9.0, 16, 0.6)
    assert not late.model.stop_training
    late.record(10.5, 32, 0.7)
    assert late.model.stop_training and late.seconds_to(0.8) is None and late.seconds_to(0.5) == 9.0


@pytest.mark.parametrize("kwargs, message", [
    ({"targets": ()}, "targets"),
    ({"targets": (1.5,)}, "targets"),
    ({"probe_examples": 4}, "probe_examples=4"),
])
def test_bad_settings_are_refused(kwargs, message):
    settings = {"targets": (0.9,), "batch_size": 8, "probe_examples": 16, **kwargs}
    with pytest.raises(ValueError, match=message):
        bench.TimeToAccuracy(np.zeros((1, 2)), np.zeros(1), **settings)


class _SlowProbes(bench.TimeToAccuracy):
    """Probes that take 0.2 s each and report scripted accuracies."""

    def __init__(self, accuracies, **kwargs):
        super().__init__(**kwargs)
        self.script = iter(accuracies)

    def accuracy(self):
        time.sleep(0.2)
        return next(self.script)


def test_fit_probes_every_probe_examples_off_the_clock_and_stops_at_the_last_target():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(640, 2)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    clock = _SlowProbes([0.4, 0.6, 0.7, 0.95, 0.99], x=x, y=y, targets=(0.5, 0.9), batch_size=32,
                        probe_examples=100)
    start = time.perf_counter()
    model.fit(x, y, batch_size=32, epochs=5, callbacks=[clock], verbose=0)  # 100 steps unless stopped
    wall = time.perf_counter() - start
    examples = [p[1] for p in clock.probes]
    # The first batch end at or past each 100 examples: 128 (4 batches), then 100 more after each probe.
    assert examples == [128, 256, 384, 512]
    assert int(model.optimizer.iterations.numpy()) == 16  # stopped at the probe that reached 90%
    assert clock.reached == {0.5: (clock.probes[1][0], 256), 0.9: (clock.probes[3][0], 512)}
    assert clock.probes[-1][0] < wall - 4 * 0.2  # the four probes' sleep is not training time
    assert [p[0] for p in clock.probes] == sorted(p[0] for p in clock.probes)


def test_the_real_probe_scores_the_model_in_inference_mode():
    # Dropout(0.99) would make a training-mode score near chance; inference mode passes inputs through.
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dropout(0.99), keras.layers.Dense(2, use_bias=False)])
    model.layers[-1].set_weights([np.array([[1.0, -1.0], [0.0, 0.0]], "float32")])
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0]], "float32")
    clock = bench.TimeToAccuracy(x, np.array([0, 1, 1]), (0.5,), batch_size=1, probe_examples=1, eval_batch_size=2)
    clock.set_model(model)
    assert clock.accuracy() == pytest.approx(2 / 3)


def test_median_counts_a_run_that_never_got_there_as_the_slowest():
    assert bench.median_or_none([3.0, None, 1.0]) == 3.0
    assert bench.median_or_none([None, None, 1.0]) is None
    assert bench.median_or_none([2.0, 4.0]) == 3.0
    assert bench.median_or_none([2.0, None]) is None


def _finished(probes):
    clock = _clock(targets=(0.9, 0.92))
    for seconds, accuracy in probes:
        clock.record(seconds, int(seconds) * 100, accuracy)
    return clock


def test_race_table_gives_medians_and_a_lower_bound_where_the_baseline_never_got_there(capsys):
    tutorial = [_finished([(50, 0.89), (100, 0.90), (300, 0.915)]),
                _finished([(60, 0.90), (310, 0.917)]),
                _finished([(80, 0.90), (290, 0.919)])]
    ours = [_finished([(20, 0.90), (60, 0.92)]), _finished([(30, 0.91), (70, 0.93)]),
            _finished([(25, 0.90), (200, 0.91)])]
    bench.print_race({"tutorial": tutorial, "ours": ours}, "tutorial", [0.9, 0.92])
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:5]}
    assert rows["tutorial"] == ["80", "s", "not", "reached", "91.70%"]  # times to 90%: 100, 60, 80
    assert rows["ours"] == ["25", "s", "70", "s", "92.00%"]  # to 92%: 60, 70, never -> median 70
    speedup = lines[5].split()[-2:]
    assert speedup == ["3.20x", ">4.29x"]  # 80 / 25; the tutorial's whole runs (median 300 s) / 70 s
    assert sum(", seed " in line for line in lines) == 6


def test_race_table_says_when_a_run_was_never_probed(capsys):
    bench.print_race({"tutorial": [_finished([(10, 0.95)])], "ours": [_finished([])]}, "tutorial", [0.9, 0.92])
    out = capsys.readouterr().out
    assert "ours, seed 0: no probe" in out and "0.00%" not in out


def test_bench_trainer_builds_under_the_options_policy_and_restores_the_one_before(tmp_path):
    class Recording(TinyTask):
        def build_model(self):
            model = super().build_model()
            self.policy = keras.mixed_precision.global_policy().name
            return model

    task = Recording()
    options = RunOptions(model_dir=str(tmp_path), mixed_precision="mixed_bfloat16")
    rate = bench.bench_trainer(task, "fit", 4, options, spe=2, batch_size=32)
    assert rate > 0 and task.policy == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"


class _SlowBatches(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.02)


def test_timed_fit_stops_at_the_first_batch_end_past_its_budget_across_epochs():
    x, y = np.zeros((64, 2), "float32"), np.zeros(64)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    assert bench.timed_fit(model, 0.0, x=x, y=y, batch_size=16).steps == 1
    before = int(model.optimizer.iterations.numpy())
    stop = bench.StopAfter(1.0)
    model.fit(x, y, batch_size=16, epochs=100, callbacks=[_SlowBatches(), stop], verbose=0)  # 4 batches an epoch
    steps = int(model.optimizer.iterations.numpy()) - before
    assert steps == stop.steps and 4 < steps <= 1.0 / 0.02  # past the first epoch, not past the budget
    assert stop.elapsed >= 1.0
    trained = stop.elapsed
    time.sleep(0.05)
    assert stop.elapsed == trained  # the clock stopped with fit: later work (scoring) is not training time


def test_timed_fit_says_how_far_into_its_budget_it_is(capsys):
    x, y = np.zeros((64, 2), "float32"), np.zeros(64)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    stop = bench.timed_fit(model, 0.3, x=x, y=y, batch_size=16, label="keras-hub fit", every_seconds=0.0)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == stop.steps + 1  # one a batch here (every_seconds=0), then the total
    assert lines[0].startswith("keras-hub fit: ") and lines[0].endswith("/0 s, 1 steps")
    assert lines[-1] == f"keras-hub fit: {stop.steps:,} steps in {stop.elapsed:.0f} s"


def test_bench_rows_are_printed_as_they_are_measured(capsys):
    times = iter([10.0, 12.0, 55.0])
    rows = bench.Rows("rows/s", [("baseline", 200.0, 200.0)], clock=lambda: next(times))
    assert capsys.readouterr().out == "measured baseline: 200 rows/s, 1.00x (2 s)\n"
    rows.append(("ours", 7.25, 5.0))
    assert capsys.readouterr().out == "measured ours: 7.2 rows/s, 1.45x (43 s)\n"
    assert list(rows) == [("baseline", 200.0, 200.0), ("ours", 7.25, 5.0)]
