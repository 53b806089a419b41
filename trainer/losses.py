"""Losses, and which model output layout (`Head`) each one needs for a task.

`loss=auto` picks from the task: cross entropy for multi-class, BCE-with-logits (one
output) for binary, BCE-with-logits with one output per label for multi-label, MSE for
regression. Every loss here takes raw model outputs (logits).
"""

from __future__ import annotations

import functools
import inspect

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import UserError
from .tasks import Head

CLASSIFICATION = ("binary", "multiclass")
MULTILABEL = "multilabel"


def _class_weights(
    spec: str | list | None, class_counts: np.ndarray | None, key: str
) -> torch.Tensor | None:
    if spec is None:
        return None
    if class_counts is not None and np.ndim(class_counts) == 2:  # (negatives, positives) per label
        raise UserError(
            f"{key} weighs the classes of a binary or multi-class task; this is a multi-label "
            "task: use loss=bce_logits with loss.pos_weight=balanced (or one weight per label).",
            key=key,
        )
    if spec == "balanced":
        counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 1)
        return torch.tensor(counts.sum() / (len(counts) * counts), dtype=torch.float32)
    weights = list(spec)
    if class_counts is not None and len(weights) != len(class_counts):
        raise UserError(
            f"{key} has {len(weights)} weights for {len(class_counts)} classes.", key=key
        )
    if any(w < 0 for w in weights):
        raise UserError(f"{key} must be non-negative, got {weights}.", key=key)
    return torch.tensor(weights, dtype=torch.float32)


class CrossEntropy(nn.Module):
    """Softmax cross entropy over one logit per class, with optional class weights and label smoothing."""

    tasks = CLASSIFICATION
    kind = "logits"

    def __init__(
        self,
        class_weights: str | list | None = None,
        label_smoothing: float = 0.0,
        class_counts: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise UserError(
                f"loss.label_smoothing must be in [0, 1), got {label_smoothing}.",
                key="loss.label_smoothing",
            )
        self.register_buffer(
            "weight", _class_weights(class_weights, class_counts, "loss.class_weights")
        )
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits, target, weight=self.weight, label_smoothing=self.label_smoothing
        )


class NLL(nn.Module):
    """Negative log-likelihood of the target class under log_softmax(logits)."""

    tasks = CLASSIFICATION
    kind = "logits"

    def __init__(
        self, class_weights: str | list | None = None, class_counts: np.ndarray | None = None
    ) -> None:
        super().__init__()
        self.register_buffer(
            "weight", _class_weights(class_weights, class_counts, "loss.class_weights")
        )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.nll_loss(F.log_softmax(logits, dim=1), target, weight=self.weight)


