r"""Exports the newest checkpoint as a versioned SavedModel that translates raw strings.

    python -m projects.transformer.export --model_dir=runs/transformer/default [--beam_size=4]

Writes `<model_dir>/export/<version>/` with the signatures
  serving_default  text string [batch] -> translation string [batch]   (beam search, --beam_size)
  greedy           text string [batch] -> translation string [batch]   (greedy, faster)
Tokenizing, decoding with the key/value cache and detokenizing are all inside the graph. The
tokenizer is a tensorflow_text op: the stock tensorflow/serving image does not have it (serving.server
loads tensorflow_text first, so the project's server does).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from absl import flags

from core import config as core_config
from core import export, runtime

from . import decoding
from .task import TranslationTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

export.define_flags()
flags.DEFINE_integer("beam_size", 4, "Beams of the serving_default signature (1: greedy).")
flags.DEFINE_float("alpha", 0.6, "Length penalty exponent of beam search.")
FLAGS = flags.FLAGS


def serving_signatures(model: keras.Model, tokenizer, beam_size: int, alpha: float) -> dict:
    """The exported endpoints: raw strings in, translations out."""
    text = [tf.TensorSpec([None], tf.string, name="text")]

    def serve_beam(texts):
        return {"translation": decoding.translate_texts(model, tokenizer, texts, beam_size=beam_size, alpha=alpha)}

    def serve_greedy(texts):
        return {"translation": decoding.translate_texts(model, tokenizer, texts, beam_size=1)}

    return {"serving_default": (serve_beam, text), "greedy": (serve_greedy, text)}


def main(argv: list[str]) -> None:
    """Restores the checkpoint and writes the SavedModel and the Keras model files."""
    options = export.setup()
    task = TranslationTask.from_model_dir(options.model_dir)
    model = task.build_model()
    export.export_checkpoint(model, options.model_dir,
                             serving_signatures(model, task.tokenizer, FLAGS.beam_size, FLAGS.alpha),
                             track=(task.tokenizer,), **export.flag_values())


if __name__ == "__main__":
    runtime.run(main)
