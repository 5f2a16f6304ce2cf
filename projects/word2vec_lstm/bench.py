"""Throughput of word2vec_lstm, each figure beside its baseline measured in the same run: gensim for word2vec,
the plain tutorial way for the classifier.

    python -m projects.word2vec_lstm.bench

word2vec, in effective words per second (words trained on after min_count and subsampling, gensim's
measure) over whole trainings of the same passes on the same tokens, against gensim 4.4 (skip-gram,
negative sampling, `workers` = CPUs, the same min_count, window, negatives, sample, dim, rate):
  gensim    `Word2Vec.train` (word2vec.c's per-pair SGD in Cython, threads without locks);
  ours      `train_word2vec`'s training (core's custom loop, pairs made in the train step), with and
            without XLA; and the TF tutorial's way: pairs by a Python loop, `model.fit` on the arrays.
Beside speed, both models' vectors on WordSim-353, SimLex-999 and the Google analogies (mean, std and
worst over seeds), and the classifier's test accuracy started from each.
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

from core import bench, checkpoints, evaluation, export, runtime, trainer
from core import config as core_config

from . import data, quality, vectors
from . import text as text_lib
from . import word2vec as w2v
from .export import serving_signatures
from .task import TextClassificationTask
from .word2vec_task import Word2VecTask, corpus_texts

flags.adopt_module_key_flags(core_config)
flags.DEFINE_integer("bench_epochs", 5, "Passes over the corpus per word2vec training (gensim's epochs).")
flags.DEFINE_integer("bench_seeds", 3, "word2vec trainings per model, seeds 0..n-1.")
flags.DEFINE_list("bench_parts", ["word2vec", "classifier"], "Which benchmarks to run.")
flags.DEFINE_bool("bench_classifier_from_vectors", True,
                  "Also train default.gin's classifier from gensim's and our vectors (about 10 minutes).")
FLAGS = flags.FLAGS

CONFIGS = os.path.join(os.path.dirname(__file__), "configs")


def python_pairs(texts: list[str], task: Word2VecTask, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tutorial-style pair generation: Python loops over token lists, NumPy negatives; up to `limit` pairs."""
    index = {w: i for i, (w, _) in enumerate(task.vocabulary)}
    keep = task.chunks.keep.numpy()
    table = task.chunks.negatives.numpy()
    window, k = task.window, task.num_negatives
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


@dataclasses.dataclass
class VectorRun:
    """One word2vec training: its vectors, the effective words (after subsampling) it trained on, its seconds."""

    label: str
    words: list[str]
    matrix: np.ndarray
    trained_words: float
    seconds: float
    steady_words_per_second: float | None = None  # after the first loop (tracing, XLA compiling, caching)


