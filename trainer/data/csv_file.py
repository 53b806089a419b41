"""A user's own CSV file: a header row, one target column (or one 0/1 column per label for
multi-label classification), numeric, date or text feature columns.

Rows without a target are left out (dataset.missing_target=drop, with a notice) or refused
(error). How each raw column became features (columns.py: numbers, dates, one-hot categories,
exclusions) is stored with the data and with checkpoints, so that `mode=predict` encodes a new
file the same way, and `describe_columns` reports it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import UserError
from .arrays import ArrayData
from .columns import (
    RARE_SHARE,
    RARE_TOKENS,
    ColumnOptions,
    analyse_column,
    excluded,
    fold,
    markers_of,
    merge_spellings,
    merged_note,
)
from .dates import DATE_PARTS, DEFAULT_DATE_PARTS
from .encoding import (
    describe_columns,
    encode_features,
    encode_table,
    feature_columns,
    feature_names_of,
)
from .fixes import (
    closest,
    hydra_value,
    is_number,
    lines_text,
    list_override,
    override,
    plural,
    quoted,
    quoted_list,
)
from .multilabel import check_target_list, multilabel_targets, single_label_error
from .table import Table, read_table

__all__ = ["describe_columns", "encode_features", "feature_names_of", "load_csv", "read_table"]

log = logging.getLogger("trainer")

MAX_CLASSES = 20
MIN_ROWS = 10  # as DataModule needs for a train/val/test split
TASKS = ("auto", "classification", "binary", "multiclass", "multilabel", "regression")


def _names(value: object) -> list[str]:
    """A list option as names: a single name stands for [name], null for []."""
    if value is None:
        return []
    if isinstance(value, (str, int, float)):
        return [str(value)]
    return [str(v) for v in value]


def _check_choice(key: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"{key}={quoted(value)} is not one of: {', '.join(choices)}.", key=key)


def _check_names(table: Table, option: str, names: list[str]) -> None:
    """Every name an option lists is a column of the file."""
    for name in names:
        if name not in table.header:
            hint = _did_you_mean(name, table, lambda guess: list_override(option, [guess]))
            raise UserError(
                f"{option} names {quoted(name, 60)}, which is not a column of '{table.path}'. "
                f"Its columns: {quoted_list(table.header, 30)}.{hint}",
                key=option,
            )


def _did_you_mean(name: str, table: Table, fix) -> str:
    """' Did you mean X?' for a column name, with the override to paste when X needs quotes."""
    guess = closest(name, table.header)
    if guess is None:
        return ""
    hint = f" Did you mean {quoted(guess, 60)}?"
    if hydra_value(guess) != guess:
        hint += f" On the command line: {fix(guess)}."
    return hint


def _check_target(table: Table, target: str | None) -> str:
    if target is None:
        raise UserError(
            f"dataset.target is not set: name the column to predict, one of: "
            f"{quoted_list(table.header, 30)}. For example: "
            f"{override('dataset.target', table.header[-1])}",
            key="dataset.target",
        )
    target = str(target)
    if target not in table.header:
        hint = _did_you_mean(target, table, lambda guess: override("dataset.target", guess))
        raise UserError(
            f"dataset.target='{target}' is not a column of '{table.path}'. Its columns: "
            f"{quoted_list(table.header, 30)}.{hint}",
            key="dataset.target",
        )
    if not table.rows:
        raise UserError(
            f"dataset.path: '{table.path}' has a header but no data rows.", key="dataset.path"
        )
    return target


# ---------------------------------------------------------------------- the target
def _without_target(cells: list[str], options: ColumnOptions, task: str) -> list[int]:
    """Rows whose target is missing: a marker, or for a numeric target a rare text token."""
    markers = markers_of(options.na_values)
    missing = [i for i, cell in enumerate(cells) if cell.lower() in markers]
    if task in ("auto", "regression"):
        numbers = dict.fromkeys(i for i, c in enumerate(cells) if is_number(c))
        text = [i for i, c in enumerate(cells) if i not in numbers and c.lower() not in markers]
        distinct = {cells[i] for i in text}
        present = len(cells) - len(missing)
        if numbers and text and len(distinct) <= RARE_TOKENS and len(text) <= RARE_SHARE * present:
            missing = sorted(missing + text)
    return missing


def _drop_rows_without_target(
    table: Table, target: str, options: ColumnOptions, task: str, missing_target: str
) -> tuple[Table, str]:
    """The table without rows that lack a target, and a note for the target's treatment."""
    cells = table.column(target)
    missing = _without_target(cells, options, task)
    if not missing:
        return table, ""
    markers = sorted({cells[i] for i in missing if cells[i]})
    verb = "has no value" if markers else "is empty"
    marked = f"; {quoted_list(markers, 3)} counted as missing" if markers else ""
    where = f"column {quoted(target, 60)} of '{table.path}' {verb} in {len(missing)} rows "
    where += f"(first at line {table.lines[missing[0]]}{marked})"
    dropped = set(missing)
    kept = [i for i in range(len(cells)) if i not in dropped]
    if missing_target == "error":
        raise UserError(
            f"dataset.missing_target=error: {where}. Fill in those rows, or leave them out with "
            "dataset.missing_target=drop.",
            key="dataset.missing_target",
        )
    if len(kept) < MIN_ROWS:
        raise UserError(
            f"dataset.target: {where}; without them {len(kept)} rows remain, fewer than the "
            f"{MIN_ROWS} a train/validation/test split needs. Fill in the target values.",
            key="dataset.target",
        )
    log.warning(
        f"'{table.path}': {plural(len(missing), 'row')} without a target "
        f"({quoted(target, 60)}) left out (first at line {table.lines[missing[0]]}{marked})."
    )
    return table.subset(kept), f"; {plural(len(missing), 'row')} without a value left out"


