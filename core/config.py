"""Run-level flags shared by every binary, gin parsing, and the record of what a run used.

Every `train`, `evaluate` and `export` binary imports this module, so the flags below exist in all
of them. Run-level choices (where to write, which strategy, seeds) are flags; model and data
hyperparameters are gin bindings. After a run, `save_run_config` writes the operative gin config
and the flags into the model dir so the run can be repeated exactly.
"""

from __future__ import annotations

import dataclasses
import os
import re

import gin
from absl import flags, logging

from core.files import write_text_atomic

FLAGS = flags.FLAGS

flags.DEFINE_multi_string("gin_file", [], "Gin config file(s), applied in order.")
flags.DEFINE_multi_string(
    "gin_bindings", [], "Gin bindings applied after the files, e.g. 'TrainConfig.train_steps=2000'."
)
flags.DEFINE_string("model_dir", None, "Where checkpoints, summaries, configs and exports are written.")
STRATEGIES = ("default", "one_device", "mirrored", "multi_worker_mirrored", "parameter_server", "tpu")
flags.DEFINE_enum("strategy", "default", list(STRATEGIES), "tf.distribute strategy to run under.")
flags.DEFINE_integer(
    "num_cpu_devices", 0, "If > 0, split the CPU into this many logical devices (mirrored on CPU)."
)
flags.DEFINE_string("tpu", "", "TPU name or address, for --strategy=tpu.")
flags.DEFINE_integer("seed", 42, "Seed for Python, NumPy, TensorFlow and the input pipeline.")
flags.DEFINE_bool("deterministic", False, "Make TF ops and tf.data deterministic (slower).")
flags.DEFINE_enum(
    "mixed_precision",
    "float32",
    ["float32", "mixed_bfloat16", "mixed_float16"],
    "Keras dtype policy: compute in 16 bits, keep variables in float32.",
)
flags.DEFINE_bool("jit_compile", False, "Compile the train step with XLA.")


class UserError(ValueError):
    """Something the user can fix (a flag, a config, a data file); binaries print it without a traceback."""


class ConfigError(UserError):
    """A gin file, binding or flag is wrong; the message names which one and why."""


def error_summary(error: BaseException) -> str:
    """The first line of an exception's message (TensorFlow's run to many), or its type without one."""
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return message.splitlines()[0]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """The run-level flags, as one value passed to the trainer instead of reading FLAGS deep inside."""

    model_dir: str
    strategy: str = "default"
    num_cpu_devices: int = 0
    tpu: str = ""
    seed: int = 42
    deterministic: bool = False
    mixed_precision: str = "float32"
    jit_compile: bool = False

    @classmethod
    def from_flags(cls) -> RunOptions:
        """Builds the options from the parsed absl flags; --model_dir is required."""
        if not FLAGS.model_dir:
            raise ConfigError("--model_dir is required: the folder where this run writes its outputs.")
        return cls(
            model_dir=FLAGS.model_dir,
            strategy=FLAGS.strategy,
            num_cpu_devices=FLAGS.num_cpu_devices,
            tpu=FLAGS.tpu,
            seed=FLAGS.seed,
            deterministic=FLAGS.deterministic,
            mixed_precision=FLAGS.mixed_precision,
            jit_compile=FLAGS.jit_compile,
        )


def parse_gin(gin_files: list[str], gin_bindings: list[str]) -> None:
    """Parses gin files then bindings; raises ConfigError naming the file (and line) that is wrong.

    The folder of each file is added to gin's search path, so `include 'default.gin'` inside a
    config resolves next to it; that keeps configs working after a project folder is copied.
    """
    gin.clear_config()
    # gin keeps search paths across clear_config() and tries them oldest first, so a second parse
    # in one process (tests, notebooks) could pick up an earlier config's `base.gin`. gin has no
    # public reset; its list is module state, restored here to its initial value.
    gin.config._LOCATION_PREFIXES[:] = [""]
    for path in gin_files:
        if not os.path.isfile(path):
            raise ConfigError(f"--gin_file={path}: no such file.")
        _add_search_paths(path)
    for path in gin_files:
        try:
            gin.parse_config_file(path)
        except Exception as e:  # gin raises ValueError, TokenError, SyntaxError, ImportError, ...
            raise ConfigError(f"gin file {path}: {e}") from e
    for binding in gin_bindings:
        try:
            gin.parse_config(binding)
        except Exception as e:
            hint = " (string values need quotes: --gin_bindings=\"X.y='text'\")" if "malformed node" in str(e) else ""
            raise ConfigError(f"--gin_bindings={binding!r}: {e}{hint}") from e
    gin.finalize()


_INCLUDE = re.compile(r"""^\s*include\s+['"](.+?)['"]""", re.MULTILINE)


def _add_search_paths(path: str, seen: set[str] | None = None) -> None:
    """Adds the folder of `path` and of every file it includes (recursively) to gin's search path.

    Gin resolves `include 'x.gin'` against its search path, not against the including file;
    adding each file's folder makes includes relative to the file that names them.
    """
    seen = set() if seen is None else seen
    path = os.path.abspath(path)
    if path in seen or not os.path.isfile(path):
        return
    seen.add(path)
    folder = os.path.dirname(path)
    gin.add_config_file_search_path(folder)
    with open(path) as f:
        for included in _INCLUDE.findall(f.read()):
            _add_search_paths(os.path.join(folder, included), seen)


def save_run_config(model_dir: str, name: str = "operative_config.gin") -> None:
    """Writes the gin values this run actually used, and the flags it ran with, into model_dir."""
    write_text_atomic(os.path.join(model_dir, name), gin.operative_config_str())
    write_text_atomic(os.path.join(model_dir, "flags.txt"), FLAGS.flags_into_string())
    logging.info("Wrote %s and flags.txt to %s", name, model_dir)
