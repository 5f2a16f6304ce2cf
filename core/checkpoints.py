"""Where checkpoints live and how they are restored: loudly when they do not fit the model, and past
damaged ones (a truncated newest checkpoint, a lost index file) to the newest one that reads."""

from __future__ import annotations

import datetime
import glob
import json
import os
import shutil
import sys

import keras
import numpy as np
import tensorflow as tf
from absl import flags, logging

from core.config import ConfigError, UserError, error_summary

# Where checkpoint files are read and written. By default each variable's own host does it (under
# parameter servers, every server writes its variables into the model dir); `route_io_through` makes one
# task (the chief) do all of it, so only that task needs to reach the model dir.
_io_options = tf.train.CheckpointOptions()


def route_io_through(device: str | None) -> None:
    """Reads and writes this process's checkpoints on `device` (e.g. the chief's CPU); None: each variable's host."""
    global _io_options
    _io_options = tf.train.CheckpointOptions(experimental_io_device=device)


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
    # wrapped in a Keras layer (bert_similarity's HubLayer) is tracked through the restored object, which
    # holds the tf.Variables.
    missing = [w.path for w in model.weights if id(w) not in reachable and id(w.value) not in reachable]
    if missing:
        raise ValueError(
            f"{len(missing)} weight(s) of {model.name} would not be saved in checkpoints, e.g. "
            f"{', '.join(missing[:3])}: keep each sublayer in its own attribute, not in a list or dict "
            "(tf.train.Checkpoint does not follow Keras 3's tracked lists, keras-team/keras#18398)."
        )


class UnreadableCheckpoint(UserError):
    """A checkpoint's files are truncated, corrupt or missing; the message names the file."""


def _is_damage(error: BaseException) -> bool:
    """True for what TensorFlow raises on a checkpoint whose files are damaged.

    A truncated data file gives IndexError ("Read less bytes than requested"), a truncated index a bare
    OpError ("not an sstable"), bad bytes DataLossError, a missing data file NotFoundError. A checkpoint
    that does not fit the model (ValueError, InvalidArgumentError), or an error of the machine rather than
    the file (out of memory, a filesystem that is unavailable or denies access), is no damage: skipping
    past an intact checkpoint for such a reason would throw its training away.
    """
    damage = (IndexError, tf.errors.DataLossError, tf.errors.NotFoundError, tf.errors.OutOfRangeError)
    return isinstance(error, damage) or type(error) is tf.errors.OpError


def _step(path: str) -> int:
    """The step in a checkpoint prefix `.../ckpt-<step>`."""
    tail = path.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def find_checkpoints(model_dir: str) -> list[str]:
    """Every checkpoint of model_dir, newest (highest step) first: from the files themselves and the index.

    The `checkpoint` index file is only a list: when it is lost or out of date, the `ckpt-<step>.index`
    files still say which checkpoints exist, so a restart never mistakes a trained run for a new one.
    """
    directory = checkpoint_dir(model_dir)
    found = {os.path.normpath(path[: -len(".index")])
             for path in glob.glob(os.path.join(directory, "ckpt-*.index"))}
    state = _read_index(model_dir)
    if state is not None:
        # Listed but without files: reported unreadable when tried. get_checkpoint_state has already put the
        # folder in front of the index's relative names (joining it again broke relative model dirs).
        found.update(os.path.normpath(path) for path in state.all_model_checkpoint_paths)
    return sorted((p for p in found if _step(p) >= 0), key=_step, reverse=True)


def _read_index(model_dir: str):
    """The `checkpoint` index (a CheckpointState), or None when it is missing or damaged."""
    try:
        return tf.train.get_checkpoint_state(checkpoint_dir(model_dir))
    except (tf.errors.OpError, ValueError):  # a damaged index: the checkpoint files are the truth
        return None


def _has_entry(path: str, name: str) -> bool:
    """True if the checkpoint at `path` holds values of the root object `name` (e.g. "seeds")."""
    return any(key.startswith(f"{name}/") for key, _ in tf.train.list_variables(path))