class LoopTimer(keras.callbacks.Callback):
    """Seconds of each training loop (an "epoch" to Keras), its evaluation included."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def pairs_per_word(task: Word2VecTask, chunks: int = 20) -> float:
    """(center, context) pairs per word of the training chunks, counted on `chunks` chunks."""
    pairs = words = 0
    for chunk in task.build_inputs("train").take(chunks):
        pairs += int(tf.size(w2v.skipgram_pairs(chunk["segments"], chunk["reach"], task.window)[0]))
        words += int(tf.size(chunk["ids"]))
    return pairs / words


def train_ours(options, seed: int, steps: int, xla: bool = True) -> VectorRun:
    """train_word2vec's training (word2vec.gin's TrainConfig), timed from the first step to the vectors."""
    task = Word2VecTask(seed=seed, decay_steps=steps, xla=xla)
    config = trainer.TrainConfig(loop="custom", train_steps=steps, steps_per_loop=round(task.steps_per_pass),
                                 steps_per_execution=1, eval_steps=10, csv_log=False)
    timer = LoopTimer()
    with tempfile.TemporaryDirectory() as model_dir:
        start = time.perf_counter()
        trainer.train(task, options=dataclasses.replace(options, model_dir=model_dir, seed=seed), config=config,
                      callbacks=(timer,))
        seconds = time.perf_counter() - start
        model = task.build_model()
        checkpoints.restore_model(model, model_dir)
    matrix = model.get_layer("target_embedding").embeddings.numpy()
    later_steps = steps - config.steps_per_loop
    steady = later_steps * task.tokens_per_step / sum(timer.seconds[1:]) if later_steps > 0 else None
    return VectorRun(f"ours{'' if xla else ' (no XLA)'}", [w for w, _ in task.vocabulary], matrix,
                     steps * task.tokens_per_step, seconds, steady)


def train_gensim(sentences: list[list[str]], task: Word2VecTask, seed: int, epochs: int) -> VectorRun:
    """gensim's Word2Vec on the same tokens with word2vec.gin's settings, `workers` = CPUs; times `train`."""
    from gensim.models import Word2Vec  # a benchmark dependency (requirements-dev.txt), never imported by training

    model = Word2Vec(vector_size=task.embedding_dim, window=task.window, min_count=task.min_count,
                     sample=task.sample, negative=task.num_negatives, sg=1, hs=0, alpha=task.learning_rate,
                     min_alpha=task.min_learning_rate, workers=os.cpu_count(), seed=seed)
    model.build_vocab(sentences)
    start = time.perf_counter()
    trained_words, _ = model.train(sentences, total_examples=len(sentences), epochs=epochs)
    seconds = time.perf_counter() - start
    return VectorRun("gensim", list(model.wv.index_to_key), model.wv.vectors.copy(), trained_words, seconds)


def bench_word2vec(options) -> None:
    """gensim against ours (speed and quality over seeds), and the tutorial's way, in one run."""
    task = Word2VecTask()
    texts = [t.decode() for t in corpus_texts(task.corpus).as_numpy_iterator()]
    sentences = [[t.decode() for t in row] for row in text_lib.tokenize(tf.constant(texts)).to_list()]
    epochs, seeds = FLAGS.bench_epochs, range(FLAGS.bench_seeds)
    steps = epochs * round(task.steps_per_pass)  # whole loops of about one pass
    ratio = pairs_per_word(task)
    print(f"word2vec: {len(sentences)} texts, {sum(map(len, sentences))} tokens, {len(task.vocabulary)} words, "
          f"{epochs} passes ({steps} steps of ours), {ratio:.2f} pairs per word; seeds {list(seeds)}")
    runs = {"gensim": [], "ours": [], "ours (no XLA)": []}
    for seed in seeds:
        for run in (train_gensim(sentences, task, seed, epochs), train_ours(options, seed, steps)):
            runs[run.label].append(run)
            rate = run.trained_words / run.seconds
            print(f"  {run.label:<8} seed {seed}: {rate:,.0f} words/s, {rate * ratio:,.0f} pairs/s "
                  f"({run.seconds:.1f} s)", flush=True)
    runs["ours (no XLA)"].append(train_ours(options, 0, steps, xla=False))
    if set(runs["gensim"][0].words) != set(runs["ours"][0].words):
        raise AssertionError("gensim and ours counted different vocabularies from the same tokens")

    centers, candidates, labels = python_pairs(texts[:400], task, limit=300_000)
    model = task.build_model()
    model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    tutorial_pairs = bench.bench_fit_arrays(model, [centers, candidates], labels, 1024, window_steps=20)

    def words_per_second(label):
        return float(np.median([r.trained_words / r.seconds for r in runs[label]]))

    peer = words_per_second("gensim")
    rows = [(f"word2vec train: gensim {gensim_version()} (sg, negative {task.num_negatives}, {os.cpu_count()} workers)",
             peer, peer),
            ("word2vec train: ours, train_word2vec end to end (XLA)", words_per_second("ours"), peer),
            ("word2vec train: ours, after its first loop (compiled, corpus cached)",
             float(np.median([r.steady_words_per_second for r in runs["ours"]])), peer),
            ("word2vec train: ours, without XLA (Word2VecTask.xla=False)", words_per_second("ours (no XLA)"), peer),
            ("word2vec train: tutorial, Python pairs + model.fit (Adam, batch 1024)", tutorial_pairs / ratio, peer)]
    print(f"\nmedian over {len(seeds)} seeds of whole trainings (seed 0 only without XLA; the tutorial: steady "
          f"windows of one training); pairs/s = words/s x {ratio:.2f} for every row")
    bench.print_table(rows, unit="words/s")
    print(f"\nvector quality, mean +- std (worst) over {len(seeds)} seeds, on the same vocabulary:")
    print(f"{'vectors':<10} {'WordSim-353':>20} {'SimLex-999':>20} {'analogies':>22}")
    for label in ("gensim", "ours"):
        results = [quality.scores(quality.keyed_vectors(r.words, r.matrix)) for r in runs[label]]
        cells = []
        for key in ("wordsim353", "simlex999", "analogies"):
            values = np.array([r[key] for r in results])
            cells.append(f"{values.mean():.3f} +- {values.std():.3f} ({values.min():.3f})")
        print(f"{label:<10} {cells[0]:>20} {cells[1]:>20} {cells[2]:>22}")
    covered = quality.scores(quality.keyed_vectors(runs["ours"][0].words, runs["ours"][0].matrix))
    print(f"(covered: WordSim-353 {covered['wordsim353_covered']:.0%} of pairs, SimLex-999 "
          f"{covered['simlex999_covered']:.0%}, {covered['analogies_scored']:.0f} analogy questions)")
    if FLAGS.bench_classifier_from_vectors:
        classifier_from_vectors(options, runs["gensim"][0], runs["ours"][0])


