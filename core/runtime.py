"""Process-wide TensorFlow settings that must be made before any model or tensor exists."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable

import keras
import tensorflow as tf
from absl import app, logging

# trainer: configurables that every project's configs bind (TrainConfig), imported here, where gin is
# parsed, so that evaluate and export accept the same config files as train.
from core import distribute, trainer  # noqa: F401
from core.config import FLAGS, ConfigError, RunOptions, UserError, error_summary, parse_gin


def configure(options: RunOptions) -> None:
    """Applies devices, seeds, determinism and the dtype policy from the run options.

    Call it first in every binary: logical CPU devices can only be created before TensorFlow
    initialises its runtime, and the dtype policy only affects layers built after it is set.
    """
    if options.num_cpu_devices < 0:
        raise ConfigError(f"--num_cpu_devices={options.num_cpu_devices}: expected 0 (no split) or a count > 0.")
    if options.num_cpu_devices > 0:
        split_cpu(options.num_cpu_devices)
    keras.utils.set_random_seed(options.seed)  # seeds Python, NumPy and TensorFlow
    if options.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(options.mixed_precision)
    logging.info(
        "seed=%d deterministic=%s policy=%s jit_compile=%s",
        options.seed, options.deterministic, options.mixed_precision, options.jit_compile,
    )


def split_cpu(n: int) -> None:
    """Splits the physical CPU into n logical devices so MirroredStrategy runs n replicas on CPU."""
    cpus = tf.config.list_physical_devices("CPU")
    existing = tf.config.get_logical_device_configuration(cpus[0])
    if existing and len(existing) == n:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
        )
        # Each replica's all-reduce blocks an inter-op thread until its peers arrive; with the
        # default pool (one thread per core) N replicas on a small CPU deadlock.
        tf.config.threading.set_inter_op_parallelism_threads(max(8, 4 * n))
    except RuntimeError as e:
        raise ConfigError(
            f"--num_cpu_devices={n}: TensorFlow was already initialised, so the CPU can no longer "
            "be split; set it before any tensor is created."
        ) from e


def setup(default_gin_from_model_dir: bool = False) -> RunOptions:
    """Reads the common flags, parses gin and configures the runtime; returns the run options.

    With `default_gin_from_model_dir` (evaluate, export) and no --gin_file, the model dir's
    `operative_config.gin` is used, so the binary sees exactly the configuration training used.
    """
    options = RunOptions.from_flags()
    # A worker or parameter server of a parameter-server cluster runs the same command as the chief, and
    # only serves: it blocks here until it is stopped, before reading any config or data.
    distribute.serve_if_cluster_task(options.strategy)
    gin_files = list(FLAGS.gin_file)
    if not gin_files and default_gin_from_model_dir:
        saved = os.path.join(options.model_dir, "operative_config.gin")
        if not os.path.exists(saved):
            raise ConfigError(f"no --gin_file given and {saved} does not exist: train first, or pass --gin_file.")
        gin_files = [saved]
    parse_gin(gin_files, list(FLAGS.gin_bindings))
    configure(options)
    if options.strategy == "parameter_server":
        # The chief connects to the cluster now, before the Task builds anything: a lookup table or dataset
        # made before the connection lives on a device (/job:localhost) that no longer exists after it.
        distribute.create_strategy(options.strategy)
    return options


# A file the user can fix: missing, in the way, in a read-only folder or filesystem, or on a full disk.
# Other OSErrors (a broken pipe, a refused connection) are bugs or outages and keep their traceback.
_FILE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOENT, errno.EEXIST,
                errno.EISDIR, errno.ENOTDIR}


def _is_file_error(error: OSError) -> bool:
    return not isinstance(error, ConnectionError) and (error.errno in _FILE_ERRNOS or error.errno is None)


def run(main: Callable[[list[str]], None]) -> None:
    """`absl.app.run(main)`, but errors a user can fix end with one clear line instead of a traceback.

    A UserError (bad flag, config or data) or a file that cannot be read or written (a read-only model
    dir, a full disk) exits with code 2; Ctrl-C exits with 130, the shell's code for SIGINT, after the
    trainer has said where it stopped.
    """

    def wrapped(argv):
        try:
            main(argv)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except OSError as e:
            if not _is_file_error(e):
                raise
            print(f"error: {e.filename}: {e.strerror}" if e.filename and e.strerror else f"error: {e}",
                  file=sys.stderr)
            sys.exit(2)
        except tf.errors.PermissionDeniedError as e:  # TensorFlow's own file writes (checkpoints, summaries)
            print(f"error: {error_summary(e)}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt as e:  # the trainer's TrainingInterrupted says where it stopped
            message = str(e) or "interrupted, with nothing saved since the last checkpoint"
            print(f"{message[:1].upper()}{message[1:]}.", file=sys.stderr)
            sys.exit(130)

    app.run(wrapped)
