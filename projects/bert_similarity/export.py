r"""Exports a checkpoint as a versioned SavedModel that scores raw sentence pairs.

    python -m projects.bert_similarity.export --model_dir=runs/bert_similarity/default

Writes `<model_dir>/export/<version>/` with the signatures
  serving_default  text_a string [B], text_b string [B] -> probability float32 [B] (that they match),
                   score float32 [B] (the model's raw score: logit, or cosine similarity)
  embed            text string [B] -> embedding float32 [B, D]     (bi-encoder only; unit length)
Tokenizing and packing are inside the graph (tensorflow_text ops, which the stock tensorflow/serving
image lacks; serving.server loads tensorflow_text first). The bi-encoder's probability is its cosine
similarity mapped from [-1, 1] to [0, 1]; compare it with the threshold `evaluate` reports.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from absl import flags

from core import config as core_config
from core import export, runtime

from . import model as model_lib
from .task import SimilarityTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

flags.DEFINE_string("export_dir", None, "Base folder of the versioned exports (default: <model_dir>/export).")
flags.DEFINE_integer("version", None, "Version number (default: one more than the highest existing).")
flags.DEFINE_string("checkpoint", None, "Checkpoint to export: a path, a step, or -1 (newest, the default), -2, ...")
FLAGS = flags.FLAGS


def serving_signatures(task: SimilarityTask, model: keras.Model) -> dict:
    """The exported endpoints: raw strings in, match probabilities (and embeddings) out."""
    pair = [tf.TensorSpec([None], tf.string, name="text_a"), tf.TensorSpec([None], tf.string, name="text_b")]

    def serve(text_a, text_b):
        score = tf.cast(model(task.features(text_a, text_b), training=False), tf.float32)
        probability = (score + 1.0) / 2.0 if task.bi else tf.sigmoid(score)
        return {"probability": probability, "score": score}

    signatures = {"serving_default": (serve, pair)}
    if task.bi:
        embedder = model_lib.embedding_model(model)

        def embed(text):
            return {"embedding": embedder(task.sentence_features(task.tokenize_texts(text)), training=False)}

        signatures["embed"] = (embed, [tf.TensorSpec([None], tf.string, name="text")])
    return signatures


def main(argv: list[str]) -> None:
    """Restores the checkpoint and writes the SavedModel and the Keras model files."""
    options = runtime.setup(default_gin_from_model_dir=True)
    keras.mixed_precision.set_global_policy("float32")  # serve in float32 whatever training used
    task = SimilarityTask()
    model = task.build_model()
    export.export_checkpoint(model, options.model_dir, serving_signatures(task, model), export_dir=FLAGS.export_dir,
                             version=FLAGS.version, checkpoint=FLAGS.checkpoint, track=(task.preprocessor,))


if __name__ == "__main__":
    runtime.run(main)
