"""Reading a CSV file: a header and rows of text cells, with errors that name the file, the
line and the fix (encoding, delimiter, a directory given for a file)."""

from __future__ import annotations

import codecs
import csv
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .fixes import override, quoted, quoted_list

DELIMITERS = {"tab": "\t", "\\t": "\t"}  # names for a tab that survive a shell and Hydra


@dataclass
class Table:
    """A CSV file's header and rows (cells stripped), and the file line each row ends on."""

    path: str
    header: list[str]
    rows: list[list[str]]
    lines: list[int]

    def column(self, name: str) -> list[str]:
        i = self.header.index(name)
        return [row[i] for row in self.rows]

    def subset(self, keep: list[int]) -> Table:
        return Table(
            self.path, self.header, [self.rows[i] for i in keep], [self.lines[i] for i in keep]
        )


# ---------------------------------------------------------------------- reading
def read_table(
    path: str | Path, delimiter: str = ",", key: str = "dataset.path", encoding: str = "utf-8"
) -> Table:
    """Header and rows of a CSV file, with errors that say which file and line is wrong and how
    to fix it (for key=dataset.path by the dataset options, otherwise by re-saving the file)."""
    path = Path(path).expanduser()
    delimiter = _delimiter(delimiter)
    if path.is_dir():
        raise UserError(
            f"{key}: '{path}' is a directory, not a CSV file; name a file, e.g. {key}={path}/"
            f"{next((p.name for p in sorted(path.glob('*.csv'))), 'data.csv')}.",
            key=key,
        )
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        raise UserError(f"{key}: no such file: '{path}'{where}.", key=key)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise UserError(
            f"dataset.encoding={quoted(encoding)} is not an encoding Python knows; common ones: "
            "utf-8, latin-1, cp1252 (Windows), utf-16.",
            key="dataset.encoding",
        ) from None
    text_encoding = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    try:
        with path.open(newline="", encoding=text_encoding) as handle:
            return _parse(handle, path, delimiter, key)
    except UnicodeDecodeError:
        raise _decode_error(path, encoding, key) from None
    except csv.Error as error:
        raise UserError(f"{key}: '{path}' is not a readable CSV file: {error}.", key=key) from None
    except OSError as error:
        raise UserError(f"{key}: '{path}' cannot be read: {error.strerror}.", key=key) from None


def _delimiter(value: object) -> str:
    text = DELIMITERS.get(str(value).lower(), str(value))
    if len(text) != 1:
        raise UserError(
            f"dataset.delimiter={quoted(value)} must be one character, e.g. ',' or "
            f"{override('dataset.delimiter', ';')} or dataset.delimiter=tab.",
            key="dataset.delimiter",
        )
    return text


def _parse(handle, path: Path, delimiter: str, key: str) -> Table:
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise UserError(f"{key}: '{path}' is empty; a header row is needed.", key=key) from None
    if len(header) == 1:
        _check_single_column(header[0], path, delimiter, key)
    header = [name or f"column_{i + 1}" for i, name in enumerate(header)]  # pandas' index column
    rows, lines = [], []
    for row in reader:
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise UserError(
                f"{key}: '{path}' line {reader.line_num} has {len(row)} fields, the header has "
                f"{len(header)}. Is the delimiter {quoted(delimiter)} right (dataset.delimiter)? "
                "A field with the delimiter in it needs double quotes around it.",
                key=key,
            )
        rows.append([cell.strip() for cell in row])
        lines.append(reader.line_num)
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise UserError(
            f"{key}: '{path}' repeats the column names {quoted_list(repeated)} in its header; "
            "every column needs its own name.",
            key=key,
        )
    return Table(str(path), header, rows, lines)


def _check_single_column(name: str, path: Path, delimiter: str, key: str) -> None:
    """One column found: say which other delimiter the header holds."""
    found = [d for d in (";", "\t", "|", ",") if d != delimiter and d in name]
    if not found:
        return
    shown = "a tab" if found[0] == "\t" else quoted(found[0])
    fix = "dataset.delimiter=tab" if found[0] == "\t" else override("dataset.delimiter", found[0])
    if key == "dataset.path":
        how = f"Set the delimiter: {fix}."
    else:
        how = f"The model reads files separated by {quoted(delimiter)}; save it that way."
    raise UserError(
        f"{key}: '{path}' has a single column with the delimiter {quoted(delimiter)}, but its "
        f"header holds {shown}: the fields are likely separated by {shown}. {how}",
        key=key,
    )


def _decode_error(path: Path, encoding: str, key: str) -> UserError:
    raw = path.read_bytes()
    try:
        raw.decode(encoding)
        line, byte = 1, ""
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        byte = f" (byte 0x{raw[error.start]:02x})"
    fix = (
        "or name its encoding, e.g. dataset.encoding=latin-1 (cp1252 for files from Windows)"
        if key == "dataset.path"
        else f"as the model's training data ({encoding})"
    )
    return UserError(
        f"{key}: '{path}' is not {encoding} text: line {line} holds a character that is not "
        f"valid {encoding}{byte}. Re-save the file as UTF-8, {fix}.",
        key="dataset.encoding" if key == "dataset.path" else key,
    )


# ---------------------------------------------------------------------- options
