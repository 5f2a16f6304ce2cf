"""Training and decoding speed of the transformer project, each figure beside a baseline measured in the same run.

    python -m projects.transformer.bench [XLA and mixed_bfloat16 are measured as rows of their own; no flag needed]

Training, same gettext training pairs, same dimensions (configs/peer_size.gin: 1 + 1 blocks, width 256,
feed-forward 2048, 8 heads, vocabulary 15,000):
  baseline  the keras-io recipe (baseline.py): word ids padded to 20, Keras MultiHeadAttention,
            `model.fit` on in-memory arrays, batch 64, defaults;
  ours      core's trainer over the cached, length-bucketed subword pipeline: float32, with XLA, and
            with mixed_bfloat16.
Reported as non-padding target tokens per second (the peer's words, our subwords: a sentence has more
subwords than words, so this favours us by that factor) and as sentence pairs per second, which does not
depend on the tokenization.
Decoding, in sentences per second on test sentences, with the default model (trained weights from
runs/transformer/default when present): the key/value cache against re-running the decoder over the
whole prefix at every step, greedy and beam search, one sentence at a time and 64 at once.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time

import gin
import numpy as np
import tensorflow as tf
from absl import flags

from core import bench, checkpoints, runtime
from core import config as core_config

from . import baseline, decoding
from .data import read_pairs
from .task import TranslationTask

flags.adopt_module_key_flags(core_config)
flags.DEFINE_integer("bench_steps", 40, "Timed training steps per measurement of ours.")
flags.DEFINE_integer("baseline_steps", 30, "Timed training steps of the keras-io baseline.")
flags.DEFINE_integer("decode_sentences", 32, "Test sentences decoded per decoding measurement.")
flags.DEFINE_string("trained_dir", "runs/transformer/default", "A trained default run whose weights decoding uses.")
FLAGS = flags.FLAGS

CONFIGS = os.path.join(os.path.dirname(__file__), "configs")


def batch_stats(task: TranslationTask, batches: int = 300) -> tuple[float, float]:
    """Mean sentence pairs and non-padding target tokens per training batch of `task`'s pipeline."""
    pairs, tokens = [], []
    for _, target_out in task.build_inputs("train").take(batches):
        pairs.append(int(target_out.shape[0]))
        tokens.append(int(tf.math.count_nonzero(target_out)))
    return float(np.mean(pairs)), float(np.mean(tokens))


def bench_training(options) -> tuple[list, list]:
    """(token rows, pair rows): the keras-io recipe against core's trainer on peer_size.gin."""
    pairs = [(p["source"].decode(), p["target"].decode()) for p in read_pairs(
        "data/transformer/gettext_de", "train").as_numpy_iterator()]
    inputs, labels = baseline.vectorize(pairs)
    n = FLAGS.baseline_steps * 64
    peer = baseline.peer_model()
    peer_pairs = bench.bench_fit_arrays(peer, [inputs[0][:n], inputs[1][:n]], labels[:n], batch_size=64,
                                        window_steps=10)
    peer_tokens = peer_pairs * float(np.mean(np.count_nonzero(labels, axis=1)))
    token_rows = bench.Rows("tokens/s", [("train: keras-io recipe, model.fit(word arrays, batch 64)", peer_tokens,
                                          peer_tokens)])
    pair_rows = [("train: keras-io recipe, model.fit(word arrays, batch 64)", peer_pairs, peer_pairs)]

    gin.clear_config()
    core_config.parse_gin([os.path.join(CONFIGS, "peer_size.gin")], [])
    task = TranslationTask()
    pairs_per_batch, tokens_per_batch = batch_stats(task)
    # XLA and bfloat16 rows, so that a host where they pay (AVX-512 bfloat16, AMX, a GPU) shows it.
    for suffix, jit, policy in (("", False, "float32"), (" + XLA", True, "float32"),
                                (" + mixed_bfloat16", False, "mixed_bfloat16")):
        steps = bench.bench_trainer(task, "fit", FLAGS.bench_steps,
                                    dataclasses.replace(options, jit_compile=jit, mixed_precision=policy),
                                    spe=1, batch_size=1)
        label = f"train: ours, peer_size.gin, buckets + cache{suffix}"
        token_rows.append((label, steps * tokens_per_batch, peer_tokens))
        pair_rows.append((label, steps * pairs_per_batch, peer_pairs))
    gin.clear_config()
    return token_rows, pair_rows


def _decode_rate(fn, sources: list[np.ndarray], sentences: int) -> float:
    """Sentences per second of `fn` over `sources` (batches of ids), after one untimed call that traces it."""
    fn(tf.constant(sources[0]))  # one trace serves every shape: the input signature leaves both dims free
    start = time.perf_counter()
    for source in sources:
        fn(tf.constant(source))
    return sentences / (time.perf_counter() - start)


def bench_decoding() -> list:
    """The key/value cache against re-running the decoder over the prefix, greedy and beam, batch 1 and 64."""
    gin.clear_config()
    core_config.parse_gin([os.path.join(CONFIGS, "default.gin")], [])
    trained = os.path.exists(os.path.join(FLAGS.trained_dir, "tokenizer.model"))
    task = TranslationTask(tokenizer_path=os.path.join(FLAGS.trained_dir, "tokenizer.model") if trained else None)
    model = task.build_model()
    if trained:
        checkpoints.restore_model(model, FLAGS.trained_dir)
    print(f"decoding with the {'trained weights of ' + FLAGS.trained_dir if trained else 'untrained default model'}")
    texts = [p["source"] for p in read_pairs(task.data_dir, "test").take(FLAGS.decode_sentences).as_numpy_iterator()]
    ids = decoding.encode_texts(task.tokenizer, tf.constant(texts), task.max_length).numpy()
    one_by_one = [row[None, : np.count_nonzero(row)] for row in ids]
    rows = bench.Rows("sentences/s")
    for search, beam in (("greedy", 1), ("beam 4", 4)):
        for batch_name, sources in (("1 sentence", one_by_one), (f"{len(ids)} sentences", [ids])):
            rates = {}
            for use_cache in (False, True):
                fn = tf.function(
                    lambda s, use_cache=use_cache, beam=beam: (
                        decoding.beam_search(model, s, task.max_length, beam, use_cache=use_cache) if beam > 1
                        else decoding.greedy_decode(model, s, task.max_length, use_cache=use_cache)),
                    input_signature=[tf.TensorSpec([None, None], tf.int32)])
                rates[use_cache] = _decode_rate(fn, sources, len(ids))
            rows.append((f"decode {search}, {batch_name} per call: recompute prefix", rates[False], rates[False]))
            rows.append((f"decode {search}, {batch_name} per call: key/value cache", rates[True], rates[False]))
    gin.clear_config()
    return rows


def main(argv: list[str]) -> None:
    FLAGS.model_dir = FLAGS.model_dir or tempfile.mkdtemp()
    options = runtime.setup()
    print(f"transformer bench: tf {tf.__version__}, {os.cpu_count()} CPUs, {FLAGS.bench_steps} timed steps of ours")
    token_rows, pair_rows = bench_training(options)
    decode_rows = bench_decoding()
    print()
    bench.print_table(token_rows, unit="tokens/s")
    print()
    bench.print_table(pair_rows, unit="pairs/s")
    print()
    bench.print_table(decode_rows, unit="sentences/s")


if __name__ == "__main__":
    runtime.run(main)
