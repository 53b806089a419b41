"""How each raw CSV column becomes features, and the column report that says so.

A feature column is, checked in this order:

- excluded: named in dataset.exclude, left out of dataset.features, or without a single value;
- dates: named in dataset.dates, or at least 95% of its values are dates (see dates.py);
- numeric: every value is a number; a few rare text tokens (at most 3 distinct ones in at most
  5% of the cells, like `-`) are taken as missing, with a notice; more is an error that names
  them and the option (dataset.na_values, dataset.categorical);
- text: one-hot categories, values that differ only in case or surrounding spaces being one
  category; a text column whose values are all different, or that has more than 100, is a
  likely identifier and is excluded (dataset.categorical keeps it).

Each column's dict holds what `encode_table` (encoding.py) needs to encode a new file
identically, plus a `treatment` in words; `describe_columns` lists (name, treatment) for reports.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .dates import (
    DEFAULT_DATE_PARTS,
    FORMATS,
    date_order,
    is_ambiguous,
    parse_date,
)
from .fixes import lines_text, list_override, plural, quoted, quoted_list

log = logging.getLogger("trainer")

DEFAULT_NA_VALUES = ("", "na", "n/a", "nan", "null", "none", "?", "#n/a", "<na>")
RARE_SHARE = 0.05  # text tokens in at most this share of a numeric column's cells ...
RARE_TOKENS = 3  # ... and at most this many distinct ones are taken as missing values
MAX_CATEGORIES = 100
MIN_ROWS_FOR_IDENTIFIER = 10  # below this, all-different values say little
FEATURE_KINDS = ("numeric", "categorical", "date")


@dataclass(frozen=True)
class ColumnOptions:
    """The dataset options that decide how a column is treated."""

    na_values: tuple[str, ...] = ()  # missing-value markers besides DEFAULT_NA_VALUES
    dates: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    date_parts: tuple[str, ...] = DEFAULT_DATE_PARTS


# ---------------------------------------------------------------------- text for messages
def markers_of(extra: Iterable[str] = ()) -> frozenset[str]:
    """The missing-value markers, lower case: the defaults and `extra`."""
    return frozenset(DEFAULT_NA_VALUES) | {str(m).strip().lower() for m in extra}


def fold(value: str) -> str:
    """The form two spellings of one category share: no surrounding spaces, case folded."""
    return value.strip().casefold()


def split_cells(cells: list[str], markers: frozenset[str]) -> tuple[np.ndarray, dict]:
    """Floats (NaN where missing or text) and the text cells as {value: [row indices]}."""
    numbers = np.full(len(cells), np.nan)
    text: dict[str, list[int]] = {}
    for i, cell in enumerate(cells):
        if cell.lower() in markers:
            continue
        try:
            numbers[i] = float(cell)
        except ValueError:
            text.setdefault(cell, []).append(i)
    return numbers, text


def _count(groups: dict[str, list[int]]) -> int:
    return sum(len(rows) for rows in groups.values())


def _is_rare(groups: dict[str, list[int]], present: int) -> bool:
    return len(groups) <= RARE_TOKENS and _count(groups) <= RARE_SHARE * present


def _first_line(groups: dict[str, list[int]], lines: list[int]) -> int:
    return lines[min(min(rows) for rows in groups.values())]


def _tokens_note(groups: dict[str, list[int]]) -> str:
    return ", ".join(f"{quoted(v)} in {plural(len(r), 'cell')}" for v, r in groups.items())


# ---------------------------------------------------------------------- analysis
def analyse_column(
    name: str, cells: list[str], lines: list[int], options: ColumnOptions, source: str
) -> dict:
    """How one feature column is encoded (its dict for `columns`), from its cells."""
    markers = markers_of(options.na_values)
    present = [i for i, cell in enumerate(cells) if cell.lower() not in markers]
    if not present:
        return excluded(name, "no values (every cell is empty or a missing-value marker)")
    if name in options.dates:
        return _date_column(name, cells, present, lines, options, source, named=True)
    if name in options.categorical:
        return _categorical_column(name, cells, present, forced=True)
    numbers, text = split_cells(cells, markers)
    numeric = _numeric_column(name, cells, numbers, text, len(present), lines, options, source)
    if numeric is not None:
        return numeric
    date = _date_column(name, cells, present, lines, options, source, named=False)
    if date is not None:
        return date
    return _categorical_column(name, cells, present, forced=False)


def excluded(name: str, reason: str, notice: bool = True) -> dict:
    if notice:
        log.warning(f"column {quoted(name, 60)} excluded: {reason}")
    return {"name": name, "kind": "excluded", "treatment": f"excluded: {reason}"}


def _missing_note(count: int, filled: str) -> str:
    return f"; {count} missing ({filled})" if count else ""


def _numeric_column(
    name: str,
    cells: list[str],
    numbers: np.ndarray,
    text: dict[str, list[int]],
    present: int,
    lines: list[int],
    options: ColumnOptions,
    source: str,
) -> dict | None:
    """The numeric column's dict; None when it is a text column; an error when in between."""
    if text and not _is_rare(text, present):
        if len(text) <= RARE_TOKENS and _count(text) * 2 <= present:
            raise _mostly_numbers_error(name, text, present, lines, source)
        return None
    infinite = np.flatnonzero(np.isinf(numbers))
    if len(infinite):
        tokens = sorted({cells[i].lower() for i in infinite})
        raise UserError(
            f"dataset.path: column {quoted(name, 60)} of {source} holds infinite values "
            f"({quoted_list(tokens)}) at {lines_text([lines[i] for i in infinite])}; replace "
            "them with numbers, or count them as missing: "
            f"{list_override('dataset.na_values', tokens)}.",
            key="dataset.na_values",
        )
    treatment = "numeric"
    treatment += _missing_note(int(np.isnan(numbers).sum()), "filled with the train-split mean")
    if text:
        log.warning(
            f"column {quoted(name, 60)}: {_tokens_note(text)} (first at line "
            f"{_first_line(text, lines)}); treated as missing. Say so with "
            f"{list_override('dataset.na_values', list(text))} to silence this."
        )
        treatment += f"; counted as missing: {_tokens_note(text)}"
    treatment += _identifier_note(name, numbers)
    spec = {"name": name, "kind": "numeric", "treatment": treatment}
    return spec | {"na_values": sorted({*options.na_values, *(t.lower() for t in text)})}


