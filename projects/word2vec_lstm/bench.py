"""Throughput of word2vec_lstm, each figure beside the plain tutorial baseline measured in the same run.

    python -m projects.word2vec_lstm.bench

word2vec, in training pairs per second (batch 1024 pairs + 5 negatives each, both sides):
  baseline  pairs made by a Python loop over the texts (the TF word2vec tutorial's way), then
            `model.fit` on those in-memory arrays with default settings;
  ours      pairs made in the tf.data graph while training (core's custom loop), and the pair
            pipeline alone against the Python loop.
classifier, in articles per second: `model.fit` on in-memory token-id arrays (batch 32, defaults)
against core's trainer over the TFRecord pipeline, which also tokenizes; inference: `model.predict`
on token ids against the exported SavedModel on raw strings (it tokenizes too).
"""

from __future__ import annotations

import dataclasses
import os
import random
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from core import bench, export, runtime
from core import config as core_config

from . import data
from . import text as text_lib
from .export import serving_signatures
from .task import TextClassificationTask, Word2VecTask, corpus_texts

flags.adopt_module_key_flags(core_config)
flags.DEFINE_integer("bench_steps", 200, "Timed steps per training measurement.")
FLAGS = flags.FLAGS

CONFIGS = os.path.join(os.path.dirname(__file__), "configs")


def python_pairs(texts: list[str], task: Word2VecTask, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tutorial-style pair generation: Python loops over token lists, NumPy negatives; up to `limit` pairs."""
    index = {w: i for i, (w, _) in enumerate(task.vocabulary)}
    keep = task.pairs.keep.numpy()
    table = task.pairs.negatives.numpy()
    window, k = task.pairs.window, task.pairs.num_negatives
    rng = random.Random(0)
    centers, contexts = [], []
    for tokens in text_lib.tokenize(tf.constant(texts)).to_list():
        ids = [index[t.decode()] for t in tokens if t.decode() in index]
        ids = [i for i in ids if rng.random() < keep[i]]
        for position, center in enumerate(ids):
            reach = rng.randint(1, window)
            for other in range(max(0, position - reach), min(len(ids), position + reach + 1)):
                if other != position:
                    centers.append(center)
                    contexts.append(ids[other])
        if len(centers) >= limit:
            break
    centers, contexts = np.array(centers[:limit]), np.array(contexts[:limit])
    negatives = table[np.random.default_rng(0).integers(0, len(table), size=(len(centers), k))]
    candidates = np.concatenate([contexts[:, None], negatives], axis=1)
    labels = np.zeros(candidates.shape, np.float32)
    labels[:, 0] = 1.0
    return centers, candidates, labels


def bench_word2vec(options) -> list[tuple[str, float, float]]:
    task = Word2VecTask()
    texts = [t.decode() for t in corpus_texts(task.corpus).take(400).as_numpy_iterator()]
    start = time.perf_counter()
    centers, candidates, labels = python_pairs(texts, task, limit=300_000)
    python_rate = len(centers) / (time.perf_counter() - start)

    model = task.build_model()
    model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    fit_rate = bench.bench_fit_arrays(model, [centers, candidates], labels, task.batch_size, window_steps=20)

    iterator = iter(task.build_inputs("train"))
    next(iterator)

    def read(batches=100):
        for _ in range(batches):
            next(iterator)

    pipeline_rate = bench.median_rate(read, 100 * task.batch_size, repeats=5)
    ours = bench.bench_trainer(task, "custom", FLAGS.bench_steps, options, spe=50, batch_size=task.batch_size)
    xla = bench.bench_trainer(task, "custom", FLAGS.bench_steps, dataclasses.replace(options, jit_compile=True),
                              spe=50, batch_size=task.batch_size)
    return [
        ("word2vec train: tutorial Python pairs + model.fit(numpy)", fit_rate, fit_rate),
        ("word2vec train: ours, in-graph pairs + custom loop", ours, fit_rate),
        ("word2vec train: ours, custom loop + XLA", xla, fit_rate),
        ("word2vec pairs: tutorial Python loop", python_rate, python_rate),
        ("word2vec pairs: ours, tf.data pipeline alone", pipeline_rate, python_rate),
    ]


def bench_classifier(options) -> list[tuple[str, float, float]]:
    task = TextClassificationTask(pretrained="none")
    ids, labels = next(iter(data.make_dataset(task.data_dir, "train", 10_000, task.encoder, training=False)))
    x, y = ids.numpy(), labels.numpy()
    baseline_model = task.build_model()
    baseline_model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                           metrics=["accuracy"])
    baseline = bench.bench_fit_arrays(baseline_model, x, y, batch_size=32, window_steps=8)
    rows = [("classifier train: tutorial model.fit(numpy ids, batch 32)", baseline, baseline)]
    for loop, jit in (("fit", False), ("custom", False), ("fit", True)):
        rate = bench.bench_trainer(task, loop, 48, dataclasses.replace(options, jit_compile=jit), spe=16,
                                   batch_size=task.batch_size)
        rows.append((f"classifier train: ours, {loop}{' + XLA' if jit else ''} over TFRecords (tokenizing)", rate,
                     baseline))

    model = task.build_model()
    model.predict(x[:64], verbose=0)
    predict_rate = bench.median_rate(lambda: model.predict(x, verbose=0), len(x))
    texts, _ = next(iter(data.make_dataset(task.data_dir, "train", 10_000, None, training=False)))
    with tempfile.TemporaryDirectory() as tmp:
        path = export.export_saved_model(model, tmp, serving_signatures(model, task.encoder, task.class_names),
                                         track=(task.encoder,))
        serve = tf.saved_model.load(path).signatures["serving_default"]
        serve(text=texts[:8])

        def serve_all(batch=128):
            for i in range(0, len(texts), batch):
                serve(text=texts[i:i + batch])

        served_rate = bench.median_rate(serve_all, len(texts))
    rows.append(("classifier inference: tutorial model.predict(numpy ids)", predict_rate, predict_rate))
    rows.append(("classifier inference: SavedModel on raw text, batch 128", served_rate, predict_rate))
    return rows


def main(argv: list[str]) -> None:
    FLAGS.model_dir = FLAGS.model_dir or tempfile.mkdtemp()
    word2vec_gin, default_gin = os.path.join(CONFIGS, "word2vec.gin"), os.path.join(CONFIGS, "default.gin")
    FLAGS.gin_file = FLAGS.gin_file or [word2vec_gin, default_gin]
    options = runtime.setup()
    print(f"word2vec_lstm bench: tf {tf.__version__}, {os.cpu_count()} CPUs, {FLAGS.bench_steps} timed word2vec steps")
    word2vec_rows = bench_word2vec(options)
    bench.print_table(word2vec_rows, unit="pairs/s")
    print()
    bench.print_table(bench_classifier(options), unit="articles/s")


if __name__ == "__main__":
    runtime.run(main)
