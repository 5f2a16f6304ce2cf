import os

import numpy as np
import pytest
import tensorflow as tf

from core.data import tfrecord

SPEC = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "weights": tf.io.FixedLenFeature([3], tf.float32),
    "tokens": tf.io.VarLenFeature(tf.int64),
}


def _examples(n):
    for i in range(n):
        yield {"image": bytes([i % 256] * 4), "label": i, "weights": np.full(3, i, "float32"),
               "tokens": list(range(i % 4))}


def test_write_shards_round_trips_every_feature(tmp_path):
    paths = tfrecord.write_shards(_examples(10), SPEC, str(tmp_path / "train"), num_shards=3)
    assert [os.path.basename(p) for p in paths] == [f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths)  # no temp files left
    assert tfrecord.count_records(paths) == 10
    ds = tfrecord.make_dataset(str(tmp_path / "train-*"), SPEC, batch_size=4)
    batches = list(ds)
    labels = np.concatenate([b["label"].numpy() for b in batches])
    assert sorted(labels) == list(range(10))
    first = batches[0]
    assert first["weights"].shape == (4, 3)
    for label, image, weights in zip(first["label"].numpy(), first["image"].numpy(), first["weights"].numpy()):
        assert image == bytes([label] * 4)
        np.testing.assert_array_equal(weights, np.full(3, label))
    tokens = tf.sparse.to_dense(first["tokens"]).numpy()
    assert tokens.shape[0] == 4


def test_training_pipeline_shuffles_repeats_and_maps(tmp_path):
    tfrecord.write_shards(_examples(20), SPEC, str(tmp_path / "train"), num_shards=2)
    ds = tfrecord.make_dataset(
        str(tmp_path / "train-*"), SPEC, batch_size=8, shuffle=True, repeat=True, cache=True, seed=1,
        drop_remainder=True, map_fn=lambda b: (b["weights"], b["label"]))
    x, y = next(iter(ds))
    assert x.shape == (8, 3) and y.shape == (8,)
    seen = np.concatenate([y.numpy() for _, y in ds.take(10)])
    assert set(seen) == set(range(20))  # repeated past one epoch
    assert list(seen[:20]) != sorted(seen[:20])  # shuffled


def test_input_context_shards_files_between_pipelines(tmp_path):
    tfrecord.write_shards(_examples(12), SPEC, str(tmp_path / "train"), num_shards=4)
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline)
        ds = tfrecord.make_dataset(str(tmp_path / "train-*"), SPEC, batch_size=2, input_context=context)
        seen.append({int(v) for b in ds for v in b["label"].numpy()})
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(12))


def test_missing_feature_is_named():
    with pytest.raises(ValueError, match="missing features.*'label'"):
        tfrecord.serialize_example({"image": b"x", "weights": [1, 2, 3], "tokens": []}, SPEC)


def test_wrong_dtype_is_named():
    with pytest.raises(ValueError, match="feature 'label'.*int64"):
        tfrecord.serialize_example({"image": b"x", "label": 1.5, "weights": [1, 2, 3], "tokens": []}, SPEC)


def test_failed_write_leaves_no_shards(tmp_path):
    def broken():
        yield from _examples(3)
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError):
        tfrecord.write_shards(broken(), SPEC, str(tmp_path / "train"), num_shards=2)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_damaged_record_file_error_names_the_file(tmp_path, damage):
    paths = tfrecord.write_shards(_examples(10), SPEC, str(tmp_path / "train"), num_shards=2)
    data = open(paths[1], "rb").read()
    if damage == "truncate":
        data = data[: len(data) - 7]
    else:
        data = data[:30] + bytes([data[30] ^ 0xFF]) + data[31:]
    open(paths[1], "wb").write(data)
    with pytest.raises(tfrecord.RecordFileError, match=os.path.basename(paths[1])):
        tfrecord.make_dataset(str(tmp_path / "train-*"), SPEC, batch_size=2)


def test_no_matching_files_is_a_clear_error(tmp_path):
    with pytest.raises(tfrecord.RecordFileError, match="no record files match"):
        tfrecord.make_dataset(str(tmp_path / "nothing-*"), SPEC, batch_size=2)
