"""Losses, and which model output layout (`Head`) each one needs for a task.

`loss=auto` picks from the task: cross entropy for multi-class, BCE-with-logits (one
output) for binary, MSE for regression. Every loss here takes raw model outputs (logits).
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


def _class_weights(
    spec: str | list | None, class_counts: np.ndarray | None, key: str
) -> torch.Tensor | None:
    if spec is None:
        return None
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
    """Binary cross entropy on one logit per sample; `pos_weight` up-weights the positive class."""

    tasks = ("binary",)
    kind = "logit"

    def __init__(
        self, pos_weight: float | str | None = None, class_counts: np.ndarray | None = None
    ) -> None:
        super().__init__()
        if pos_weight == "balanced":
            neg, pos = np.maximum(np.asarray(class_counts, dtype=np.float64), 1)
            pos_weight = neg / pos
        if pos_weight is not None and float(pos_weight) <= 0:
            raise UserError(
                f"loss.pos_weight must be positive, got {pos_weight}.", key="loss.pos_weight"
            )
        self.register_buffer(
            "pos_weight", None if pos_weight is None else torch.tensor([float(pos_weight)])
        )

    def forward(self, logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logit, target, pos_weight=self.pos_weight)


class Focal(nn.Module):
    """Focal loss (Lin et al. 2017): cross entropy down-weighting easy examples by (1 - p_t)^gamma.

    Binary tasks use one logit (sigmoid) and `alpha`, the positive class's weight in (0, 1);
    multi-class tasks one logit per class (softmax) and `alpha`, one weight per class.
    """

    tasks = CLASSIFICATION

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
        self.kind = "logit" if task == "binary" else "logits"
        alpha = None if alpha is None else _focal_alpha(alpha, task, class_counts)
        if isinstance(alpha, torch.Tensor):  # per class: a buffer, moved with the loss
            self.register_buffer("alpha", alpha)
        else:
            self.alpha = alpha

    def forward(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind == "logit":
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
    """Binary: a float in (0, 1). Multi-class: one positive weight per class, as a tensor."""
    if task == "binary":
        if isinstance(alpha, (list, tuple)) or not 0 < alpha < 1:
            raise UserError(
                f"loss.alpha={alpha}: on a binary task it is the positive class's weight, a "
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
    return BCEWithLogits() if task == "binary" else CrossEntropy()


# torch.nn losses used directly by the configs, and what they fit.
_TORCH_LOSSES = {
    nn.MSELoss: ("regression",),
    nn.L1Loss: ("regression",),
    nn.SmoothL1Loss: ("regression",),
    nn.HuberLoss: ("regression",),
    nn.BCEWithLogitsLoss: ("binary",),
    nn.CrossEntropyLoss: CLASSIFICATION,
    nn.NLLLoss: CLASSIFICATION,
}
_TORCH_KIND = {nn.BCEWithLogitsLoss: "logit", nn.CrossEntropyLoss: "logits", nn.NLLLoss: "logits"}
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
) -> Head:
    """The output layout `loss` needs on `task`; a clear error when it does not fit the task."""
    tasks = getattr(loss, "tasks", None) or _TORCH_LOSSES.get(type(loss))
    if tasks is not None and task not in tasks:
        suggestion = {
            "regression": "mse, l1, smooth_l1, huber",
            "binary": "bce_logits, cross_entropy, nll, focal",
            "multiclass": "cross_entropy, nll, focal",
        }[task]
        detail = f" with {num_classes} classes" if num_classes else ""
        raise UserError(
            f"loss={loss_name} does not fit dataset={dataset_name}, a {task} task{detail}: "
            f"{loss_name} is for {' or '.join(tasks)} tasks. Valid losses here: auto, {suggestion}.",
            key="loss",
        )
    if task == "regression":
        return Head(task, "values", num_targets)
    kind = getattr(loss, "kind", None) or _TORCH_KIND.get(type(loss), "logits")
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
