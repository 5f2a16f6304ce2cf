r"""Evaluates a checkpoint on a held-out split: token loss and accuracy, then BLEU and chrF with sacrebleu.

    python -m projects.transformer.evaluate --model_dir=runs/transformer/default [--split=test] [--beam_size=4]

The model translates every raw source sentence of the split (tokenized, decoded and detokenized in the
graph, as the export does); sacrebleu scores the detokenized output against the raw reference strings,
so the scores do not depend on this project's tokenizer. `bleu_plain` is BLEU on lower-cased text with
punctuation deleted as the keras-io recipe's standardization deletes it, both sides: the measure a
word-level model (the recipe) can be compared on. Writes `<model_dir>/eval_<split>.json` and
`<model_dir>/translations_<split>.tsv` (source, reference, translation); with --checkpoint, the names
end with the checkpoint's, e.g. `eval_test_ckpt-500.json`, and with --beam_size=1 with `_greedy`.
"""

from __future__ import annotations

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from core import checkpoints, evaluation, runtime
from core import config as core_config
from core.files import write_text_atomic
from core.progress import Progress

from . import decoding
from .data import read_pairs
from .scoring import score
from .task import TranslationTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

evaluation.define_flags()
flags.DEFINE_integer("beam_size", 4, "Beams for decoding (1: greedy).")
flags.DEFINE_float("alpha", 0.6, "Length penalty exponent of beam search.")
flags.DEFINE_integer("batch_size", 64, "Sentences decoded together.")
flags.DEFINE_integer("max_examples", None, "Score only the first N pairs of the split (quick checks).")
FLAGS = flags.FLAGS


def translate_all(model: keras.Model, tokenizer, sources: list[str], batch_size: int, beam_size: int,
                  alpha: float) -> list[str]:
    """Translations of `sources` in their order; decoded in batches of similar length (less padding)."""
    translate = tf.function(lambda texts: decoding.translate_texts(model, tokenizer, texts, beam_size, alpha),
                            input_signature=[tf.TensorSpec([None], tf.string)])
    order = np.argsort([len(s) for s in sources], kind="stable")
    results = [""] * len(sources)
    progress = Progress(len(sources), "sentence", f"translating (beam {beam_size})" if beam_size > 1 else "translating")
    for start in range(0, len(sources), batch_size):
        index = order[start:start + batch_size]
        for i, text in zip(index, translate(tf.constant([sources[i] for i in index])).numpy(), strict=True):
            results[i] = text.decode("utf-8")
        progress.add(len(index))
    return results


def main(argv: list[str]) -> None:
    """Evaluates, translates the split, scores it and writes the report files."""
    options = runtime.setup(default_gin_from_model_dir=True)
    task = TranslationTask.from_model_dir(options.model_dir)
    checkpoint = checkpoints.checkpoint_path(options.model_dir, FLAGS.checkpoint)
    results, _ = evaluation.evaluate(task, options, FLAGS.split, checkpoint)
    model = task.build_model()
    checkpoint = checkpoints.restore_model(model, options.model_dir, checkpoint)
    pairs = [(p["source"].decode("utf-8"), p["target"].decode("utf-8"))
             for p in read_pairs(task.data_dir, FLAGS.split).take(FLAGS.max_examples or -1).as_numpy_iterator()]
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    start = time.perf_counter()
    hypotheses = translate_all(model, task.tokenizer, sources, FLAGS.batch_size, FLAGS.beam_size, FLAGS.alpha)
    seconds = time.perf_counter() - start
    results.update(score(hypotheses, references))
    results.update({"sentences": len(pairs), "beam_size": FLAGS.beam_size, "decode_seconds": seconds,
                    "checkpoint": checkpoint})
    # test, test_ckpt-500, test_ckpt-500_greedy: greedy runs do not overwrite the beam-search files.
    name = evaluation.report_name(FLAGS.split, checkpoint if FLAGS.checkpoint else None) + (
        "_greedy" if FLAGS.beam_size == 1 else "")
    for s, r, h in list(zip(sources, references, hypotheses, strict=True))[:5]:
        print(f"  {s}\n    reference:   {r}\n    translation: {h}")
    scores = {k: v for k, v in results.items() if k != "checkpoint"}
    print(f"{FLAGS.split} ({checkpoint}): {evaluation.format_results(scores)}")
    write_text_atomic(os.path.join(options.model_dir, f"eval_{name}.json"), json.dumps(results, indent=2))
    write_text_atomic(os.path.join(options.model_dir, f"translations_{name}.tsv"),
                      "".join(f"{s}\t{r}\t{h}\n" for s, r, h in zip(sources, references, hypotheses, strict=True)))


if __name__ == "__main__":
    runtime.run(main)
