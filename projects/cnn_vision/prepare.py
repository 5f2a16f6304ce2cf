r"""Converts raw images (Fashion-MNIST by default) to TFRecord shards once; training reads the shards.

    python -m projects.cnn_vision.prepare                      # Fashion-MNIST from its Debian package
    python -m projects.cnn_vision.prepare --format=cifar10 --source_dir=cifar-10-batches-bin \
        --output_dir=data/cnn_vision/cifar10
"""

from __future__ import annotations

from absl import app, flags

from core import runtime

from . import data

flags.DEFINE_string("source_dir", data.FASHION_MNIST_DIR, "Folder holding the raw dataset.")
flags.DEFINE_enum("format", "idx", list(data.FORMATS), "Raw format of --source_dir.")
flags.DEFINE_string("output_dir", "data/cnn_vision/fashion_mnist", "Where the shards and metadata.json go.")
flags.DEFINE_integer("validation_size", 5000, "Training examples held out for validation.")
flags.DEFINE_integer("num_shards", 4, "Shards per split.")
flags.DEFINE_integer("split_seed", 0, "Seed of the train/validation split.")
flags.DEFINE_list("image_size", None, "--format=folder: height,width every image is resized to (bilinear); "
                  "default: the first image's size.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    """Converts --source_dir to TFRecord shards in --output_dir."""
    image_size = None
    if FLAGS.image_size:
        if len(FLAGS.image_size) != 2 or not all(v.strip().isdigit() and int(v) > 0 for v in FLAGS.image_size):
            raise app.UsageError(f"--image_size={','.join(FLAGS.image_size)}: expected height,width, e.g. 64,64")
        image_size = (int(FLAGS.image_size[0]), int(FLAGS.image_size[1]))
    metadata = data.prepare(FLAGS.source_dir, FLAGS.format, FLAGS.output_dir, FLAGS.validation_size,
                            FLAGS.num_shards, FLAGS.split_seed, image_size)
    print(f"Prepared {metadata['counts']} ({len(metadata['class_names'])} classes) in {FLAGS.output_dir}")


if __name__ == "__main__":
    runtime.run(main)
