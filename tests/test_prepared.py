"""core.data.prepared: the readers of a folder `prepare` wrote, and the per-pipeline shard."""

import json

import pytest
import tensorflow as tf

from core.config import ConfigError
from core.data import prepared


def test_read_metadata_reads_it_and_names_the_prepare_command_when_it_is_missing(tmp_path):
    with pytest.raises(prepared.DataError, match=rf"{tmp_path}/metadata.json does not exist.*\n  python -m x.prepare"):
        prepared.read_metadata(str(tmp_path), "python -m x.prepare")
    (tmp_path / "metadata.json").write_text(json.dumps({"class_names": ["a", "é"]}), encoding="utf-8")
    assert prepared.read_metadata(str(tmp_path), "unused") == {"class_names": ["a", "é"]}


def test_split_files_are_sorted_and_none_is_a_config_error_naming_the_binding(tmp_path):
    for name in ("train-00001-of-00002.tfrecord", "train-00000-of-00002.tfrecord", "test-00000-of-00001.tfrecord"):
        (tmp_path / name).write_bytes(b"")
    assert [p.rsplit("/", 1)[1] for p in prepared.split_files(str(tmp_path), "train", "cmd", "T.data_dir")] == [
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    with pytest.raises(ConfigError, match=rf"no validation-\*.tfrecord files in {tmp_path}: run `cmd` first, "
                                          r"or set T.data_dir\."):
        prepared.split_files(str(tmp_path), "validation", "cmd", "T.data_dir")


def test_shard_gives_each_input_pipeline_every_nth_element_and_leaves_one_pipeline_alone():
    dataset = tf.data.Dataset.range(7)
    assert list(prepared.shard(dataset, None).as_numpy_iterator()) == list(range(7))
    parts = [list(prepared.shard(dataset, tf.distribute.InputContext(2, i, 2)).as_numpy_iterator()) for i in (0, 1)]
    assert parts == [[0, 2, 4, 6], [1, 3, 5]]
    assert list(prepared.shard(dataset, tf.distribute.InputContext(1, 0, 2)).as_numpy_iterator()) == list(range(7))


def test_read_split_parses_the_examples_in_file_order_and_names_a_missing_split(tmp_path):
    from core.data import tfrecord

    spec = {"text": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}
    rows = [{"text": f"t{i}", "label": i} for i in range(5)]
    tfrecord.write_shards(rows, spec, str(tmp_path / "train"), 2)
    read = list(prepared.read_split(str(tmp_path), "train", spec, "cmd", "T.data_dir").as_numpy_iterator())
    assert sorted((r["text"].decode(), int(r["label"])) for r in read) == [(f"t{i}", i) for i in range(5)]
    with pytest.raises(ConfigError, match="no test-.*run `cmd` first, or set T.data_dir"):
        prepared.read_split(str(tmp_path), "test", spec, "cmd", "T.data_dir")