def restore(checkpoint: tf.train.Checkpoint, path: str, partial: bool = False) -> None:
    """Restores `path` into `checkpoint`; raises ConfigError if its objects or shapes do not match.

    Without the check TensorFlow restores what it can and leaves the rest at its initial values:
    a model built from a different config would be evaluated or exported half-trained, silently.
    `partial=True` allows the checkpoint to hold more than `checkpoint` (e.g. the optimizer).
    Raises UnreadableCheckpoint, naming the file, when the checkpoint's files are damaged.
    """
    try:
        if getattr(checkpoint, "seeds", None) and not _has_entry(path, "seeds"):
            # Saved before checkpoints held the layers' seed states: restore the rest, strictly.
            logging.warning("%s holds no random-seed states; dropout masks restart from the run's seed.", path)
            checkpoint = tf.train.Checkpoint(model=checkpoint.model, optimizer=checkpoint.optimizer,
                                             step=checkpoint.step)
        status = checkpoint.restore(path, options=_io_options)
        status.assert_existing_objects_matched()
        if partial:
            status.expect_partial()
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
        raise ConfigError(
            f"checkpoint {path} does not match the model built from the current configuration: "
            f"{error_summary(e)} Use the config it was trained with (its model dir's "
            "operative_config.gin, same --mixed_precision) or a new --model_dir."
        ) from e
    except Exception as e:
        if not _is_damage(e):
            raise
        raise UnreadableCheckpoint(f"checkpoint {path} cannot be read ({error_summary(e)})") from e


def restore_newest(
    checkpoint: tf.train.Checkpoint, model_dir: str, partial: bool = False
) -> tuple[str | None, list[tuple[str, str]]]:
    """Restores the newest checkpoint of model_dir that reads; returns its path and the (path, why) skipped.

    Returns (None, []) when model_dir has no checkpoint. Raises UnreadableCheckpoint when there are
    checkpoints but none reads, and ConfigError when one reads but does not fit the model (an older
    one would not fit either, and training from it would throw away what the newer one holds).
    """
    skipped = []
    for path in find_checkpoints(model_dir):
        try:
            restore(checkpoint, path, partial)
        except UnreadableCheckpoint as e:
            skipped.append((path, str(e)))
            continue
        return path, skipped
    if skipped:
        raise UnreadableCheckpoint(
            f"none of the {len(skipped)} checkpoint(s) in {checkpoint_dir(model_dir)} can be read: "
            + "; ".join(why for _, why in skipped)
            + ". Move them away to train from scratch, or use another --model_dir."
        )
    return None, []


def set_aside(path: str) -> str | None:
    """Moves an unreadable checkpoint's files into their own folder under `checkpoints/unreadable/`.

    Then no later save of that step overwrites them, and one set aside before is never overwritten
    either. Returns the folder, or None when the checkpoint had no files (listed only in the index).
    """
    found = glob.glob(glob.escape(path) + ".*")
    if not found:
        return None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = os.path.join(os.path.dirname(path), "unreadable", f"{os.path.basename(path)}-{stamp}")
    os.makedirs(folder)
    for file in found:
        os.replace(file, os.path.join(folder, os.path.basename(file)))
    return folder


def write_index(model_dir: str, newest: str) -> None:
    """Rewrites the `checkpoint` index to list the intact checkpoints up to `newest`, oldest first.

    tf.train.CheckpointManager reads this list to know which checkpoints to delete as new ones are
    kept; without it, checkpoints found only through their files would never be cleaned up.
    """
    kept = [p for p in find_checkpoints(model_dir) if _step(p) <= _step(newest) and os.path.exists(p + ".index")]
    kept.reverse()
    # The manager rotates out only checkpoints with a save time after `last_preserved_timestamp`; without
    # times it would keep the listed ones forever. The files' modification times are their save times.
    tf.compat.v1.train.update_checkpoint_state(
        checkpoint_dir(model_dir), newest, all_model_checkpoint_paths=kept,
        all_model_checkpoint_timestamps=[os.path.getmtime(p + ".index") for p in kept], last_preserved_timestamp=0.0)


