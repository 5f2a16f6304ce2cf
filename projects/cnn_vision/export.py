"""Exports the newest checkpoint as a versioned SavedModel for TensorFlow Serving.

    python -m projects.cnn_vision.export --model_dir=runs/cnn_vision/default

Writes `<model_dir>/export/<version>/` with two signatures:
  serving_default  images uint8 [batch, H, W, C]            -> probabilities, class_ids, class_names,
                                                                label_names (core.export.classifier_outputs)
  serving_bytes    image_bytes string [batch] (PNG or JPEG)  -> the same outputs
and, in the same version folder, the model for other runtimes: raw pixel values float32 [batch, H, W, C] in,
probabilities [batch, classes] out,
  model.onnx    for ONNX Runtime (--noonnx: not written)
  model.tflite  for LiteRT / TFLite (--nolitert: not written)
each run once on sample images and compared with the Keras model before the version folder is kept.
Also model.keras, model.weights.h5, model_summary.txt and model.png in the model dir.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from core import config as core_config
from core import export, runtime

from .task import ImageClassificationTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

export.define_flags()
flags.DEFINE_bool("onnx", True, "Also write model.onnx (ONNX Runtime) into the version folder.")
flags.DEFINE_bool("litert", True, "Also write model.tflite (LiteRT) into the version folder.")
FLAGS = flags.FLAGS


def serving_signatures(model: keras.Model, image_shape: list[int], class_names: list[str]) -> dict:
    """The exported endpoints; decoding and id-to-name mapping live in the graph, not in clients."""
    height, width, channels = image_shape

    def outputs(images_uint8):
        return export.classifier_outputs(model(tf.cast(images_uint8, tf.float32), training=False), class_names)

    def decode(image_bytes):
        image = tf.io.decode_image(image_bytes, channels=channels, expand_animations=False)
        # Resized as `prepare` resizes a folder's images (image_dataset_from_directory: bilinear, no antialias),
        # so the model is served the pixels it was trained on.
        image = tf.image.resize(image, [height, width], method="bilinear")
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


def probabilities_model(model: keras.Model, image_shape: list[int]) -> keras.Model:
    """Raw pixel values float32 -> class probabilities: what the ONNX and LiteRT files compute."""
    images = keras.Input(tuple(image_shape), name="images")
    return keras.Model(images, keras.layers.Softmax(name="probabilities")(model(images, training=False)))


def portable_files(model: keras.Model, image_shape: list[int], onnx: bool, litert: bool):
    """`export_saved_model`'s extras: model.onnx and model.tflite in the version folder, each checked against
    the Keras model on 16 random images (their outputs within 1e-5)."""
    inference = probabilities_model(model, image_shape)
    spec = [tf.TensorSpec([None, *image_shape], tf.float32, name="images")]

    def write(folder: str) -> None:
        paths = {}
        if onnx:
            paths["onnx"] = export.write_onnx(inference, folder, spec)
        if litert:
            paths["litert"] = export.write_litert(inference, folder, spec)
        sample = np.random.default_rng(0).integers(0, 256, (16, *image_shape)).astype(np.float32)
        differences = export.check_portable(paths, lambda x: inference(x, training=False), sample)
        runtimes = {"onnx": "ONNX Runtime", "litert": "the LiteRT interpreter"}
        for kind, difference in differences.items():
            print(f"Wrote {os.path.basename(paths[kind])}: {runtimes[kind]} gives the Keras model's probabilities "
                  f"within {difference:.1e}")

    return write if onnx or litert else None


def main(argv: list[str]) -> None:
    """Restores the newest checkpoint and writes the SavedModel (with ONNX and LiteRT files) and the Keras files."""
    options = export.setup()
    task = ImageClassificationTask.from_model_dir(options.model_dir)
    model = task.build_model()
    export.export_checkpoint(model, options.model_dir, serving_signatures(model, task.image_shape, task.class_names),
                             extras=portable_files(model, task.image_shape, FLAGS.onnx, FLAGS.litert),
                             **export.flag_values())


if __name__ == "__main__":
    runtime.run(main)
