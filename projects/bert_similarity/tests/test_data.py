"""Readers: the Bible verse pairs from the installed SWORD modules, and LCQMC / QQP / MRPC files."""

import numpy as np
import pytest
import tensorflow as tf

from .. import data, scoring
from ..preprocessor import BertPreprocessor
from . import helpers


def test_markup_becomes_a_space_and_notes_disappear():
    osis = ('<w lemma="H0430">God</w><note placement="foot">The Hebrew word...</note><w lemma="x">created</w> '
            '<w>the</w> <w>earth</w>. ¶ He said, “ <transChange>Let</transChange> there be light. ”')
    assert data.clean_markup(osis) == "God created the earth. He said, “Let there be light.”"


@pytest.fixture(scope="module")
def jude():
    return {name: data.read_bible(name, books=["Jude", "Phlm"]) for name in (data.KJV, data.WEB)}


def test_bible_reader_says_how_many_books_it_has_read(capsys):
    data.read_bible(data.KJV, books=["Jude", "Phlm"], every_seconds=0)
    lines = [line.rsplit(", ", 1) for line in capsys.readouterr().out.splitlines()]
    assert [count for count, _ in lines] == [f"Reading {data.KJV}: 1/2 books (50%)",
                                             f"Reading {data.KJV}: 2/2 books (100%)"]
    assert all(seconds.endswith(" s") and seconds[:-2].isdigit() for _, seconds in lines)


def test_bible_reader_aligns_the_two_translations_verse_by_verse(jude):
    kjv, web = jude[data.KJV], jude[data.WEB]
    assert len(kjv) == 25 + 25 and set(kjv) == set(web)  # Jude and Philemon: 25 verses each
    assert kjv[("Jude", 1, 25)].startswith("To the only wise God our Saviour")
    assert "Godcreated" not in " ".join(web.values()) and "<" not in " ".join(web.values())


def test_verse_pairs_have_one_positive_one_hard_and_one_random_negative_per_verse(jude):
    pairs = data.verse_pairs(jude[data.KJV], jude[data.WEB], seed=1)
    by_kind = {kind: [p for p in pairs if p.kind == kind] for kind in ("positive", "hard", "random")}
    assert len(by_kind["positive"]) == len(by_kind["hard"]) == len(by_kind["random"]) == 50
    web = jude[data.WEB]
    reference = {text: ref for ref, text in web.items()}
    kjv_ref = {text: ref for ref, text in jude[data.KJV].items()}
    for pair in by_kind["positive"]:
        assert pair.label == 1 and reference[pair.text_b] == kjv_ref[pair.text_a]
    for pair in by_kind["hard"]:  # same chapter, at least two verses away
        a, b = kjv_ref[pair.text_a], reference[pair.text_b]
        assert pair.label == 0 and a[:2] == b[:2] and abs(a[2] - b[2]) >= 2
    for pair in by_kind["random"]:  # another book
        assert pair.label == 0 and kjv_ref[pair.text_a][0] != reference[pair.text_b][0]


def test_books_are_split_by_position_so_no_book_is_in_two_splits():
    splits = [data.split_of_book(i) for i in range(66)]
    assert splits.count("test") == 7 and splits.count("validation") == 6 and splits.count("train") == 53
    assert splits[4] == "test" and splits[9] == "validation"  # Numbers, 1 Samuel


def test_book_splits_test_on_disjoint_books_and_a_bad_one_is_refused():
    test_books = [{i for i in range(66) if data.split_of_book(i, k) == "test"} for k in range(data.BOOK_SPLITS)]
    assert all(len(books) >= 6 for books in test_books)
    assert set.union(*test_books) == set(range(66))  # every book is a test book of exactly one split
    assert sum(map(len, test_books)) == 66
    assert data.split_of_book(5, 1) == "test" and data.split_of_book(4, 1) == "train"
    with pytest.raises(data.DataError, match="book split 10: expected 0 to 9"):
        data.split_of_book(0, 10)


def test_a_split_with_one_book_is_refused_not_looped_on(jude):
    # Philemon and Jude alone are books 0 and 1: book split 1 puts each in a split of its own.
    with pytest.raises(data.DataError, match=r"the (train|validation) split of book split 1 holds one book"):
        data.verse_pairs(jude[data.KJV], jude[data.WEB], seed=1, book_split=1)


def test_lcqmc_reader_and_chinese_tokenization(tmp_path):
    path = tmp_path / "lcqmc.tsv"
    path.write_text("我爱北京\t我爱天安门\t0\n怎么学习\t怎么学习\t1\n", encoding="utf-8")
    pairs = data.read_lcqmc(str(path))
    expected = [("我爱北京", "我爱天安门", 0), ("怎么学习", "怎么学习", 1)]
    assert [(p.text_a, p.text_b, p.label) for p in pairs] == expected
    vocab = helpers.write_vocab(str(tmp_path / "vocab.txt"))
    pieces = BertPreprocessor(str(tmp_path / "vocab.txt")).tokenize(tf.constant([pairs[0].text_b]))
    assert pieces.merge_dims(-2, -1).to_list()[0] == [vocab.index(c) for c in "我爱天安门"]
    assert {p.kind for p in pairs} == {"pair"}
    path.write_text("only\ttwo\n", encoding="utf-8")
    with pytest.raises(data.DataError, match=r"lcqmc.tsv:1: expected q1<TAB>q2<TAB>label\[<TAB>kind\], got 2 fields"):
        data.read_lcqmc(str(path))


def test_lcqmc_fourth_column_keeps_the_kind_of_pair_for_the_hard_subset(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("a b\ta b\t1\tpositive\na b\tc d\t0\thard\na b\te f\t0\trandom\n", encoding="utf-8")
    pairs = data.read_lcqmc(str(path))
    assert [p.kind for p in pairs] == ["positive", "hard", "random"]
    kinds = np.array([p.kind for p in pairs])
    report = scoring.report(np.array([1, 0, 0]), np.array([0.9, 0.6, 0.1]), kinds, 0.5)
    assert report["hard"]["pairs"] == 2 and report["all"]["pairs"] == 3
    path.write_text("a\tb\t1\t \n", encoding="utf-8")
    with pytest.raises(data.DataError, match=r"pairs.tsv:1: the fourth column \(the pair's kind\) is empty"):
        data.read_lcqmc(str(path))


def test_qqp_and_mrpc_readers_use_their_headers(tmp_path):
    qqp = data.read_qqp(helpers.write_qqp(str(tmp_path / "qqp.tsv"), copies=1))
    assert [(p.text_a, p.label) for p in qqp][:2] == [("how do i learn python ?", 1), ("how do i cook rice ?", 1)]
    mrpc = tmp_path / "mrpc.tsv"
    mrpc.write_text("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tHe said so.\tHe told us so.\n"
                    "0\t3\t4\tIt rained.\tIt was sunny.\n", encoding="utf-8")
    assert [(p.text_a, p.text_b, p.label) for p in data.read_mrpc(str(mrpc))] == [
        ("He said so.", "He told us so.", 1), ("It rained.", "It was sunny.", 0)]
    with pytest.raises(data.DataError, match="a MRPC file has the columns #1 String, #2 String, Quality"):
        data.read_mrpc(helpers.write_qqp(str(tmp_path / "wrong.tsv"), copies=1))
    bad = tmp_path / "bad.tsv"
    bad.write_text("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\nyes\t1\t2\ta\tb\n", encoding="utf-8")
    with pytest.raises(data.DataError, match=r"bad.tsv:2: label 'yes'; expected 0 or 1"):
        data.read_mrpc(str(bad))
