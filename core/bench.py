"""Helpers for the projects' `bench` binaries: steady-state throughput, median over windows, a ratio table.

These shared 2-core hosts have bursts at half speed; a median over windows keeps one burst from
deciding a ratio. Every figure is printed beside a baseline measured in the same run.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable

import keras
import numpy as np

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


def bench_trainer(task, loop: str, steps: int, options: config.RunOptions, spe: int, batch_size: int,
                  extra_callbacks: tuple = (), window_steps: int | None = None) -> float:
    """Examples/second of core's trainer on `task` in its second loop of `steps` steps (the first traces),
    the median over windows of `window_steps` steps (default: one execution of `spe` steps; make it longer
    where batches differ in cost, e.g. padded per length bucket)."""
    steps = -(-steps // spe) * spe  # whole executions per loop
    timer = BatchTimer()
    with tempfile.TemporaryDirectory() as model_dir:
        train_config = trainer.TrainConfig(loop=loop, train_steps=2 * steps, steps_per_loop=steps,
                                           steps_per_execution=spe, eval_steps=spe, csv_log=False)
        trainer.train(task, dataclasses.replace(options, model_dir=model_dir), train_config,
                      extra_callbacks=(*extra_callbacks, timer))
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


def print_table(rows: list[tuple[str, float, float]], unit: str = "examples/s") -> None:
    """Rows of (label, value, baseline) with their ratio."""
    width = max(52, *(len(r[0]) for r in rows))
    print(f"{'measurement':<{width}} {unit:>11} {'baseline':>11} {'ratio':>7}")
    for label, value, reference in rows:
        digits = 1 if max(value, reference) < 100 else 0  # 7.4 pairs/s, not 7
        print(f"{label:<{width}} {value:>11.{digits}f} {reference:>11.{digits}f} {value / reference:>6.2f}x")