def averaged_path(model_dir: str, step: int) -> str:
    """Where the trainer keeps the mean weights of the checkpoints up to `step` (TrainConfig.average_checkpoints)."""
    return os.path.join(checkpoint_dir(model_dir), f"averaged-{step}", f"ckpt-{step}")


def newest_average(model_dir: str) -> str | None:
    """The mean weights written for model_dir's newest checkpoint (TrainConfig.average_checkpoints), or None."""
    newest = find_checkpoints(model_dir)[:1]
    path = averaged_path(model_dir, _step(newest[0])) if newest else None
    return path if path and os.path.exists(path + ".index") else None


def write_average(model: keras.Model, model_dir: str, count: int) -> str:
    """Writes the mean of the model weights of model_dir's newest `count` checkpoints; returns its path.

    Averaging the weights of the last few checkpoints of a run (Vaswani et al. 2017 average the last 5 or
    20; fairseq's and tensor2tensor's `average_checkpoints` scripts) smooths the step-to-step noise of the
    final weights at no training cost. Neither Keras nor TensorFlow has it for tf.train checkpoints
    (Keras' `use_ema` optimizers keep a moving average during training instead, in every checkpoint), so it
    is written here: each checkpoint is restored into `model`, and its floating-point weights are summed
    in float64; integer weights (random-seed states) are the newest's. Leaves the mean in `model`.

    The file is written to a temporary folder and renamed, so a reader never sees half of it; averages
    of older steps are removed. Raises ConfigError when fewer than `count` checkpoints read.
    """
    paths = find_checkpoints(model_dir)[:count]
    if len(paths) < count:
        raise ConfigError(f"TrainConfig.average_checkpoints={count}, but {checkpoint_dir(model_dir)} holds "
                          f"{len(paths)} checkpoint(s); keep at least that many (TrainConfig.max_checkpoints).")
    checkpoint = tf.train.Checkpoint(model=model)
    sums = None
    for path in reversed(paths):  # oldest first, so the integer weights end as the newest's
        restore(checkpoint, path, partial=True)
        values = [np.asarray(w.numpy()) for w in model.weights]
        values = [v.astype(np.float64) if np.issubdtype(v.dtype, np.floating) else v for v in values]
        sums = values if sums is None else [
            a + b if np.issubdtype(b.dtype, np.floating) else b for a, b in zip(sums, values)]
    for weight, total in zip(model.weights, sums):
        dtype = np.asarray(weight.numpy()).dtype
        weight.assign((total / count).astype(dtype) if np.issubdtype(dtype, np.floating) else total)
    step = _step(paths[0])
    target = averaged_path(model_dir, step)
    folder = os.path.dirname(target)
    partial_folder = folder + ".partial"
    shutil.rmtree(partial_folder, ignore_errors=True)
    checkpoint.write(os.path.join(partial_folder, os.path.basename(target)), options=_io_options)
    with open(os.path.join(partial_folder, "averaged.json"), "w") as f:
        json.dump({"step": step, "checkpoints": paths}, f, indent=2)
    shutil.rmtree(folder, ignore_errors=True)  # an average of this step from before (a rerun)
    os.replace(partial_folder, folder)
    for old in glob.glob(os.path.join(checkpoint_dir(model_dir), "averaged-*")):
        if old != folder and not old.endswith(".partial"):
            shutil.rmtree(old, ignore_errors=True)
    return target


def restore_model(model: keras.Model, model_dir: str, path: str | None = None) -> str:
    """Restores the model's weights from `path`, or else from the newest readable checkpoint; returns the path.

    Where training wrote the mean weights of its last checkpoints for the newest step
    (TrainConfig.average_checkpoints), the default is that mean. A damaged newest checkpoint is skipped
    with a warning that names it, and the one before it is used.
    """
    checkpoint = tf.train.Checkpoint(model=model)
    check_tracked(checkpoint, model)
    if path is not None:
        restore(checkpoint, path, partial=True)
        return path
    path = newest_average(model_dir)
    if path is not None:
        restore(checkpoint, path, partial=True)
        return path
    path, skipped = restore_newest(checkpoint, model_dir, partial=True)
    if path is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(model_dir)}: train first with the same --model_dir.")
    for bad, why in skipped:
        print(f"warning: skipped {bad}: {why}. Using {path} instead.", file=sys.stderr)
    return path


