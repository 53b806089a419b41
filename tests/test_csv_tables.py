"""CSV tables as they come: missing targets, dates, missing-value markers, identifiers, names with
spaces, encodings and delimiters, the column report, predict-time encoding, long class names."""

from __future__ import annotations

import logging
import math
import shlex
import warnings

import numpy as np
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from trainer.data.csv_file import load_csv, read_table
from trainer.data.dates import date_order, parse_date
from trainer.data.encoding import describe_columns, encode_table, feature_names_of
from trainer.data.fixes import hydra_value, list_override, override
from trainer.errors import UserError


def _write(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding)
    return str(path)


def _penguins(n=40):
    """A penguins-like table: an id column, a row number, markers, two spellings, a date."""
    header = (
        "Sample Number,Individual ID,Island,Culmen Length (mm),Sex,Temp (C),Date Egg,"
        "Comments,Species"
    )
    lines = [header]
    for i in range(n):
        length = "NA" if i in (3, 17) else f"{39 + (i % 7) * 0.5:.1f}"
        sex = {4: "male", 9: ""}.get(i, ["MALE", "FEMALE"][i % 2])
        temp = "-" if i == 10 else str(i % 5)
        species = {6: "NA", 13: ""}.get(i, ["Adelie", "Gentoo"][i % 2])
        island = ["Biscoe", "Dream", "Torgersen"][i % 3]
        lines.append(
            f"{i + 1},N{i // 2 + 1}A{i % 2 + 1},{island},{length},{sex},{temp},"
            f"2007-11-{i % 28 + 1:02d},,{species}"
        )
    return "\n".join(lines) + "\n"


PENGUIN_REPORT = [
    (
        "Sample Number",
        "numeric; likely identifier (unique whole numbers 1..40 counting the rows), kept; leave it "
        "out with 'dataset.exclude=[Sample Number]'",
    ),
    ("Individual ID", "excluded: likely identifier (every value unique)"),
    ("Island", "one-hot, 3 categories"),
    ("Culmen Length (mm)", "numeric; 2 missing (filled with the train-split mean)"),
    ("Sex", "one-hot, 2 categories; 1 missing (all zeros); spellings merged: 'male' as 'MALE'"),
    (
        "Temp (C)",
        "numeric; 1 missing (filled with the train-split mean); counted as missing: '-' in 1 cell",
    ),
    ("Date Egg", "date features (YYYY-MM-DD): year, month, day of year, weekday"),
    ("Comments", "excluded: no values (every cell is empty or a missing-value marker)"),
    ("Species", "target: binary, 2 classes ('Adelie', 'Gentoo'); 2 rows without a value left out"),
]


def test_the_column_report_says_how_every_column_was_treated(tmp_path, caplog):
    path = _write(tmp_path / "penguins.csv", _penguins())
    with caplog.at_level(logging.WARNING, logger="trainer"):
        data = load_csv(path, target="Species")
    assert describe_columns(data.columns) == PENGUIN_REPORT
    assert data.feature_names == [
        "Sample Number",
        "Island=Biscoe",
        "Island=Dream",
        "Island=Torgersen",
        "Culmen Length (mm)",
        "Sex=FEMALE",
        "Sex=MALE",
        "Temp (C)",
        "Date Egg.year",
        "Date Egg.month_sin",
        "Date Egg.month_cos",
        "Date Egg.day_of_year_sin",
        "Date Egg.day_of_year_cos",
        "Date Egg.weekday_sin",
        "Date Egg.weekday_cos",
    ]
    assert data.features.shape == (38, 15) and data.class_names == ["Adelie", "Gentoo"]
    assert f"'{path}': 2 rows without a target ('Species') left out (first at line 8; 'NA' " in (
        caplog.text
    )
    sex = data.features[:, data.feature_names.index("Sex=MALE")]
    assert sex[4] == 1.0  # 'male' (row 5) is the category 'MALE'


def test_rows_without_a_target_are_an_error_when_asked(tmp_path):
    path = _write(tmp_path / "penguins.csv", _penguins())
    with pytest.raises(UserError) as info:
        load_csv(path, target="Species", missing_target="error")
    assert info.value.key == "dataset.missing_target"
    assert str(info.value) == (
        f"dataset.missing_target=error: column 'Species' of '{path}' has no value in 2 rows (first "
        "at line 8; 'NA' counted as missing). Fill in those rows, or leave them out with "
        "dataset.missing_target=drop."
    )