def _infer_task(labels: list[str]) -> str:
    distinct = {fold(v) for v in labels}
    if not all(is_number(v) for v in labels) or len(distinct) <= 2:
        return "binary" if len(distinct) == 2 else "multiclass"
    numbers = np.array([float(v) for v in labels])
    if np.all(np.mod(numbers, 1) == 0) and len(distinct) <= MAX_CLASSES:
        return "multiclass"
    return "regression"


def _sorted_labels(values: set[str]) -> list[str]:
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values, key=lambda v: (fold(v), v))


def _targets(table: Table, target: str, task: str) -> tuple[np.ndarray, list[str] | None, str]:
    """(targets, class names or None, the target's treatment) for the task."""
    labels = table.column(target)
    if task == "regression":
        text = [(v, n) for v, n in zip(labels, table.lines) if not is_number(v)]
        if text:
            raise UserError(
                f"dataset.task=regression but column {quoted(target, 60)} holds text values: "
                f"{quoted_list(sorted({v for v, _ in text}))} (first at line {text[0][1]}).",
                key="dataset.task",
            )
        y = np.array([float(v) for v in labels])
        infinite = [n for v, n in zip(y, table.lines) if np.isinf(v)]
        if infinite:
            raise UserError(
                f"dataset.target: column {quoted(target, 60)} of '{table.path}' holds infinite "
                f"values at {lines_text(infinite)}; replace them or leave those rows out.",
                key="dataset.target",
            )
        return y, None, "target: regression"
    names = merge_spellings(labels)
    class_names = _sorted_labels(set(names.values()))
    if task == "binary" and len(class_names) != 2:
        raise UserError(
            f"dataset.task=binary but column {quoted(target, 60)} has {len(class_names)} distinct "
            f"values: {quoted_list(class_names)}.",
            key="dataset.task",
        )
    index = {fold(c): i for i, c in enumerate(class_names)}
    y = np.array([index[fold(v)] for v in labels], dtype=np.int64)
    shown = ", ".join(quoted(c, 30) for c in class_names[:10]) + (
        " ..." if len(class_names) > 10 else ""
    )
    treatment = f"target: {task}, {len(class_names)} classes ({shown})"
    return y, class_names, treatment + merged_note(target, labels, names)


