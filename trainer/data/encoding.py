"""Encoding a table with the columns training chose (see columns.py): the same features for a
new file as for the training file, and the column report in words."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .columns import FEATURE_KINDS, fold, markers_of, split_cells
from .dates import FORMATS, date_matrix, parse_date, part_names
from .fixes import lines_text, quoted, quoted_list


@dataclass
class Encoded:
    """A table's feature matrix, and the unseen categories taken as missing, per column."""

    features: np.ndarray
    unknown: dict[str, dict[str, int]]


def feature_columns(columns: list[dict]) -> list[dict]:
    """The columns that make features (older checkpoints: every column)."""
    return [c for c in columns if c.get("kind", "numeric") in FEATURE_KINDS]


def encode_table(
    columns: list[dict],
    header: list[str],
    rows: list[list[str]],
    source: str,
    lines: list[int] | None = None,
    unknown_category: str = "error",
    key: str = "predict.input",
) -> Encoded:
    """Encode raw rows into the feature matrix `columns` describes; one error for every bad
    column; unseen categories are an error, or missing with unknown_category='missing'."""
    index = {name: i for i, name in enumerate(header)}
    lines = lines if lines is not None else list(range(2, len(rows) + 2))
    blocks, problems, unknown = [], [], {}
    for spec in feature_columns(columns):
        name = spec["name"]
        if name not in index:
            raise UserError(
                f"{key}: {source} has no column {quoted(name, 60)}, which the model was trained "
                f"on. Its columns: {quoted_list(header, 30)}.",
                key=key,
            )
        cells = [row[index[name]] for row in rows]
        block, problem, unseen = _encode_column(spec, cells, lines)
        blocks.append(block)
        if problem:
            problems.append(f"column {quoted(name, 60)} {problem}")
        if unseen:
            unknown[name] = {v: len(r) for v, r in unseen.items()}
            if unknown_category != "missing":
                known = spec["categories"]
                problems.append(
                    f"column {quoted(name, 60)} holds values not seen in training: "
                    f"{_where(unseen, lines)}; known: {quoted_list(known, 10)}"
                )
    if problems:
        hint = (
            " Fix those cells, or set predict.unknown_category=missing to treat unseen "
            "categories as missing values (counted in the result)."
            if unknown and unknown_category != "missing"
            else " Fix those cells (an empty cell or NA marks a missing value)."
        )
        raise UserError(f"{key}: {source}: {'; '.join(problems)}.{hint}", key=key)
    features = np.hstack(blocks) if blocks else np.zeros((len(rows), 0))
    return Encoded(features, unknown)


def encode_features(
    columns: list[dict], header: list[str], rows: list[list[str]], source: str
) -> np.ndarray:
    """Encode raw rows into the feature matrix described by `columns` (see load_csv)."""
    return encode_table(columns, header, rows, source).features


def _where(groups: dict[str, list[int]], lines: list[int], limit: int = 5) -> str:
    """'abc' (3 rows, first at line 4), 'x' (line 9) ..."""
    parts = []
    for value, rows in list(groups.items())[:limit]:
        at = (
            f"line {lines[rows[0]]}"
            if len(rows) == 1
            else f"{len(rows)} rows, first at line {lines[rows[0]]}"
        )
        parts.append(f"{quoted(value)} ({at})")
    more = f" and {len(groups) - limit} more" if len(groups) > limit else ""
    return ", ".join(parts) + more


def _encode_column(
    spec: dict, cells: list[str], lines: list[int]
) -> tuple[np.ndarray, str | None, dict[str, list[int]]]:
    """(the column's features, what is wrong with its cells or None, unseen categories)."""
    markers = markers_of(spec.get("na_values", ()))
    kind = spec.get("kind", "numeric")
    if kind == "categorical":
        return _encode_categories(spec["categories"], cells, markers)
    if kind == "date":
        dates, bad = [], {}
        for i, cell in enumerate(cells):
            parsed = None if cell.lower() in markers else parse_date(cell, spec["order"])
            if parsed is None and cell.lower() not in markers:
                bad.setdefault(cell, []).append(i)
            dates.append(None if parsed is None else parsed[0])
        problem = f"should hold dates ({FORMATS[spec['order']]}) but holds {_where(bad, lines)}"
        return date_matrix(dates, spec["parts"]), problem if bad else None, {}
    numbers, text = split_cells(cells, markers)
    if text:
        return numbers[:, None], f"should hold numbers but holds {_where(text, lines)}", {}
    infinite = [lines[i] for i in np.flatnonzero(np.isinf(numbers))]
    if infinite:
        return numbers[:, None], f"holds infinite values at {lines_text(infinite)}", {}
    return numbers[:, None], None, {}


def _encode_categories(
    categories: list[str], cells: list[str], markers: frozenset[str]
) -> tuple[np.ndarray, None, dict[str, list[int]]]:
    """One-hot rows (all zeros where missing or unseen) and the unseen values' rows."""
    exact = {c: j for j, c in enumerate(categories)}
    folded: dict[str, int] = {}
    for j, c in enumerate(categories):
        folded.setdefault(fold(c), j)
    onehot = np.zeros((len(cells), len(categories)))
    unseen: dict[str, list[int]] = {}
    spelling: dict[str, str] = {}
    for i, cell in enumerate(cells):
        if cell.lower() in markers:
            continue
        j = exact.get(cell, folded.get(fold(cell)))
        if j is None:
            unseen.setdefault(spelling.setdefault(fold(cell), cell), []).append(i)
        else:
            onehot[i, j] = 1.0
    return onehot, None, unseen


def feature_names_of(columns: list[dict]) -> list[str]:
    """One name per feature: `size`, `colour=red`, `Date.month_sin`."""
    names: list[str] = []
    for spec in feature_columns(columns):
        kind = spec.get("kind", "numeric")
        if kind == "categorical":
            names += [f"{spec['name']}={c}" for c in spec["categories"]]
        elif kind == "date":
            names += part_names(spec["name"], spec["parts"])
        else:
            names.append(spec["name"])
    return names


def describe_columns(columns: list[dict]) -> list[tuple[str, str]]:
    """(column name, how it was treated) for every column of the file, in the file's order."""
    rows = []
    for spec in columns:
        treatment = spec.get("treatment")
        if treatment is None:  # written before treatments were recorded
            kind = spec.get("kind", "numeric")
            treatment = (
                f"one-hot, {len(spec['categories'])} categories" if kind == "categorical" else kind
            )
        rows.append((str(spec["name"]), treatment))
    return rows
