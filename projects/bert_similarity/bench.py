"""Fine-tuning speed and accuracy of the cross-encoder beside keras-hub's BertTextClassifier, in one run.

    python -m projects.bert_similarity.bench [--budget_seconds=600] [--skip_accuracy]

Same pretrained folder (all-MiniLM-L6-v2), same KJV/WEB training pairs, batch 32, AdamW:
  baseline  what a Keras user would write: keras_hub.models.BertTextClassifier.from_preset(folder) with its
            preprocessor (every pair packed and padded to 128), `model.fit` on the in-memory arrays, float32;
  ours      core's trainer on configs/default.gin: cached pieces, pairs padded per length bucket, float32.
            (--mixed_precision would not reach the encoder: a TF Hub SavedModel's graph keeps the dtypes
            it was saved with, so a bfloat16 encoder has to be converted as one.)
1. Training throughput, pairs/second (median over windows of 10 steps, so that each window mixes
   bucket lengths; after a tracing loop).
2. Accuracy after the same wall-clock budget of training for both (--budget_seconds each), on the
   test split, threshold 0.5 (probability of a match) for both.
3. Inference: test pairs/second through the export's serving signature (raw strings in, 64 pairs per call)
   against keras-hub's classifier predicting on preprocessed arrays; then the export behind the embedded
   server, one pair per request from 4 clients: requests/second and p50/p99 latency, beside the same
   export called in-process (no HTTP) as the reference.
Needs `make setup` (keras-hub), `convert`, `prepare` and, for part 3, an export (--export_dir).
"""

from __future__ import annotations

import os
import tempfile

import gin
import numpy as np
import tensorflow as tf
from absl import flags

from core import bench, runtime
from core import config as core_config
from core import task as task_lib

from . import keras_hub_baseline as hub
from .convert import default_hf_dir  # also defines --hf_dir: the folder keras-hub loads
from .task import SimilarityTask

flags.adopt_module_key_flags(core_config)
flags.DEFINE_integer("bench_steps", 40, "Timed training steps per throughput measurement (median of windows of 10).")
flags.DEFINE_integer("budget_seconds", 600, "Wall-clock training budget of each model in the accuracy comparison.")
flags.DEFINE_bool("skip_accuracy", False, "Skip the same-budget accuracy comparison (2 x --budget_seconds).")
flags.DEFINE_string("export_dir", "runs/bert_similarity/default/export", "Export whose inference and serving part 3 "
                    "measures (its highest version); part 3 is skipped when there is none.")
flags.DEFINE_float("serving_seconds", 20.0, "Seconds of load per serving row.")
flags.DEFINE_integer("inference_pairs", 512, "Test pairs timed in the inference comparison (64 per call).")
flags.DEFINE_integer("test_pairs", None, "Score only the first N test pairs in the accuracy comparison (default: all).")
FLAGS = flags.FLAGS

CONFIGS = os.path.join(os.path.dirname(__file__), "configs")
BATCH = hub.BATCH


def our_task() -> SimilarityTask:
    """The task of configs/default.gin."""
    gin.clear_config()
    core_config.parse_gin([os.path.join(CONFIGS, "default.gin")], [])
    return SimilarityTask()


def bench_inference(baseline, preprocessor, test_a: list[str], test_b: list[str]) -> None:
    """Part 3: export throughput against keras-hub's predict, then served latency against in-process calls."""
    if not os.path.isdir(FLAGS.export_dir):
        print(f"\nNo export at {FLAGS.export_dir}: skipping inference and serving (run export first).")
        return
    import tensorflow_text  # noqa: F401  (the export's tokenizer ops)

    from core.export import resolve_export
    from serving import loadtest, processes

    export_dir = resolve_export(FLAGS.export_dir)
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    pairs = FLAGS.inference_pairs
    a, b = tf.constant(test_a[:pairs]), tf.constant(test_b[:pairs])

    def ours():
        for i in range(0, pairs, 64):
            serve(text_a=a[i:i + 64], text_b=b[i:i + 64])

    arrays = hub.arrays(preprocessor, test_a[:pairs], test_b[:pairs])
    ours(), baseline.predict(arrays, batch_size=64, verbose=0)  # trace both first
    theirs_rate = bench.median_rate(lambda: baseline.predict(arrays, batch_size=64, verbose=0), pairs)
    ours_rate = bench.median_rate(ours, pairs)
    print(f"\nInference, {pairs} test pairs, 64 per call:")
    bench.print_table([("infer: keras-hub BertTextClassifier.predict(arrays padded to 128)", theirs_rate, theirs_rate),
                       ("infer: our export, raw strings in (tokenized in the graph)", ours_rate, theirs_rate)],
                      unit="pairs/s")
    body = {"instances": [{"text_a": test_a[0], "text_b": test_b[0]}]}
    in_process = loadtest.run_load(lambda _: (serve(text_a=a[:1], text_b=b[:1]), _Ok())[1], 4,
                                   FLAGS.serving_seconds)
    with processes.start_server("--model_name=similarity", f"--model_base_path={os.path.dirname(export_dir)}",
                                "--file_system_poll_wait_seconds=0") as server:
        url = f"{server.url}/v1/models/similarity:predict"
        served = loadtest.run_load(lambda session: session.post(url, json=body, timeout=60), 4, FLAGS.serving_seconds)
    print("\nServing one pair per request, 4 clients:")
    for name, result in (("export called in-process (reference, no HTTP)", in_process),
                         ("embedded server, TF Serving REST API", served)):
        print(f"  {name:48s} {loadtest.summary(result)}")


