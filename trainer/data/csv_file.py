"""A user's own CSV file: a header row, one target column, numeric or text feature columns.

Text columns are one-hot encoded; empty cells in numeric columns are filled with the
train-split mean after the split. How each raw column became features is stored with the
data (and with checkpoints) so that `mode=predict` encodes a new file the same way.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import UserError, did_you_mean
from .arrays import ArrayData

MISSING = {"", "na", "nan", "null", "none", "?", "n/a"}
MAX_CATEGORIES = 100
MAX_CLASSES = 20


def read_table(
    path: str | Path, delimiter: str = ",", key: str = "dataset.path"
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file, with errors that say which file and line is wrong."""
    path = Path(path).expanduser()
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        raise UserError(f"{key}: no such file: '{path}'{where}.", key=key)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise UserError(f"{key}: '{path}' is empty; a header row is needed.", key=key) from None
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise UserError(
                    f"{key}: '{path}' line {line} has {len(row)} fields, the header has "
                    f"{len(header)}. Is the delimiter '{delimiter}' right (dataset.delimiter)?",
                    key=key,
                )
            rows.append([cell.strip() for cell in row])
    if len(set(header)) != len(header):
        raise UserError(
            f"{key}: '{path}' has repeated column names in its header: {header}.", key=key
        )
    return header, rows


def _as_float(values: list[str]) -> np.ndarray | None:
    """The column as floats (NaN where missing), or None when some cell is text."""
    out = np.empty(len(values), dtype=np.float64)
    for i, cell in enumerate(values):
        if cell.lower() in MISSING:
            out[i] = np.nan
            continue
        try:
            out[i] = float(cell)
        except ValueError:
            return None
    return out


def _infer_task(values: list[str], target: str) -> str:
    numbers = _as_float(values)
    distinct = set(values)
    if numbers is None or len(distinct) <= 2:
        return "binary" if len(distinct) == 2 else "multiclass"
    integral = np.all(np.mod(numbers, 1) == 0)
    if integral and len(distinct) <= MAX_CLASSES:
        return "multiclass"
    return "regression"


def _sorted_labels(values: set[str]) -> list[str]:
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def encode_features(
    columns: list[dict], header: list[str], rows: list[list[str]], source: str
) -> np.ndarray:
    """Encode raw rows into the feature matrix described by `columns` (see load_csv)."""
    index = {name: i for i, name in enumerate(header)}
    blocks = []
    for spec in columns:
        name = spec["name"]
        if name not in index:
            raise UserError(
                f"{source} has no column '{name}', which the model was trained on. "
                f"Its columns: {', '.join(header)}.{did_you_mean(name, header)}",
                key="predict.input",
            )
        cells = [row[index[name]] for row in rows]
        if spec["kind"] == "numeric":
            numbers = _as_float(cells)
            if numbers is None:
                bad = next(c for c in cells if c.lower() not in MISSING and not _is_number(c))
                raise UserError(
                    f"{source}: column '{name}' should be numeric but holds '{bad}'.",
                    key="predict.input",
                )
            blocks.append(numbers[:, None])
        else:
            categories = spec["categories"]
            onehot = np.zeros((len(cells), len(categories)))
            lookup = {c: j for j, c in enumerate(categories)}
            for i, cell in enumerate(cells):
                j = lookup.get(cell)
                if j is not None:  # an unseen category encodes as all zeros
                    onehot[i, j] = 1.0
            blocks.append(onehot)
    return np.hstack(blocks) if blocks else np.zeros((len(rows), 0))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def feature_names_of(columns: list[dict]) -> list[str]:
    names = []
    for spec in columns:
        if spec["kind"] == "numeric":
            names.append(spec["name"])
        else:
            names.extend(f"{spec['name']}={c}" for c in spec["categories"])
    return names


