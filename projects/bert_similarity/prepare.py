"""Reads sentence pairs once and writes the TFRecord shards that training reads.

    python -m projects.bert_similarity.prepare                      # KJV/WEB Bible verse pairs (default)
    python -m projects.bert_similarity.prepare --format=lcqmc --train=train.tsv --validation=dev.tsv \
        --test=test.tsv --output_dir=data/bert_similarity/lcqmc
    python -m projects.bert_similarity.prepare --format=qqp --train=quora.tsv --output_dir=data/bert_similarity/qqp

With only --train, the validation and test splits are cut from it by a fixed hash of the first text.
--book_split=k (bible, 0-9) holds out other books: each k tests on books no other k tests on.
--seed (default 0) drives the negative sampling, the held-out sampling and the shuffling.
"""

from __future__ import annotations

import random

from absl import flags

from core import runtime

from . import data

flags.DEFINE_enum("format", "bible", ["bible", *data.READERS], "Where the pairs come from.")
flags.DEFINE_string("sword_dir", data.SWORD_DIR, "SWORD library root holding the KJV and WEB modules (bible).")
flags.DEFINE_string("train", None, "Training pair file (lcqmc, qqp, mrpc).")
flags.DEFINE_string("validation", None, "Validation pair file; default: 10% of --train by hash.")
flags.DEFINE_string("test", None, "Test pair file; default: 10% of --train by hash.")
flags.DEFINE_string("output_dir", "data/bert_similarity/bible", "Where the shards and metadata.json go.")
flags.DEFINE_integer("max_held_out_verses", 500, "Verses sampled for validation and for test each (bible; 3 pairs "
                     "per verse); 0 keeps all. Evaluating a BERT is slow on a CPU.")
flags.DEFINE_integer("book_split", 0, "Which books are held out (bible): 0 tests on every 10th book from the 5th "
                     "and validates on every 10th from the 10th; k (0-9) moves both k books on, so splits 0-9 test "
                     "on disjoint sets of books.")
flags.DEFINE_integer("num_shards", 2, "Shards per split.")
flags.DEFINE_bool("overwrite", False, "Replace an already prepared --output_dir.")
FLAGS = flags.FLAGS


def bible_splits(sword_dir: str, max_held_out_verses: int, seed: int,
                 book_split: int = 0) -> dict[str, list[data.Pair]]:
    """Verse pairs by split (books held out by `book_split`); validation and test thinned to
    `max_held_out_verses` verses each."""
    data.check_book_split(book_split, "--book_split")  # before the 2-minute read, not after
    print(f"Reading {data.KJV} and {data.WEB} from {sword_dir} (about 2 minutes) ...")
    kjv = data.read_bible(data.KJV, sword_dir)
    books = list(dict.fromkeys(ref[0] for ref in kjv))  # the 66 books both have (not the WEB's deuterocanon)
    web = data.read_bible(data.WEB, sword_dir, books)
    pairs = data.verse_pairs(kjv, web, seed=seed, book_split=book_split)
    split_of = {book: data.split_of_book(i, book_split) for i, book in enumerate(books)}
    splits = {name: [p for p in pairs if split_of[p.group] == name] for name in data.SPLITS}
    rng = random.Random(seed)
    for name in ("validation", "test"):
        verses = sorted({p.text_a for p in splits[name]})
        if max_held_out_verses and len(verses) > max_held_out_verses:
            keep = set(rng.sample(verses, max_held_out_verses))
            splits[name] = [p for p in splits[name] if p.text_a in keep]
    return splits


def file_splits(fmt: str, train: str, validation: str | None, test: str | None) -> dict[str, list[data.Pair]]:
    """Pairs of the given files; a split without a file is cut from --train by hash."""
    if not train:
        raise data.DataError(f"--format={fmt} needs --train=<file>.")
    read = data.READERS[fmt]
    splits = {name: [] for name in data.SPLITS}
    for pair in read(train):
        name = data.split_of_group(pair.group, 0 if validation else 10, 0 if test else 10)
        splits[name].append(pair)
    for name, path in (("validation", validation), ("test", test)):
        if path:
            splits[name] = read(path)
    return splits


def main(argv: list[str]) -> None:
    """Reads the pairs of --format and writes --output_dir."""
    if FLAGS.format == "bible":
        splits = bible_splits(FLAGS.sword_dir, FLAGS.max_held_out_verses, FLAGS.seed or 0, FLAGS.book_split)
        description = f"SWORD {data.KJV} / {data.WEB} under {FLAGS.sword_dir}, book split {FLAGS.book_split}"
    else:
        splits = file_splits(FLAGS.format, FLAGS.train, FLAGS.validation, FLAGS.test)
        description = f"{FLAGS.format}: " + ", ".join(p for p in (FLAGS.train, FLAGS.validation, FLAGS.test) if p)
    metadata = data.write_prepared(splits, FLAGS.output_dir, description, FLAGS.num_shards, FLAGS.overwrite,
                                   FLAGS.seed or 0)
    print(f"Prepared {metadata['counts']} in {FLAGS.output_dir}")


if __name__ == "__main__":
    runtime.run(main)
