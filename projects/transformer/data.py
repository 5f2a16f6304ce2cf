"""Parallel text for translation: gettext catalogs (on every Debian machine) and tab-separated files.

The default corpus is the human translations of program messages shipped as gettext `.mo` catalogs
under /usr/share/locale: English message ids with their German (or `--target_lang`) translations.
`prepare` keeps single-line messages of a sensible length, drops gettext context prefixes and plural
variants, deduplicates by source text, splits by a fixed hash of the source (so a message lands in the
same split on every machine and every run) and writes TFRecord shards with core's writer.
"""

from __future__ import annotations

import gettext
import glob
import json
import os
import struct
import zlib

import tensorflow as tf
from absl import logging

from core.config import ConfigError
from core.data import prepared, tfrecord
from core.data.prepared import DataError
from core.files import write_text_atomic

from . import tokenizer as tokenizer_lib

SPLITS = ("train", "validation", "test")
FEATURE_SPEC = {"source": tf.io.FixedLenFeature([], tf.string), "target": tf.io.FixedLenFeature([], tf.string)}
LOCALE_DIR = "/usr/share/locale"
_CONTEXT_SEPARATOR = "\x04"  # gettext stores "context\x04message" for messages with a msgctxt


def read_catalog(path: str) -> list[tuple[str, str]]:
    """(message id, translation) pairs of one .mo file; context prefixes dropped, plural forms skipped."""
    try:
        with open(path, "rb") as f:
            translations = gettext.GNUTranslations(f)
    except (OSError, ValueError, struct.error, IndexError) as e:  # bad magic, truncated, undecodable
        raise DataError(f"{path}: not a readable gettext .mo catalog ({e}).") from e
    # GNUTranslations has no public way to list its messages; _catalog is the parsed table.
    pairs = []
    for key, translation in translations._catalog.items():
        if not isinstance(key, str) or not key or not translation:  # plural entries are keyed by (id, n)
            continue
        pairs.append((key.split(_CONTEXT_SEPARATOR, 1)[-1], translation))
    return pairs


def read_gettext(locale_dir: str = LOCALE_DIR, target_lang: str = "de") -> list[tuple[str, str]]:
    """Every (English, target) pair of the `<locale_dir>/<target_lang>/LC_MESSAGES/*.mo` catalogs, in file order."""
    files = sorted(glob.glob(os.path.join(locale_dir, target_lang, "LC_MESSAGES", "*.mo")))
    if not files:
        raise DataError(f"no .mo catalogs under {os.path.join(locale_dir, target_lang, 'LC_MESSAGES')}: is "
                        f"--target_lang={target_lang!r} right? Installed languages: "
                        f"{', '.join(sorted(os.listdir(locale_dir))[:20]) if os.path.isdir(locale_dir) else 'none'}")
    pairs = []
    for path in files:
        try:
            pairs.extend(read_catalog(path))
        except DataError as e:  # one broken catalog among hundreds: say so, use the rest
            logging.warning("Skipping %s", e)
    return pairs


def read_tsv(path: str) -> list[tuple[str, str]]:
    """(source, target) from `source<TAB>target[<TAB>anything]` lines (Anki/Tatoeba exports)."""
    pairs = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                fields = line.rstrip("\n").split("\t")
                if len(fields) < 2:
                    raise DataError(f"{path}:{number}: expected source<TAB>target, got {line.strip()[:60]!r}.")
                pairs.append((fields[0], fields[1]))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e}).") from e
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from e
    return pairs


def clean(pairs: list[tuple[str, str]], min_chars: int = 2, max_chars: int = 200) -> list[tuple[str, str]]:
    """Single-line pairs whose sides have min..max characters, first translation of each source kept."""
    kept, seen = [], set()
    for source, target in pairs:
        source, target = source.strip(), target.strip()
        if "\n" in source or "\n" in target or source in seen:
            continue
        if not (min_chars <= len(source) <= max_chars and min_chars <= len(target) <= max_chars):
            continue
        seen.add(source)
        kept.append((source, target))
    return kept


def split_of(source: str, validation_percent: int, test_percent: int, salt: int = 0) -> str:
    """The split a source text belongs to: a fixed hash (CRC-32) of its UTF-8 bytes, not a seeded shuffle.

    Another `salt` hashes the text with that number in front: another split of the same pairs, the same
    on every machine (salt 0, the default, hashes the text alone).
    """
    key = source if salt == 0 else f"{salt}\0{source}"
    bucket = zlib.crc32(key.encode("utf-8")) % 100
    return "test" if bucket < test_percent else "validation" if bucket < test_percent + validation_percent else "train"