def _mostly_numbers_error(
    name: str, text: dict[str, list[int]], present: int, lines: list[int], source: str
) -> UserError:
    tokens = list(text)
    return UserError(
        f"dataset.na_values: column {quoted(name, 60)} of {source} holds numbers, but "
        f"{_count(text)} of its {present} values are {quoted_list(tokens)} (first at line "
        f"{_first_line(text, lines)}), too many to take as missing on their own (at most "
        f"{RARE_TOKENS} distinct values in {RARE_SHARE:.0%} of the cells). If they mark missing "
        f"values: {list_override('dataset.na_values', tokens)}; if the column holds categories: "
        f"{list_override('dataset.categorical', [name])}; to leave it out: "
        f"{list_override('dataset.exclude', [name])}.",
        key="dataset.na_values",
    )


def _identifier_note(name: str, numbers: np.ndarray) -> str:
    """A warning for unique whole numbers that count the rows: increasing in the file's order,
    or consecutive (1, 2, 3, ...) in any order. Such a column is kept: a year can look the same."""
    if len(numbers) < MIN_ROWS_FOR_IDENTIFIER or np.isnan(numbers).any():
        return ""
    if not np.all(numbers == np.round(numbers)) or len(np.unique(numbers)) != len(numbers):
        return ""
    low, high = int(numbers.min()), int(numbers.max())
    if high - low != len(numbers) - 1 and not np.all(np.diff(numbers) > 0):
        return ""
    note = (
        f"likely identifier (unique whole numbers {low}..{high} counting the rows), kept; leave "
        f"it out with {list_override('dataset.exclude', [name])}"
    )
    log.warning(f"column {quoted(name, 60)}: {note}")
    return f"; {note}"