def test_a_numeric_target_with_a_rare_marker_loses_those_rows(tmp_path, caplog):
    rows = "".join(f"{i},{'-' if i == 7 else f'{i * 1.37:.2f}'}\n" for i in range(30))
    data = load_csv(_write(tmp_path / "r.csv", "x,y\n" + rows), target="y")
    assert data.task == "regression" and len(data.targets) == 29
    assert describe_columns(data.columns)[-1] == (
        "y",
        "target: regression; 1 row without a value left out",
    )


@pytest.mark.parametrize(
    "cells,order,expected",
    [
        (["2012-01-31", "2012-02-01"], "ymd", (2012, 1, 31, 0, 0, False)),
        (["2012/01/31 10:30", "2012/02/01 11:00"], "ymd", (2012, 1, 31, 10, 30, True)),
        (["2012-01-31T10:30:15Z", "2012-02-01T00:00:00"], "ymd", (2012, 1, 31, 10, 30, True)),
        (["31/01/2012", "01/02/2012"], "dmy", (2012, 1, 31, 0, 0, False)),
        (["01/31/2012", "02/01/2012"], "mdy", (2012, 1, 31, 0, 0, False)),
        (["31.01.2012 08:05:09", "1.2.2012"], "dmy", (2012, 1, 31, 8, 5, True)),
        (["01/02/2012", "03/04/2012"], "mdy", (2012, 1, 2, 0, 0, False)),  # either: US
    ],
)
def test_date_formats_and_the_order_a_column_is_read_in(cells, order, expected):
    assert date_order(cells) == order
    when, has_time = parse_date(cells[0], order)
    assert (when.year, when.month, when.day, when.hour, when.minute, has_time) == expected


def test_dates_that_contradict_each_other_or_are_impossible_are_not_dates():
    assert date_order(["31/01/2012", "01/31/2012"]) is None
    assert parse_date("2012-02-30", "ymd") is None
    assert parse_date("2012-01-01 25:00", "ymd") is None
    assert parse_date("12/31/2012", "dmy") is None


def test_a_date_column_becomes_cyclical_features(tmp_path):
    days = [f"2012-01-{d:02d}" for d in range(1, 31)]
    text = "when,y\n" + "".join(f"{d},{i % 2}\n" for i, d in enumerate(days))
    data = load_csv(_write(tmp_path / "d.csv", text), target="y")
    assert describe_columns(data.columns)[0] == (
        "when",
        "date features (YYYY-MM-DD): year, month, day of year, weekday",
    )
    first = data.features[0]  # 2012-01-01, a Sunday: weekday 6
    expected = [2012, 0, 1, 0, 1, math.sin(2 * math.pi * 6 / 7), math.cos(2 * math.pi * 6 / 7)]
    np.testing.assert_allclose(first, expected, atol=1e-6)
    day_31 = load_csv(_write(tmp_path / "e.csv", "when,y\n2012-12-31,0\n" + text[8:]), target="y")
    # 2012 is a leap year: 31 December is day 366 of 366, just before 1 January on the circle
    angle = 2 * math.pi * 365 / 366
    np.testing.assert_allclose(
        day_31.features[0, 3:5], [math.sin(angle), math.cos(angle)], atol=1e-6
    )


def test_times_add_a_time_of_day_and_date_features_choose_the_parts(tmp_path):
    text = "when,y\n" + "".join(f"2012-03-04 {h:02d}:00,{h % 2}\n" for h in range(24))
    path = _write(tmp_path / "t.csv", text)
    data = load_csv(path, target="y")
    assert data.feature_names[-2:] == ["when.time_of_day_sin", "when.time_of_day_cos"]
    np.testing.assert_allclose(data.features[6, -2:], [1.0, 0.0], atol=1e-6)  # 06:00: a quarter
    only = load_csv(path, target="y", date_features="weekday")  # one name stands for a list
    assert only.feature_names == ["when.weekday_sin", "when.weekday_cos"]
    with pytest.raises(UserError, match=r"dataset.date_features='yr' is not one of: year, month"):
        load_csv(path, target="y", date_features=["yr"])


