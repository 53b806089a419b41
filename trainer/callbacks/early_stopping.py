"""Early stopping on a monitored validation metric, restoring the best weights at the end."""

from __future__ import annotations

import math

import torch

from .base import Callback


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    Patience counts epochs (one validation per epoch). Also stops when the metric is NaN or
    infinite (`check_finite`), reaches `stopping_threshold` (good enough) or crosses
    `divergence_threshold` (hopeless). With `restore_best_weights` the model ends with the
    weights of its best epoch.
    """

    def __init__(
        self,
        monitor: str = "loss/val",
        mode: str = "min",
        patience: int = 10,
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
        check_finite: bool = True,
        stopping_threshold: float | None = None,
        divergence_threshold: float | None = None,
    ) -> None:
        if mode == "auto":
            from ..metrics import metric_mode

            mode = metric_mode(monitor)
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be min, max or auto, got {mode!r}")
        self.monitor, self.mode = monitor, mode
        self.patience, self.min_delta = int(patience), abs(float(min_delta))
        self.restore_best_weights, self.check_finite = restore_best_weights, check_finite
        self.stopping_threshold, self.divergence_threshold = (
            stopping_threshold,
            divergence_threshold,
        )
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.reason: str | None = None
        self.best_weights: dict | None = None

    def _better(self, value: float, reference: float, delta: float) -> bool:
        return value < reference - delta if self.mode == "min" else value > reference + delta

    def on_fit_start(self, trainer) -> None:
        if self.monitor not in trainer.available_metrics():
            from ..errors import UserError, choices_text

            raise UserError(
                f"callbacks.early_stopping.monitor='{self.monitor}' is not a metric of this run; "
                f"valid: {choices_text(trainer.available_metrics())}.",
                key="callbacks.early_stopping.monitor",
            )

    def on_epoch_end(self, trainer, logs) -> None:
        value = logs.get(self.monitor)
        if value is None:
            return
        epoch = trainer.epoch
        if self.check_finite and not math.isfinite(value):
            return self._stop(trainer, f"{self.monitor} is {value} (not finite)")
        if self.best is None or self._better(value, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {
                    k: v.detach().clone() for k, v in trainer.unwrapped_model.state_dict().items()
                }
        else:
            self.wait += 1
        if self.stopping_threshold is not None and not self._better(
            self.stopping_threshold, value, 0.0
        ):
            return self._stop(
                trainer,
                f"{self.monitor} reached the stopping threshold "
                f"{self.stopping_threshold} ({value:.4g})",
            )
        if self.divergence_threshold is not None and self._better(
            self.divergence_threshold, value, 0.0
        ):
            return self._stop(
                trainer,
                f"{self.monitor} = {value:.4g} crossed the divergence threshold "
                f"{self.divergence_threshold}",
            )
        if self.wait >= self.patience:
            self._stop(
                trainer,
                f"no improvement in {self.monitor} for {self.wait} epochs "
                f"(patience {self.patience}, min_delta {self.min_delta:g})",
            )

    def _stop(self, trainer, reason: str) -> None:
        self.stopped_epoch, self.reason = trainer.epoch, reason
        trainer.request_stop(f"stopped at epoch {trainer.epoch}: {reason}")

    def on_fit_end(self, trainer) -> None:
        if (
            self.restore_best_weights
            and self.best_weights is not None
            and self.best_epoch != trainer.epoch
        ):
            trainer.unwrapped_model.load_state_dict(self.best_weights)
            trainer.note_restored(
                self.best_epoch,
                f"restored the weights of epoch {self.best_epoch} ({self.monitor} {self.best:.4g})",
            )

    def state_dict(self) -> dict:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "reason": self.reason,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.stopped_epoch, self.reason = state["stopped_epoch"], state["reason"]
        weights = state.get("best_weights")
        self.best_weights = (
            None if weights is None else {k: torch.as_tensor(v) for k, v in weights.items()}
        )
