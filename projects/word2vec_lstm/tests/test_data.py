import json
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from core.config import UserError

from .. import data, vectors
from . import helpers


def test_folder_reader_reads_chinese_thucnews_layout(tmp_path):
    examples = data.read_folder(helpers.write_chinese_folder(str(tmp_path / "thucnews")))
    assert sorted({label for _, label in examples}) == ["体育", "财经"]
    assert ("股市今天上涨，银行股领涨大盘。", "财经") in examples


def test_folder_reader_falls_back_to_cp1252_and_names_undecodable_files(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "1.txt").write_text("plain")
    (tmp_path / "a" / "2.txt").write_bytes(b"costs \xa3600m")  # a Windows-1252 pound sign, as in BBC sport/199
    assert ("costs £600m", "a") in data.read_folder(str(tmp_path))
    with pytest.raises(data.DataError, match=r"2.txt: not valid text in any of the encodings \['utf-8'\]"):
        data.read_folder(str(tmp_path), encodings=("utf-8",))


def test_folder_reader_needs_two_classes(tmp_path):
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "1.txt").write_text("x")
    with pytest.raises(data.DataError, match="found 1 class folder"):
        data.read_folder(str(tmp_path))


def test_csv_reader_reads_ag_news_with_classes_txt(tmp_path):
    (tmp_path / "train.csv").write_text(
        '"3","Wall St. Bears Claw Back Into the Black","Reuters - Short-sellers are seeing green again."\n'
        '"2","Phelps Wins Again","ATHENS - Michael Phelps won, his fifth gold."\n')
    (tmp_path / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n")
    examples = data.read_csv(str(tmp_path / "train.csv"))
    assert examples == [
        ("Wall St. Bears Claw Back Into the Black Reuters - Short-sellers are seeing green again.", "Business"),
        ("Phelps Wins Again ATHENS - Michael Phelps won, his fifth gold.", "Sports"),
    ]


def test_csv_reader_skips_a_header_and_names_bad_rows(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text("label,text\nsport,a match\npolitics\n")
    with pytest.raises(data.DataError, match=r"news.csv:3: expected 'label,text'"):
        data.read_csv(str(path))
    path.write_text("label,text\nsport,a match\npolitics,a vote\n")
    assert data.read_csv(str(path)) == [("a match", "sport"), ("a vote", "politics")]


def test_csv_reader_keeps_line_breaks_inside_quoted_fields(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text('sport,"line one\nline two"\npolitics,a vote\nbroken\n')
    with pytest.raises(data.DataError, match=r"news.csv:4: expected 'label,text'"):  # the 4th line, 3rd record
        data.read_csv(str(path))
    path.write_text('sport,"line one\nline two"\npolitics,a vote\n')
    assert data.read_csv(str(path)) == [("line one\nline two", "sport"), ("a vote", "politics")]


def test_prepare_refuses_to_rewrite_a_prepared_folder_unless_told(tmp_path):
    source = helpers.write_chinese_folder(str(tmp_path / "src"))
    out = str(tmp_path / "out")
    data.prepare(source, "folder", out, validation_fraction=0.25, test_fraction=0.25, num_shards=2)
    with pytest.raises(data.DataError, match="already prepared"):
        data.prepare(source, "folder", out, validation_fraction=0.25, test_fraction=0.25)
    data.prepare(source, "folder", out, validation_fraction=0.25, test_fraction=0.25, num_shards=1, overwrite=True)
    assert sorted(os.listdir(out)) == ["metadata.json", "test-00000-of-00001.tfrecord",
                                       "train-00000-of-00001.tfrecord", "validation-00000-of-00001.tfrecord",
                                       "vocabulary.tsv"]


def test_csv_folder_keeps_its_given_test_split(tmp_path):
    rows = "".join(f"{'ab'[i % 2]},text number {i}\n" for i in range(40))
    (tmp_path / "train.csv").write_text(rows)
    (tmp_path / "test.csv").write_text("a,held out one\nb,held out two\n")
    metadata = data.prepare(str(tmp_path), "csv", str(tmp_path / "out"), validation_fraction=0.25, num_shards=1)
    assert metadata["counts"] == {"train": 30, "validation": 10, "test": 2}


def test_stratified_split_keeps_class_proportions_and_is_fixed_by_seed():
    labels = np.array([0] * 100 + [1] * 50)
    fractions = {"train": 0.7, "validation": 0.1, "test": 0.2}
    split = data.stratified_split(labels, fractions, seed=0)
    assert [np.bincount(labels[split[s]]).tolist() for s in fractions] == [[70, 35], [10, 5], [20, 10]]
    assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(150))
    again = data.stratified_split(labels, fractions, seed=0)
    assert all(np.array_equal(split[s], again[s]) for s in fractions)
    assert not np.array_equal(split["test"], data.stratified_split(labels, fractions, seed=1)["test"])


def test_prepare_writes_shards_metadata_and_training_vocabulary(tmp_path):
    source = helpers.write_bbc_subset(str(tmp_path / "bbc"), per_class=10)
    metadata = data.prepare(source, "folder", str(tmp_path / "out"), num_shards=2)
    assert metadata["class_names"] == ["business", "entertainment", "politics", "sports", "tech"]
    assert metadata["counts"] == {"train": 35, "validation": 5, "test": 10}
    assert json.load(open(tmp_path / "out" / "metadata.json"))["counts"] == metadata["counts"]
    texts, labels = next(iter(data.make_dataset(str(tmp_path / "out"), "test", 64, None, training=False)))
    assert np.bincount(labels.numpy()).tolist() == [2, 2, 2, 2, 2]
    assert all(len(t) > 100 for t in texts.numpy())
    vocabulary = dict(line.split("\t") for line in open(tmp_path / "out" / "vocabulary.tsv", encoding="utf-8")
                      .read().splitlines())
    assert int(vocabulary["the"]) > 100


def test_make_dataset_explains_how_to_prepare(tmp_path):
    with pytest.raises(data.DataError, match="python -m projects.word2vec_lstm.prepare"):
        data.make_dataset(str(tmp_path), "train", 8, None, training=True)


def test_glove_loader_reads_the_parquet_index_and_npy_matrix(tmp_path):
    pq.write_table(pa.table({"index": ["the", "market", "fell"]}), tmp_path / "glove_6B_index.parquet")
    np.save(tmp_path / "glove_6B_50d_emb.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
    words, matrix = vectors.load_glove(str(tmp_path))
    assert words == ["the", "market", "fell"]
    np.testing.assert_array_equal(matrix[1], [2, 3])


def test_glove_without_the_extra_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # as if the extra were not installed
    with pytest.raises(UserError, match=r"needs pyarrow, an extra: pip install -r requirements-extras.txt"):
        vectors.load_glove(str(tmp_path))


def test_installed_glove_vectors_know_common_words():
    words, matrix = vectors.load_glove()
    assert matrix.shape == (400_000, 50) and words[:3] == ["the", ",", "."]


def test_embedding_matrix_lines_pretrained_rows_up_with_the_vocabulary():
    words, pretrained = ["market", "the"], np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    matrix = vectors.embedding_matrix(["the", "unseen", "market"], words, pretrained)
    assert matrix.shape == (5, 2)
    np.testing.assert_array_equal(matrix[0], [0, 0])  # padding
    np.testing.assert_array_equal(matrix[1], [2, 3])  # unknown words: the mean vector
    np.testing.assert_array_equal(matrix[2], [3, 4])  # "the"
    np.testing.assert_array_equal(matrix[4], [1, 2])  # "market"
    assert not np.allclose(matrix[3], 0)  # "unseen": random


def test_word2vec_vectors_must_exist(tmp_path):
    with pytest.raises(UserError, match="train word2vec first"):
        vectors.load_word2vec(str(tmp_path))


def test_line_corpus_is_read_line_by_line_from_every_matching_file(tmp_path):
    from .. import word2vec

    (tmp_path / "a.txt").write_text("first sentence\nsecond sentence\n")
    (tmp_path / "b.txt").write_text("third\n")
    lines = [t.numpy().decode() for t in word2vec.line_texts(str(tmp_path / "*.txt"))]
    assert sorted(lines) == ["first sentence", "second sentence", "third"]


def test_length_buckets_hold_every_article_once_padded_to_their_longest():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 21, 200)
    ids = np.zeros((200, 20), np.int32)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(1, 50, n)
    labels = np.arange(200)  # each article's label is its row: to find it again
    batches = tf.data.Dataset.from_tensor_slices((ids, labels)).batch(32)
    seen = []
    for batch_ids, batch_labels in data.bucket_by_length(batches, 8, bucket_width=5, max_length=20,
                                                         drop_remainder=False).as_numpy_iterator():
        batch_lengths = lengths[batch_labels]
        assert batch_ids.shape[1] == batch_lengths.max()  # padded to the longest in the batch, not to 20
        assert (batch_lengths - 1).min() // 5 == (batch_lengths - 1).max() // 5  # one bucket: 1-5, 6-10, ...
        for row, label in zip(batch_ids, batch_labels):
            np.testing.assert_array_equal(row, np.pad(ids[label, :lengths[label]], (0, len(row) - lengths[label])))
        seen.extend(batch_labels.tolist())
    assert sorted(seen) == list(range(200))
