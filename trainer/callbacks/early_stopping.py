"""Early stopping on the monitored validation metric, restoring the best weights at the end."""

from __future__ import annotations

import math

import torch

from .base import Callback, same_monitor


class EarlyStopping(Callback):
    """Stop when the run's monitored metric (trainer.monitor) has not improved by more than
    `min_delta` for `patience` epochs.

    Patience counts epochs (one validation per epoch). Also stops when the metric is NaN or
    infinite (`check_finite`), reaches `stopping_threshold` (good enough) or crosses
    `divergence_threshold` (hopeless). With `restore_best_weights` the model ends with the
    weights of the run's best epoch (the one checkpoints/best.pt holds).
    """

    def __init__(
        self,
        monitor: str | None = None,
        mode: str | None = None,
        patience: int = 10,
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
        check_finite: bool = True,
        stopping_threshold: float | None = None,
        divergence_threshold: float | None = None,
    ) -> None:
        self.monitor, self.mode = monitor, mode  # None: the run's (the only allowed choice)
        self.patience, self.min_delta = int(patience), abs(float(min_delta))
        self.restore_best_weights, self.check_finite = restore_best_weights, check_finite
        self.stopping_threshold = stopping_threshold
        self.divergence_threshold = divergence_threshold
        self.reference: float | None = None  # the value of the last improvement by > min_delta
        self.wait = 0
        self.reason: str | None = None
        self.best_weights: dict | None = None
        self.best_weights_epoch: int | None = None

    def on_fit_start(self, run) -> None:
        same_monitor("early_stopping", run, self.monitor, self.mode)

    def on_epoch_end(self, run, logs) -> None:
        best = run.record.best
        value = logs.get(best.monitor)
        if value is None:
            return
        if self.check_finite and not math.isfinite(value):
            return self._stop(run, f"{best.monitor} is {value} (not finite)")
        if self.restore_best_weights and best.epoch == run.state.epoch:  # this epoch is the best
            self.best_weights = {
                k: v.detach().clone() for k, v in run.state.model.state_dict().items()
            }
            self.best_weights_epoch = best.epoch
        if best.better(value, self.reference, self.min_delta):
            self.reference, self.wait = value, 0
        else:
            self.wait += 1
        if self.stopping_threshold is not None and not best.better(self.stopping_threshold, value):
            return self._stop(
                run,
                f"{best.monitor} reached the stopping threshold "
                f"{self.stopping_threshold} ({value:.4g})",
            )
        if self.divergence_threshold is not None and best.better(self.divergence_threshold, value):
            return self._stop(
                run,
                f"{best.monitor} = {value:.4g} crossed the divergence threshold "
                f"{self.divergence_threshold}",
            )
        if self.wait >= self.patience:
            self._stop(
                run,
                f"no improvement in {best.monitor} for {self.wait} epochs "
                f"(patience {self.patience}, min_delta {self.min_delta:g})",
            )

    def _stop(self, run, reason: str) -> None:
        self.reason = reason
        run.request_stop(f"stopped at epoch {run.state.epoch}: {reason}")

    def on_fit_end(self, run) -> None:
        epoch = self.best_weights_epoch
        if self.restore_best_weights and self.best_weights is not None and epoch != run.state.epoch:
            run.state.model.load_state_dict(self.best_weights)
            best = run.record.best
            run.record.note_restored(
                epoch, f"restored the weights of epoch {epoch} ({best.monitor} {best.value:.4g})"
            )

    def state_dict(self) -> dict:
        return {
            "reference": self.reference,
            "wait": self.wait,
            "reason": self.reason,
            "best_weights": self.best_weights,
            "best_weights_epoch": self.best_weights_epoch,
        }

    def load_state_dict(self, state: dict) -> None:
        # (checkpoints of trainer 0.1 called the reference "best" and its epoch "best_epoch")
        self.reference = state.get("reference", state.get("best"))
        self.wait, self.reason = state["wait"], state["reason"]
        weights = state.get("best_weights")
        self.best_weights = (
            None if weights is None else {k: torch.as_tensor(v) for k, v in weights.items()}
        )
        self.best_weights_epoch = state.get("best_weights_epoch", state.get("best_epoch"))