# ---------------------------------------------------------------------- load_csv
def load_csv(
    path: str,
    target: str | list[str] | None = None,
    task: str = "auto",
    features: list[str] | None = None,
    exclude: list[str] | None = None,
    delimiter: str = ",",
    encoding: str = "utf-8",
    na_values: list[str] | None = None,
    missing_target: str = "drop",
    dates: list[str] | None = None,
    date_features: tuple[str, ...] = DEFAULT_DATE_PARTS,
    categorical: list[str] | None = None,
) -> ArrayData:
    """Load a CSV file; `target` names the column to predict, or the 0/1 label columns of a
    multi-label task. A single name works wherever a list of names is expected (exclude=id
    means [id])."""
    if path is None:
        raise UserError(
            "dataset=csv needs the file and the column to predict: dataset.path=<file.csv> "
            "dataset.target=<column>.",
            key="dataset.path",
        )
    _check_choice("dataset.task", task, TASKS)
    _check_choice("dataset.missing_target", missing_target, ("drop", "error"))
    parts = _names(date_features)
    for part in parts:
        _check_choice("dataset.date_features", part, DATE_PARTS)
    table = read_table(path, delimiter, encoding=encoding)
    targets = _names(target)
    if len(targets) > 1:
        check_target_list(targets, task, table.header, table.path)
        target = _check_target(table, targets[0])
    else:
        target = _check_target(table, targets[0] if targets else None)
        if task == "multilabel":
            raise single_label_error(target)
        targets = [target]
    chosen = {o: _names(v) for o, v in [("features", features), ("exclude", exclude)]}
    options = ColumnOptions(
        na_values=tuple(_names(na_values)),
        dates=tuple(_names(dates)),
        categorical=tuple(_names(categorical)),
        date_parts=tuple(parts),
    )
    for option, names in [
        *chosen.items(),
        ("dates", options.dates),
        ("categorical", options.categorical),
    ]:
        _check_names(table, f"dataset.{option}", list(names))
    both = set(options.dates) & set(options.categorical)
    if both:
        raise UserError(
            f"dataset.dates and dataset.categorical both name {quoted_list(sorted(both))}; a "
            "column is one or the other.",
            key="dataset.dates",
        )
    for name in targets:
        if name in chosen["features"]:
            raise UserError(
                f"the target {quoted(name, 60)} is also listed as a feature (dataset.features).",
                key="dataset.features",
            )

    dropped = {}
    for name in targets:
        table, dropped[name] = _drop_rows_without_target(
            table, name, options, "multilabel" if len(targets) > 1 else task, missing_target
        )
    labels = table.column(target)
    if len(targets) > 1:
        task, class_names = "multilabel", targets
        y, treatments = multilabel_targets(
            {name: table.column(name) for name in targets}, table.lines, table.path
        )
    else:
        if task == "auto":
            task = _infer_task(labels)
        elif task == "classification":
            task = "binary" if len(merge_spellings(labels)) == 2 else "multiclass"
        y, class_names, treatment = _targets(table, target, task)
        treatments = {target: treatment}

    columns = []
    for name in table.header:
        if name in targets:
            treatment = treatments[name] + dropped[name]
            columns.append({"name": name, "kind": "target", "treatment": treatment})
        elif name in chosen["exclude"]:
            columns.append(excluded(name, "dataset.exclude", notice=False))
        elif features is not None and name not in chosen["features"]:
            columns.append(excluded(name, "not in dataset.features", notice=False))
        else:
            source = f"'{table.path}'"
            columns.append(analyse_column(name, table.column(name), table.lines, options, source))
    if not feature_columns(columns):
        report = "; ".join(f"{name}: {treatment}" for name, treatment in describe_columns(columns))
        raise UserError(
            f"dataset.features: '{table.path}' has no usable feature columns besides the target "
            f"{quoted(target, 60)} ({report}).",
            key="dataset.features",
        )
    x = encode_table(
        columns, table.header, table.rows, f"'{table.path}'", table.lines, key="dataset.path"
    )
    return ArrayData(
        x.features,
        y,
        task=task,
        name=Path(path).stem,
        feature_names=feature_names_of(columns),
        class_names=class_names,
        target_names=targets,  # the columns predict.input may hold the answers in
        columns=columns,
    )
