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
    """Saves model + optimizer (whose `iterations` is the global step) after every loop.

    TF checkpoints are written to temporary files and the `checkpoint` index is updated last, so a
    run killed mid-save (even with SIGKILL) resumes from the previous complete checkpoint.
    """

    def __init__(self, manager: tf.train.CheckpointManager, step: tf.Variable):
        super().__init__()
        self.manager = manager
        self.step = step

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss", 0.0)
        if not math.isfinite(loss):
            logging.warning("Not saving a checkpoint at step %d: the loss is %s.", int(self.step.numpy()), loss)
            return
        self.manager.save(checkpoint_number=int(self.step.numpy()))


class ScalarSummaries(keras.callbacks.Callback):
    """Writes the loop's logs to TensorBoard: `<dir>/train` and `<dir>/eval`, keyed by global step."""

    def __init__(self, log_dir: str, step: tf.Variable):
        super().__init__()
        self.step = step
        self.writers = {
            "train": tf.summary.create_file_writer(os.path.join(log_dir, "train")),
            "eval": tf.summary.create_file_writer(os.path.join(log_dir, "eval")),
        }

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.step.numpy())
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
