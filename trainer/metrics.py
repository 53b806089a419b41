"""Epoch metrics accumulated on the device: no host synchronisation until `compute()`.

Classification: loss and accuracy. Regression: loss (standardised units), and MAE, RMSE
and R^2 in the target's own units. Every metric is sample-weighted over the whole epoch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .errors import UserError, choices_text
from .tasks import Head

FLUSH_EVERY = 32  # batches buffered before their sums are folded in (bounds memory)


def metric_names(task: str) -> list[str]:
    return ["loss", "accuracy"] if task != "regression" else ["loss", "mae", "rmse", "r2"]


def check_monitor(monitor: str, task: str) -> None:
    """trainer.monitor must be one of this task's metrics on the train or val split."""
    available = [f"{name}/{split}" for name in metric_names(task) for split in ("train", "val")]
    if monitor not in available:
        raise UserError(
            f"trainer.monitor='{monitor}' is not a metric of this run; valid: "
            f"{choices_text(available)}.",
            key="trainer.monitor",
        )


class MetricAccumulator:
    """Sums of the loss and task statistics over an epoch, on the device."""

    def __init__(
        self, head: Head, device: torch.device, target_std: torch.Tensor | None = None
    ) -> None:
        self.head = head
        self.device = device
        dtype = torch.float32 if device.type == "mps" else torch.float64
        width = 3 if head.task != "regression" else 2 + 4 * head.num_outputs
        self.sums = torch.zeros(width, dtype=dtype, device=device)
        self.target_std = None if target_std is None else target_std.to(device, dtype).reshape(-1)
        self._buffer: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def update(self, loss: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Record one batch (all detached). Cheap: the arithmetic runs every FLUSH_EVERY batches."""
        self._buffer.append((loss, outputs, targets))
        if len(self._buffer) >= FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        losses, outputs, targets = zip(*self._buffer)
        self._buffer = []
        sizes = [len(t) for t in targets]
        losses = torch.stack(losses).to(self.sums.dtype)
        if len(set(sizes)) == 1:  # equal batches (the usual case): one op fewer
            loss_sum = losses.sum() * sizes[0]
        else:
            loss_sum = torch.dot(
                losses, torch.tensor(sizes, dtype=self.sums.dtype, device=self.device)
            )
        outputs, targets = torch.cat(outputs), torch.cat(targets)
        count = torch.tensor(float(sum(sizes)), dtype=self.sums.dtype, device=self.device)
        if self.head.task != "regression":
            correct = (self.head.predict(outputs) == self.head.class_indices(targets)).sum()
            self.sums += torch.stack([loss_sum, count, correct.to(self.sums.dtype)])
            return
        outputs, targets = outputs.to(self.sums.dtype), targets.to(self.sums.dtype)
        scale = self.target_std if self.target_std is not None else 1.0
        y = targets * scale  # original units, up to a shift that cancels in every metric
        err = (outputs - targets) * scale
        update = [
            loss_sum[None],
            count[None],
            err.abs().sum(0),
            (err**2).sum(0),
            y.sum(0),
            (y**2).sum(0),
        ]
        self.sums += torch.cat(update)

    def loss_sum(self) -> torch.Tensor:
        """The running (sample-weighted) loss sum, on the device: NaN/inf once any batch was."""
        self._flush()
        return self.sums[0]

    def state_dict(self) -> dict:
        self._flush()
        return {"sums": self.sums.detach().cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        self.sums.copy_(state["sums"].to(self.sums.device, self.sums.dtype))

    def compute(
        self, all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> dict[str, float]:
        """Metrics over every batch recorded (across processes when `all_reduce` is given)."""
        self._flush()
        sums = self.sums.clone()
        if all_reduce is not None:
            sums = all_reduce(sums)
        values = sums.tolist()  # the one host synchronisation of the epoch
        n = values[1]
        if n == 0:
            return {name: float("nan") for name in metric_names(self.head.task)}
        metrics = {"loss": values[0] / n}
        if self.head.task != "regression":
            metrics["accuracy"] = values[2] / n
            return metrics
        k = self.head.num_outputs
        abs_sum, sq_sum, y_sum, y2_sum = (values[2 + i * k : 2 + (i + 1) * k] for i in range(4))
        metrics["mae"] = sum(abs_sum) / (n * k)
        metrics["rmse"] = (sum(sq_sum) / (n * k)) ** 0.5
        r2 = []
        for sse, s, s2 in zip(sq_sum, y_sum, y2_sum):
            sst = s2 - s * s / n
            r2.append(1 - sse / sst if sst > 0 else float("nan"))
        metrics["r2"] = sum(r2) / k
        return metrics
