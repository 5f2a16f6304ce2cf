"""Image datasets for cnn_vision: raw-format readers, the one-time TFRecord `prepare`, and the input pipeline.

Readers return `{split: (images uint8 [N, H, W, C], labels int64 [N])}` plus class names:
  idx      MNIST-style IDX files (Fashion-MNIST, MNIST), gzipped or not
  cifar10  CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin, batches.meta.txt)
  folder   a folder per class of PNG/JPEG/BMP/GIF images, optionally under train/ and test/
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os

import numpy as np
import tensorflow as tf
from absl import logging

from core.data import prepared, tfrecord
from core.data.prepared import DataError
from core.files import write_text_atomic

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FORMATS = ("idx", "cifar10", "folder")
FEATURE_SPEC = {
    "image": tf.io.FixedLenFeature([], tf.string),  # raw uint8 pixels, HWC order
    "label": tf.io.FixedLenFeature([], tf.int64),
}
SPLITS = ("train", "validation", "test")


def _open(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def read_idx(path: str) -> np.ndarray:
    """Reads one IDX file (unsigned-byte data, any rank) into a uint8 array."""
    with _open(path) as f:
        header = f.read(4)
        if len(header) != 4 or header[:2] != b"\0\0" or header[2] != 0x08:
            raise DataError(f"{path}: not an unsigned-byte IDX file (magic {header.hex()}, expected 000008xx).")
        rank = header[3]
        shape = tuple(int.from_bytes(f.read(4), "big") for _ in range(rank))
        data = np.frombuffer(f.read(), dtype=np.uint8)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: header says shape {shape} but holds {data.size} bytes; truncated file?")
    return data.reshape(shape)


def _find(directory: str, stem: str) -> str:
    for name in (stem, stem + ".gz"):
        if os.path.exists(os.path.join(directory, name)):
            return os.path.join(directory, name)
    raise DataError(f"{directory}: no {stem}[.gz]. {missing_data_hint(directory)}")


def missing_data_hint(directory: str) -> str:
    """How to get the data that should be in `directory`."""
    if os.path.abspath(directory) == FASHION_MNIST_DIR:
        return "Install Fashion-MNIST with `sudo apt-get install dataset-fashion-mnist` (or `make setup`)."
    return "Point --source_dir at a folder holding the dataset files."


def load_idx(directory: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Reads train-/t10k- images and labels from an MNIST-style folder."""
    if not os.path.isdir(directory):
        raise DataError(f"{directory}: no such folder. {missing_data_hint(directory)}")
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(_find(directory, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find(directory, f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
        if len(images) != len(labels):
            raise DataError(f"{directory}: {len(images)} {prefix} images but {len(labels)} labels.")
        splits[split] = (images[..., None], labels)
    return splits


def load_cifar10(directory: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Reads the CIFAR-10 binary version: records of 1 label byte + 3x32x32 pixel bytes (CHW)."""
    record = 1 + 3 * 32 * 32

    def read(names):
        chunks = []
        for name in names:
            path = os.path.join(directory, name)
            if not os.path.exists(path):
                raise DataError(f"{path}: missing CIFAR-10 batch file. {missing_data_hint(directory)}")
            raw = np.fromfile(path, dtype=np.uint8)
            if raw.size % record:
                raise DataError(f"{path}: size {raw.size} is not a multiple of the {record}-byte record.")
            chunks.append(raw.reshape(-1, record))
        rows = np.concatenate(chunks)
        return rows[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), rows[:, 0].astype(np.int64)

    return {"train": read([f"data_batch_{i}.bin" for i in range(1, 6)]), "test": read(["test_batch.bin"])}


def cifar10_class_names(directory: str) -> list[str]:
    """Names from batches.meta.txt, or "0".."9" without it."""
    path = os.path.join(directory, "batches.meta.txt")
    if os.path.exists(path):
        with open(path) as f:
            return [line.strip() for line in f if line.strip()]
    return [str(i) for i in range(10)]


IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # what image_dataset_from_directory reads


def _decode_one(path: str) -> np.ndarray:
    try:
        return tf.io.decode_image(tf.io.read_file(path), expand_animations=False).numpy()
    except tf.errors.InvalidArgumentError as e:
        raise DataError(f"{path}: not a decodable PNG/JPEG/BMP/GIF image ({e.message}).") from e


def load_folder(directory: str, test_fraction: float = 0.1,
                image_size: tuple[int, int] | None = None) -> tuple[dict, list[str]]:
    """Reads a folder-per-class image tree with `keras.utils.image_dataset_from_directory`; uses train/ and
    test/ subfolders when both exist.

    Without them, a stable hash of each `<class>/<file>` name puts `test_fraction` of the images in `test`
    (a split that stays put as images are added). Images are resized (bilinear) to `image_size` (height,
    width), by default the first image's, and read with its channel count. Files without an image extension
    (.bmp .gif .jpeg .jpg .png) are skipped; a file that does not decode is named in the error.
    """
    import keras

    if not os.path.isdir(directory):
        raise DataError(f"{directory}: no such folder.")
    has_splits = all(os.path.isdir(os.path.join(directory, s)) for s in ("train", "test"))
    roots = {s: os.path.join(directory, s) for s in ("train", "test")} if has_splits else {"all": directory}
    first_root = next(iter(roots.values()))
    class_names = sorted(d for d in os.listdir(first_root) if os.path.isdir(os.path.join(first_root, d)))
    if not class_names:
        raise DataError(f"{directory}: expected one sub-folder per class, found none.")
    first = next((os.path.join(first_root, name, f) for name in class_names
                  for f in sorted(os.listdir(os.path.join(first_root, name))) if f.lower().endswith(IMAGE_EXTENSIONS)),
                 None)
    if first is None:
        raise DataError(f"{directory}: no {'/'.join(IMAGE_EXTENSIONS)} files in its class folders.")
    height, width, channels = _decode_one(first).shape
    color_mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(channels)
    if color_mode is None:
        raise DataError(f"{first}: {channels} channels; expected 1, 3 or 4.")
    image_size = tuple(image_size or (height, width))
    found: dict[str, tuple[list, list]] = {"train": ([], []), "test": ([], [])}
    for root_split, root in roots.items():
        dataset = keras.utils.image_dataset_from_directory(
            root, labels="inferred", label_mode="int", class_names=class_names, color_mode=color_mode,
            batch_size=256, image_size=image_size, shuffle=False, verbose=False)
        try:
            batches = [(x.numpy(), y.numpy()) for x, y in dataset]
        except tf.errors.InvalidArgumentError:  # name the file: the pipeline's error does not
            for path in dataset.file_paths:
                _decode_one(path)
            raise
        images = np.clip(np.round(np.concatenate([x for x, _ in batches])), 0, 255).astype(np.uint8)
        labels = np.concatenate([y for _, y in batches]).astype(np.int64)
        for path, image, label in zip(dataset.file_paths, images, labels, strict=True):
            split = root_split
            if split == "all":
                name = os.path.relpath(path, root).replace(os.sep, "/")
                bucket = int(hashlib.md5(name.encode()).hexdigest(), 16) % 1000
                split = "test" if bucket < test_fraction * 1000 else "train"
            found[split][0].append(image)
            found[split][1].append(label)
    return {s: (np.stack(x), np.array(y, np.int64)) for s, (x, y) in found.items() if x}, class_names


def load(source_dir: str, data_format: str, image_size: tuple[int, int] | None = None) -> tuple[dict, list[str]]:
    """Reads any supported raw format; returns ({split: (images, labels)}, class_names). `image_size`: the
    folder format's (height, width)."""
    if data_format == "idx":
        splits = load_idx(source_dir)
        is_fashion = os.path.abspath(source_dir) == FASHION_MNIST_DIR or "fashion" in source_dir.lower()
        num_classes = int(splits["train"][1].max()) + 1
        return splits, list(FASHION_MNIST_CLASSES) if is_fashion else [str(i) for i in range(num_classes)]
    if data_format == "cifar10":
        return load_cifar10(source_dir), cifar10_class_names(source_dir)
    if data_format == "folder":
        return load_folder(source_dir, image_size=image_size)
    raise DataError(f"--format={data_format}: expected one of {FORMATS}.")


def prepare(source_dir: str, data_format: str, output_dir: str, validation_size: int = 5000,
            num_shards: int = 4, seed: int = 0, image_size: tuple[int, int] | None = None) -> dict:
    """Converts raw data to train/validation/test TFRecord shards plus metadata.json; returns the metadata.

    Validation is a seeded random slice of the training split; the test split is left untouched.
    Earlier outputs in `output_dir` are removed first and metadata.json is written last, so its
    presence means the shards beside it are complete and all from this run.
    """
    splits, class_names = load(source_dir, data_format, image_size)
    for old in glob.glob(os.path.join(output_dir, "*.tfrecord")) + [os.path.join(output_dir, "metadata.json")]:
        if os.path.exists(old):
            os.remove(old)
    images, labels = splits["train"]
    if not 0 <= validation_size < len(images):
        raise DataError(f"--validation_size={validation_size}: must be in [0, {len(images)}).")
    order = np.random.default_rng(seed).permutation(len(images))
    val, train = order[:validation_size], order[validation_size:]
    splits = {"train": (images[train], labels[train]), "validation": (images[val], labels[val]),
              "test": splits["test"]}
    counts = {}
    for split, (x, y) in splits.items():
        examples = ({"image": image.tobytes(), "label": int(label)} for image, label in zip(x, y))
        tfrecord.write_shards(examples, FEATURE_SPEC, os.path.join(output_dir, split), num_shards)
        counts[split] = len(x)
    metadata = {"image_shape": list(images.shape[1:]), "class_names": class_names, "counts": counts,
                "source_dir": os.path.abspath(source_dir), "format": data_format}
    write_text_atomic(os.path.join(output_dir, "metadata.json"), json.dumps(metadata, indent=2))
    logging.info("Prepared %s in %s", counts, output_dir)
    return metadata


def read_metadata(data_dir: str) -> dict:
    """The metadata.json `prepare` wrote; says how to prepare when it is missing."""
    return prepared.read_metadata(data_dir, f"python -m projects.cnn_vision.prepare --output_dir={data_dir}")


def random_translate(images: tf.Tensor, max_shift: int) -> tf.Tensor:
    """Shifts each image by its own random offset in [-max_shift, max_shift] pixels (zero fill)."""
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [max_shift, max_shift], [max_shift, max_shift], [0, 0]])
    offsets = tf.random.uniform([batch, 2], 0, 2 * max_shift + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(height)[None, :]  # (batch, height)
    cols = offsets[:, 1:] + tf.range(width)[None, :]  # (batch, width)
    padded = tf.gather(padded, rows, axis=1, batch_dims=1)  # (batch, height, width + 2s, channels)
    return tf.gather(padded, cols, axis=2, batch_dims=1)  # (batch, height, width, channels)


def make_decode_fn(image_shape: list[int], augment: bool, flip: bool = True, max_shift: int = 2):
    """Returns batch -> (images float32 [B, H, W, C] in 0..255, labels int64 [B])."""

    def decode(batch):
        images = tf.io.decode_raw(batch["image"], tf.uint8)
        images = tf.cast(tf.reshape(images, [-1, *image_shape]), tf.float32)
        if augment:
            if flip:
                images = tf.image.random_flip_left_right(images)
            if max_shift:
                images = random_translate(images, max_shift)
        return images, batch["label"]

    return decode


def make_dataset(data_dir: str, split: str, batch_size: int, *, training: bool, augment: bool = False,
                 max_shift: int = 2, shuffle_buffer: int = 10_000, input_context=None) -> tf.data.Dataset:
    """The input pipeline over prepared shards: (images float32 0..255, labels int64) batches."""
    if split not in SPLITS:
        raise DataError(f"split {split!r}: expected one of {SPLITS}.")
    metadata = read_metadata(data_dir)
    return tfrecord.make_dataset(
        os.path.join(data_dir, f"{split}-*.tfrecord"),
        FEATURE_SPEC,
        batch_size,
        map_fn=make_decode_fn(metadata["image_shape"], augment and training, max_shift=max_shift),
        shuffle=training,
        repeat=training,
        cache=training,  # eval splits are read once per loop, often partly (eval_steps)
        shuffle_buffer=shuffle_buffer,
        drop_remainder=training,
        input_context=input_context,
    )
