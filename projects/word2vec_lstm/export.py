"""Exports the newest checkpoint as a versioned SavedModel for TensorFlow Serving that takes raw text.

    python -m projects.word2vec_lstm.export --model_dir=runs/word2vec_lstm/default

Writes `<model_dir>/export/<version>/` with the signature
  serving_default  text string [batch] (UTF-8)  -> probabilities [batch, classes], class_ids, class_names,
                                                  label_names [batch, classes]
Tokenization and the vocabulary lookup are inside the graph (core TensorFlow ops only, so the stock
tensorflow/serving image loads it). Also writes model.keras, model.weights.h5, model_summary.txt, model.png.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from absl import flags

from core import config as core_config
from core import export, runtime

from .task import TextClassificationTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

export.define_flags()
FLAGS = flags.FLAGS


def serving_signatures(model: keras.Model, encoder: keras.Layer, class_names: list[str]) -> dict:
    """The exported endpoint: raw strings in, probabilities and label names out."""

    def serve_text(texts):
        return export.classifier_outputs(model(encoder(texts), training=False), class_names)

    return {"serving_default": (serve_text, [tf.TensorSpec([None], tf.string, name="text")])}


def main(argv: list[str]) -> None:
    """Restores the newest checkpoint and writes the SavedModel and the Keras model files."""
    options = export.setup()
    task = TextClassificationTask.from_model_dir(options.model_dir)
    model = task.build_model()
    export.export_checkpoint(model, options.model_dir, serving_signatures(model, task.encoder, task.class_names),
                             track=(task.encoder,), **export.flag_values())


if __name__ == "__main__":
    runtime.run(main)