def test_named_dates_must_be_dates_and_a_few_bad_ones_are_missing(tmp_path, caplog):
    cells = [f"2012-05-{d:02d}" for d in range(1, 29)] + ["unknown"]
    text = "when,y\n" + "".join(f"{c},{i % 2}\n" for i, c in enumerate(cells))
    with caplog.at_level(logging.WARNING, logger="trainer"):
        data = load_csv(_write(tmp_path / "d.csv", text), target="y", dates="when")
    assert describe_columns(data.columns)[0][1] == (
        "date features (YYYY-MM-DD): year, month, day of year, weekday; 1 missing (filled with the "
        "train-split mean); counted as missing: 'unknown' in 1 cell"
    )
    assert np.isnan(data.features[-1]).all()
    words = "when,y\n" + "".join(f"day {i},{i % 2}\n" for i in range(20))
    with pytest.raises(UserError) as info:
        load_csv(_write(tmp_path / "w.csv", words), target="y", dates=["when"])
    assert info.value.key == "dataset.dates"
    assert "20 of its 20 values are not dates in a format read here: 'day 0', 'day 1'" in str(
        info.value
    )


def test_rare_tokens_in_a_numeric_column_are_missing_with_a_notice(tmp_path, caplog):
    rows = "".join(f"{'-' if i in (3, 30) else i * 0.5},{i % 2}\n" for i in range(60))
    path = _write(tmp_path / "w.csv", "Temp (C),label\n" + rows)
    with caplog.at_level(logging.WARNING, logger="trainer"):
        data = load_csv(path, target="label")
    assert caplog.messages == [
        "column 'Temp (C)': '-' in 2 cells (first at line 5); treated as missing. Say so with "
        "'dataset.na_values=[-]' to silence this."
    ]
    assert np.isnan(data.features[[3, 30], 0]).all() and data.columns[0]["na_values"] == ["-"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trainer"):
        quiet = load_csv(path, target="label", na_values="-")  # one marker stands for a list
    assert caplog.messages == [] and np.array_equal(quiet.features, data.features, equal_nan=True)


def test_frequent_tokens_in_a_numeric_column_are_an_error_naming_the_options(tmp_path):
    rows = "".join(f"{'-' if i % 5 == 0 else i},{i % 2}\n" for i in range(60))
    path = _write(tmp_path / "w.csv", "Temp (C),label\n" + rows)
    with pytest.raises(UserError) as info:
        load_csv(path, target="label")
    assert info.value.key == "dataset.na_values"
    assert str(info.value) == (
        f"dataset.na_values: column 'Temp (C)' of '{path}' holds numbers, but 12 of its 60 values "
        "are '-' (first at line 2), too many to take as missing on their own (at most 3 distinct "
        "values in 5% of the cells). If they mark missing values: 'dataset.na_values=[-]'; if the "
        "column holds categories: 'dataset.categorical=[\"Temp (C)\"]'; to leave it out: "
        "'dataset.exclude=[\"Temp (C)\"]'."
    )
    data = load_csv(path, target="label", na_values=["-"])
    assert int(np.isnan(data.features[:, 0]).sum()) == 12
    as_categories = load_csv(path, target="label", categorical="Temp (C)")
    assert describe_columns(as_categories.columns)[0] == ("Temp (C)", "one-hot, 49 categories")


def test_default_markers_and_a_text_column_of_words(tmp_path):
    markers = ["", "NA", "n/a", "NaN", "NULL", "None", "?", "#N/A", "<NA>"]
    rows = "".join(f"{markers[i] if i < 9 else i},{i % 2}\n" for i in range(200))
    data = load_csv(_write(tmp_path / "m.csv", "x,label\n" + rows), target="label")
    assert describe_columns(data.columns)[0] == (
        "x",
        "numeric; 9 missing (filled with the train-split mean)",
    )


def test_a_single_name_is_a_list_of_one(tmp_path):
    text = "Name,size,label\n" + "".join(f"n{i},{i % 4},{i % 2}\n" for i in range(20))
    path = _write(tmp_path / "n.csv", text)
    one, listed = load_csv(path, "label", exclude="Name"), load_csv(path, "label", exclude=["Name"])
    assert one.feature_names == listed.feature_names == ["size"]
    assert describe_columns(one.columns)[0] == ("Name", "excluded: dataset.exclude")
    assert load_csv(path, "label", features="size").feature_names == ["size"]


def test_identifiers_text_and_numeric(tmp_path, caplog):
    words = [f"w{i % 150}" for i in range(300)]
    text = "Ticket,Row,Code,label\n" + "".join(
        f"{w},{i + 1},c{i % 40},{i % 2}\n" for i, w in enumerate(words)
    )
    path = _write(tmp_path / "i.csv", text)
    with caplog.at_level(logging.WARNING, logger="trainer"):
        data = load_csv(path, target="label")
    assert describe_columns(data.columns)[:3] == [
        (
            "Ticket",
            "excluded: likely identifier or free text (150 distinct values, more than the 100 "
            "one-hot encoded; 'dataset.categorical=[Ticket]' keeps it)",
        ),
        (
            "Row",
            "numeric; likely identifier (unique whole numbers 1..300 counting the rows), kept; "
            "leave it out with 'dataset.exclude=[Row]'",
        ),
        ("Code", "one-hot, 40 categories"),
    ]
    assert "column 'Ticket' excluded: likely identifier or free text" in caplog.text
    kept = load_csv(path, target="label", categorical=["Ticket"])
    assert describe_columns(kept.columns)[0] == ("Ticket", "one-hot, 150 categories")


def test_shuffled_row_numbers_and_years_are_flagged_but_repeated_numbers_are_not(tmp_path):
    order = [5, 2, 9, 1, 7, 3, 10, 4, 8, 6, 11, 12]
    text = "n,m,label\n" + "".join(f"{k},{k % 4},{k % 2}\n" for k in order)
    data = load_csv(_write(tmp_path / "s.csv", text), target="label")
    assert describe_columns(data.columns)[:2] == [
        (
            "n",
            "numeric; likely identifier (unique whole numbers 1..12 counting the rows), kept; "
            "leave it out with 'dataset.exclude=[n]'",
        ),
        ("m", "numeric"),
    ]


def test_a_column_without_values_is_excluded_and_no_features_is_an_error(tmp_path):
    text = "empty,name,label\n" + "".join(f"NA,n{i},{i % 2}\n" for i in range(20))
    path = _write(tmp_path / "e.csv", text)
    with pytest.raises(UserError) as info:
        load_csv(path, target="label")
    assert info.value.key == "dataset.features"
    assert str(info.value) == (
        f"dataset.features: '{path}' has no usable feature columns besides the target 'label' "
        "(empty: excluded: no values (every cell is empty or a missing-value marker); name: "
        "excluded: likely identifier (every value unique); label: target: binary, 2 classes "
        "('0', '1'))."
    )


def test_infinite_values_name_the_column_and_lines(tmp_path):
    rows = "".join(f"{'inf' if i in (4, 8) else i},{i % 2}\n" for i in range(20))
    path = _write(tmp_path / "f.csv", "x (m),label\n" + rows)
    with pytest.raises(UserError) as info:
        load_csv(path, target="label")
    assert str(info.value) == (
        f"dataset.path: column 'x (m)' of '{path}' holds infinite values ('inf') at lines 6, 10; "
        "replace them with numbers, or count them as missing: 'dataset.na_values=[\"inf\"]'."
    )
    assert np.isnan(load_csv(path, target="label", na_values="inf").features[[4, 8], 0]).all()


def test_case_and_spaces_make_one_category_and_one_class(tmp_path):
    sexes = ["male", "MALE", " Male ", "female", "FEMALE"]
    text = "sex,label\n" + "".join(
        f"{sexes[i % 5]},{'Yes' if i % 3 else 'yes'}\n" for i in range(30)
    )
    data = load_csv(_write(tmp_path / "c.csv", text), target="label")
    assert data.feature_names == ["sex=FEMALE", "sex=MALE"]  # a tie: the first sorted spelling
    assert data.class_names == ["Yes"] and data.task == "multiclass"


def test_predict_encoding_matches_categories_whatever_their_case(tmp_path):
    text = "island,size,label\n" + "".join(
        f"{['Biscoe', 'Dream'][i % 2]},{i},{i % 2}\n" for i in range(20)
    )
    columns = load_csv(_write(tmp_path / "t.csv", text), target="label").columns
    header = ["size", "island", "extra"]
    rows = [["1", "DREAM", "x"], ["2", " biscoe", "y"], ["3", "Atlantis", "z"], ["4", "NA", "w"]]
    with pytest.raises(UserError) as info:
        encode_table(columns, header, rows, "'new.csv'")
    assert str(info.value) == (
        "predict.input: 'new.csv': column 'island' holds values not seen in training: "
        "'Atlantis' (line 4); known: 'Biscoe', 'Dream'. Fix those cells, or set "
        "predict.unknown_category=missing to treat unseen categories as missing values (counted "
        "in the result)."
    )
    encoded = encode_table(columns, header, rows, "'new.csv'", unknown_category="missing")
    assert encoded.unknown == {"island": {"Atlantis": 1}}
    np.testing.assert_array_equal(encoded.features, [[0, 1, 1], [1, 0, 2], [0, 0, 3], [0, 0, 4]])


def test_predict_encoding_reports_text_in_numbers_and_dates_in_one_message(tmp_path):
    text = "when,size,label\n" + "".join(f"2012-01-{i + 1:02d},{i},{i % 2}\n" for i in range(20))
    columns = load_csv(_write(tmp_path / "t.csv", text), target="label").columns
    rows = [["2012-02-01", "big"], ["soon", "1"], ["2012-02-03", "-"]]
    with pytest.raises(UserError) as info:
        encode_table(columns, ["when", "size"], rows, "'new.csv'")
    assert str(info.value) == (
        "predict.input: 'new.csv': column 'when' should hold dates (YYYY-MM-DD) but holds 'soon' "
        "(line 3); column 'size' should hold numbers but holds 'big' (line 2), '-' (line 4). Fix "
        "those cells (an empty cell or NA marks a missing value)."
    )


def test_columns_saved_before_treatments_existed_still_encode():
    old = [
        {"name": "size", "kind": "numeric"},
        {"name": "colour", "kind": "categorical", "categories": ["blue", "red"]},
    ]
    rows = [["red", "1.5"], ["Blue", ""]]
    encoded = encode_table(old, ["colour", "size"], rows, "'new.csv'")
    np.testing.assert_array_equal(encoded.features, [[1.5, 0, 1], [np.nan, 1, 0]])
    assert feature_names_of(old) == ["size", "colour=blue", "colour=red"]
    assert describe_columns(old) == [("size", "numeric"), ("colour", "one-hot, 2 categories")]


@pytest.mark.parametrize(
    "name",
    [
        "label",
        "Individual ID",
        "Culmen Length (mm)",
        "Temp (C)",
        "it's",
        'say "hi"',
        "a,b",
        "[x]",
        "1",
        "null",
        "true",
        "-",
        "Café",
        "x$HOME",
        "#",
    ],
)
def test_suggested_overrides_survive_the_shell_and_hydra(name):
    parser = OverridesParser.create()
    (listed,) = shlex.split(list_override("dataset.exclude", [name]))
    assert parser.parse_override(listed).value() == [name]
    (single,) = shlex.split(override("dataset.target", name))
    assert parser.parse_override(single).value() == name


def test_override_quoting_is_minimal():
    assert list_override("dataset.exclude", ["id"]) == "'dataset.exclude=[id]'"
    assert (
        list_override("dataset.exclude", ["Individual ID"]) == "'dataset.exclude=[Individual ID]'"
    )
    assert list_override("dataset.exclude", ["Culmen Length (mm)"]) == (
        "'dataset.exclude=[\"Culmen Length (mm)\"]'"
    )
    assert override("dataset.delimiter", ";") == "'dataset.delimiter=\";\"'"
    assert override("dataset.target", "label") == "dataset.target=label"
    assert hydra_value("1") == '"1"' and list_override("k", ["x" * 61]) == "k=[...]"


def test_latin1_files_name_the_line_and_the_encoding_option(tmp_path):
    text = "name,label\n" + "".join(
        f"caf{'é' if i == 5 else 'e'}{i % 3},{i % 2}\n" for i in range(20)
    )
    path = _write(tmp_path / "l.csv", text, encoding="latin-1")
    with pytest.raises(UserError) as info:
        load_csv(path, target="label")
    assert info.value.key == "dataset.encoding"
    assert str(info.value) == (
        f"dataset.path: '{path}' is not utf-8 text: line 7 holds a character that is not valid "
        "utf-8 (byte 0xe9). Re-save the file as UTF-8, or name its encoding, e.g. "
        "dataset.encoding=latin-1 (cp1252 for files from Windows)."
    )
    data = load_csv(path, target="label", encoding="latin-1")
    assert data.feature_names == ["name=cafe0", "name=cafe1", "name=cafe2", "name=café2"]


@pytest.mark.parametrize(
    "separator,message",
    [
        (
            ";",
            "header holds ';': the fields are likely separated by ';'. Set the delimiter: "
            "'dataset.delimiter=\";\"'.",
        ),
        (
            "\t",
            "header holds a tab: the fields are likely separated by a tab. Set the delimiter: "
            "dataset.delimiter=tab.",
        ),
    ],
)
def test_a_wrong_delimiter_is_named_with_the_fix(tmp_path, separator, message):
    text = f"a{separator}b{separator}label\n" + "".join(
        f"{i}{separator}{i % 3}{separator}{i % 2}\n" for i in range(20)
    )
    path = _write(tmp_path / "s.csv", text)
    with pytest.raises(UserError) as info:
        load_csv(path, target="label")
    assert str(info.value) == (
        f"dataset.path: '{path}' has a single column with the delimiter ',', but its " + message
    )
    fixed = "tab" if separator == "\t" else separator
    assert load_csv(path, target="label", delimiter=fixed).feature_names == ["a", "b"]


def test_a_directory_and_an_unknown_encoding_are_clear_errors(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("a,b\n")
    with pytest.raises(UserError) as info:
        load_csv(str(tmp_path / "data"), target="label")
    assert str(info.value) == (
        f"dataset.path: '{tmp_path / 'data'}' is a directory, not a CSV file; name a file, e.g. "
        f"dataset.path={tmp_path / 'data' / 'train.csv'}."
    )
    with pytest.raises(UserError, match=r"^dataset.encoding='nope' is not an encoding"):
        load_csv(str(tmp_path / "data" / "train.csv"), target="b", encoding="nope")


def test_long_values_are_cut_short_in_messages(tmp_path):
    junk = "z" * 20000
    rows = "".join(f"{junk if i % 4 == 0 else i},{i % 2}\n" for i in range(40))
    with pytest.raises(UserError) as info:
        load_csv(_write(tmp_path / "g.csv", "x,label\n" + rows), target="label")
    message = str(info.value)
    assert f"'{'z' * 40}...' (20000 characters)" in message and len(message) < 700
    assert "'dataset.na_values=[...]'" not in message and "dataset.na_values=[...]" in message


def test_messages_are_one_paragraph_that_names_the_key(tmp_path):
    path = _write(tmp_path / "p.csv", _penguins())
    cases = {
        "dataset.target": dict(target="species"),
        "dataset.exclude": dict(target="Species", exclude="Culmen Length mm"),
        "dataset.missing_target": dict(target="Species", missing_target="maybe"),
        "dataset.task": dict(target="Species", task="clustering"),
        "dataset.categorical": dict(target="Species", categorical=["Sexx"]),
        "dataset.delimiter": dict(target="Species", delimiter=";;"),
    }
    messages = {}
    for key, kwargs in cases.items():
        with pytest.raises(UserError) as info:
            load_csv(path, **kwargs)
        assert info.value.key == key and "\n" not in str(info.value)
        messages[key] = str(info.value)
    assert messages["dataset.exclude"].endswith(
        "Did you mean 'Culmen Length (mm)'? On the command line: "
        "'dataset.exclude=[\"Culmen Length (mm)\"]'."
    )
    assert messages["dataset.target"].endswith("Did you mean 'Species'?")


def test_read_table_keeps_the_file_lines_and_names_unnamed_columns(tmp_path):
    path = _write(tmp_path / "t.csv", ',a,"b\nc"\n0,1,2\n\n1,"x\ny",3\n2,4,5\n')
    table = read_table(path)
    assert table.header == ["column_1", "a", "b\nc"]
    assert table.lines == [3, 6, 7] and table.rows[1] == ["1", "x\ny", "3"]


def test_a_confusion_matrix_with_long_class_names_stays_inside_its_canvas():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from trainer import figures

    names = [f"Pygoscelis species number {i} (a long scientific name)" for i in range(25)]
    counts = np.arange(25 * 25).reshape(25, 25) * 13
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = figures.confusion_matrix(counts, names, "confusion (val)")
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
    renderer = canvas.get_renderer()
    (ax,) = fig.axes
    labels = [*ax.get_xticklabels(), *ax.get_yticklabels(), ax.xaxis.label, ax.yaxis.label]
    outside = [
        t.get_text() for t in labels if not fig.bbox.contains(*t.get_window_extent(renderer).min)
    ]
    outside += [
        t.get_text() for t in labels if not fig.bbox.contains(*t.get_window_extent(renderer).max)
    ]
    assert outside == []
    assert ax.get_xticklabels()[0].get_text() == "Pygoscelis species number..."
    assert ax.get_yticklabels()[0].get_text() == "Pygoscelis\nspecies number 0\n(a long ..."
    small = figures.confusion_matrix(np.eye(2, dtype=int), ["a", "b"], "t")
    assert small.get_size_inches()[1] == 2.9  # (TensorBoard's image box: landscape, 290 px high)
    assert fig.get_size_inches()[0] > 10 and fig.get_size_inches()[1] > 10
