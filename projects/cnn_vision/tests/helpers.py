"""Small datasets in every raw format the readers accept, written to a temporary folder."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess

import numpy as np
import tensorflow as tf

from core import testing

from .. import data

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.basename(PROJECT_DIR)  # "cnn_vision", or the copy's name
REPO = os.path.dirname(os.path.dirname(PROJECT_DIR))
CONFIGS = os.path.join(PROJECT_DIR, "configs")


def write_idx(path: str, array: np.ndarray, compress: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fashion_subset(directory: str, train: int = 2000, test: int = 500) -> str:
    """The first examples of the real Fashion-MNIST (from its Debian package) as a small IDX folder."""
    splits = data.load_idx(data.FASHION_MNIST_DIR)
    os.makedirs(directory, exist_ok=True)
    for split, prefix, n in (("train", "train", train), ("test", "t10k", test)):
        images, labels = splits[split]
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), images[:n, ..., 0])
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), labels[:n])
    return directory


def write_cifar10(directory: str, per_batch: int = 4) -> np.ndarray:
    """Six tiny CIFAR-10 binary batch files; returns the images of data_batch_1 (HWC)."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    first = None
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        images = rng.integers(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=(per_batch, 1), dtype=np.uint8)
        rows = np.concatenate([labels, images.transpose(0, 3, 1, 2).reshape(per_batch, -1)], axis=1)
        rows.tofile(os.path.join(directory, name))
        first = images if first is None else first
    with open(os.path.join(directory, "batches.meta.txt"), "w") as f:
        f.write("\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]))
    return first


def write_image_folder(directory: str, classes=("cat", "dog"), per_class: int = 6) -> None:
    rng = np.random.default_rng(0)
    for name in classes:
        os.makedirs(os.path.join(directory, name), exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 256, size=(12, 10, 3), dtype=np.uint8)
            encoded = tf.io.encode_png(image) if i % 2 else tf.io.encode_jpeg(image)
            ext = "png" if i % 2 else "jpg"
            tf.io.write_file(os.path.join(directory, name, f"{i}.{ext}"), encoded)


def run_module(binary: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs `python -m projects.<project>.<binary> args...` from the repo root."""
    return testing.run_module(f"projects.{PROJECT}.{binary}", *args, timeout=timeout)
