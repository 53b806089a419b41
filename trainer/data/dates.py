"""Dates in CSV cells: which formats are read, and the features a date becomes.

Formats (an optional time ` HH:MM`, ` HH:MM:SS` or `THH:MM:SS`, fractions of a second and a
`Z` / `+01:00` offset may follow; the offset is ignored, times are taken as written):

- year first: `2012-01-31`, `2012/01/31`, `2012.01.31`
- year last: `31/01/2012`, `01/31/2012` (also with `-` or `.`). A column is read day-first when
  one of its cells has a first number above 12, month-first when one has a second number above
  12, and month-first (US) when every cell could be either.

A date becomes cyclical features (the sine and cosine of its position in the cycle, so that
December sits next to January): month, day of year, weekday, and the time of day for cells
with a time; the year stays a number.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

import numpy as np

_TIME = r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?)?\s*(?:Z|UTC|[+-]\d{2}:?\d{2})?"
_YEAR_FIRST = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})" + _TIME)
_YEAR_LAST = re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4})" + _TIME)

FORMATS = {"ymd": "YYYY-MM-DD", "dmy": "DD/MM/YYYY", "mdy": "MM/DD/YYYY"}
DATE_PARTS = ("year", "month", "day_of_month", "day_of_year", "weekday", "time_of_day")
DEFAULT_DATE_PARTS = ("year", "month", "day_of_year", "weekday", "time_of_day")
_PERIODS = {"month": 12, "day_of_month": 31, "weekday": 7, "time_of_day": 86400}


def _year_last_order(cells: list[str]) -> str | None:
    """'dmy' or 'mdy' for a column's year-last dates; None when its cells contradict each other."""
    first_big = second_big = False
    for cell in cells:
        match = _YEAR_LAST.fullmatch(cell)
        if match:
            first_big |= int(match.group(1)) > 12
            second_big |= int(match.group(3)) > 12
    if first_big and second_big:
        return None
    return "dmy" if first_big else "mdy"


def date_order(cells: list[str]) -> str | None:
    """The order the column's dates are written in ('ymd', 'dmy', 'mdy'); None if unclear."""
    year_first = sum(1 for c in cells if _YEAR_FIRST.fullmatch(c))
    if year_first * 2 >= len(cells):
        return "ymd"
    return _year_last_order(cells)


def is_ambiguous(cells: list[str]) -> bool:
    """Every year-last date of the column could be read day-first or month-first."""
    for cell in cells:
        match = _YEAR_LAST.fullmatch(cell)
        if match and max(int(match.group(1)), int(match.group(3))) > 12:
            return False
    return True


def parse_date(cell: str, order: str) -> tuple[datetime, bool] | None:
    """(the date, whether the cell has a time) or None when the cell is not a date."""
    match = _YEAR_FIRST.fullmatch(cell)
    if match:
        year, month, day = int(match.group(1)), int(match.group(3)), int(match.group(4))
    else:
        match = _YEAR_LAST.fullmatch(cell)
        if match is None or order == "ymd":
            return None
        first, second, year = int(match.group(1)), int(match.group(3)), int(match.group(4))
        day, month = (first, second) if order == "dmy" else (second, first)
    hour, minute, second_ = (int(match.group(i) or 0) for i in (5, 6, 7))
    try:
        return datetime(year, month, day, hour, minute, second_), match.group(5) is not None
    except ValueError:  # 2012-02-30, 25:00
        return None


def date_parts(when: datetime, parts: list[str]) -> list[float]:
    """The features of one date: the year as a number, the other parts as (sin, cos) pairs."""
    values: list[float] = []
    for part in parts:
        if part == "year":
            values.append(float(when.year))
            continue
        if part == "day_of_year":
            leap = when.year % 4 == 0 and (when.year % 100 != 0 or when.year % 400 == 0)
            position = (when.timetuple().tm_yday - 1) / (366 if leap else 365)
        elif part == "time_of_day":
            position = (when.hour * 3600 + when.minute * 60 + when.second) / _PERIODS[part]
        else:
            offset = {"month": when.month - 1, "day_of_month": when.day - 1}
            position = offset.get(part, when.weekday()) / _PERIODS[part]
        angle = 2 * math.pi * position
        values += [math.sin(angle), math.cos(angle)]
    return values


def part_names(column: str, parts: list[str]) -> list[str]:
    """Feature names of a date column: `Date.year`, `Date.month_sin`, `Date.month_cos`, ..."""
    names = []
    for part in parts:
        names += (
            [f"{column}.{part}"]
            if part == "year"
            else [f"{column}.{part}_{s}" for s in ("sin", "cos")]
        )
    return names


def date_matrix(dates: list[datetime | None], parts: list[str]) -> np.ndarray:
    """One row of date features per cell; NaN (filled later with the train mean) where missing."""
    width = len(part_names("", parts))
    out = np.full((len(dates), width), np.nan)
    for i, when in enumerate(dates):
        if when is not None:
            out[i] = date_parts(when, parts)
    return out