def _date_column(
    name: str,
    cells: list[str],
    present: list[int],
    lines: list[int],
    options: ColumnOptions,
    source: str,
    named: bool,
) -> dict | None:
    """The date column's dict; None when the column does not hold dates (unless `named`)."""
    values = [cells[i] for i in present]
    order = date_order(values)
    dates, bad, has_time = [], {}, False
    for i in present:
        parsed = None if order is None else parse_date(cells[i], order)
        if parsed is None:
            bad.setdefault(cells[i], []).append(i)
        else:
            dates.append(parsed[0])
            has_time |= parsed[1]
    if bad and not _is_rare(bad, len(present)):
        if not named:
            return None
        raise UserError(
            f"dataset.dates: column {quoted(name, 60)} of {source} should hold dates, but "
            f"{_count(bad)} of its {len(present)} values are not dates in a format read here: "
            f"{quoted_list(list(bad))} (first at line {_first_line(bad, lines)}). Dates are read "
            "as YYYY-MM-DD, YYYY/MM/DD, DD/MM/YYYY or MM/DD/YYYY (one order per column), "
            "optionally followed by a time HH:MM or HH:MM:SS. Count other values as missing with "
            f"{list_override('dataset.na_values', list(bad)[:3])}, or leave the column out of "
            "dataset.dates.",
            key="dataset.dates",
        )
    parts = [p for p in options.date_parts if p != "time_of_day" or has_time]
    if not parts:
        return excluded(name, "dates, but none of the dataset.date_features apply")
    treatment = f"date features ({FORMATS[order]}): {', '.join(p.replace('_', ' ') for p in parts)}"
    if order == "mdy" and is_ambiguous(values):
        log.warning(
            f"column {quoted(name, 60)}: every date could be day-first or month-first; read as "
            "month-first (MM/DD/YYYY)."
        )
    treatment += _missing_note(len(cells) - len(dates), "filled with the train-split mean")
    if bad:
        log.warning(
            f"column {quoted(name, 60)}: {_tokens_note(bad)} (first at line "
            f"{_first_line(bad, lines)}) are not dates; treated as missing."
        )
        treatment += f"; counted as missing: {_tokens_note(bad)}"
    spec = {"name": name, "kind": "date", "order": order, "parts": parts, "treatment": treatment}
    return spec | {"na_values": sorted({*options.na_values, *(t.lower() for t in bad)})}


def _spelling(spellings: Counter) -> str:
    """The most frequent spelling of a category (the first in sorted order on a tie)."""
    return max(sorted(spellings), key=lambda s: spellings[s])


def merge_spellings(values: list[str]) -> dict[str, str]:
    """{folded value: the spelling that names it} for values that differ in case or spaces."""
    groups: dict[str, Counter] = {}
    for value in values:
        groups.setdefault(fold(value), Counter())[value] += 1
    return {key: _spelling(spellings) for key, spellings in groups.items()}


def merged_note(name: str, values: list[str], names: dict[str, str]) -> str:
    """A notice (and treatment note) for spellings that became one category."""
    merged = sorted({v for v in values if names[fold(v)] != v})
    if not merged:
        return ""
    pairs = ", ".join(f"{quoted(v)} as {quoted(names[fold(v)])}" for v in merged[:5])
    log.warning(
        f"column {quoted(name, 60)}: values that differ only in case or spaces are one category: "
        f"{pairs}{' ...' if len(merged) > 5 else ''}."
    )
    return f"; spellings merged: {pairs}{' ...' if len(merged) > 5 else ''}"


def _categorical_column(name: str, cells: list[str], present: list[int], forced: bool) -> dict:
    values = [cells[i] for i in present]
    names = merge_spellings(values)
    if not forced and len(values) >= MIN_ROWS_FOR_IDENTIFIER and len(names) == len(values):
        return excluded(name, "likely identifier (every value unique)")
    if not forced and len(names) > MAX_CATEGORIES:
        return excluded(
            name,
            f"likely identifier or free text ({len(names)} distinct values, more than the "
            f"{MAX_CATEGORIES} one-hot encoded; {list_override('dataset.categorical', [name])} "
            "keeps it)",
        )
    categories = sorted(names.values(), key=lambda c: (fold(c), c))
    treatment = f"one-hot, {len(categories)} categories"
    treatment += _missing_note(len(cells) - len(values), "all zeros")
    treatment += merged_note(name, values, names)
    return {"name": name, "kind": "categorical", "categories": categories, "treatment": treatment}
