"""Where checkpoints live and how they are restored: loudly, when they do not fit the model."""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from core.config import ConfigError


def checkpoint_dir(model_dir: str) -> str:
    """The folder of a run's TF checkpoints."""
    return os.path.join(model_dir, "checkpoints")


def check_tracked(checkpoint: tf.train.Checkpoint, model: keras.Model) -> None:
    """Raises ValueError if some of the model's weights are not reachable from `checkpoint`.

    tf.train.Checkpoint saves what it reaches through tracked attributes. Keras 3 wraps a layer list
    attribute (`self.blocks = [...]`) in a TrackedList that it does not follow (keras-team/keras#18398),
    so those layers' weights would be missing from every checkpoint and a restore would leave them at
    their initial values without an error. Assign each layer to its own attribute instead.
    """
    reachable = {id(obj) for obj in tf.train.TrackableView(checkpoint).descendants()}
    # A weight is saved when the Keras variable or the tf.Variable inside it is reachable: a SavedModel
    # wrapped by core.hub.HubLayer is tracked through the restored object, which holds the tf.Variables.
    missing = [w.path for w in model.weights if id(w) not in reachable and id(w.value) not in reachable]
    if missing:
        raise ValueError(
            f"{len(missing)} weight(s) of {model.name} would not be saved in checkpoints, e.g. "
            f"{', '.join(missing[:3])}: keep each sublayer in its own attribute, not in a list or dict "
            "(tf.train.Checkpoint does not follow Keras 3's tracked lists, keras-team/keras#18398)."
        )


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
    checkpoint = tf.train.Checkpoint(model=model)
    check_tracked(checkpoint, model)
    path = path or tf.train.latest_checkpoint(checkpoint_dir(model_dir))
    if path is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(model_dir)}: train first with the same --model_dir.")
    restore(checkpoint, path, partial=True)
    return path
