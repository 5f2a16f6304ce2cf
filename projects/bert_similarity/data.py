"""Sentence pairs for similarity: Bible verses in two English translations, and the usual TSV formats.

The default data is real paraphrase that installs offline: the same verse in the King James Version
and the World English Bible (Debian `sword-text-kjv`, `sword-text-web`, read with PyPI `pysword`).
  positive  KJV verse, WEB rendering of the same verse                    label 1
  hard      KJV verse, WEB verse at least 2 verses away in the same chapter  label 0 (same topic, words)
  random    KJV verse, WEB verse from another book of the same split       label 0
Books, not verses, are split (a fixed rule on the book's position, moved by `book_split`), so no book
is in two splits and the test set is text the model has never seen a verse of. `read_lcqmc`, `read_qqp` and `read_mrpc`
read the standard pair files users bring into the same (text_a, text_b, label, kind) records.

`make_dataset` is the input pipeline: the prepared pairs tokenized and packed once by the project's
`PairPreprocessor` and cached, then batches of pairs of similar length, padded only to the longest pair
in the batch (keras-hub and most tutorials pad every pair to 128).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import html
import json
import os
import random
import re
import zlib

import tensorflow as tf

from core.data import prepared, tfrecord
from core.data.prepared import DataError
from core.files import write_text_atomic
from core.progress import Progress

SPLITS = ("train", "validation", "test")
KINDS = ("positive", "hard", "random", "pair")  # "pair": a labelled pair from a TSV file
FEATURE_SPEC = {"text_a": tf.io.FixedLenFeature([], tf.string), "text_b": tf.io.FixedLenFeature([], tf.string),
                "label": tf.io.FixedLenFeature([], tf.int64), "kind": tf.io.FixedLenFeature([], tf.string)}
SWORD_DIR = "/usr/share/sword"
KJV, WEB = "engKJV2006eb", "engWEB2015eb"


@dataclasses.dataclass(frozen=True)
class Pair:
    text_a: str
    text_b: str
    label: int
    kind: str = "pair"
    group: str = ""  # what the split is decided on: the book for verses, the text for TSV pairs


_NOTE = re.compile(r"<note\b.*?</note>|<title\b.*?</title>", re.S)  # footnotes and psalm titles: not the verse
_TAG = re.compile(r"<[^>]+>")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?’”)\]])")
_SPACE_AFTER_OPENING = re.compile(r"([“‘(\[])\s+")


def clean_markup(osis: str) -> str:
    """Verse text from OSIS markup: notes dropped, every other tag replaced by a space, not by nothing.

    `God</w><note>..</note><w>created` must read "God created", not "Godcreated".
    """
    text = _TAG.sub(" ", _NOTE.sub(" ", osis)).replace("¶", " ")  # ¶: the KJV's paragraph mark
    text = " ".join(html.unescape(text).split())
    return _SPACE_AFTER_OPENING.sub(r"\1", _SPACE_BEFORE_PUNCT.sub(r"\1", text))


def read_bible(module: str, sword_dir: str = SWORD_DIR, books: list[str] | None = None,
               every_seconds: float = 10.0) -> dict:
    """{(book, chapter, verse): text} of one SWORD module; `books` (OSIS names, e.g. "Jude") limits it. Says how
    many books it has read at most every `every_seconds` (a module takes about a minute)."""
    from pysword.modules import SwordModules  # only prepare needs it

    if not os.path.isdir(os.path.join(sword_dir, "mods.d")):
        raise DataError(f"{sword_dir}: no mods.d folder; install the Debian packages sword-text-kjv and "
                        "sword-text-web (`make setup` does), or pass --sword_dir.")
    modules = SwordModules(sword_dir)
    found = modules.parse_modules()
    if module not in found:
        raise DataError(f"{sword_dir}: no SWORD module {module} (found: {', '.join(found) or 'none'}).")
    bible = modules.get_bible_from_module(module)
    wanted = [book for testament in bible.get_structure().get_books().values() for book in testament
              if books is None or book.osis_name in books]
    progress = Progress(len(wanted), "book", f"Reading {module}", every_seconds=every_seconds)
    verses = {}
    for book in wanted:
        for chapter, count in enumerate(book.chapter_lengths, start=1):
            texts = bible.get_iter(books=[book.osis_name], chapters=[chapter], clean=False)
            for verse, text in enumerate(texts, start=1):
                text = clean_markup(text)
                if text and verse <= count:
                    verses[(book.osis_name, chapter, verse)] = text
        progress.add(1)
    return verses


BOOK_SPLITS = 10  # book splits 0-9 hold out disjoint sets of test books (and of validation books)


def check_book_split(book_split: int, name: str = "book split") -> None:
    """Raises DataError, naming `name` (a flag, say), unless `book_split` is one of 0-9."""
    if not 0 <= book_split < BOOK_SPLITS:
        raise DataError(f"{name} {book_split}: expected 0 to {BOOK_SPLITS - 1}.")


def split_of_book(position: int, book_split: int = 0) -> str:
    """Books in canonical order: every 10th from the 5th is test, every 10th from the 10th is validation.

    `book_split` k (0-9) moves both k books on: split 1 tests on the 6th, 16th, ... book, so each split's
    test books are books no other split tests on, and each is a split the default config was not chosen on.
    """
    check_book_split(book_split)
    slot = (position - book_split) % 10
    return "test" if slot == 4 else "validation" if slot == 9 else "train"


def verse_pairs(kjv: dict, web: dict, seed: int = 0, max_length_ratio: float = 3.0,
                book_split: int = 0) -> list[Pair]:
    """One positive, one hard and one random negative per verse both translations have.

    A verse whose two renderings differ in length by more than `max_length_ratio` is skipped: that is
    where the two versifications disagree (a psalm title counted as verse 1 in one of them).
    """
    rng = random.Random(seed)
    shared = [ref for ref in kjv if ref in web]
    book_order = list(dict.fromkeys(ref[0] for ref in kjv))
    split_books = {book: split_of_book(i, book_split) for i, book in enumerate(book_order)}
    chapters: dict[tuple, list] = {}
    for ref in shared:
        chapters.setdefault(ref[:2], []).append(ref)
    by_split: dict[str, list] = {}
    for ref in shared:
        by_split.setdefault(split_books[ref[0]], []).append(ref)
    for name, refs in by_split.items():
        if len({ref[0] for ref in refs}) < 2:  # the random negative's loop below would never end
            raise DataError(f"the {name} split of book split {book_split} holds one book ({refs[0][0]}); random "
                            "negatives come from another book of the same split, so each split needs two or more.")
    pairs = []
    for ref in shared:
        a, b = kjv[ref], web[ref]
        if max(len(a), len(b)) > max_length_ratio * min(len(a), len(b)):
            continue
        group = ref[0]
        pairs.append(Pair(a, b, 1, "positive", group))
        far = [other for other in chapters[ref[:2]] if abs(other[2] - ref[2]) >= 2]
        if far:
            pairs.append(Pair(a, web[rng.choice(far)], 0, "hard", group))
        pool = by_split[split_books[ref[0]]]
        other = rng.choice(pool)
        while other[0] == ref[0]:
            other = rng.choice(pool)
        pairs.append(Pair(a, web[other], 0, "random", group))
    return pairs


def _open_tsv(path: str):
    try:
        return open(path, encoding="utf-8", newline="")
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from e


def _label(value: str, path: str, number: int) -> int:
    if value.strip() not in ("0", "1"):
        raise DataError(f"{path}:{number}: label {value!r}; expected 0 or 1.")
    return int(value)


def read_lcqmc(path: str) -> list[Pair]:
    """LCQMC: `q1<TAB>q2<TAB>label` lines, no header (Chinese questions). An optional fourth column names the
    pair's kind (`positive`, `hard`, `random` as in the Bible pairs, or any word), which evaluate reports on:
    the hard subset is the `positive` and `hard` pairs."""
    pairs = []
    with _open_tsv(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) not in (3, 4):
                raise DataError(f"{path}:{number}: expected q1<TAB>q2<TAB>label[<TAB>kind], got {len(fields)} "
                                "fields.")
            kind = fields[3].strip() if len(fields) == 4 else Pair.kind
            if not kind:
                raise DataError(f"{path}:{number}: the fourth column (the pair's kind) is empty.")
            pairs.append(Pair(fields[0], fields[1], _label(fields[2], path, number), kind=kind, group=fields[0]))
    return pairs


def _read_with_header(path: str, columns: tuple[str, str, str], fmt: str) -> list[Pair]:
    """Rows of a TSV whose header names the two text columns and the label column."""
    with _open_tsv(path) as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or not set(columns) <= set(header):
            raise DataError(f"{path}: header {header}; a {fmt} file has the columns {', '.join(columns)}.")
        index = [header.index(column) for column in columns]
        pairs = []
        for number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(f"{path}:{number}: {len(row)} fields, the header has {len(header)}.")
            a, b, label = (row[i] for i in index)
            pairs.append(Pair(a, b, _label(label, path, number), group=a))
    return pairs


def read_qqp(path: str) -> list[Pair]:
    """Quora Question Pairs TSV (GLUE): header `id qid1 qid2 question1 question2 is_duplicate`."""
    return _read_with_header(path, ("question1", "question2", "is_duplicate"), "QQP")


def read_mrpc(path: str) -> list[Pair]:
    """MRPC TSV (GLUE): header `Quality #1 ID #2 ID #1 String #2 String`; Quality is the label."""
    return _read_with_header(path, ("#1 String", "#2 String", "Quality"), "MRPC")


READERS = {"lcqmc": read_lcqmc, "qqp": read_qqp, "mrpc": read_mrpc}


def split_of_group(group: str, validation_percent: int = 10, test_percent: int = 10) -> str:
    """A fixed split for TSV pairs: a hash (CRC-32) of the first text, so duplicates stay together."""
    bucket = zlib.crc32(group.encode("utf-8")) % 100
    return "test" if bucket < test_percent else "validation" if bucket < test_percent + validation_percent else "train"


def write_prepared(splits: dict[str, list[Pair]], output_dir: str, description: str, num_shards: int = 2,
                   overwrite: bool = False, seed: int = 0) -> dict:
    """Writes `<split>-*.tfrecord` (shuffled with `seed`) and metadata.json; returns the metadata."""
    if os.path.exists(os.path.join(output_dir, "metadata.json")) and not overwrite:
        raise DataError(f"{output_dir} is already prepared (metadata.json exists); pass --overwrite to replace it.")
    counts = {}
    for name in SPLITS:
        pairs = list(splits.get(name, []))
        if not pairs:
            raise DataError(f"{description}: the {name} split is empty; need pairs in every split.")
        random.Random(seed).shuffle(pairs)
        records = ({"text_a": p.text_a, "text_b": p.text_b, "label": p.label, "kind": p.kind} for p in pairs)
        tfrecord.write_shards(records, FEATURE_SPEC, os.path.join(output_dir, name), num_shards)
        counts[name] = dict(collections.Counter(p.kind for p in pairs))
    metadata = {"source": description, "counts": counts}
    write_text_atomic(os.path.join(output_dir, "metadata.json"), json.dumps(metadata, indent=2, ensure_ascii=False))
    return metadata


def read_pairs(data_dir: str, split: str) -> tf.data.Dataset:
    """{"text_a", "text_b", "label", "kind"} examples of one split, in file order; says to run prepare when
    there are none."""
    command = f"python -m projects.bert_similarity.prepare --output_dir={data_dir}"
    return prepared.read_split(data_dir, split, FEATURE_SPEC, command, "SimilarityTask.data_dir")


def packed_pairs(data_dir: str, split: str, preprocessor, input_context=None) -> tf.data.Dataset:
    """Per pair: `preprocessor.packed` of its texts (unpadded), and the label as float32."""
    pairs = prepared.shard(read_pairs(data_dir, split), input_context)

    def pack_batch(batch):
        first, second = preprocessor.packed(batch["text_a"], batch["text_b"])
        return first, second, tf.cast(batch["label"], tf.float32)

    packed = pairs.batch(256).map(pack_batch, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    # Cache the training split (read many times over); the held-out ones are small, and a partial
    # validation pass (TrainConfig.eval_steps) would leave a cache half-filled.
    return packed.cache() if split == "train" else packed


def make_dataset(data_dir: str, split: str, preprocessor, *, batch_size: int, bucket_boundaries: tuple[int, ...],
                 shuffle_buffer: int = 10_000, seed: int | None = None, input_context=None) -> tf.data.Dataset:
    """(inputs dict, label) batches of `batch_size` pairs: endless, shuffled and length-bucketed for "train";
    one pass in file order for the others."""
    training = split == "train"
    dataset = packed_pairs(data_dir, split, preprocessor, input_context)
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed).repeat()
    dataset = dataset.map(lambda x, y, label: (x, y, tf.ones_like(x), tf.ones_like(y), label))
    buckets = len(bucket_boundaries) + 1
    dataset = dataset.bucket_by_sequence_length(
        lambda x, y, *_: tf.maximum(tf.size(x), tf.size(y)), bucket_boundaries=list(bucket_boundaries),
        bucket_batch_sizes=[batch_size] * buckets, pad_to_bucket_boundary=False, drop_remainder=training)
    return dataset.map(lambda x, y, mask_x, mask_y, label: (preprocessor.from_padded(x, y, mask_x, mask_y), label),
                       num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
