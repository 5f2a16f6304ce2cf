"""Where checkpoints live and how they are restored: loudly, when they do not fit the model."""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from core.config import ConfigError


def checkpoint_dir(model_dir: str) -> str:
    """The folder of a run's TF checkpoints."""
    return os.path.join(model_dir, "checkpoints")


def restore(checkpoint: tf.train.Checkpoint, path: str, partial: bool = False) -> None:
    """Restores `path` into `checkpoint`; raises ConfigError if its objects or shapes do not match.

    Without the check TensorFlow restores what it can and leaves the rest at its initial values:
    a model built from a different config would be evaluated or exported half-trained, silently.
    `partial=True` allows the checkpoint to hold more than `checkpoint` (e.g. the optimizer).
    """
    try:
        status = checkpoint.restore(path)
        status.assert_existing_objects_matched()
        if partial:
            status.expect_partial()
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
        raise ConfigError(
            f"checkpoint {path} does not match the model built from the current configuration: "
            f"{str(e).splitlines()[0]} Use the config it was trained with (its model dir's "
            "operative_config.gin, same --mixed_precision) or a new --model_dir."
        ) from e


def restore_model(model: keras.Model, model_dir: str, path: str | None = None) -> str:
    """Restores the model's weights from `path` or the newest checkpoint in model_dir; returns the path."""
    path = path or tf.train.latest_checkpoint(checkpoint_dir(model_dir))
    if path is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(model_dir)}: train first with the same --model_dir.")
    restore(tf.train.Checkpoint(model=model), path, partial=True)
    return path
