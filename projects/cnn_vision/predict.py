r"""Classifies image files with an exported SavedModel: what a client of the export sees.

    python -m projects.cnn_vision.predict --export_dir=runs/cnn_vision/default/export \
        runs/cnn_vision/samples/0000_ankle_boot.png runs/cnn_vision/samples/0001_pullover.png

Sends the files' bytes (PNG or JPEG, any size: decoding and resizing are in the graph) to the export's
`serving_bytes` signature and prints the top classes of each. `python -m projects.cnn_vision.samples`
writes test images to try it on.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from absl import app, flags

from core.config import UserError
from core.export import resolve_export
from core.runtime import run

flags.DEFINE_string("export_dir", None, "An exported version folder (holding saved_model.pb), or its base folder "
                    "(the highest version is used).")
flags.DEFINE_integer("top_k", 3, "Classes to print per image, by probability.")
FLAGS = flags.FLAGS


def predict(export_dir: str, images: list[bytes]) -> dict[str, np.ndarray]:
    """Runs the export's serving_bytes signature on encoded images."""
    serve = tf.saved_model.load(export_dir).signatures["serving_bytes"]
    return {k: v.numpy() for k, v in serve(image_bytes=tf.constant(images)).items()}


def read_images(paths: list[str]) -> list[bytes]:
    """The files' bytes; a file that is not a PNG or JPEG is named in the error."""
    images = []
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        if not (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8")):
            raise UserError(f"{path}: not a PNG or JPEG file.")
        images.append(data)
    return images


def main(argv: list[str]) -> None:
    if FLAGS.export_dir is None:
        raise app.UsageError("--export_dir is required")
    if len(argv) < 2:
        raise app.UsageError("give the image files to classify as arguments, e.g. runs/cnn_vision/samples/*.png")
    paths = argv[1:]
    outputs = predict(resolve_export(FLAGS.export_dir), read_images(paths))
    order = np.argsort(-outputs["probabilities"], axis=1)[:, : FLAGS.top_k]
    for i, path in enumerate(paths):
        labels = [n.decode() for n in outputs["label_names"][i]]
        scores = ", ".join(f"{labels[j]} {outputs['probabilities'][i, j]:.3f}" for j in order[i])
        print(f"{outputs['class_names'][i].decode()}\t{scores}\t{path}")


if __name__ == "__main__":
    run(main)
