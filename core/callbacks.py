"""Keras callbacks the trainer adds to both loops: checkpoints in TF format and TensorBoard scalars.

The custom loop drives the same `keras.callbacks.CallbackList` that `fit` does (one "epoch" is one
loop of `steps_per_loop` steps), so early stopping, ReduceLROnPlateau, CSV logs, TerminateOnNaN
and these two behave the same whichever loop runs.
"""

from __future__ import annotations

import math
import os

import keras
import tensorflow as tf
from absl import logging


class CheckpointManagerCallback(keras.callbacks.Callback):
    """After every loop, sets the global step to (loops done) x steps_per_loop and saves a checkpoint.

    TF checkpoints are written to temporary files and the `checkpoint` index is updated last, so a
    run killed mid-save (even with SIGKILL) resumes from the previous complete checkpoint. A loop
    that ended with a non-finite loss is not saved.
    """

    def __init__(self, manager: tf.train.CheckpointManager, step: tf.Variable, steps_per_loop: int):
        super().__init__()
        self.manager = manager
        self.step = step
        self.steps_per_loop = steps_per_loop

    def on_epoch_end(self, epoch, logs=None):
        step = (epoch + 1) * self.steps_per_loop
        loss = (logs or {}).get("loss", 0.0)
        if not math.isfinite(loss):
            logging.warning("Not saving a checkpoint at step %d: the loss is %s.", step, loss)
            return
        self.step.assign(step)
        self.manager.save(checkpoint_number=step)


class ScalarSummaries(keras.callbacks.Callback):
    """Writes the loop's logs to TensorBoard: `<dir>/train` and `<dir>/eval`, keyed by global step."""

    def __init__(self, log_dir: str, steps_per_loop: int):
        super().__init__()
        self.steps_per_loop = steps_per_loop
        self.writers = {
            "train": tf.summary.create_file_writer(os.path.join(log_dir, "train")),
            "eval": tf.summary.create_file_writer(os.path.join(log_dir, "eval")),
        }

    def on_epoch_end(self, epoch, logs=None):
        step = (epoch + 1) * self.steps_per_loop
        for key, value in (logs or {}).items():
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
