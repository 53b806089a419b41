"""The chance level of a task: what a model that learned nothing from the features scores.

Recorded once at set-up from the train split (metrics.json `dataset.baseline`), so the report
judges losses and metrics against it instead of against the first epoch:

    classification: the majority-class rate (accuracy), the entropy of the class prior (the
                    cross-entropy of the best constant prediction; log C for C balanced classes)
    regression:     r2 = 0, the variance of the targets (the MSE of predicting the mean)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# Losses whose value for the best constant prediction is the baseline loss below (unweighted,
# without label smoothing: those change what "chance" costs, and then only metrics are compared).
_ENTROPY_LOSSES = {"CrossEntropy", "CrossEntropyLoss", "NLL", "NLLLoss", "BCEWithLogits"}
_ENTROPY_LOSSES |= {"BCEWithLogitsLoss"}


def chance_level(data, loss) -> dict:
    """The chance-level baseline of a DataModule's task on its train split, under `loss`."""
    task, num_classes = data.spec.task, data.spec.num_classes
    if getattr(data, "streams", False):  # the DataLoader path: its targets, no input is read
        train_targets = data.split_targets("train")
    else:
        train_targets = data.arrays["train"][1]
    name = type(loss).__name__
    if task == "regression":
        y = np.asarray(train_targets, dtype=np.float64).reshape(len(train_targets), -1)
        variance = float(np.mean(np.var(y, axis=0)))
        spread = float(np.mean(np.abs(y - np.median(y, axis=0))))
        loss_value = {"MSELoss": variance, "L1Loss": spread}.get(name)
        return {"r2": 0.0, "target_variance": variance, "loss": loss_value, "loss_name": name}
    if task not in ("binary", "multiclass") or not num_classes:
        return {"loss": None, "loss_name": name}
    counts = np.bincount(np.asarray(train_targets, dtype=np.int64).ravel(), minlength=num_classes)
    prior = counts / max(1, counts.sum())
    entropy = float(-sum(p * math.log(p) for p in prior if p > 0))
    plain = name in _ENTROPY_LOSSES and not _weighted(loss)
    return {
        "accuracy": float(prior.max()),
        "classes": int(num_classes),
        "log_classes": math.log(num_classes),
        "prior_entropy": entropy,
        "loss": entropy if plain else None,
        "loss_name": name,
    }


def _weighted(loss) -> bool:
    """Class weights, pos_weight or label smoothing: the constant prediction costs otherwise."""
    return any(getattr(loss, attr, None) is not None for attr in ("weight", "pos_weight")) or bool(
        getattr(loss, "label_smoothing", 0.0)
    )


def baseline_of(summary: dict[str, Any]) -> dict[str, Any]:
    """The recorded baseline of a run summary ({} for a metrics.json written before it existed)."""
    return dict((summary.get("dataset") or {}).get("baseline") or {})