class _Ok:
    status_code = 200


def main(argv: list[str]) -> None:
    """Prints the throughput table, then (unless skipped) the same-budget accuracy comparison."""
    FLAGS.model_dir = FLAGS.model_dir or tempfile.mkdtemp()
    options = runtime.setup()
    hf_dir = FLAGS.hf_dir or default_hf_dir()
    task = our_task()
    train, test = hub.load_pairs(task.data_dir, "train"), hub.load_pairs(task.data_dir, "test")
    train_a, train_b, train_labels = list(train["text_a"]), list(train["text_b"]), train["label"]
    test_a, test_b = list(test["text_a"][:FLAGS.test_pairs]), list(test["text_b"][:FLAGS.test_pairs])
    test_labels = test["label"][:FLAGS.test_pairs]
    n = FLAGS.bench_steps * BATCH

    baseline, preprocessor = hub.classifier(hf_dir)
    arrays = hub.arrays(preprocessor, train_a[:n], train_b[:n])
    theirs = bench.bench_fit_arrays(baseline, arrays, train_labels[:n], batch_size=BATCH, window_steps=10)
    rows = bench.Rows("pairs/s", [("train: keras-hub BertTextClassifier, fit(arrays padded to 128)", theirs, theirs)])
    ours = bench.bench_trainer(task, "fit", FLAGS.bench_steps, options, 1, BATCH, window_steps=10)
    rows.append(("train: ours, default.gin, length buckets, float32", ours, theirs))
    print("\nFine-tuning throughput, pairs/second (same pairs, batch 32):")
    bench.print_table(rows, unit="pairs/s")

    bench_inference(baseline, preprocessor, test_a, test_b)
    if FLAGS.skip_accuracy:
        return
    budget = FLAGS.budget_seconds
    print(f"\nSame wall-clock budget, {budget} s of training each, then the {len(test_labels)} test pairs:")
    baseline, preprocessor = hub.classifier(hf_dir)
    order = np.random.default_rng(0).permutation(len(train_labels))[: max(n, int(budget * theirs * 1.5))]
    arrays = hub.arrays(preprocessor, [train_a[i] for i in order], [train_b[i] for i in order])
    steps_theirs = bench.timed_fit(baseline, budget, label="keras-hub fit", x=arrays, y=train_labels[order],
                                   batch_size=BATCH).steps
    test_arrays = hub.arrays(preprocessor, test_a, test_b)
    predicted = np.argmax(baseline.predict(test_arrays, batch_size=64, verbose=0), axis=-1)
    accuracy_theirs = float(np.mean(predicted == test_labels))

    task = our_task()
    parts = task_lib.build_components(task, tf.distribute.get_strategy(), options)
    steps_ours = bench.timed_fit(parts.model, budget, label="our fit", x=task.build_inputs("train"),
                                 steps_per_epoch=10).steps
    score = tf.function(lambda a, b: tf.sigmoid(parts.model(task.preprocessor(a, b), training=False)))
    probabilities = np.concatenate([score(tf.constant(test_a[i:i + 64]), tf.constant(test_b[i:i + 64])).numpy()
                                    for i in range(0, len(test_a), 64)])
    accuracy_ours = float(np.mean((probabilities >= 0.5) == test_labels))
    print(f"  keras-hub BertTextClassifier: {steps_theirs} steps, test accuracy {accuracy_theirs:.4f}")
    print(f"  ours (default.gin):           {steps_ours} steps, test accuracy {accuracy_ours:.4f}")


if __name__ == "__main__":
    runtime.run(main)