def classifier_from_vectors(options, *runs: VectorRun) -> None:
    """default.gin's classifier started from each run's vectors: test accuracy."""
    print("\nclassifier (default.gin) started from each seed-0 vector set:")
    for run in runs:
        with tempfile.TemporaryDirectory() as vectors_dir, tempfile.TemporaryDirectory() as model_dir:
            text_lib.write_vocabulary(os.path.join(vectors_dir, vectors.VOCABULARY_FILE),
                                      [(w, 1) for w in run.words])
            np.save(os.path.join(vectors_dir, vectors.EMBEDDINGS_FILE), run.matrix)
            task = TextClassificationTask(pretrained="word2vec", word2vec_dir=vectors_dir)
            run_options = dataclasses.replace(options, model_dir=model_dir)
            trainer.train(task, options=run_options, config=trainer.TrainConfig())
            results, _ = evaluation.evaluate(task, run_options, split="test")
        print(f"  from {run.label:<8} vectors: test accuracy {results['accuracy']:.2%}", flush=True)


def gensim_version() -> str:
    import gensim

    return gensim.__version__


def bench_classifier(options) -> list[tuple[str, float, float]]:
    task = TextClassificationTask(pretrained="none")
    ids, labels = next(iter(data.make_dataset(task.data_dir, "train", 10_000, task.encoder, training=False)))
    x, y = ids.numpy(), labels.numpy()
    baseline_model = task.build_model()
    baseline_model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                           metrics=["accuracy"])
    baseline = bench.bench_fit_arrays(baseline_model, x, y, batch_size=32, window_steps=8)
    rows = bench.Rows("articles/s", [(f"classifier train: tutorial model.fit(numpy ids padded to "
                                      f"{task.encoder.max_length}, batch 32)", baseline, baseline)])
    recipe = (f"length buckets of {task.bucket_width}" if task.bucket_width else "no buckets") + \
        f", batch {task.batch_size}"
    spe = 8
    steps = max(len(x) // task.batch_size // spe, 1) * spe  # about an epoch: every bucket's lengths in a window
    for label, loop, overrides in (
            ("fit", "fit", {}), ("custom loop", "custom", {}), ("fit + XLA", "fit", {"jit_compile": True}),
            ("fit + mixed_bfloat16", "fit", {"mixed_precision": "mixed_bfloat16"})):
        rate = bench.bench_trainer(task, loop, steps, dataclasses.replace(options, **overrides), spe=spe,
                                   batch_size=task.batch_size, window_steps=steps - spe)
        rows.append((f"classifier train: ours, default.gin ({recipe}), {label}", rate, baseline))

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
    print(f"word2vec_lstm bench: tf {tf.__version__}, {os.cpu_count()} CPUs")
    if "word2vec" in FLAGS.bench_parts:
        bench_word2vec(options)
        print()
    if "classifier" not in FLAGS.bench_parts:
        return
    bench.print_table(bench_classifier(options), unit="articles/s")


if __name__ == "__main__":
    runtime.run(main)
