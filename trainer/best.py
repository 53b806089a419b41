"""Which epoch was best: one tracker of the monitored metric, read by early stopping, the
checkpoints, the run record and the summary alike, so they can never disagree."""

from __future__ import annotations

import math
from typing import Any

LARGER_IS_BETTER = (
    "accuracy",
    "r2",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "exact_match",
    "f1",
)


def resolve_mode(monitor: str, mode: str = "auto") -> str:
    """'min' or 'max' for a metric; `auto` is max for accuracy, r2, precision, recall, F1
    and exact match, min otherwise."""
    if mode != "auto":
        return mode
    return "max" if str(monitor).split("/")[0] in LARGER_IS_BETTER else "min"


class BestEpoch:
    """The best epoch so far of `monitor` (strictly better counts; NaN never does)."""

    def __init__(self, monitor: str = "loss/val", mode: str = "auto") -> None:
        self.monitor = monitor
        self.mode = resolve_mode(monitor, mode)
        self.epoch: int | None = None
        self.value: float | None = None
        self.metrics: dict[str, float] = {}

    def better(self, value: float, reference: float | None, min_delta: float = 0.0) -> bool:
        """Whether `value` beats `reference` by more than `min_delta`."""
        if not math.isfinite(value):
            return False
        if reference is None:
            return True
        if self.mode == "min":
            return value < reference - min_delta
        return value > reference + min_delta

    def update(self, epoch: int, logs: dict[str, float]) -> bool:
        """Record an epoch's logs; True when it is the new best."""
        value = logs.get(self.monitor)
        if value is None or not self.better(value, self.value):
            return False
        self.epoch, self.value = epoch, value
        self.metrics = {k: v for k, v in logs.items() if k.endswith(("/val", "/train"))}
        return True

    def state_dict(self) -> dict[str, Any]:
        """As metrics.json and checkpoints store it: {} until an epoch has a finite value."""
        if self.epoch is None:
            return {}
        return {"epoch": self.epoch, "value": self.value, "metrics": dict(self.metrics)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.value = state.get("epoch"), state.get("value")
        self.metrics = dict(state.get("metrics") or {})


def check_same_monitor(callback: str, monitor: str | None, run_monitor: str) -> None:
    """A callback's own `monitor`, if given, must be the run's: one metric picks the best epoch
    for early stopping, checkpoints and the summary alike."""
    if monitor is not None and monitor != run_monitor:
        from .errors import UserError

        raise UserError(
            f"callbacks.{callback}.monitor='{monitor}' differs from trainer.monitor="
            f"'{run_monitor}': one metric picks the best epoch for early stopping, checkpoints "
            f"and the summary. Set trainer.monitor={monitor} instead (and leave "
            f"callbacks.{callback}.monitor null).",
            key=f"callbacks.{callback}.monitor",
        )


NO_VALIDATION_MONITOR = "loss/train"


def monitor_without_validation(monitor: str, split: str = "[1,0,0]") -> str:
    """What a run without a validation split monitors: the default, loss/val, becomes loss/train
    (the plateau scheduler and best.pt follow the training loss; last.pt holds the final
    weights); a training metric stays; another validation metric cannot be measured: an error."""
    from .settings import TrainerSettings

    if monitor == TrainerSettings.monitor:  # the default, loss/val
        return NO_VALIDATION_MONITOR
    if str(monitor).endswith("/val"):
        from .errors import UserError

        name = str(monitor).rsplit("/", 1)[0]
        raise UserError(
            f"trainer.monitor='{monitor}' is measured on the validation split, and "
            f"data.split={split} leaves none. Monitor it on the training split "
            f"(trainer.monitor={name}/train), or give validation a share, e.g. "
            "data.split=[0.85,0.15,0].",
            key="trainer.monitor",
        )
    return monitor