def load_csv(
    path: str,
    target: str | None = None,
    task: str = "auto",
    features: list[str] | None = None,
    exclude: list[str] | None = None,
    delimiter: str = ",",
) -> ArrayData:
    """Load a CSV file; `target` names the column to predict."""
    if path is None:
        raise UserError(
            "dataset=csv needs the file and the column to predict: dataset.path=<file.csv> "
            "dataset.target=<column>.",
            key="dataset.path",
        )
    header, rows = read_table(path, delimiter)
    if target is None:
        raise UserError(
            f"dataset.target is not set: name the column to predict, one of: {', '.join(header)}. "
            "For example: dataset.target=label",
            key="dataset.target",
        )
    if target not in header:
        raise UserError(
            f"dataset.target='{target}' is not a column of '{path}'. Its columns: "
            f"{', '.join(header)}.{did_you_mean(target, header)}",
            key="dataset.target",
        )
    if not rows:
        raise UserError(
            f"dataset.path: '{path}' has a header but no data rows.", key="dataset.path"
        )
    t = header.index(target)
    labels = [row[t] for row in rows]
    empty = [i + 2 for i, cell in enumerate(labels) if cell.lower() in MISSING]
    if empty:
        raise UserError(
            f"dataset.target: column '{target}' of '{path}' is empty in {len(empty)} rows "
            f"(first at line {empty[0]}); fill or remove those rows.",
            key="dataset.target",
        )

    valid_tasks = ("auto", "classification", "binary", "multiclass", "regression")
    if task not in valid_tasks:
        raise UserError(
            f"dataset.task='{task}' is not one of: {', '.join(valid_tasks)}.", key="dataset.task"
        )
    if task == "auto":
        task = _infer_task(labels, target)
    elif task == "classification":
        task = "binary" if len(set(labels)) == 2 else "multiclass"

    exclude = set(exclude or [])
    names = (
        [h for h in header if h != target and h not in exclude]
        if features is None
        else list(features)
    )
    for name in list(names) + list(exclude):
        if name not in header:
            raise UserError(
                f"dataset.features / dataset.exclude name '{name}', which is not a column of "
                f"'{path}'. Its columns: {', '.join(header)}.{did_you_mean(name, header)}",
                key="dataset.features",
            )
    if target in names:
        raise UserError(
            f"the target '{target}' is also listed as a feature (dataset.features).",
            key="dataset.features",
        )
    if not names:
        raise UserError(
            f"'{path}' has no feature columns besides the target '{target}'.",
            key="dataset.features",
        )

    columns = []
    for name in names:
        cells = [row[header.index(name)] for row in rows]
        if _as_float(cells) is not None:
            columns.append({"name": name, "kind": "numeric"})
            continue
        categories = sorted({c for c in cells if c.lower() not in MISSING})
        if len(categories) > MAX_CATEGORIES:
            raise UserError(
                f"column '{name}' of '{path}' holds {len(categories)} distinct text values; it looks "
                f"like an identifier, not a feature. Leave it out with dataset.exclude=[{name}].",
                key="dataset.exclude",
            )
        columns.append({"name": name, "kind": "categorical", "categories": categories})
    x = encode_features(columns, header, rows, f"'{path}'")

    if task == "regression":
        y = _as_float(labels)
        if y is None:
            raise UserError(
                f"dataset.task=regression but column '{target}' holds text values.",
                key="dataset.task",
            )
        class_names = None
    else:
        class_names = _sorted_labels(set(labels))
        if task == "binary" and len(class_names) != 2:
            raise UserError(
                f"dataset.task=binary but column '{target}' has {len(class_names)} distinct values.",
                key="dataset.task",
            )
        lookup = {label: i for i, label in enumerate(class_names)}
        y = np.array([lookup[label] for label in labels], dtype=np.int64)
    return ArrayData(
        x,
        y,
        task=task,
        name=Path(path).stem,
        feature_names=feature_names_of(columns),
        class_names=class_names,
        target_names=[target],  # the column predict.input may hold the answers in
        columns=columns,
    )
