"""Helpers for the projects' `bench` binaries: steady-state throughput, median over windows, a ratio table,
a race's clock (training seconds to a validation accuracy), and `fit` for a wall-clock budget.

These shared 2-core hosts have bursts at half speed; a median over windows keeps one burst from
deciding a ratio. Every figure is printed beside a baseline measured in the same run.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from core import config, trainer


class BatchTimer(keras.callbacks.Callback):
    """Records (time, step) at every batch end of the last loop; reports the median window rate."""

    def __init__(self):
        super().__init__()
        self.marks = []

    def on_epoch_begin(self, epoch, logs=None):
        self.marks = []

    def on_train_batch_end(self, batch, logs=None):
        self.marks.append((time.perf_counter(), int(self.model.optimizer.iterations.numpy())))

    def examples_per_second(self, batch_size: int, window_steps: int) -> float:
        """Median rate over consecutive windows of about `window_steps` steps."""
        if len(self.marks) < 2:
            raise ValueError(f"BatchTimer saw {len(self.marks)} batch(es) in the last loop; time more steps.")
        rates, (t0, s0) = [], self.marks[0]
        for t, s in self.marks[1:]:
            if s - s0 >= window_steps:
                rates.append((s - s0) * batch_size / (t - t0))
                t0, s0 = t, s
        if not rates:
            raise ValueError(f"fewer than window_steps={window_steps} steps were timed; time more steps.")
        return float(np.median(rates))


class StopAfter(keras.callbacks.Callback):
    """Stops `fit` at the first batch end after `seconds` of wall time since training began, so that a baseline
    trains for the minutes another model took; counts the steps it let run."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.start, self.end, self.steps = seconds, None, None, 0

    def on_train_begin(self, logs=None):
        self.start, self.end = time.perf_counter(), None

    def on_train_end(self, logs=None):
        self.end = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if time.perf_counter() - self.start >= self.seconds:
            self.model.stop_training = True

    @property
    def elapsed(self) -> float:
        """Seconds of training: from its start to the end of `fit` (the epoch's closing validation included),
        or to now while `fit` runs. Work done after `fit` (scoring the model) is not counted."""
        if self.start is None:
            raise RuntimeError("StopAfter.elapsed: training has not begun (pass the callback to fit first)")
        return (self.end if self.end is not None else time.perf_counter()) - self.start


class BudgetProgress(keras.callbacks.Callback):
    """A line at most every `every_seconds` while `fit` trains for a wall-clock budget: seconds out of the budget
    and steps so far (`fit`'s own bar, per epoch, says nothing useful about a budget, and nothing in a log)."""

    def __init__(self, stop: StopAfter, label: str, every_seconds: float = 30.0):
        super().__init__()
        self.stop, self.label, self.every_seconds = stop, label, every_seconds
        self.last = None

    def on_train_begin(self, logs=None):
        self.last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if now - self.last >= self.every_seconds:
            self.last = now
            print(f"{self.label}: {self.stop.elapsed:.0f}/{self.stop.seconds:.0f} s, {self.stop.steps:,} steps",
                  flush=True)

    def on_train_end(self, logs=None):
        print(f"{self.label}: {self.stop.steps:,} steps in {self.stop.elapsed:.0f} s", flush=True)


def timed_fit(model: keras.Model, seconds: float, verbose: int | str = 0, label: str = "timed fit",
              every_seconds: float = 30.0, **fit_kwargs) -> StopAfter:
    """`model.fit(**fit_kwargs)` for `seconds` of wall time (as many epochs as fit in it); returns its clock.
    Prints `<label>: 120/600 s, 512 steps` at most every `every_seconds`, and the total at the end."""
    stop = StopAfter(seconds)
    model.fit(**fit_kwargs, epochs=10**6, callbacks=[stop, BudgetProgress(stop, label, every_seconds)],
              verbose=verbose)
    return stop


