"""Multi-label data: several 0/1 targets per sample (a text's topics, a picture's objects).

`dataset=multilabel` is scikit-learn's make_multilabel_classification; `dataset=csv` with
`dataset.target=[a,b,c]` reads one 0/1 column per label (`multilabel_targets`).
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from .arrays import ArrayData
from .fixes import quoted, quoted_list

TRUE, FALSE = ("1", "true", "yes"), ("0", "false", "no")  # cells read as 1 and 0 (any case)


def multilabel(
    n_samples: int = 1000,
    n_features: int = 20,
    n_labels: int = 5,
    labels_per_sample: int = 2,
    seed: int = 0,
) -> ArrayData:
    """scikit-learn's make_multilabel_classification: word-count-like features, `n_labels`
    labels, about `labels_per_sample` of them set per sample (some samples have none)."""
    from sklearn.datasets import make_multilabel_classification

    for key, value, low in [
        ("n_samples", n_samples, 10),
        ("n_features", n_features, 1),
        ("n_labels", n_labels, 2),
        ("labels_per_sample", labels_per_sample, 1),
    ]:
        if value < low:
            raise UserError(f"dataset.{key}={value} must be at least {low}.", key=f"dataset.{key}")
    if labels_per_sample >= n_labels:
        raise UserError(
            f"dataset.labels_per_sample={labels_per_sample} must be smaller than dataset.n_labels"
            f"={n_labels}: with every label on, there is nothing to predict.",
            key="dataset.labels_per_sample",
        )
    x, y = make_multilabel_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_classes=n_labels,
        n_labels=labels_per_sample,
        allow_unlabeled=True,
        random_state=seed,
    )
    names = [f"label{j}" for j in range(n_labels)]
    return ArrayData(
        x,
        y,
        task="multilabel",
        name="multilabel",
        feature_names=[f"x{i}" for i in range(n_features)],
        class_names=names,
        target_names=names,
    )


def as_bit(cell: str) -> int | None:
    """1, 0, or None for a cell that is not a 0/1 value."""
    text = cell.strip().lower()
    if text in TRUE:
        return 1
    if text in FALSE:
        return 0
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number in (0.0, 1.0) else None


def multilabel_targets(
    columns: dict[str, list[str]], lines: list[int], path: str
) -> tuple[np.ndarray, dict[str, str]]:
    """(0/1 targets of shape (n, labels), each target column's treatment) from the target
    columns' cells; one error naming every column that holds other values, and those values."""
    bits, problems, treatments = [], [], {}
    for name, cells in columns.items():
        values = [as_bit(cell) for cell in cells]
        bad: dict[str, list[int]] = {}
        for cell, value, line in zip(cells, values, lines):
            if value is None:
                bad.setdefault(cell, []).append(line)
        if bad:
            found = ", ".join(
                f"{quoted(v)} ({'line' if len(at) == 1 else f'{len(at)} rows, first at line'} "
                f"{at[0]})"
                for v, at in list(bad.items())[:5]
            )
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            cells = sum(len(at) for at in bad.values())
            problems.append(f"column {quoted(name, 60)} holds {cells} other values: {found}{more}")
            continue
        column = np.array(values, dtype=np.int64)
        positives = int(column.sum())
        bits.append(column)
        treatments[name] = (
            f"target: multi-label, label {quoted(name, 60)}: 1 in {positives} of {len(column)} "
            f"rows ({positives / len(column):.1%})"
        )
    if problems:
        raise UserError(
            f"dataset.target: a multi-label target is one 0/1 column per label (1, 0, true, "
            f"false, yes, no), but in '{path}' {'; '.join(problems)}. Fix those cells, leave the "
            "column out of dataset.target, or mark missing values (empty, NA) to drop the rows.",
            key="dataset.target",
        )
    return np.stack(bits, axis=1), treatments


def label_counts(truth: np.ndarray, predicted: np.ndarray) -> list[float]:
    """[samples with every label right, true positives, predicted positives, actual positives
    (per label)]: what `metrics.classification_metrics` reads, from 0/1 arrays (n, labels)."""
    right = float((truth == predicted).all(axis=1).sum())
    return [right, *(truth * predicted).sum(0), *predicted.sum(0), *truth.sum(0)]


def check_target_list(names: list[str], task: str, header: list[str], path: str) -> None:
    """Several target columns: only for multi-label, each named once, each in the file."""
    if task not in ("auto", "multilabel"):
        raise UserError(
            f"dataset.target names {len(names)} columns ({quoted_list(names)}), which is "
            f"multi-label classification, but dataset.task={task}: use dataset.task=multilabel "
            "(or auto), or name one target column.",
            key="dataset.task",
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(
            f"dataset.target names {quoted_list(repeated)} more than once; name each label "
            "column once.",
            key="dataset.target",
        )
    missing = [n for n in names if n not in header]
    if missing:
        raise UserError(
            f"dataset.target names {quoted_list(missing)}, not columns of '{path}'. Its "
            f"columns: {quoted_list(header, 30)}.",
            key="dataset.target",
        )


def single_label_error(name: str) -> UserError:
    return UserError(
        f"dataset.task=multilabel needs two or more 0/1 target columns, one per label, e.g. "
        f"dataset.target=[{name},other]; with the one column {quoted(name, 60)}, use "
        "dataset.task=binary.",
        key="dataset.task",
    )
