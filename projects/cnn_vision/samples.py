"""Writes a few test-split images as PNG files, to try an export or a server with real files.

    python -m projects.cnn_vision.samples --data_dir=data/cnn_vision/fashion_mnist --output_dir=runs/samples

Files are named `<index>_<true label>.png` (e.g. `0000_ankle_boot.png`), so a prediction can be
checked by eye.
"""

from __future__ import annotations

import os
import re

import tensorflow as tf
from absl import flags

from core import runtime

from . import data

flags.DEFINE_string("data_dir", "data/cnn_vision/fashion_mnist", "A folder written by `prepare`.")
flags.DEFINE_string("output_dir", "runs/cnn_vision/samples", "Where the PNG files go.")
flags.DEFINE_integer("count", 4, "How many test images to write.")
FLAGS = flags.FLAGS


def write_samples(data_dir: str, output_dir: str, count: int) -> list[str]:
    """The first `count` test images as PNG files; returns their paths."""
    class_names = data.read_metadata(data_dir)["class_names"]
    images, labels = next(iter(data.make_dataset(data_dir, "test", count, training=False)))
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for index, (image, label) in enumerate(zip(images.numpy(), labels.numpy())):
        slug = re.sub(r"[^a-z0-9]+", "_", class_names[int(label)].lower()).strip("_")
        paths.append(os.path.join(output_dir, f"{index:04d}_{slug}.png"))
        tf.io.write_file(paths[-1], tf.io.encode_png(tf.cast(tf.round(image), tf.uint8)))
    return paths


def main(argv: list[str]) -> None:
    """Writes the samples and prints their paths."""
    for path in write_samples(FLAGS.data_dir, FLAGS.output_dir, FLAGS.count):
        print(path)


if __name__ == "__main__":
    runtime.run(main)
