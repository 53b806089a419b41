"""Real tables through the real command line: what a new user's first try with their own CSV file
meets (missing targets, dates, markers, odd column names, encodings, predict's input and output),
each mistake a one-paragraph message with the key or file, an exit code of 2, and no file changed."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli_env, metrics_of, run_cli

pytestmark = pytest.mark.e2e

QUICK = ["trainer.max_epochs=2", "logger=none"]


def penguins(n: int = 150) -> str:
    """A penguins-like table: a row number, an id, markers, two spellings, a date, no target in
    two rows."""
    lines = ["Sample Number,Individual ID,Island,Culmen Length (mm),Sex,Temp (C),Date Egg,Species"]
    for i in range(n):
        species = ["Adelie", "Gentoo", "Chinstrap"][i % 3]
        length = "NA" if i % 37 == 5 else f"{[39, 47, 49][i % 3] + (i % 7) * 0.3:.1f}"
        sex = "male" if i == 4 else ("NA" if i % 29 == 3 else ["MALE", "FEMALE"][i % 2])
        temp = "-" if i in (10, 90) else f"{(i * 7) % 13 - 3}"
        species = {6: "NA", 13: ""}.get(i, species)
        island = ["Biscoe", "Dream", "Torgersen"][(i // 3) % 3]
        lines.append(
            f"{i + 1},N{i // 2 + 1}A{i % 2 + 1},{island},{length},{sex},{temp},"
            f"2007-{i % 12 + 1:02d}-{i % 28 + 1:02d},{species}"
        )
    return "\n".join(lines) + "\n"


def weather(n: int = 240) -> str:
    """A Seattle-weather-like table: a date column and the day's weather to predict."""
    lines = ["date,precipitation,temp_max,temp_min,wind,weather"]
    for i in range(n):
        month = (i // 28) % 12 + 1
        rain = (i * 37) % 11 * 0.7
        kind = "rain" if rain > 3.5 else ("sun" if month in (6, 7, 8) else "drizzle")
        lines.append(
            f"2012-{month:02d}-{i % 28 + 1:02d},{rain:.1f},{10 + month + i % 5},"
            f"{2 + month + i % 3},{(i * 13) % 7 * 0.6:.1f},{kind}"
        )
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A model trained on penguins.csv (module-wide: predict cases share it)."""
    root = tmp_path_factory.mktemp("trained")
    (root / "penguins.csv").write_text(penguins())
    args = ["dataset=csv", "dataset.path=penguins.csv", "dataset.target=Species", *QUICK]
    run_cli(args, root, run_dir=root / "run", check=True)
    return root / "run"


def _hashes(*roots: Path, skip: Path) -> dict[str, str]:
    """sha256 of every file under the roots, except under `skip` (the command's own run dir)."""
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and skip not in path.parents:
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _panel_lines(stderr: str) -> list[str]:
    """The lines inside the error panel's box, without the box."""
    return [line.strip()[1:-1].strip() for line in stderr.splitlines() if line.startswith("│")]


def _panel_text(stderr: str) -> str:
    """The error panel's text with the box and the line wrapping taken out."""
    return " ".join(" ".join(_panel_lines(stderr)).split())


def _numbers_then_dashes() -> str:
    rows = "".join(f"{'-' if i % 5 == 0 else i},{i % 3},{i % 2}\n" for i in range(60))
    return "Temp (C),b,label\n" + rows


def _long_junk() -> str:
    junk = "z" * 20000
    return "x,label\n" + "".join(f"{junk if i % 4 == 0 else i},{i % 2}\n" for i in range(40))


def _rows(text: str, count: int) -> str:
    return "\n".join(text.splitlines()[: count + 1]) + "\n"


TRAIN = ["dataset=csv", "dataset.path=data.csv", "dataset.target=label", *QUICK]
GOOD = "a,b,label\n" + "".join(f"{i * 0.5},{i % 3},{i % 2}\n" for i in range(40))
PREDICT = ["mode=predict", "trainer.resume={run}", "predict.input=new.csv"]
NEW = _rows(penguins(), 12)

# (id, files to write, arguments, text the message must hold, the key or file it names)
BAD_INPUTS = [
    (
        "missing target, error",
        {"data.csv": GOOD + "1,2,NA\n"},
        [*TRAIN, "dataset.missing_target=error"],
        "column 'label' of 'data.csv' has no value in 1 rows (first at line 42; 'NA' counted as "
        "missing)",
        "dataset.missing_target",
    ),
    (
        "latin-1",
        {"data.csv": GOOD.replace("\n0.0,0,0\n", "\ncafé,0,0\n").encode("latin-1")},
        TRAIN,
        "'data.csv' is not utf-8 text: line 2 holds a character that is not valid utf-8 (byte "
        "0xe9). Re-save the file as UTF-8, or name its encoding, e.g. dataset.encoding=latin-1",
        "dataset.path",
    ),
    (
        "path is a directory",
        {"data.csv/inner.csv": GOOD},
        TRAIN,
        "'data.csv' is a directory, not a CSV file; name a file, e.g. "
        "dataset.path=data.csv/inner.csv",
        "dataset.path",
    ),
    (
        "semicolons",
        {"data.csv": GOOD.replace(",", ";")},
        TRAIN,
        "has a single column with the delimiter ',', but its header holds ';': the fields are "
        "likely separated by ';'. Set the delimiter: 'dataset.delimiter=\";\"'.",
        "dataset.path",
    ),
    (
        "tabs",
        {"data.csv": GOOD.replace(",", "\t")},
        TRAIN,
        "Set the delimiter: dataset.delimiter=tab.",
        "dataset.path",
    ),
    (
        "frequent dashes",
        {"data.csv": _numbers_then_dashes()},
        TRAIN,
        "12 of its 60 values are '-' (first at line 2), too many to take as missing on their own "
        "(at most 3 distinct values in 5% of the cells). If they mark missing values: "
        "'dataset.na_values=[-]'",
        "dataset.na_values",
    ),
    (
        "infinite values",
        {"data.csv": GOOD.replace("\n2.0,1,0\n", "\ninf,1,0\n")},
        TRAIN,
        "column 'a' of 'data.csv' holds infinite values ('inf') at line 6",
        "dataset.na_values",
    ),
    (
        "a 20,000-character cell",
        {"data.csv": _long_junk()},
        TRAIN,
        f"'{'z' * 40}...' (20000 characters)",
        "dataset.na_values",
    ),
    (
        "missing_target=maybe",
        {"data.csv": GOOD},
        [*TRAIN, "dataset.missing_target=maybe"],
        "dataset.missing_target='maybe' is not one of: drop, error.",
        "dataset.missing_target",
    ),
    (
        "dates that are not dates",
        {"data.csv": GOOD},
        [*TRAIN, "dataset.dates=b"],
        "column 'b' of 'data.csv' should hold dates, but 40 of its 40 values are not dates",
        "dataset.dates",
    ),
    (
        "excluded name misspelt",
        {"data.csv": penguins()},
        [*TRAIN[:2], "dataset.target=Species", "dataset.exclude=Culmen Length"],
        "Did you mean 'Culmen Length (mm)'? On the command line: "
        "'dataset.exclude=[\"Culmen Length (mm)\"]'.",
        "dataset.exclude",
    ),
    (
        "target misspelt",
        {"data.csv": penguins()},
        [*TRAIN[:2], "dataset.target=temp c"],
        "Did you mean 'Temp (C)'? On the command line: 'dataset.target=\"Temp (C)\"'.",
        "dataset.target",
    ),
    (
        "date_features=[yr]",
        {"data.csv": weather()},
        [*TRAIN[:2], "dataset.target=weather", "dataset.date_features=[yr]"],
        "dataset.date_features='yr' is not one of: year, month, day_of_month, day_of_year, "
        "weekday, time_of_day.",
        "dataset.date_features",
    ),
    (
        "unknown encoding",
        {"data.csv": GOOD},
        [*TRAIN, "dataset.encoding=nope"],
        "dataset.encoding='nope' is not an encoding Python knows",
        "dataset.encoding",
    ),
    (
        "no usable feature",
        {"data.csv": "name,label\n" + "".join(f"n{i},{i % 2}\n" for i in range(20))},
        TRAIN,
        "has no usable feature columns besides the target 'label' (name: excluded: likely "
        "identifier (every value unique);",
        "dataset.features",
    ),
    (
        "predict: a renamed and a missing column",
        {"new.csv": NEW.replace("Culmen Length (mm)", "culmen_length_mm").replace("Sex,", "S,")},
        PREDICT,
        "'new.csv' lacks 2 of the 6 columns the model was trained on: 'Culmen Length (mm)' "
        "(renamed 'culmen_length_mm'?), 'Sex'. Columns are matched by name, not by position",
        "predict.input",
    ),
    (
        "predict: an unseen category",
        {"new.csv": NEW.replace(",Dream,", ",Atlantis,")},
        PREDICT,
        "column 'Island' holds values not seen in training: 'Atlantis' (3 rows, first at line 5); "
        "known: 'Biscoe', 'Dream', 'Torgersen'. Fix those cells, or set "
        "predict.unknown_category=missing",
        "predict.input",
    ),
    (
        "predict: output is the input",
        {"new.csv": NEW},
        [*PREDICT, "predict.output=./new.csv", "predict.overwrite=true"],
        "predict.output='./new.csv' is the input file; the input is never overwritten (not even "
        "with predict.overwrite=true)",
        "predict.output",
    ),
    (
        "predict: output exists",
        {"new.csv": NEW, "out.csv": "keep me\n"},
        [*PREDICT, "predict.output=out.csv"],
        "predict.output='out.csv' exists; name another file, or replace it with "
        "predict.overwrite=true.",
        "predict.output",
    ),
    (
        "predict: output is a directory",
        {"new.csv": NEW, "out/old.csv": "keep me\n"},
        [*PREDICT, "predict.output=out"],
        "predict.output='out' names a directory; name the file to write, e.g. "
        "predict.output=out/predictions.csv",
        "predict.output",
    ),
    (
        "predict: unknown_category=maybe",
        {"new.csv": NEW},
        [*PREDICT, "predict.unknown_category=maybe"],
        "predict.unknown_category='maybe' is not one of: error, missing",
        "predict.unknown_category",
    ),
    (
        "predict: latin-1 input",
        {"new.csv": NEW.replace("Dream", "Dréam").encode("latin-1")},
        PREDICT,
        "'new.csv' is not utf-8 text: line 5 holds a character that is not valid utf-8 (byte "
        "0xe9). Re-save the file as UTF-8, as the model's training data (utf-8).",
        "predict.input",
    ),
    (
        "predict: text in a numeric column",
        {"new.csv": NEW.replace("\n2,N1A2,Biscoe,47.3,", "\n2,N1A2,Biscoe,long,")},
        PREDICT,
        "column 'Culmen Length (mm)' should hold numbers but holds 'long' (line 3)",
        "predict.input",
    ),
    (
        "predict: semicolons",
        {"new.csv": NEW.replace(",", ";")},
        PREDICT,
        "has a single column with the delimiter ',', but its header holds ';': the fields are "
        "likely separated by ';'. The model reads files separated by ','; save it that way.",
        "predict.input",
    ),
    (
        "predict: input is a directory",
        {"new.csv/inner.csv": NEW},
        PREDICT,
        "'new.csv' is a directory, not a CSV file",
        "predict.input",
    ),
]


@pytest.mark.parametrize(
    "files,args,message,key", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_a_bad_table_or_setting_is_one_paragraph_and_changes_no_file(
    tmp_path, trained, files, args, message, key
):
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    before = _hashes(tmp_path, trained.parent, skip=tmp_path / "run")
    result = run_cli([a.replace("{run}", str(trained)) for a in args], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    text = _panel_text(result.stderr)
    assert message in text, text
    assert key in text and len(text) < 1000
    assert "" not in _panel_lines(result.stderr)  # one paragraph: no blank line in the panel
    assert _hashes(tmp_path, trained.parent, skip=tmp_path / "run") == before


def _columns_of(run_dir: Path) -> list[dict]:
    from trainer.checkpoints import load_checkpoint

    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["data"]["columns"]


def _predictions(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_weather_table_with_dates_trains_and_predicts_new_days(tmp_path):
    from trainer.data.encoding import describe_columns

    (tmp_path / "seattle.csv").write_text(weather())
    args = ["dataset=csv", "dataset.path=seattle.csv", "dataset.target=weather", *QUICK]
    run_cli(args, tmp_path, check=True)
    assert describe_columns(_columns_of(tmp_path / "run")) == [
        ("date", "date features (YYYY-MM-DD): year, month, day of year, weekday"),
        ("precipitation", "numeric"),
        ("temp_max", "numeric"),
        ("temp_min", "numeric"),
        ("wind", "numeric"),
        ("weather", "target: multiclass, 3 classes ('drizzle', 'rain', 'sun')"),
    ]
    assert metrics_of(tmp_path / "run")["status"] == "completed"
    new = "wind,temp_min,note,date,temp_max,precipitation\n0.6,3,a,2013-01-05,12,0.0\n"
    new += "1.2,9,b,2013-07-14,19,4.2\n"
    (tmp_path / "days.csv").write_text(new)
    result = run_cli(
        ["mode=predict", f"trainer.resume={tmp_path / 'run'}", "predict.input=days.csv"],
        tmp_path,
        run_dir=tmp_path / "predict",
        check=True,
    )
    rows = _predictions(tmp_path / "predict" / "predictions.csv")
    assert list(rows[0]) == [
        "wind",
        "temp_min",
        "note",
        "date",
        "temp_max",
        "precipitation",
        "prediction",
        "probability_drizzle",
        "probability_rain",
        "probability_sun",
    ]
    assert [r["date"] for r in rows] == ["2013-01-05", "2013-07-14"]
    assert {r["prediction"] for r in rows} <= {"drizzle", "rain", "sun"}
    assert "columns the model was not trained on are copied to the output unchanged: 'note'." in (
        " ".join(result.stdout.split())
    )


def test_penguins_train_with_notices_and_predict_whatever_the_case(tmp_path, trained):
    log = (trained / "trainer.log").read_text()
    for notice in (
        "'penguins.csv': 2 rows without a target ('Species') left out (first at line 8; 'NA' "
        "counted as missing).",
        "column 'Temp (C)': '-' in 2 cells (first at line 12); treated as missing.",
        "column 'Individual ID' excluded: likely identifier (every value unique)",
        "column 'Sample Number': likely identifier (unique whole numbers 1..150 counting the "
        "rows), kept; leave it out with 'dataset.exclude=[Sample Number]'",
        "column 'Sex': values that differ only in case or spaces are one category: 'male' as "
        "'MALE'.",
    ):
        assert notice in log
    upper = NEW
    lower = NEW.replace(",MALE,", ",male,").replace(",FEMALE,", ", Female ,")
    assert upper != lower
    written = {}
    for name, text in (("upper.csv", upper), ("lower.csv", lower)):
        (tmp_path / name).write_text(text)
        out = tmp_path / f"pred_{name}"
        run_cli(
            [
                "mode=predict",
                f"trainer.resume={trained}",
                f"predict.input={name}",
                f"predict.output={out}",
            ],
            tmp_path,
            run_dir=tmp_path / name.replace(".csv", ""),
            check=True,
        )
        written[name] = [{k: v for k, v in row.items() if k != "Sex"} for row in _predictions(out)]
    assert written["upper.csv"] == written["lower.csv"]
    assert len(written["upper.csv"]) == 12


def test_unseen_categories_as_missing_are_counted_and_overwrite_replaces_output(tmp_path, trained):
    (tmp_path / "new.csv").write_text(NEW.replace(",Dream,", ",Atlantis,"))
    (tmp_path / "out.csv").write_text("old\n")
    args = [
        "mode=predict",
        f"trainer.resume={trained}",
        "predict.input=new.csv",
        "predict.output=out.csv",
        "predict.overwrite=true",
        "predict.unknown_category=missing",
    ]
    result = run_cli(args, tmp_path, check=True)
    assert metrics_of(tmp_path / "run")["unknown_categories"] == {"Island": {"Atlantis": 3}}
    assert "predicted as missing values (predict.unknown_category=missing): 'Island': " in (
        result.stdout
    )
    rows = _predictions(tmp_path / "out.csv")
    assert len(rows) == 12 and [r["Island"] for r in rows].count("Atlantis") == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_regression_writes_a_prediction_column_and_scores_it(tmp_path):
    text = "x,Culmen Length (mm)\n" + "".join(
        f"{i * 0.1:.1f},{i * 0.3 + 1:.2f}\n" for i in range(60)
    )
    (tmp_path / "r.csv").write_text(text)
    args = ["dataset=csv", "dataset.path=r.csv", 'dataset.target="Culmen Length (mm)"', *QUICK]
    run_cli(args, tmp_path, check=True)
    (tmp_path / "new.csv").write_text(_rows(text, 5))
    run_cli(
        [
            "mode=predict",
            f"trainer.resume={tmp_path / 'run'}",
            "predict.input=new.csv",
            "predict.output=p.csv",
        ],
        tmp_path,
        run_dir=tmp_path / "predict",
        check=True,
    )
    rows = _predictions(tmp_path / "p.csv")
    assert list(rows[0]) == ["x", "Culmen Length (mm)", "prediction"] and len(rows) == 5
    assert sorted(metrics_of(tmp_path / "predict")["score"]) == ["mae", "rmse"]


def test_the_fixes_messages_suggest_run_as_pasted_into_a_shell(tmp_path):
    (tmp_path / "w.csv").write_text(_numbers_then_dashes().replace("label", "Rain (mm)"))
    command = (
        f"{shlex.quote(sys.executable)} -m trainer dataset=csv dataset.path=w.csv "
        f"'dataset.target=\"Rain (mm)\"' trainer.max_epochs=1 logger=none"
    )
    failed = run_cli(
        ["dataset=csv", "dataset.path=w.csv", 'dataset.target="Rain (mm)"', *QUICK], tmp_path
    )
    assert failed.returncode == 2
    fixes = re.findall(r"'dataset\.[a-z_]+=\[[^']*\]'", _panel_text(failed.stderr))
    assert fixes == [
        "'dataset.na_values=[-]'",
        "'dataset.categorical=[\"Temp (C)\"]'",
        "'dataset.exclude=[\"Temp (C)\"]'",
    ]
    treatments = []
    for i, fix in enumerate(fixes):
        run_dir = tmp_path / f"fixed{i}"
        shell = subprocess.run(
            f"{command} {fix} hydra.run.dir={run_dir}",
            shell=True,
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert shell.returncode == 0, shell.stderr
        treatments.append(_columns_of(run_dir)[0]["treatment"])
    assert treatments == [
        "numeric; 12 missing (filled with the train-split mean)",
        "one-hot, 49 categories",
        "excluded: dataset.exclude",
    ]
    assert json.loads((tmp_path / "fixed2" / "metrics.json").read_text())["status"] == "completed"
