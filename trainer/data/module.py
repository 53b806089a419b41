"""`DataModule`: a data set split 70/15/15, standardised with train statistics, ready to batch."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from .arrays import ArrayData
from .splits import Standardizer, given_split_indices, split_indices

SPLITS = ("train", "val", "test")


@dataclass
class DataSpec:
    """What models and losses need to know about the data; nothing the user types."""

    name: str
    task: str
    input_shape: tuple[int, ...]
    num_classes: int | None
    num_targets: int
    feature_names: list[str]
    class_names: list[str] | None
    target_names: list[str] | None
    sizes: dict[str, int] = field(default_factory=dict)
    columns: list[dict] = field(default_factory=list)
    loading: str = "in memory, batches indexed on the device"  # for the start panel


class DataModule:
    """Holds the three splits as standardised numpy arrays and the preprocessing that made them.

    Features are standardised with the train split's mean and std (images: per channel) (missing values filled with
    the train mean); regression targets too, so one learning rate suits every data set. The
    preprocessing is saved in checkpoints, so `mode=predict` transforms new data identically.
    """

    def __init__(
        self,
        source: ArrayData,
        split: tuple[float, float, float] = (0.7, 0.15, 0.15),
        seed: int = 0,
        standardize: bool = True,
        standardize_targets: bool = True,
    ) -> None:
        source.check_usable()
        self.source = source
        stratify = source.targets if source.task in ("binary", "multiclass") else None
        if source.splits is not None:
            indices = given_split_indices(source.splits, split, seed, stratify)
        else:
            indices = split_indices(len(source.features), split, seed, stratify)
        self.indices = dict(zip(SPLITS, indices))
        train = self.indices["train"]
        self.feature_scaler = Standardizer.fit(
            source.features[train], scale=standardize, image_shape=source.image_shape
        )
        self.target_scaler = None
        if source.task == "regression":
            targets = source.targets.reshape(len(source.targets), -1)
            self.target_scaler = Standardizer.fit(targets[train], scale=standardize_targets)
        self.arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, idx in self.indices.items():
            x = self.feature_scaler.transform(source.features[idx])
            y = source.targets[idx]
            if self.target_scaler is not None:
                y = self.target_scaler.transform(targets[idx])  # (n, k), also for n = 0
            self.arrays[name] = (x, y)
        self.spec = DataSpec(
            name=source.name,
            task=source.task,
            input_shape=tuple(source.input_shape or source.image_shape or ())
            or (source.features.shape[1],),
            num_classes=source.num_classes,
            num_targets=1
            if source.task in ("binary", "multiclass")
            else self.arrays["train"][1].shape[1],
            feature_names=list(source.feature_names),
            class_names=source.class_names,
            target_names=source.target_names,
            sizes={k: len(v) for k, v in self.indices.items()},
            columns=list(source.columns),
        )
        if source.loading is not None:  # a source with the dataset.loader options: say why
            self.spec.loading = source.loading.describe("memory", source.features.nbytes)
        self.augment = None
        if source.augment and source.image_shape:
            from .augment import Augment

            self.augment = Augment(source.image_shape, **source.augment)
            self.spec.loading += f"; augmentation: {self.augment.describe()}"

    def class_counts(self) -> np.ndarray | None:
        if self.spec.task == "regression":
            return None
        if self.spec.task == "multilabel":  # (negatives, positives) per label
            positives = self.arrays["train"][1].sum(0)
            return np.stack([len(self.arrays["train"][1]) - positives, positives])
        return np.bincount(self.arrays["train"][1], minlength=self.spec.num_classes)

    def raw_features(self, split: str) -> np.ndarray:
        return self.source.features[self.indices[split]]

    def state_dict(self) -> dict:
        """The preprocessing, as plain containers (saved in every checkpoint)."""
        spec = self.spec
        return {
            "name": spec.name,
            "task": spec.task,
            "input_shape": list(spec.input_shape),
            "num_classes": spec.num_classes,
            "num_targets": spec.num_targets,
            "feature_names": spec.feature_names,
            "class_names": spec.class_names,
            "target_names": spec.target_names,
            "columns": spec.columns,
            "sizes": spec.sizes,
            "class_counts": None if spec.task == "regression" else self.class_counts().tolist(),
            "feature_scaler": self.feature_scaler.state_dict(),
            "target_scaler": None
            if self.target_scaler is None
            else self.target_scaler.state_dict(),
        }


class Preprocessing:
    """The preprocessing of a trained model, rebuilt from a checkpoint: for predictions on new data."""

    def __init__(self, state: dict) -> None:
        self.state = state
        self.feature_scaler = Standardizer.from_state_dict(state["feature_scaler"])
        self.target_scaler = (
            None
            if state["target_scaler"] is None
            else Standardizer.from_state_dict(state["target_scaler"])
        )

    def features(self, raw: np.ndarray) -> np.ndarray:
        if raw.shape[1] != len(self.state["feature_names"]):
            raise UserError(
                f"the model takes {len(self.state['feature_names'])} features "
                f"({', '.join(self.state['feature_names'][:8])}...), the input has {raw.shape[1]}.",
                key="predict.input",
            )
        return self.feature_scaler.transform(raw)

    def targets_to_original(self, values: np.ndarray) -> np.ndarray:
        return values if self.target_scaler is None else self.target_scaler.inverse(values)
