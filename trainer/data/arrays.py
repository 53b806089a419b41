"""`ArrayData`: a whole data set in memory, as every dataset config builds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UserError

TASKS = ("binary", "multiclass", "multilabel", "regression")


@dataclass
class ArrayData:
    """Features and targets before the train/val/test split.

    Classification targets are class indices 0..C-1 (`class_names[i]` names class i);
    multi-label targets are 0/1, shape (n, k) (`class_names[j]` names label j, as do
    `target_names`); regression targets are floats, shape (n,) or (n, k).
    """

    features: np.ndarray
    targets: np.ndarray
    task: str
    name: str
    feature_names: list[str]
    class_names: list[str] | None = None
    target_names: list[str] | None = None
    image_shape: tuple[int, ...] | None = None  # features are images flattened in this shape
    columns: list[dict] = field(default_factory=list)  # CSV: raw column -> feature encoding
    input_shape: tuple[int, ...] | None = (
        None  # what the model sees; null: image_shape or (n_features,)
    )
    splits: dict[str, Any] | None = None  # given train/val/test indices (None: held out of train)
    loading: Any = None  # LoaderOptions of a source that has them (loading.py)
    augment: dict | None = None  # train-only batch augmentation (augment.py), for images

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.float32)
        if self.features.ndim == 1:
            self.features = self.features[:, None]
        if self.features.ndim != 2:
            raise ValueError(f"features must be (n_samples, n_features), got {self.features.shape}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.task == "regression":
            self.targets = np.asarray(self.targets, dtype=np.float32)
            if self.target_names is None:
                k = 1 if self.targets.ndim == 1 else self.targets.shape[1]
                self.target_names = ["y"] if k == 1 else [f"y{i}" for i in range(k)]
        elif self.task == "multilabel":
            self.targets = np.asarray(self.targets).astype(np.int64)
            if self.targets.ndim != 2 or not np.isin(self.targets, (0, 1)).all():
                raise ValueError("multi-label targets must be 0/1, shape (n_samples, n_labels)")
            if self.class_names is None:
                k = self.targets.shape[1]
                self.class_names = list(self.target_names or [f"y{i}" for i in range(k)])
            self.target_names = self.target_names or list(self.class_names)
        else:
            self.targets = np.asarray(self.targets).astype(np.int64)
            if self.class_names is None:
                self.class_names = [str(c) for c in range(int(self.targets.max()) + 1)]
        if len(self.features) != len(self.targets):
            raise ValueError("features and targets differ in length")
        if len(self.feature_names) != self.features.shape[1]:
            raise ValueError("one feature name per feature column is needed")
        if (
            self.image_shape is not None
            and int(np.prod(self.image_shape)) != self.features.shape[1]
        ):
            raise ValueError(
                f"image_shape {self.image_shape} does not match {self.features.shape[1]} features"
            )

    @property
    def num_classes(self) -> int | None:
        return None if self.task == "regression" else len(self.class_names)

    def check_usable(self) -> None:
        """Reject data no model can learn from, with the reason."""
        if len(self.features) < 10:
            raise UserError(
                f"dataset '{self.name}' has {len(self.features)} rows; at least 10 are needed "
                "to split it into train, validation and test sets.",
                key="dataset",
            )
        if np.isinf(self.features).any():  # NaN marks a missing value, filled after the split
            raise UserError(f"dataset '{self.name}' has infinite feature values.", key="dataset")
        if self.task == "multilabel":
            for name, column in zip(self.class_names, self.targets.T):
                if len(np.unique(column)) < 2:
                    raise UserError(
                        f"dataset '{self.name}': label '{name}' is {int(column[0])} in every "
                        "row; a label needs both 0 and 1 to be learnt. Leave it out of the "
                        "targets.",
                        key="dataset.target",
                    )
        elif self.task != "regression" and self.num_classes < 2:
            raise UserError(
                f"dataset '{self.name}' has a single class ({self.class_names}); "
                "classification needs at least two.",
                key="dataset",
            )
        if self.task == "regression" and not np.isfinite(self.targets).all():
            raise UserError(
                f"dataset '{self.name}' has NaN or infinite target values.", key="dataset"
            )
