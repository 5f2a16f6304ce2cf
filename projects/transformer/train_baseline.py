r"""Trains the keras-io recipe (baseline.py) for a wall-clock budget, translates the validation and test pairs
greedily, and scores them with the same sacrebleu call as `evaluate`.

    python -m projects.transformer.train_baseline --model_dir=runs/transformer/recipe [--train_seconds=1480] \
        [--data_dir=data/transformer/gettext_de] [--seed=42]

The recipe's vocabularies are adapted on the training split and its model trains with `model.fit` as the
tutorial calls it (batch 64, a validation pass per epoch) until `--train_seconds` have passed, so it can be
given the minutes another run took on this machine. Its output is lower-cased words without punctuation,
so only `bleu_plain` (both sides lower-cased, punctuation deleted as the recipe deletes it) compares it with
the project's model; `bleu` and `chrf` against the raw references are written too. Writes
`<model_dir>/eval_<split>.json` and `<model_dir>/translations_<split>.tsv` (source, reference,
translation) for both splits, the report of test last; the weights are not kept.
"""

from __future__ import annotations

import json
import os
import time

import keras
from absl import flags

from core import runtime
from core.config import UserError
from core.files import write_text_atomic

from . import baseline
from .scoring import score
from .task import read_pairs

flags.DEFINE_string("data_dir", "data/transformer/gettext_de", "A folder made by `prepare`.")
flags.DEFINE_float("train_seconds", 24 * 60, "Wall-clock training budget (validation passes included).")
flags.DEFINE_integer("max_examples", None, "Translate only the first N pairs of each split (quick checks).")
flags.declare_key_flag("model_dir")  # core's: where the report, translations and flags.txt go
flags.declare_key_flag("seed")       # core's: Python, NumPy and TensorFlow (weights, shuffling, dropout)
FLAGS = flags.FLAGS


def load(data_dir: str, split: str, limit: int | None = None) -> list[tuple[str, str]]:
    """(source, target) pairs of a prepared split, the first `limit` of them."""
    if not os.path.exists(os.path.join(data_dir, "metadata.json")):
        raise UserError(f"--data_dir={data_dir}: no metadata.json; run `python -m projects.transformer.prepare` first")
    return [(p["source"].decode("utf-8"), p["target"].decode("utf-8"))
            for p in read_pairs(data_dir, split).take(limit or -1).as_numpy_iterator()]


def main(argv: list[str]) -> None:
    """Trains the recipe for the budget, then translates and scores the validation and test pairs."""
    if not FLAGS.model_dir:
        raise UserError("--model_dir is required: where eval_<split>.json and the translations go")
    if FLAGS.train_seconds <= 0:
        raise UserError(f"--train_seconds={FLAGS.train_seconds}: expected a positive number of seconds")
    keras.utils.set_random_seed(FLAGS.seed)
    train, validation = load(FLAGS.data_dir, "train"), load(FLAGS.data_dir, "validation")
    test = load(FLAGS.data_dir, "test", FLAGS.max_examples)
    vectorizers = baseline.Vectorizers(train)
    model = baseline.peer_model()
    print(f"training the keras-io recipe on {len(train)} pairs for {FLAGS.train_seconds:.0f} s")
    trained = baseline.train_for(model, baseline.vectorize(train, vectorizers),
                                 baseline.vectorize(validation, vectorizers), FLAGS.train_seconds,
                                 verbose="auto" if os.isatty(1) else 2)
    os.makedirs(FLAGS.model_dir, exist_ok=True)
    write_text_atomic(os.path.join(FLAGS.model_dir, "flags.txt"), FLAGS.flags_into_string())
    for split, pairs in (("validation", validation[:FLAGS.max_examples or None]), ("test", test)):
        sources, references = [s for s, _ in pairs], [t for _, t in pairs]
        start = time.perf_counter()
        hypotheses = baseline.greedy_translate(model, vectorizers, sources)
        report = {**score(hypotheses, references), **trained, "budget_seconds": FLAGS.train_seconds,
                  "sentences": len(pairs),
                  "decode_seconds": time.perf_counter() - start, "seed": FLAGS.seed, "data_dir": FLAGS.data_dir}
        for s, r, h in list(zip(sources, references, hypotheses, strict=True))[:3]:
            print(f"  {s}\n    reference:   {r}\n    translation: {h}")
        print(f"{split}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in report.items()))
        write_text_atomic(os.path.join(FLAGS.model_dir, f"translations_{split}.tsv"), "".join(
            f"{s}\t{r}\t{h}\n" for s, r, h in zip(sources, references, hypotheses, strict=True)))
        write_text_atomic(os.path.join(FLAGS.model_dir, f"eval_{split}.json"), json.dumps(report, indent=2))


if __name__ == "__main__":
    runtime.run(main)