def resume(checkpoint: tf.train.Checkpoint, model_dir: str, writer: bool = True) -> str | None:
    """Restores the newest readable checkpoint for more training; returns its path, or None for a new run.

    Damaged checkpoints newer than it are reported and, by the writer (the chief), moved into
    `checkpoints/unreadable/`, so the run's later saves of those steps cannot overwrite them; the writer
    also rebuilds a lost or stale `checkpoint` index so old checkpoints keep being rotated out.
    """
    state = _read_index(model_dir)
    indexed = os.path.basename(state.model_checkpoint_path) if state is not None else None
    path, skipped = restore_newest(checkpoint, model_dir)
    for bad, why in skipped:
        moved = set_aside(bad) if writer else None
        print(f"warning: skipped {bad}: {why}" + (f"; moved its files to {moved}" if moved else "")
              + f". Resuming from {path}.", file=sys.stderr)
    if path is not None and writer and (skipped or indexed != os.path.basename(path)):
        if not skipped:
            print(f"warning: the checkpoint index of {model_dir} is missing or does not name {path}; "
                  "rewrote it from the checkpoint files.", file=sys.stderr)
        write_index(model_dir, path)
    return path


def save(manager: tf.train.CheckpointManager, step: int) -> str:
    """Saves `ckpt-<step>`; refuses to overwrite a checkpoint of that step that this run did not write.

    Under MultiWorkerMirroredStrategy every worker takes part in a save, but only the chief's folder
    can hold another run's files (the others write a scratch folder emptied at start): were the chief
    to refuse, the others would wait for it. The model dir lock keeps other runs out in the first place.
    """
    if manager.latest_checkpoint and manager.latest_checkpoint.endswith(f"-{step}"):
        return manager.latest_checkpoint  # already saved at this step (a Ctrl-C right after a loop's save)
    path = os.path.join(manager.directory, f"ckpt-{step}")
    if tf.io.gfile.exists(path + ".index"):
        raise FileExistsError(
            f"{path} already exists but is not the checkpoint this run resumed from: refusing to overwrite it. "
            "Another run may be writing into this model dir."
        )
    return manager.save(checkpoint_number=step, options=_io_options)


def define_checkpoint_flag(verb: str) -> None:
    """--checkpoint, which `evaluate` and `export` take; `checkpoint_path` reads its value."""
    flags.DEFINE_string("checkpoint", None, f"Checkpoint to {verb}: a path, a step, or -1 (the newest), -2, ... "
                        "Default: the newest, or its TrainConfig.average_checkpoints mean.")


def checkpoint_path(model_dir: str, checkpoint: str | None) -> str | None:
    """A checkpoint of model_dir by path, step (`8151`) or position from the newest (`-1`, `-2`, ...)."""
    if not checkpoint:
        return None
    kept = list(reversed(find_checkpoints(model_dir)))  # oldest first
    if checkpoint.lstrip("-").isdigit():
        number = int(checkpoint)
        if number < 0:
            if -number > len(kept):
                raise UserError(f"--checkpoint={checkpoint}: {model_dir} keeps only {len(kept)} checkpoint(s).")
            return kept[number]
        matches = [path for path in kept if path.rsplit("-", 1)[-1] == str(number)]
        if not matches:
            steps = [path.rsplit("-", 1)[-1] for path in kept]
            raise UserError(f"--checkpoint={checkpoint}: no checkpoint of step {number} in {model_dir} "
                             f"(kept steps: {', '.join(steps) or 'none'}).")
        return matches[0]
    if not tf.io.gfile.exists(checkpoint + ".index"):
        raise UserError(f"--checkpoint={checkpoint}: no such checkpoint (expected {checkpoint}.index).")
    return checkpoint
