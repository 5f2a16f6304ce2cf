"""Throughput and time to accuracy of cnn_vision, each figure beside the tutorial baseline measured in the same run.

    python -m projects.cnn_vision.bench [--gin_file=projects/cnn_vision/configs/default.gin]
        [--bench_parts=throughput,race] [--race_seeds=3]

Baseline ("tutorial"): the same model compiled with defaults and trained with `model.fit(x, y)` on
in-memory NumPy arrays (batch size 32, no XLA); inference with `model.predict(x)`. Ours: the
configured TFRecord pipeline and trainer (both loops), and the exported SavedModel. Examples/second
are measured in steady state, after the first (tracing) steps, as the median over windows of
`steps_per_execution` steps: these shared 2-core hosts have bursts at half speed, and the
median keeps one burst from deciding a ratio.

The race: training seconds from the start of training until validation accuracy first reaches
each of `--race_targets`, for the keras-io "simple MNIST convnet" recipe (its model, Adam, batch
128, 15 epochs of `model.fit` on arrays scaled to [0, 1]) and for the configured Task trained by
core's trainer, both on the prepared train split and probed on the validation split every
`--race_probe_examples` training examples (probes are off the clock; see `core.bench.TimeToAccuracy`).
Each side runs once per seed; the table shows the median over seeds and every seed's times.
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
from .baseline import simple_convnet
from .export import portable_files, serving_signatures
from .task import ImageClassificationTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

flags.DEFINE_integer("bench_steps", 200, "Timed training steps per measurement (at the configured batch size).")
flags.DEFINE_bool("with_bfloat16", False, "Also time mixed_bfloat16 (slow on most CPUs without AMX).")
flags.DEFINE_list("bench_parts", ["throughput", "race"], "Which parts to run: throughput, race.")
flags.DEFINE_integer("race_seeds", 3, "Seeds (0, 1, ...) each side of the race runs with.")
flags.DEFINE_list("race_targets", ["0.90", "0.92"], "Validation accuracies the race times.")
flags.DEFINE_integer("race_probe_examples", 8192, "Training examples between two validation probes.")
flags.DEFINE_integer("race_tutorial_epochs", 15, "Epochs of the tutorial recipe (keras-io trains 15).")
FLAGS = flags.FLAGS


def bench_baseline_fit(task: ImageClassificationTask, x: np.ndarray, y: np.ndarray) -> float:
    model = task.build_model()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return bench.bench_fit_arrays(model, x, y, batch_size=32, window_steps=128)  # 4,096 examples a window


def bench_pipeline(task: ImageClassificationTask, batches: int) -> float:
    """Examples per second of the training input pipeline alone (what training reads from)."""
    return bench.pipeline_rate(task.build_inputs("train"), task.batch_size, batches)


def bench_inference(task: ImageClassificationTask, x: np.ndarray) -> dict[str, float]:
    """Images/s of the tutorial's model.predict, and of the export's SavedModel, ONNX and LiteRT files in batches
    of 256 (what `export` writes, run by TF, ONNX Runtime and the LiteRT interpreter)."""
    model = task.build_model()
    model.predict(x[:64], verbose=0)
    rates = {"predict": bench.median_rate(lambda: model.predict(x, verbose=0), len(x))}
    batch = 256
    with tempfile.TemporaryDirectory() as tmp:
        path = export.export_saved_model(model, tmp, serving_signatures(model, task.image_shape, task.class_names),
                                         extras=portable_files(model, task.image_shape, onnx=True, litert=True))
        serve = tf.saved_model.load(path).signatures["serving_default"]
        images = tf.constant(x.astype(np.uint8))
        pixels = x.astype(np.float32)
        onnx = export.onnx_runner(os.path.join(path, export.ONNX_FILE))
        litert = export.litert_runner(os.path.join(path, export.LITERT_FILE))
        runners = {"saved_model": lambda i: serve(images=images[i:i + batch]),
                   "onnx": lambda i: onnx(pixels[i:i + batch]), "litert": lambda i: litert(pixels[i:i + batch])}
        for name, run in runners.items():
            run(0)  # trace, allocate

            def all_batches(run=run):
                for i in range(0, len(x) - len(x) % batch, batch):  # whole batches: no resize in the timing
                    run(i)

            rates[name] = bench.median_rate(all_batches, len(x) - len(x) % batch)
    return rates


def race_tutorial(task: ImageClassificationTask, seed: int, train, validation) -> bench.TimeToAccuracy:
    """One run of the recipe: `model.fit` on arrays in [0, 1], batch 128, Adam's defaults."""
    keras.utils.set_random_seed(seed)
    (x, y), (x_val, y_val) = train, validation
    model = simple_convnet(task.image_shape, len(task.class_names))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    clock = bench.TimeToAccuracy(x_val / 255.0, y_val, race_targets(), 128, FLAGS.race_probe_examples)
    model.fit(x / 255.0, y, batch_size=128, epochs=FLAGS.race_tutorial_epochs, callbacks=[clock], verbose=0)
    return clock


