"""Exports the newest checkpoint as a versioned SavedModel for TensorFlow Serving.

    python -m projects.cnn_vision.export --model_dir=runs/cnn_vision/default

Writes `<model_dir>/export/<version>/` with two signatures:
  serving_default  images uint8 [batch, H, W, C]            -> probabilities, class_ids, class_names,
                                                                label_names (core.export.classifier_outputs)
  serving_bytes    image_bytes string [batch] (PNG or JPEG)  -> the same outputs
plus model.keras, model.weights.h5, model_summary.txt and model.png in the model dir.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from absl import flags

from core import config as core_config
from core import export, runtime

from .task import ImageClassificationTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

export.define_flags()
FLAGS = flags.FLAGS


def serving_signatures(model: keras.Model, image_shape: list[int], class_names: list[str]) -> dict:
    """The exported endpoints; decoding and id-to-name mapping live in the graph, not in clients."""
    height, width, channels = image_shape

    def outputs(images_uint8):
        return export.classifier_outputs(model(tf.cast(images_uint8, tf.float32), training=False), class_names)

    def decode(image_bytes):
        image = tf.io.decode_image(image_bytes, channels=channels, expand_animations=False)
        image = tf.image.resize(image, [height, width], method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

    def serve_images(images):
        return outputs(images)

    def serve_bytes(image_bytes):
        images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec([height, width, channels], tf.uint8))
        return outputs(images)

    return {
        "serving_default": (serve_images, [tf.TensorSpec([None, height, width, channels], tf.uint8, name="images")]),
        "serving_bytes": (serve_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")]),
    }


def main(argv: list[str]) -> None:
    """Restores the newest checkpoint and writes the SavedModel and the Keras model files."""
    options = export.setup()
    task = ImageClassificationTask.from_model_dir(options.model_dir)
    model = task.build_model()
    export.export_checkpoint(model, options.model_dir, serving_signatures(model, task.image_shape, task.class_names),
                             **export.flag_values())


if __name__ == "__main__":
    runtime.run(main)
