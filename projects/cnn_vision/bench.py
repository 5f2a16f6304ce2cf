"""Throughput of cnn_vision, each figure beside the plain tutorial baseline measured in the same run.

    python -m projects.cnn_vision.bench [--gin_file=projects/cnn_vision/configs/default.gin]

Baseline ("tutorial"): the same model compiled with defaults and trained with `model.fit(x, y)` on
in-memory NumPy arrays (batch size 32, no XLA); inference with `model.predict(x)`. Ours: the
configured TFRecord pipeline and trainer (both loops), and the exported SavedModel. Examples/second
are measured in steady state, after the first (tracing) steps, as the median over windows of
`steps_per_execution` steps: these shared 2-core hosts have bursts at half speed, and the
median keeps one burst from deciding a ratio.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from core import bench, export, runtime, trainer
from core import config as core_config

from . import data
from .export import serving_signatures
from .task import ImageClassificationTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

flags.DEFINE_integer("bench_steps", 200, "Timed training steps per measurement (at the configured batch size).")
flags.DEFINE_bool("with_bfloat16", False, "Also time mixed_bfloat16 (slow on most CPUs without AMX).")
FLAGS = flags.FLAGS


def bench_baseline_fit(task: ImageClassificationTask, x: np.ndarray, y: np.ndarray) -> float:
    model = task.build_model()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return bench.bench_fit_arrays(model, x, y, batch_size=32, window_steps=128)  # 4,096 examples a window


def bench_pipeline(task: ImageClassificationTask, batches: int) -> float:
    """Examples per second of the training input pipeline alone (what training reads from)."""
    return bench.pipeline_rate(task.build_inputs("train"), task.batch_size, batches)


def bench_inference(task: ImageClassificationTask, x: np.ndarray) -> tuple[float, float]:
    model = task.build_model()
    model.predict(x[:64], verbose=0)
    baseline = bench.median_rate(lambda: model.predict(x, verbose=0), len(x))
    with tempfile.TemporaryDirectory() as tmp:
        path = export.export_saved_model(model, tmp, serving_signatures(model, task.image_shape, task.class_names))
        serve = tf.saved_model.load(path).signatures["serving_default"]
        images = tf.constant(x.astype(np.uint8))
        batch = 256
        serve(images=images[:batch])

        def serve_all():
            for i in range(0, len(x), batch):
                serve(images=images[i:i + batch])

        ours = bench.median_rate(serve_all, len(x))
    return ours, baseline


def main(argv: list[str]) -> None:
    if not FLAGS.gin_file:
        FLAGS.gin_file = [os.path.join(os.path.dirname(__file__), "configs", "default.gin")]
    FLAGS.model_dir = FLAGS.model_dir or tempfile.mkdtemp()
    options = runtime.setup()
    task = ImageClassificationTask()
    spe = trainer.TrainConfig().steps_per_execution
    images, labels = next(iter(data.make_dataset(task.data_dir, "train", 16384, training=False)))
    x, y = images.numpy(), labels.numpy()
    print(f"cnn_vision bench: model={task.model_fn.__name__}, batch={task.batch_size}, "
          f"steps_per_execution={spe}, {FLAGS.bench_steps} timed steps, tf {tf.__version__}, "
          f"{os.cpu_count()} CPUs")
    baseline = bench_baseline_fit(task, x, y)
    rows = [("train: tutorial model.fit(numpy, batch 32)", baseline, baseline)]
    for label, loop, overrides in (
        ("train: ours, fit over TFRecord pipeline", "fit", {}),
        ("train: ours, custom GradientTape loop", "custom", {}),
        ("train: ours, fit + XLA (--jit_compile)", "fit", {"jit_compile": True}),
        *([("train: ours, fit + mixed_bfloat16", "fit", {"mixed_precision": "mixed_bfloat16"})]
          if FLAGS.with_bfloat16 else []),
    ):
        keras.mixed_precision.set_global_policy(overrides.get("mixed_precision", "float32"))
        run_options = dataclasses.replace(options, **overrides)
        rows.append((label, bench.bench_trainer(task, loop, FLAGS.bench_steps, run_options, spe, task.batch_size),
                     baseline))
    keras.mixed_precision.set_global_policy("float32")
    best_training = max(r[1] for r in rows[1:])
    rows.append(("input pipeline alone (vs our fastest training)", bench_pipeline(task, 500), best_training))
    ours, base = bench_inference(task, x)
    rows.append(("inference: tutorial model.predict(numpy)", base, base))
    rows.append(("inference: exported SavedModel, batch 256", ours, base))
    bench.print_table(rows)


if __name__ == "__main__":
    runtime.run(main)
