"""Parallel-text readers and preparation: gettext catalogs compiled by msgfmt, TSV files, the hash split."""

import json
import os
import subprocess

import pytest
import tensorflow as tf

from core import testing

from .. import data

PO = r'''
msgid ""
msgstr "Content-Type: text/plain; charset=UTF-8\n"

msgid "could not open file %s"
msgstr "Datei %s konnte nicht geöffnet werden"

msgctxt "menu"
msgid "_Open"
msgstr "Ö_ffnen"

msgid "one file"
msgid_plural "%d files"
msgstr[0] "eine Datei"
msgstr[1] "%d Dateien"

msgid "first line\nsecond line"
msgstr "erste Zeile\nzweite Zeile"

msgid "untranslated"
msgstr ""

msgid "cannot read '%s'"
msgstr "»%s« kann nicht gelesen werden"
'''


def write_catalogs(locale_dir, lang="de", extra=""):
    """Two .mo files compiled by GNU msgfmt (an independent writer of the format gettext reads)."""
    folder = os.path.join(locale_dir, lang, "LC_MESSAGES")
    os.makedirs(folder, exist_ok=True)
    for name, text in (("a", PO), ("b", 'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\n'
                                        'msgid "could not open file %s"\nmsgstr "Kann %s nicht öffnen"\n' + extra)):
        po = os.path.join(folder, f"{name}.po")
        with open(po, "w", encoding="utf-8") as f:
            f.write(text)
        subprocess.run(["msgfmt", "-o", os.path.join(folder, f"{name}.mo"), po], check=True)


def test_catalogs_give_single_messages_without_context_or_plurals(tmp_path):
    write_catalogs(str(tmp_path))
    pairs = data.read_gettext(str(tmp_path), "de")
    assert ("_Open", "Ö_ffnen") in pairs  # context "menu" dropped
    assert not any("Datei" in t and "%d" in t for _, t in pairs)  # plural forms skipped
    assert not any(s == "untranslated" for s, _ in pairs)
    cleaned = data.clean(pairs)
    assert dict(cleaned)["could not open file %s"] == "Datei %s konnte nicht geöffnet werden"  # first file wins
    assert not any("\n" in s for s, _ in cleaned)
    assert ("cannot read '%s'", "»%s« kann nicht gelesen werden") in cleaned


def test_missing_language_and_broken_catalogs_are_reported(tmp_path):
    write_catalogs(str(tmp_path))
    with pytest.raises(data.DataError, match="no .mo catalogs.*--target_lang='xx'.*de"):
        data.read_gettext(str(tmp_path), "xx")
    broken = tmp_path / "de" / "LC_MESSAGES" / "c.mo"
    broken.write_bytes(b"not a catalog at all")
    with pytest.raises(data.DataError, match="c.mo: not a readable gettext"):
        data.read_catalog(str(broken))
    assert len(data.read_gettext(str(tmp_path), "de")) > 3  # the others still read


def test_tsv_reader_takes_two_columns_and_names_bad_lines(tmp_path):
    path = tmp_path / "deu.txt"
    path.write_text("Go.\tGeh.\tCC-BY 2.0 (France) Attribution\nHi.\tHallo!\n\n", encoding="utf-8")
    assert data.read_tsv(str(path)) == [("Go.", "Geh."), ("Hi.", "Hallo!")]
    path.write_text("Go.\tGeh.\nno tab here\n", encoding="utf-8")
    with pytest.raises(data.DataError, match=r"deu.txt:2: expected source<TAB>target"):
        data.read_tsv(str(path))


def test_hash_split_is_fixed_and_roughly_proportional():
    sources = [f"message number {i}" for i in range(5000)]
    splits = [data.split_of(s, 5, 5) for s in sources]
    assert splits == [data.split_of(s, 5, 5) for s in sources]
    share = {name: splits.count(name) / len(splits) for name in data.SPLITS}
    assert 0.04 < share["test"] < 0.06 and 0.04 < share["validation"] < 0.06


def test_a_split_salt_gives_another_fixed_split_and_salt_0_is_the_default():
    sources = [f"message number {i}" for i in range(5000)]
    default = [data.split_of(s, 5, 5) for s in sources]
    assert default == [data.split_of(s, 5, 5, salt=0) for s in sources]
    salted = [data.split_of(s, 5, 5, salt=1) for s in sources]
    assert salted == [data.split_of(s, 5, 5, salt=1) for s in sources]
    tests = [{i for i, split in enumerate(splits) if split == "test"} for splits in (default, salted)]
    assert 200 < len(tests[1]) < 300 and len(tests[0] & tests[1]) < 40  # about 5% of 5%: mostly other texts


def test_prepare_binary_writes_shards_that_read_back(tmp_path):
    write_catalogs(str(tmp_path / "locale"))
    out = tmp_path / "prepared"
    result = testing.run_module("projects.transformer.prepare", f"--locale_dir={tmp_path / 'locale'}",
                                f"--output_dir={out}", "--validation_percent=30", "--test_percent=30")
    assert result.returncode == 0, result.stderr[-2000:]
    metadata = json.load(open(out / "metadata.json"))
    assert sum(metadata["counts"].values()) == 3  # "could not open file %s", "_Open", "cannot read '%s'"
    read = []
    for split in data.SPLITS:
        for record in tf.data.TFRecordDataset(sorted(map(str, out.glob(f"{split}-*.tfrecord")))):
            example = tf.io.parse_single_example(record, data.FEATURE_SPEC)
            source = example["source"].numpy().decode()
            assert data.split_of(source, 30, 30) == split
            read.append((source, example["target"].numpy().decode()))
    assert sorted(read) == sorted(data.clean(data.read_gettext(str(tmp_path / "locale"))))
    assert metadata["split_salt"] == 0
    again = testing.run_module("projects.transformer.prepare", f"--locale_dir={tmp_path / 'locale'}",
                               f"--output_dir={out}")
    assert again.returncode == 2 and "--overwrite" in again.stderr
