r"""Exports a checkpoint as a versioned SavedModel that scores raw sentence pairs.

    python -m projects.bert_similarity.export --model_dir=runs/bert_similarity/default

Writes `<model_dir>/export/<version>/` with the signatures
  serving_default  text_a string [B], text_b string [B] -> probability float32 [B] (that they match),
                   score float32 [B] (the model's raw score: logit, or cosine similarity),
                   match bool [B] (the decision: at or above the threshold chosen on validation)
  embed            text string [B] -> embedding float32 [B, D]     (bi-encoder only; unit length)
Tokenizing and packing are inside the graph (tensorflow_text ops, which the stock tensorflow/serving
image lacks; serving.server loads tensorflow_text first). The bi-encoder's probability is its cosine
similarity mapped from [-1, 1] to [0, 1].

The decision's threshold is the one `evaluate` chose on validation for the exported checkpoint (read
from `<model_dir>/eval_test.json`), so a client gets the answers `evaluate` scored: on the probability
for the cross-encoder, on the cosine similarity for the bi-encoder. Run `evaluate` first, or give
--threshold.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf
from absl import flags

from core import checkpoints, evaluation, export, runtime
from core import config as core_config
from core.config import UserError

from . import model as model_lib
from .task import SimilarityTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

export.define_flags()
flags.DEFINE_float("threshold", None, "The decision threshold (probability for the cross-encoder, cosine similarity "
                   "for the bi-encoder); default: the one `evaluate` chose on validation for this checkpoint.")
FLAGS = flags.FLAGS


def chosen_threshold(model_dir: str, checkpoint: str) -> float:
    """The fine-tuned model's threshold that `evaluate` chose on validation for `checkpoint`: from
    `eval_test_<checkpoint>.json` (evaluate --checkpoint) or else `eval_test.json`."""
    path = os.path.join(model_dir, "eval_test.json")
    named = os.path.join(model_dir, f"eval_{evaluation.report_name('test', checkpoint)}.json")
    if os.path.exists(named):
        path = named
    report = {}
    if os.path.exists(path):
        with open(path) as f:
            report = json.load(f)
    evaluated = report.get("checkpoint") or ""
    if "fine_tuned" not in report or os.path.basename(evaluated) != os.path.basename(checkpoint):
        found = f"{path} is of {os.path.basename(evaluated) or 'no checkpoint'}" if report else f"no {path}"
        raise UserError(f"{found}, and the export is of {os.path.basename(checkpoint)}: run `python -m "
                        f"projects.bert_similarity.evaluate --model_dir={model_dir}` with the same --checkpoint "
                        "first (it chooses the decision threshold on validation), or pass --threshold.")
    return float(report["fine_tuned"]["threshold"])


def serving_signatures(task: SimilarityTask, model: keras.Model, threshold: float) -> dict:
    """The exported endpoints: raw strings in, match probabilities and decisions (and embeddings) out."""
    pair = [tf.TensorSpec([None], tf.string, name="text_a"), tf.TensorSpec([None], tf.string, name="text_b")]

    def serve(text_a, text_b):
        score = tf.cast(model(task.preprocessor(text_a, text_b), training=False), tf.float32)
        probability = (score + 1.0) / 2.0 if task.bi else tf.sigmoid(score)
        # The threshold applies to what evaluate scored: the cosine (bi) or the probability (cross).
        match = (score if task.bi else probability) >= threshold
        return {"probability": probability, "score": score, "match": match}

    signatures = {"serving_default": (serve, pair)}
    if task.bi:
        embedder = model_lib.embedding_model(model)

        def embed(text):
            return {"embedding": embedder(task.preprocessor.sentence_features(text), training=False)}

        signatures["embed"] = (embed, [tf.TensorSpec([None], tf.string, name="text")])
    return signatures


def main(argv: list[str]) -> None:
    """Restores the checkpoint and writes the SavedModel and the Keras model files."""
    options = export.setup()
    task = SimilarityTask.from_model_dir(options.model_dir)
    model = task.build_model()
    # Which checkpoint, resolved first: the threshold must be the one evaluate chose for it.
    checkpoint = checkpoints.restore_model(model, options.model_dir,
                                           checkpoints.checkpoint_path(options.model_dir, FLAGS.checkpoint))
    threshold = FLAGS.threshold if FLAGS.threshold is not None else chosen_threshold(options.model_dir, checkpoint)
    source = "--threshold" if FLAGS.threshold is not None else "chosen on validation by evaluate"
    print(f"Decision threshold {threshold:.4f} ({source})")
    export.export_checkpoint(model, options.model_dir, serving_signatures(task, model, threshold),
                             track=(task.preprocessor.module,), **(export.flag_values() | {"checkpoint": checkpoint}))


if __name__ == "__main__":
    runtime.run(main)
