import json

import numpy as np
import pytest
import tensorflow as tf

from .. import data
from . import helpers


def test_read_idx_plain_and_gzipped(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    helpers.write_idx(str(tmp_path / "a.gz"), array)
    helpers.write_idx(str(tmp_path / "b"), array, compress=False)
    np.testing.assert_array_equal(data.read_idx(str(tmp_path / "a.gz")), array)
    np.testing.assert_array_equal(data.read_idx(str(tmp_path / "b")), array)


def test_truncated_idx_names_the_file(tmp_path):
    helpers.write_idx(str(tmp_path / "a"), np.zeros((4, 5), np.uint8), compress=False)
    raw = (tmp_path / "a").read_bytes()
    (tmp_path / "a").write_bytes(raw[:-3])
    with pytest.raises(data.DataError, match=r"a: header says shape \(4, 5\)"):
        data.read_idx(str(tmp_path / "a"))


def test_not_idx_is_rejected(tmp_path):
    (tmp_path / "x").write_bytes(b"PK\x03\x04junk")
    with pytest.raises(data.DataError, match="not an unsigned-byte IDX"):
        data.read_idx(str(tmp_path / "x"))


def test_missing_fashion_mnist_explains_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", str(tmp_path / "fashion-mnist"))
    with pytest.raises(data.DataError, match="apt-get install dataset-fashion-mnist"):
        data.load_idx(str(tmp_path / "fashion-mnist"))


def test_real_fashion_mnist_has_the_documented_shape():
    splits = data.load_idx(data.FASHION_MNIST_DIR)
    assert splits["train"][0].shape == (60000, 28, 28, 1)
    assert splits["test"][0].shape == (10000, 28, 28, 1)
    assert np.bincount(splits["test"][1]).tolist() == [1000] * 10


def test_cifar10_batches_decode_to_hwc(tmp_path):
    first = helpers.write_cifar10(str(tmp_path))
    splits = data.load_cifar10(str(tmp_path))
    assert splits["train"][0].shape == (20, 32, 32, 3) and splits["test"][0].shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(splits["train"][0][:4], first)
    assert data.cifar10_class_names(str(tmp_path))[0] == "airplane"


def test_cifar10_wrong_size_names_the_file(tmp_path):
    helpers.write_cifar10(str(tmp_path))
    with open(tmp_path / "data_batch_3.bin", "ab") as f:
        f.write(b"\0")
    with pytest.raises(data.DataError, match="data_batch_3.bin"):
        data.load_cifar10(str(tmp_path))


def test_image_folder_reads_png_and_jpeg_with_a_stable_split(tmp_path):
    helpers.write_image_folder(str(tmp_path), per_class=20)
    splits, names = data.load_folder(str(tmp_path), test_fraction=0.3)
    assert names == ["cat", "dog"]
    assert len(splits["train"][0]) + len(splits["test"][0]) == 40
    assert splits["train"][0].shape[1:] == (12, 10, 3)
    again, _ = data.load_folder(str(tmp_path), test_fraction=0.3)
    np.testing.assert_array_equal(again["test"][1], splits["test"][1])


def test_image_folder_resizes_other_sizes_and_skips_files_that_are_not_images(tmp_path):
    helpers.write_image_folder(str(tmp_path), per_class=4)  # 12 x 10 RGB
    big = np.random.default_rng(1).integers(0, 256, size=(24, 20, 3), dtype=np.uint8)
    tf.io.write_file(str(tmp_path / "dog" / "big.png"), tf.io.encode_png(big))
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    splits, _ = data.load_folder(str(tmp_path), test_fraction=0.0)
    images = splits["train"][0]
    assert images.shape == (9, 12, 10, 3) and images.dtype == np.uint8  # 4 + 5 images, notes.txt skipped
    expected = tf.image.resize(big, (12, 10), method="bilinear").numpy()  # what Keras' reader does
    assert np.abs(images[-1].astype(float) - expected).max() <= 0.5  # the last dog: big.png, rounded
    resized, _ = data.load_folder(str(tmp_path), test_fraction=0.0, image_size=(6, 5))
    assert resized["train"][0].shape == (9, 6, 5, 3)


def test_image_folder_rejects_a_broken_image(tmp_path):
    helpers.write_image_folder(str(tmp_path))
    (tmp_path / "cat" / "bad.png").write_bytes(b"not an image")
    with pytest.raises(data.DataError, match="bad.png"):
        data.load_folder(str(tmp_path))


def test_prepare_writes_three_splits_and_metadata(tmp_path):
    helpers.write_cifar10(str(tmp_path / "raw"), per_batch=10)
    meta = data.prepare(str(tmp_path / "raw"), "cifar10", str(tmp_path / "out"), validation_size=8, num_shards=2)
    assert meta["counts"] == {"train": 42, "validation": 8, "test": 10}
    assert json.loads((tmp_path / "out" / "metadata.json").read_text())["image_shape"] == [32, 32, 3]
    ds = data.make_dataset(str(tmp_path / "out"), "validation", batch_size=8, training=False)
    images, labels = next(iter(ds))
    assert images.shape == (8, 32, 32, 3) and images.dtype.name == "float32" and labels.shape == (8,)


def test_pipeline_without_prepare_says_how_to_prepare(tmp_path):
    with pytest.raises(data.DataError, match="projects.cnn_vision.prepare|prepare --output_dir"):
        data.make_dataset(str(tmp_path), "train", batch_size=2, training=True)


def test_random_translate_moves_content_within_bounds():
    import tensorflow as tf

    images = np.zeros((64, 9, 9, 1), "float32")
    images[:, 4, 4, 0] = 1.0
    shifted = data.random_translate(tf.constant(images), 2).numpy()
    assert shifted.shape == images.shape
    rows, cols = np.nonzero(shifted[..., 0].reshape(64, 9, 9).max(axis=0))
    assert rows.min() >= 2 and rows.max() <= 6 and cols.min() >= 2 and cols.max() <= 6
    assert (shifted.sum(axis=(1, 2, 3)) == 1).all()  # a 2-pixel shift keeps the centre pixel
    assert len({tuple(np.argwhere(s[..., 0])[0]) for s in shifted}) > 5  # offsets differ per image


def test_prepare_resizes_a_folder_to_image_size_and_refuses_a_bad_one(tmp_path):
    helpers.write_image_folder(str(tmp_path / "raw"), per_class=6)
    out = str(tmp_path / "out")
    ok = helpers.run_module("prepare", "--format=folder", f"--source_dir={tmp_path / 'raw'}", f"--output_dir={out}",
                            "--validation_size=2", "--image_size=8,6")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.load(open(f"{out}/metadata.json"))["image_shape"] == [8, 6, 3]
    bad = helpers.run_module("prepare", "--format=folder", f"--source_dir={tmp_path / 'raw'}", f"--output_dir={out}",
                             "--image_size=8")
    assert bad.returncode != 0 and "--image_size=8: expected height,width" in bad.stderr
