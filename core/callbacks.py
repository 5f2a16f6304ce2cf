"""Keras callbacks the trainer adds to both loops: the step counter, checkpoints in TF format, TensorBoard
scalars, and a Ctrl-C that stops at a step boundary with a checkpoint instead of mid-step without one.

The custom loop drives the same `keras.callbacks.CallbackList` that `fit` does (one "epoch" is one
loop of up to `steps_per_loop` steps), so early stopping, ReduceLROnPlateau, CSV logs, TerminateOnNaN
and these behave the same whichever loop runs.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator

import keras
import tensorflow as tf
from absl import logging

from core import checkpoints


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, raised at a step boundary; `step` is the number of steps done.

    A KeyboardInterrupt, so that no `except Exception` on the way up (in Keras or a project) swallows it.
    """

    def __init__(self, step: int, detail: str = ""):
        super().__init__(f"interrupted at step {step}" + (f": {detail}" if detail else ""))
        self.step = step


class InterruptRequest:
    """Set by the first Ctrl-C; the StepCounter stops training at the next step boundary when it is set."""

    def __init__(self):
        self.requested = False


@contextlib.contextmanager
def stop_at_step_on_interrupt(enabled: bool = True) -> Iterator[InterruptRequest]:
    """While the block runs, the first Ctrl-C asks for a stop at the next step boundary; a second stops at once.

    A plain KeyboardInterrupt can land anywhere, between a step's weight update and the count of it or in
    the middle of a checkpoint save, so nothing could be saved safely. Yields the InterruptRequest.
    """
    request = InterruptRequest()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handle(signum, frame):
        if request.requested:
            raise KeyboardInterrupt
        request.requested = True
        print("\nCtrl-C: stopping after the steps running now, to save a checkpoint "
              "(press Ctrl-C again to stop at once, without one).", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield request
    finally:
        signal.signal(signal.SIGINT, previous)


class StepCounter(keras.callbacks.Callback):
    """Keeps the global step equal to the steps actually run, and stops there on a Ctrl-C.

    The step counts what ran (not loops x steps_per_loop), so a resume at any step, a first loop
    shorter than the rest, or a changed steps_per_loop leaves it exact. Put it first: the checkpoint
    and summary callbacks after it read the step it sets. It also adds `step` to each loop's logs,
    so the CSV log has the step every row ends at.
    """

    def __init__(self, step: tf.Variable, interrupt: InterruptRequest | None = None):
        super().__init__()
        self.step = step
        self.interrupt = interrupt or InterruptRequest()
        self.loop_start = 0
        self.loss = 0.0  # the loop's running mean loss after the last execution: is the state worth saving?

    def on_epoch_begin(self, epoch, logs=None):
        self.loop_start = int(self.step.numpy())
        if self.interrupt.requested:
            raise TrainingInterrupted(self.loop_start)

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the index in this loop of the last step of the execution that just ended.
        step = self.loop_start + batch + 1
        self.step.assign(step)
        self.loss = float((logs or {}).get("loss", 0.0))
        if self.interrupt.requested:
            raise TrainingInterrupted(step)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:  # the same dict reaches the callbacks after this one (CSVLogger)
            logs["step"] = int(self.step.numpy())


class CheckpointManagerCallback(keras.callbacks.Callback):
    """After every loop, saves a checkpoint numbered by the global step.

    TF checkpoints are written to temporary files and the `checkpoint` index is updated last, so a
    run killed mid-save (even with SIGKILL) resumes from the previous complete checkpoint. A loop
    that ended with a non-finite loss is not saved.
    """

    def __init__(self, manager: tf.train.CheckpointManager, step: tf.Variable):
        super().__init__()
        self.manager = manager
        self.step = step

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.step.numpy())
        loss = (logs or {}).get("loss", 0.0)
        if not math.isfinite(loss):
            logging.warning("Not saving a checkpoint at step %d: the loss is %s.", step, loss)
            return
        checkpoints.save(self.manager, step)


class ScalarSummaries(keras.callbacks.Callback):
    """Writes the loop's logs to TensorBoard: `<dir>/train` and `<dir>/eval`, keyed by global step."""

    def __init__(self, log_dir: str, step: tf.Variable):
        super().__init__()
        self.log_dir = log_dir
        self.step = step
        self.writers = {}

    def on_train_begin(self, logs=None):
        # Opened here, not in __init__: fit may run twice in one training (a short first loop, then the rest).
        self.writers = {split: tf.summary.create_file_writer(os.path.join(self.log_dir, split))
                        for split in ("train", "eval")}

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.step.numpy())
        for key, value in (logs or {}).items():
            if key == "step":
                continue
            split, name = ("eval", key[4:]) if key.startswith("val_") else ("train", key)
            with self.writers[split].as_default():
                tf.summary.scalar(name, float(value), step=step)
        learning_rate = getattr(self.model.optimizer, "learning_rate", None)
        if learning_rate is not None:
            with self.writers["train"].as_default():
                tf.summary.scalar("learning_rate", float(keras.ops.convert_to_numpy(learning_rate)), step=step)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()