class TimeToAccuracy(keras.callbacks.Callback):
    """A race's clock: training seconds until validation accuracy first reaches each target.

    Every `probe_examples` training examples (at the first batch end past them) it pauses the clock,
    scores the model in inference mode on (x, y) and records (seconds, examples, accuracy). The clock
    starts at the first `on_train_begin` and counts everything training does (tracing, the trainer's
    own evaluations and checkpoints) except these probes. Training is stopped once every target is
    reached, or at the first probe after `time_limit_s`. `model.predict` per probe would cost more
    than the probe itself on small models, so the scoring is one compiled inference function.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, targets: Sequence[float], batch_size: int,
                 probe_examples: int, time_limit_s: float = float("inf"), eval_batch_size: int = 1000):
        super().__init__()
        if not targets or any(not 0 < t <= 1 for t in targets):
            raise ValueError(f"targets={list(targets)}: expected accuracies in (0, 1].")
        if probe_examples < batch_size:
            raise ValueError(f"probe_examples={probe_examples} is less than one batch of {batch_size}.")
        self.x, self.y = x, np.asarray(y)
        self.targets = sorted(targets)
        self.batch_size = batch_size
        self.probe_examples = probe_examples
        self.time_limit_s = time_limit_s
        self.eval_batch_size = eval_batch_size
        self.start = None
        self.paused = 0.0
        self.next_probe = probe_examples
        self.probes: list[tuple[float, int, float]] = []  # (training seconds, examples seen, accuracy)
        self.reached: dict[float, tuple[float, int]] = {}  # target -> (seconds, examples) of its first probe
        self._predict = None

    def elapsed(self) -> float:
        """Training seconds so far: wall time since training began, less the probes."""
        return time.perf_counter() - self.start - self.paused

    def accuracy(self) -> float:
        if self._predict is None:
            self._predict = tf.function(lambda images: self.model(images, training=False))
        correct = 0
        for i in range(0, len(self.x), self.eval_batch_size):
            logits = self._predict(tf.constant(self.x[i:i + self.eval_batch_size]))
            correct += int(np.sum(np.argmax(np.asarray(logits), axis=-1) == self.y[i:i + self.eval_batch_size]))
        return correct / len(self.x)

    def on_train_begin(self, logs=None):
        if self.start is None:  # a trainer may call fit more than once; the race is one clock
            self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        examples = int(self.model.optimizer.iterations.numpy()) * self.batch_size
        if examples < self.next_probe:
            return
        seconds = self.elapsed()
        probe_start = time.perf_counter()
        accuracy = self.accuracy()
        self.paused += time.perf_counter() - probe_start
        self.next_probe = examples + self.probe_examples
        self.record(seconds, examples, accuracy)

    def record(self, seconds: float, examples: int, accuracy: float) -> None:
        """Adds one probe's result; stops training when every target is reached or time is up."""
        self.probes.append((seconds, examples, accuracy))
        for target in self.targets:
            if target not in self.reached and accuracy >= target:
                self.reached[target] = (seconds, examples)
        if len(self.reached) == len(self.targets) or seconds >= self.time_limit_s:
            self.model.stop_training = True

    def seconds_to(self, target: float) -> float | None:
        """Training seconds to the first probe at or above `target`; None if training ended first."""
        return self.reached.get(target, (None, None))[0]


def median_or_none(values: Sequence[float | None]) -> float | None:
    """The median of a race's per-seed times, where None (never got there) counts as slower than any
    time; None when that median is itself a run that never got there."""
    median = float(np.median([float("inf") if v is None else v for v in values]))
    return None if median == float("inf") else median


def _seconds(value: float | None, never: str) -> str:
    return never if value is None else f"{value:.0f} s"


def print_race(results: dict[str, list[TimeToAccuracy]], baseline: str, targets: list[float]) -> None:
    """Median seconds to each target per side, the ratio to the baseline, then every seed's run
    (`results[side][i]` is the run with seed i).

    Where the baseline never got there, the ratio is a lower bound: its whole run over ours (">").
    """
    width = max(len(label) for label in results) + 2
    print(f"\nrace to validation accuracy: training seconds, median of {len(results[baseline])} seed(s) "
          f"(a run that never got there counts as slowest)")
    print(f"{'side':<{width}}" + "".join(f"{f'to {t:.0%}':>14}" for t in targets) + f"{'best':>9}")
    medians = {label: [median_or_none([c.seconds_to(t) for c in clocks]) for t in targets]
               for label, clocks in results.items()}
    for label, clocks in results.items():
        bests = [max(p[2] for p in c.probes) for c in clocks if c.probes]
        best = f"{np.median(bests):>8.2%}" if bests else f"{'-':>8}"
        print(f"{label:<{width}}" + "".join(f"{_seconds(m, 'not reached'):>14}" for m in medians[label]) + best)
    for label in results:
        if label == baseline:
            continue
        cells = []
        for mine, theirs in zip(medians[label], medians[baseline]):
            if mine is None:
                cells.append("-")
            elif theirs is None:  # the baseline never got there: faster by more than its whole run
                longest = np.median([c.probes[-1][0] if c.probes else 0.0 for c in results[baseline]])
                cells.append(f">{longest / mine:.2f}x")
            else:
                cells.append(f"{theirs / mine:.2f}x")
        print(f"{'speed-up of ' + label:<{width}}" + "".join(f"{c:>14}" for c in cells))
    print("per seed (seconds to each target; examples seen; last probe):")
    for label, clocks in results.items():
        for seed, clock in enumerate(clocks):
            times = ", ".join(f"{t:.0%}: " + (f"{clock.reached[t][0]:.0f} s ({clock.reached[t][1]:,} ex)"
                                              if t in clock.reached else "not reached") for t in targets)
            if not clock.probes:
                print(f"  {label}, seed {seed}: no probe (it trained on fewer examples than one probe interval)")
                continue
            last = clock.probes[-1]
            print(f"  {label}, seed {seed}: {times}; last probe {last[2]:.2%} at {last[0]:.0f} s")


