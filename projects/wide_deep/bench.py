"""Training throughput of wide_deep, each figure beside the plain tutorial baseline measured in the same run.

    python -m projects.wide_deep.bench [--gin_file=projects/wide_deep/configs/default.gin]

Baseline ("tutorial"): the same model (same preprocessing layers inside it) compiled with defaults and trained
with `model.fit(x, y)` on in-memory NumPy arrays, one per column (batch size 32, no XLA). Ours: the TFRecord
pipeline and core's trainer, with `fit` and with the custom GradientTape loop, at the configured batch size and
steps_per_execution, and with mixed_bfloat16. Rates are training rows per second in steady state (median over
windows). No XLA row: the lookups and crosses inside the model are string and hash ops that XLA cannot compile.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

import keras
import tensorflow as tf
from absl import flags

from core import bench, runtime, trainer
from core import config as core_config

from . import data
from .task import RegressionTask

flags.adopt_module_key_flags(core_config)
flags.DEFINE_integer("bench_steps", 376, "Timed training steps per measurement (at the configured batch size).")
FLAGS = flags.FLAGS


def bench_baseline_fit(task: RegressionTask, batch_size: int = 32) -> float:
    """`model.fit` on the training split as in-memory arrays, default compile (Keras's default batch is 32)."""
    features, targets = data.load_arrays(task.data_dir, "train")
    # NumPy holds strings as dtype object, which Keras will not batch; string columns go in as tf.string tensors.
    x = task.model_inputs({c: tf.constant(v[:, None]) if v.dtype == object else v[:, None]
                           for c, v in features.items()})
    model = task.build_model()
    model.compile(optimizer="adam", loss="mse")
    return bench.bench_fit_arrays(model, x, targets[task.target], batch_size=batch_size, window_steps=32)


def bench_pipeline(task: RegressionTask, batches: int) -> float:
    """Examples per second of the training input pipeline alone (what training reads from)."""
    return bench.pipeline_rate(task.build_inputs("train"), task.batch_size, batches)


def main(argv: list[str]) -> None:
    if not FLAGS.gin_file:
        FLAGS.gin_file = [os.path.join(os.path.dirname(__file__), "configs", "default.gin")]
    FLAGS.model_dir = FLAGS.model_dir or tempfile.mkdtemp()
    options = runtime.setup()
    task = RegressionTask(seed=options.seed)
    spe = trainer.TrainConfig().steps_per_execution
    print(f"wide_deep bench: model={task.model_fn.__name__}, batch={task.batch_size}, steps_per_execution={spe}, "
          f"{FLAGS.bench_steps} timed steps, tf {tf.__version__}, {os.cpu_count()} CPUs")
    baseline = bench_baseline_fit(task)
    rows = bench.Rows("rows/s", [("train: tutorial model.fit(numpy columns, batch 32)", baseline, baseline)])
    # The same at our batch size: how much of the gain is the batch, how much the pipeline and loop.
    rows.append((f"train: tutorial model.fit(numpy columns, batch {task.batch_size})",
                 bench_baseline_fit(task, task.batch_size), baseline))
    for label, loop, policy in (("train: ours, fit over TFRecord pipeline", "fit", "float32"),
                                ("train: ours, custom GradientTape loop", "custom", "float32"),
                                # For hosts where bfloat16 pays (AVX-512 bfloat16, AMX, a GPU).
                                ("train: ours, fit + mixed_bfloat16", "fit", "mixed_bfloat16")):
        keras.utils.set_random_seed(options.seed)
        run_options = dataclasses.replace(options, mixed_precision=policy)
        rows.append((label, bench.bench_trainer(task, loop, FLAGS.bench_steps, run_options, spe, task.batch_size),
                     baseline))
    rows.append(("input pipeline alone (vs our fastest training)", bench_pipeline(task, 500),
                 max(r[1] for r in rows[2:])))
    bench.print_table(rows, unit="rows/s")


if __name__ == "__main__":
    runtime.run(main)