def race_ours(task: ImageClassificationTask, seed: int, options, validation) -> bench.TimeToAccuracy:
    """One run of the configured Task and TrainConfig with core's trainer, from a fresh model dir."""
    keras.utils.set_random_seed(seed)
    x_val, y_val = validation
    clock = bench.TimeToAccuracy(x_val, y_val, race_targets(), task.batch_size, FLAGS.race_probe_examples)
    with tempfile.TemporaryDirectory() as model_dir:
        trainer.train(task, options=dataclasses.replace(options, model_dir=model_dir, seed=seed),
                      config=trainer.TrainConfig(), callbacks=(clock,))
    return clock


def race_targets() -> list[float]:
    try:
        return sorted(float(t) for t in FLAGS.race_targets)
    except ValueError:
        raise core_config.ConfigError(f"--race_targets={','.join(FLAGS.race_targets)}: expected accuracies "
                                      "such as 0.90,0.92.") from None


def run_race(task: ImageClassificationTask, options) -> None:
    train = [a.numpy() for a in next(iter(data.make_dataset(task.data_dir, "train", 10**6, training=False)))]
    validation = [a.numpy() for a in next(iter(data.make_dataset(task.data_dir, "validation", 10**6,
                                                                 training=False)))]
    tutorial = "tutorial: keras-io simple convnet"
    ours = f"ours: {', '.join(os.path.basename(f) for f in FLAGS.gin_file)}"
    results = {tutorial: [], ours: []}
    for seed in range(FLAGS.race_seeds):
        print(f"race, seed {seed}: {tutorial} ...", flush=True)
        results[tutorial].append(race_tutorial(task, seed, train, validation))
        print(f"race, seed {seed}: {ours} ...", flush=True)
        results[ours].append(race_ours(task, seed, options, validation))
    bench.print_race(results, tutorial, race_targets())


def run_throughput(task: ImageClassificationTask, options) -> None:
    """Steady-state examples/s of our loops, the input pipeline and the export, beside the tutorial's."""
    spe = trainer.TrainConfig().steps_per_execution
    images, labels = next(iter(data.make_dataset(task.data_dir, "train", 16384, training=False)))
    x, y = images.numpy(), labels.numpy()
    print(f"cnn_vision bench: model={task.model_fn.__name__}, batch={task.batch_size}, "
          f"steps_per_execution={spe}, {FLAGS.bench_steps} timed steps, tf {tf.__version__}, "
          f"{os.cpu_count()} CPUs")
    baseline = bench_baseline_fit(task, x, y)
    rows = bench.Rows("examples/s", [("train: tutorial model.fit(numpy, batch 32)", baseline, baseline)])
    for label, loop, overrides in (
        ("train: ours, fit over TFRecord pipeline", "fit", {}),
        ("train: ours, custom GradientTape loop", "custom", {}),
        ("train: ours, fit + XLA (--jit_compile)", "fit", {"jit_compile": True}),
        *([("train: ours, fit + mixed_bfloat16", "fit", {"mixed_precision": "mixed_bfloat16"})]
          if FLAGS.with_bfloat16 else []),
    ):
        run_options = dataclasses.replace(options, **overrides)
        rows.append((label, bench.bench_trainer(task, loop, FLAGS.bench_steps, run_options, spe, task.batch_size),
                     baseline))
    best_training = max(r[1] for r in rows[1:])
    rows.append(("input pipeline alone (vs our fastest training)", bench_pipeline(task, 500), best_training))
    rates = bench_inference(task, x)
    base = rates["predict"]
    rows.append(("inference: tutorial model.predict(numpy)", base, base))
    rows.append(("inference: exported SavedModel, batch 256", rates["saved_model"], base))
    rows.append(("inference: exported model.onnx in ONNX Runtime, batch 256", rates["onnx"], base))
    rows.append(("inference: exported model.tflite in LiteRT, batch 256", rates["litert"], base))
    bench.print_table(rows)


def main(argv: list[str]) -> None:
    if not FLAGS.gin_file:
        FLAGS.gin_file = [os.path.join(os.path.dirname(__file__), "configs", "default.gin")]
    FLAGS.model_dir = FLAGS.model_dir or tempfile.mkdtemp()
    options = runtime.setup()
    task = ImageClassificationTask()
    unknown = set(FLAGS.bench_parts) - {"throughput", "race"}
    if unknown:
        raise core_config.ConfigError(f"--bench_parts: unknown {sorted(unknown)}; expected throughput and/or race.")
    race_targets()  # a bad --race_targets fails before the throughput part runs
    if "throughput" in FLAGS.bench_parts:
        run_throughput(task, options)
    if "race" in FLAGS.bench_parts:
        run_race(task, options)


if __name__ == "__main__":
    runtime.run(main)
