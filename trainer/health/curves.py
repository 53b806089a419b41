"""A run's history as the report reads it: aligned per-epoch series, and the scale that says
how much a change in them matters (the task's chance level, not the first epoch)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .baselines import baseline_of


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


@dataclass
class Curves:
    """The epochs whose train and val losses are finite, and what else each logged."""

    task: str
    epochs: list[int] = field(default_factory=list)
    train: list[float] = field(default_factory=list)  # loss/train
    val: list[float] = field(default_factory=list)  # loss/val
    metric: str | None = None  # accuracy (classification) | r2 (regression)
    train_metric: list[float | None] = field(default_factory=list)
    val_metric: list[float | None] = field(default_factory=list)
    lr: list[float | None] = field(default_factory=list)
    grad: list[float | None] = field(default_factory=list)
    first_layer: list[float | None] = field(default_factory=list)
    last_layer: list[float | None] = field(default_factory=list)
    chance: dict[str, Any] = field(default_factory=dict)
    has_val: bool = True  # False: the run had no validation split (data.split=[1,0,0])

    @classmethod
    def of(cls, summary: dict[str, Any], task: str) -> Curves:
        metric = "r2" if task == "regression" else "accuracy" if task in CLASSES else None
        curves = cls(task=task, metric=metric, chance=baseline_of(summary))
        history = summary.get("history") or []
        curves.has_val = not history or any("loss/val" in h for h in history)
        for h in history:
            if not _finite(h.get("loss/train")) or (
                curves.has_val and not _finite(h.get("loss/val"))
            ):
                continue
            curves.epochs.append(int(h["epoch"]))
            curves.train.append(float(h["loss/train"]))
            if curves.has_val:
                curves.val.append(float(h["loss/val"]))
            for name, key in (
                ("train_metric", f"{metric}/train"),
                ("val_metric", f"{metric}/val"),
                ("lr", "lr"),
                ("grad", "grad_norm"),
                ("first_layer", "grad_norm/first_layer"),
                ("last_layer", "grad_norm/last_layer"),
            ):
                value = h.get(key)
                getattr(curves, name).append(float(value) if _finite(value) else None)
        return curves

    @property
    def n(self) -> int:
        return len(self.train)

    @property
    def chance_loss(self) -> float | None:
        value = self.chance.get("loss")
        return float(value) if _finite(value) and value > 0 else None

    @property
    def scale(self) -> float:
        """What a loss change is measured against: the chance-level loss; without one (a loss
        whose chance level is not known), the larger of the first train and val losses."""
        return self.chance_loss or max(self.train[0], *self.val[:1], 1e-12)

    def skill(self, value: float | None) -> float | None:
        """How much of the way from chance to perfect a metric value is: 0 at chance, 1 perfect
        (accuracy against the majority-class rate; r2 is this already)."""
        if value is None:
            return None
        if self.metric == "r2":
            return value
        majority = self.chance.get("accuracy")
        if not _finite(majority) or majority >= 1.0:
            return None
        return (value - majority) / (1.0 - majority)

    def best_val_skill(self) -> float | None:
        skills = [s for s in map(self.skill, self.val_metric) if s is not None]
        return max(skills) if skills else None

    def final_train_skill(self) -> float | None:
        return self.skill(self.train_metric[-1]) if self.train_metric else None

    def loss_skill(self, value: float) -> float | None:
        """1 - loss / chance loss: 0 for a constant prediction, 1 for a perfect fit."""
        return None if self.chance_loss is None else 1.0 - value / self.chance_loss

    def rates(self) -> list[float]:
        return [r for r in self.lr if r is not None]

    def mean_layer_ratio(self) -> float | None:
        """Mean over epochs of the first weight layer's gradient norm over the last one's."""
        pairs = [(a, b) for a, b in zip(self.first_layer, self.last_layer) if a is not None and b]
        return sum(a / b for a, b in pairs) / len(pairs) if pairs else None

    def fraction_down(self, series: list[float]) -> float:
        """The share of epochs in which `series` fell."""
        steps = len(series) - 1
        return sum(series[i] < series[i - 1] for i in range(1, len(series))) / max(1, steps)


CLASSES = ("binary", "multiclass")
