r"""Evaluates a checkpoint on a held-out split: token loss and accuracy, then BLEU and chrF with sacrebleu.

    python -m projects.transformer.evaluate --model_dir=runs/transformer/default [--split=test] [--beam_size=4]

The model translates every raw source sentence of the split (tokenized, decoded and detokenized in the
graph, as the export does); sacrebleu scores the detokenized output against the raw reference strings,
so the scores do not depend on this project's tokenizer. `bleu_plain` is BLEU on lower-cased text with
punctuation deleted as the keras-io recipe's standardization deletes it, both sides: the measure a
word-level model (the recipe) can be compared on. Writes `<model_dir>/eval_<split>.json` and
`<model_dir>/translations_<split>.tsv` (source, reference, translation); with --checkpoint, the names
end with the checkpoint's, e.g. `eval_test_ckpt-500.json`, and with --beam_size=1 with `_greedy`.
TensorBoard's run `<model_dir>/evaluate` gets the scores under `eval_<split>/` at the checkpoint's step, the
first --board_translations translations beside their references, and the attention weights of the last
decoder block over the first source sentence while the model reads its translation back.
"""

from __future__ import annotations

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from core import board, checkpoints, evaluation, runtime
from core import config as core_config
from core.files import write_text_atomic
from core.progress import Progress

from . import decoding
from .data import read_pairs
from .scoring import score
from .task import TranslationTask
from .tokenizer import BOS_ID, EOS_ID

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

evaluation.define_flags()
flags.DEFINE_integer("beam_size", 4, "Beams for decoding (1: greedy).")
flags.DEFINE_float("alpha", 0.6, "Length penalty exponent of beam search.")
flags.DEFINE_integer("batch_size", 64, "Sentences decoded together.")
flags.DEFINE_integer("max_examples", None, "Score only the first N pairs of the split (quick checks).")
flags.DEFINE_integer("board_translations", 20, "Translations shown beside their references in TensorBoard.")
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


def attention_picture(model: keras.Model, tokenizer, source: str, translation: str) -> bytes:
    """PNG: the last decoder block's attention over the source, per head, while the model reads `translation`
    back (teacher forcing): row t is where it looks when it predicts target piece t."""
    plt = board.pyplot()

    source_ids = decoding.encode_texts(tokenizer, tf.constant([source]), model.max_length)
    target = tokenizer.tokenize(tf.constant([translation]))[0][: model.max_length - 1].numpy()
    target_in = np.concatenate([[BOS_ID], target])[None].astype(np.int32)
    recorded = []
    attention = model.decoder_blocks[-1].cross_attention
    attention.weights_hook = recorded.append
    try:
        model({"source": source_ids, "target_in": tf.constant(target_in)}, training=False)
    finally:
        attention.weights_hook = None
    weights = np.asarray(recorded[-1], dtype=np.float32)[0]  # (heads, target, source)
    source_pieces = [p.decode("utf-8") for p in tokenizer.pieces(source_ids[0]).numpy()]
    target_pieces = [p.decode("utf-8") for p in tokenizer.pieces(np.concatenate([target, [EOS_ID]])).numpy()]
    heads = weights.shape[0]
    fig, axes = plt.subplots(1, heads, figsize=(0.32 * len(source_pieces) * heads + 2, 0.3 * len(target_pieces) + 2),
                             squeeze=False)
    for head, ax in enumerate(axes[0]):
        ax.imshow(weights[head], cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(source_pieces)), source_pieces, rotation=90, fontsize=7)
        ax.set_yticks(range(len(target_pieces)), target_pieces if head == 0 else [""] * len(target_pieces),
                      fontsize=7)
        ax.set_title(f"head {head}", fontsize=9)
    fig.suptitle(f"last decoder block's attention over the source: {source}", fontsize=9)
    fig.tight_layout()
    png = board.figure_png(fig)
    return png


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
    samples = list(zip(sources, references, hypotheses, strict=True))[:FLAGS.board_translations]
    images = {"attention": attention_picture(model, task.tokenizer, sources[0], hypotheses[0])} if pairs else {}
    board.write_evaluation(
        options.model_dir, FLAGS.split + ("_greedy" if FLAGS.beam_size == 1 else ""), board.checkpoint_step(checkpoint),
        {k: v for k, v in scores.items() if k not in ("beam_size", "sentences")}, images=images,
        texts={"translations": board.markdown_table(["source", "reference", "translation"], samples)})
    print(f"Wrote eval_{name}.json, translations_{name}.tsv and TensorBoard's {board.EVALUATE_RUN}/ run in "
          f"{options.model_dir}")


if __name__ == "__main__":
    runtime.run(main)