def bench_trainer(task, loop: str, steps: int, options: config.RunOptions, spe: int, batch_size: int,
                  extra_callbacks: tuple = (), window_steps: int | None = None) -> float:
    """Examples/second of core's trainer on `task` in its second loop of `steps` steps (the first traces),
    the median over windows of `window_steps` steps (default: one execution of `spe` steps; make it longer
    where batches differ in cost, e.g. padded per length bucket)."""
    steps = -(-steps // spe) * spe  # whole executions per loop
    timer = BatchTimer()
    # The trainer builds the model, which takes the dtype policy in force: options.mixed_precision's, for
    # this measurement only.
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(options.mixed_precision)
    try:
        with tempfile.TemporaryDirectory() as model_dir:
            train_config = trainer.TrainConfig(loop=loop, train_steps=2 * steps, steps_per_loop=steps,
                                               steps_per_execution=spe, eval_steps=spe, csv_log=False)
            trainer.train(task, options=dataclasses.replace(options, model_dir=model_dir), config=train_config,
                          callbacks=(*extra_callbacks, timer))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return timer.examples_per_second(batch_size, window_steps=max(window_steps or spe, spe))


def bench_fit_arrays(model: keras.Model, x, y, batch_size: int, window_steps: int) -> float:
    """The tutorial baseline: `model.fit(x, y)` on in-memory arrays (an array, or a list or dict of them) for one
    epoch, after a tracing call."""
    model.fit(keras.tree.map_structure(lambda a: a[: 10 * batch_size], x), y[: 10 * batch_size],
              batch_size=batch_size, verbose=0)  # trace
    timer = BatchTimer()
    model.fit(x, y, batch_size=batch_size, epochs=1, callbacks=[timer], verbose=0)
    return timer.examples_per_second(batch_size, window_steps)


def median_rate(fn: Callable[[], object], examples: int, repeats: int = 3) -> float:
    """Median examples/second of `repeats` timed calls of `fn`, each handling `examples` examples."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        rates.append(examples / (time.perf_counter() - start))
    return float(np.median(rates))


def pipeline_rate(dataset, batch_size: int, batches: int = 500, warmup: int = 20) -> float:
    """Examples/second an input pipeline delivers alone: the median of 5 timed reads of `batches // 5` batches."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)

    def read_batches():
        for _ in range(batches // 5):
            next(iterator)

    return median_rate(read_batches, batches // 5 * batch_size, repeats=5)


def _digits(value: float, reference: float) -> int:
    return 1 if max(value, reference) < 100 else 0  # 7.4 pairs/s, not 7


class Rows(list):
    """A bench table's rows, (label, value, baseline) tuples, each printed as a line when it is appended (with the
    seconds since the one before), so that a bench of many minutes says what it has measured while it runs;
    `print_table` then lines them all up."""

    def __init__(self, unit: str = "examples/s", rows: Sequence[tuple[str, float, float]] = (),
                 clock: Callable[[], float] = time.perf_counter):
        super().__init__()
        self.unit, self.clock = unit, clock
        self.last = clock()
        for row in rows:
            self.append(row)

    def append(self, row: tuple[str, float, float]) -> None:
        label, value, reference = row
        super().append(row)
        now, digits = self.clock(), _digits(value, reference)
        print(f"measured {label}: {value:,.{digits}f} {self.unit}, {value / reference:.2f}x "
              f"({now - self.last:.0f} s)", flush=True)
        self.last = now


def print_table(rows: list[tuple[str, float, float]], unit: str = "examples/s") -> None:
    """Rows of (label, value, baseline) with their ratio."""
    width = max(52, *(len(r[0]) for r in rows))
    print(f"{'measurement':<{width}} {unit:>11} {'baseline':>11} {'ratio':>7}")
    for label, value, reference in rows:
        digits = _digits(value, reference)
        print(f"{label:<{width}} {value:>11.{digits}f} {reference:>11.{digits}f} {value / reference:>6.2f}x")