def prepare(pairs: list[tuple[str, str]], output_dir: str, *, source_description: str, validation_percent: int = 5,
            test_percent: int = 5, min_chars: int = 2, max_chars: int = 200, num_shards: int = 2,
            overwrite: bool = False, split_salt: int = 0) -> dict:
    """Cleans, splits and writes `<split>-*.tfrecord` shards and metadata.json; returns the metadata."""
    if os.path.exists(os.path.join(output_dir, "metadata.json")) and not overwrite:
        raise DataError(f"{output_dir} is already prepared (metadata.json exists); pass --overwrite to replace it.")
    if not (0 < validation_percent and 0 < test_percent and validation_percent + test_percent < 100):
        raise DataError(f"validation_percent={validation_percent}, test_percent={test_percent}: each must be "
                        "positive and together below 100.")
    kept = clean(pairs, min_chars, max_chars)
    if not kept:
        raise DataError(f"{source_description}: no pairs left after keeping single-line messages of "
                        f"{min_chars}..{max_chars} characters.")
    splits = {name: [] for name in SPLITS}
    for source, target in kept:
        splits[split_of(source, validation_percent, test_percent, split_salt)].append((source, target))
    for old in glob.glob(os.path.join(output_dir, "*-of-*.tfrecord")):
        os.remove(old)
    for name in SPLITS:
        records = ({"source": s, "target": t} for s, t in splits[name])
        tfrecord.write_shards(records, FEATURE_SPEC, os.path.join(output_dir, name), num_shards)
    metadata = {"source": source_description, "counts": {name: len(splits[name]) for name in SPLITS},
                "pairs_read": len(pairs), "validation_percent": validation_percent, "test_percent": test_percent,
                "split_salt": split_salt, "min_chars": min_chars, "max_chars": max_chars}
    write_text_atomic(os.path.join(output_dir, "metadata.json"), json.dumps(metadata, indent=2, ensure_ascii=False))
    return metadata


def read_pairs(data_dir: str, split: str) -> tf.data.Dataset:
    """{"source": string, "target": string} examples of one split, in file order; says to run prepare when
    there are none."""
    command = f"python -m projects.transformer.prepare --output_dir={data_dir}"
    return prepared.read_split(data_dir, split, FEATURE_SPEC, command, "TranslationTask.data_dir")


def bucket_lengths(max_length: int, bucket_width: int) -> list[int]:
    """The padded lengths of the buckets: bucket_width, 2 * bucket_width, ..., up to max_length."""
    if bucket_width < 1 or max_length < 2:
        raise ConfigError(f"TranslationTask: bucket_width={bucket_width} must be >= 1 and max_length={max_length} "
                          ">= 2.")
    lengths = list(range(bucket_width, max_length, bucket_width))
    return [*lengths, max_length]


def tokenized_pairs(data_dir: str, split: str, tokenizer, max_length: int,
                    input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """(source ids, target ids) pairs of `split`, without start or end ids; tokenized in batches (faster), then
    cached. Training pairs longer than `max_length` - 1 pieces are skipped, held-out ones truncated."""
    pairs = prepared.shard(read_pairs(data_dir, split), input_context)
    tokenized = pairs.batch(1024).map(
        lambda b: (tokenizer(b["source"]), tokenizer(b["target"])),
        num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    limit = max_length - 1  # room for the end (or start) id
    if split == "train":  # a truncated pair teaches a wrong translation; skip it
        tokenized = tokenized.filter(lambda s, t: (tf.size(s) <= limit) & (tf.size(t) <= limit))
    else:  # held-out loss and accuracy cover every pair
        tokenized = tokenized.map(lambda s, t: (s[:limit], t[:limit]))
    return tokenized.cache()


def make_dataset(data_dir: str, split: str, tokenizer, *, max_length: int, buckets: list[int], tokens_per_batch: int,
                 shuffle_buffer: int, seed: int | None = None,
                 input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """({"source": (B, S), "target_in": (B, T)}, target_out (B, T)) int32 batches: endless, shuffled and
    length-bucketed for "train"; one pass for the held-out splits.

    Bucket i holds pairs whose longer side fits buckets[i] and pads both sides to it; its batch size is
    chosen so a batch holds about `tokens_per_batch` positions (global: split across the replicas).
    """
    training = split == "train"
    replicas = input_context.num_replicas_in_sync if input_context else 1
    dataset = tokenized_pairs(data_dir, split, tokenizer, max_length, input_context)
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed).repeat()
    bos, eos = tf.constant([tokenizer_lib.BOS_ID]), tf.constant([tokenizer_lib.EOS_ID])
    dataset = dataset.map(lambda s, t: (tf.concat([s, eos], 0), tf.concat([bos, t], 0), tf.concat([t, eos], 0)),
                          num_parallel_calls=tf.data.AUTOTUNE)
    batch_sizes = [max(1, tokens_per_batch // replicas // length) for length in buckets]
    dataset = dataset.bucket_by_sequence_length(
        lambda s, t_in, t_out: tf.maximum(tf.size(s), tf.size(t_in)),
        bucket_boundaries=[length + 1 for length in buckets],
        bucket_batch_sizes=[*batch_sizes, 1],  # the last bucket (longer than max_length) stays empty
        pad_to_bucket_boundary=True, drop_remainder=training)
    dataset = dataset.map(lambda s, t_in, t_out: ({"source": s, "target_in": t_in}, t_out))
    return dataset.prefetch(tf.data.AUTOTUNE)