class BCEWithLogits(nn.Module):
    """Binary cross entropy on one logit per sample (binary) or per label (multi-label);
    `pos_weight` up-weights the positive class (multi-label: one number for every label, or
    one per label)."""

    tasks = ("binary", MULTILABEL)

    def __init__(
        self,
        pos_weight: float | str | list | None = None,
        task: str = "binary",
        class_counts: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.kind = "labels" if task == MULTILABEL else "logit"
        self.register_buffer("pos_weight", _pos_weight(pos_weight, task, class_counts))

    def forward(self, logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logit, target, pos_weight=self.pos_weight)


def _pos_weight(spec, task: str, class_counts: np.ndarray | None) -> torch.Tensor | None:
    """pos_weight as a tensor: a number, one per label (multi-label), or "balanced": negatives /
    positives in the train split (per label for multi-label)."""
    if spec is None:
        return None
    if spec == "balanced":
        neg, pos = np.maximum(np.asarray(class_counts, dtype=np.float64), 1)
        return torch.as_tensor(np.atleast_1d(neg / pos), dtype=torch.float32)
    labels = None
    if task == MULTILABEL and class_counts is not None:
        labels = np.asarray(class_counts).reshape(2, -1).shape[1]
    values = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    wrong_length = labels is not None and len(values) != labels
    if isinstance(spec, (list, tuple)) and (task != MULTILABEL or wrong_length):
        what = f"{labels} labels" if task == MULTILABEL else "a binary task"
        choices = f"one number (every label), one per label ({labels})" if labels else "one number"
        raise UserError(
            f"loss.pos_weight={values} has {len(values)} weights for {what}: give {choices}, "
            "or balanced.",
            key="loss.pos_weight",
        )
    if any(isinstance(v, str) or not float(v) > 0 for v in values):
        raise UserError(
            f"loss.pos_weight must be positive numbers or balanced, got {spec}.",
            key="loss.pos_weight",
        )
    return torch.tensor([float(v) for v in values])


class Focal(nn.Module):
    """Focal loss (Lin et al. 2017): cross entropy down-weighting easy examples by (1 - p_t)^gamma.

    Binary tasks use one logit (sigmoid) and `alpha`, the positive class's weight in (0, 1);
    multi-label tasks one logit per label (sigmoid each) and the same `alpha` for every label;
    multi-class tasks one logit per class (softmax) and `alpha`, one weight per class.
    """

    tasks = (*CLASSIFICATION, MULTILABEL)

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | list[float] | None = None,
        task: str = "binary",
        class_counts: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        if gamma < 0:
            raise UserError(f"loss.gamma must be >= 0, got {gamma}.", key="loss.gamma")
        self.gamma = gamma
        self.kind = {"binary": "logit", MULTILABEL: "labels"}.get(task, "logits")
        alpha = None if alpha is None else _focal_alpha(alpha, task, class_counts)
        if isinstance(alpha, torch.Tensor):  # per class: a buffer, moved with the loss
            self.register_buffer("alpha", alpha)
        else:
            self.alpha = alpha

    def forward(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind != "logits":  # sigmoid per sample or per label
            ce = F.binary_cross_entropy_with_logits(outputs, target, reduction="none")
            p_t = torch.exp(-ce)
            weight = (
                1.0 if self.alpha is None else self.alpha * target + (1 - self.alpha) * (1 - target)
            )
        else:
            log_p = F.log_softmax(outputs, dim=1).gather(1, target[:, None])[:, 0]
            ce, p_t = -log_p, log_p.exp()
            weight = 1.0 if self.alpha is None else self.alpha[target]
        return (weight * (1 - p_t) ** self.gamma * ce).mean()


def _focal_alpha(alpha, task: str, class_counts: np.ndarray | None):
    """Binary, multi-label: a float in (0, 1). Multi-class: one positive weight per class, as a
    tensor."""
    if task in ("binary", MULTILABEL):
        if isinstance(alpha, (list, tuple)) or not 0 < alpha < 1:
            raise UserError(
                f"loss.alpha={alpha}: on a {task} task it is the positive class's weight, a "
                "number in (0, 1), e.g. loss.alpha=0.25 (or null).",
                key="loss.alpha",
            )
        return float(alpha)
    classes = len(class_counts) if class_counts is not None else None
    if not isinstance(alpha, (list, tuple)) or (classes and len(alpha) != classes):
        example = ",".join(["1.0"] * (classes or 3))
        raise UserError(
            f"loss.alpha={alpha}: on a task with {classes or 'several'} classes it is one weight "
            f"per class, in class order, e.g. 'loss.alpha=[{example}]' (a single number is the "
            "binary setting), or null.",
            key="loss.alpha",
        )
    if any(not a > 0 for a in alpha):
        raise UserError(f"loss.alpha={list(alpha)}: every weight must be > 0.", key="loss.alpha")
    return torch.tensor([float(a) for a in alpha])


def auto(task: str) -> nn.Module:
    """The conventional loss for the task."""
    if task == "regression":
        return nn.MSELoss()
    if task in ("binary", MULTILABEL):
        return BCEWithLogits(task=task)
    return CrossEntropy()


# torch.nn losses used directly by the configs, and what they fit.
_TORCH_LOSSES = {
    nn.MSELoss: ("regression",),
    nn.L1Loss: ("regression",),
    nn.SmoothL1Loss: ("regression",),
    nn.HuberLoss: ("regression",),
    nn.BCEWithLogitsLoss: ("binary", MULTILABEL),
    nn.MultiLabelSoftMarginLoss: (MULTILABEL,),
    nn.CrossEntropyLoss: CLASSIFICATION,
    nn.NLLLoss: CLASSIFICATION,
}
_TORCH_KIND = {
    nn.BCEWithLogitsLoss: "logit",
    nn.MultiLabelSoftMarginLoss: "labels",
    nn.CrossEntropyLoss: "logits",
    nn.NLLLoss: "logits",
}
_FUNCTIONAL_TWINS = {
    F.mse_loss: nn.MSELoss,
    F.l1_loss: nn.L1Loss,
    F.smooth_l1_loss: nn.SmoothL1Loss,
    F.huber_loss: nn.HuberLoss,
    F.binary_cross_entropy_with_logits: nn.BCEWithLogitsLoss,
    F.cross_entropy: nn.CrossEntropyLoss,
    F.nll_loss: nn.NLLLoss,
}


def head_for(
    loss: nn.Module,
    task: str,
    num_classes: int | None,
    num_targets: int,
    loss_name: str,
    dataset_name: str,
    labels: list[str] | None = None,
) -> Head:
    """The output layout `loss` needs on `task`; a clear error when it does not fit the task.
    `labels`: a multi-label task's label names (the model has one output per label)."""
    tasks = getattr(loss, "tasks", None) or _TORCH_LOSSES.get(type(loss))
    if tasks is not None and task not in tasks:
        suggestion = {
            "regression": "mse, l1, smooth_l1, huber",
            "binary": "bce_logits, cross_entropy, nll, focal",
            "multiclass": "cross_entropy, nll, focal",
            MULTILABEL: "bce_logits, focal",
        }[task]
        unit = "labels" if task == MULTILABEL else "classes"
        detail = f" with {num_classes} {unit}" if num_classes else ""
        raise UserError(
            f"loss={loss_name} does not fit dataset={dataset_name}, a {task} task{detail}: "
            f"{loss_name} is for {' or '.join(tasks)} tasks. Valid losses here: auto, {suggestion}.",
            key="loss",
        )
    if task == "regression":
        return Head(task, "values", num_targets)
    kind = getattr(loss, "kind", None) or _TORCH_KIND.get(type(loss), "logits")
    if task == MULTILABEL:  # one logit per label, whatever the loss's binary layout
        return Head(task, "labels", num_targets, tuple(labels or ()))
    return Head(task, kind, 1 if kind == "logit" else num_classes)


class FunctionLoss(nn.Module):
    """A plain loss function, f(outputs, targets) -> a number, as a module; torch's functional
    losses bring the output layout of their module twins (the model's outputs and targets)."""

    def __init__(self, function) -> None:
        super().__init__()
        self.function = function
        twin = _FUNCTIONAL_TWINS.get(getattr(function, "func", function))
        self.tasks = _TORCH_LOSSES.get(twin)
        self.kind = _TORCH_KIND.get(twin)

    def forward(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.function(outputs, target)


def build_loss(factory, task: str, class_counts: np.ndarray | None) -> nn.Module:
    """Call a loss class or factory, passing `task` / `class_counts` only where it takes them;
    a plain function of (input, target) becomes the loss itself."""
    target = factory.func if isinstance(factory, functools.partial) else factory
    params = inspect.signature(factory).parameters
    required = [
        n for n, p in params.items() if p.default is inspect.Parameter.empty and p.kind <= 1
    ]
    if not isinstance(target, type) and len(required) == 2:  # e.g. F.binary_cross_entropy
        loss = FunctionLoss(factory)
    else:
        extra = {}
        if "task" in params:
            extra["task"] = task
        if "class_counts" in params:
            extra["class_counts"] = class_counts
        loss = factory(**extra)
    _check_usable(loss)
    return loss


def _check_usable(loss: nn.Module) -> None:
    """Losses the loop cannot train with, said before any work."""
    if getattr(loss, "reduction", "mean") == "none":
        raise UserError(
            "loss.reduction=none gives one loss per sample, and a training step needs one "
            "number: use loss.reduction=mean (the default) or sum.",
            key="loss.reduction",
        )
    if isinstance(loss, nn.BCELoss):
        raise UserError(
            "loss._target_=torch.nn.BCELoss takes probabilities (after a sigmoid), and the "
            "models here output logits: use loss=bce_logits (BCEWithLogitsLoss, the same loss "
            "computed stably from logits).",
            key="loss._target_",
        )
