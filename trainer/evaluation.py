"""Evaluation and inference: metrics over a split, and batched model outputs.

Both run the model in eval mode under `torch.inference_mode()` and leave its train/eval mode
as they found it.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from .data.batches import EvalBatches, evaluation_batches
from .data.module import DataModule
from .metrics import MetricAccumulator
from .tasks import Head


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def evaluate(
    model: nn.Module,
    loss_fn: nn.Module,
    batches: EvalBatches,
    metrics: MetricAccumulator,
    autocast: contextlib.AbstractContextManager,
    all_reduce=None,
    mode=eval_mode,
) -> dict[str, float]:
    """Metrics over every batch (across processes when `all_reduce` sums over them), in `mode`
    (a context manager factory taking the model: eval_mode; a pitfall may choose another)."""
    with mode(model), autocast:
        for x, y in batches.batches():
            outputs = model(x)
            metrics.update(loss_fn(outputs, y), outputs, y)
    return metrics.compute(all_reduce)


class SplitEvaluator:
    """Metrics on a named split of `tensors` with the model's current weights: what
    `Trainer.evaluate` runs. `mode` is the context validation and test run in (`eval_mode`,
    unless a pitfall of the pitfall lab chose another at set-up); `__call__(split, mode)` can
    name another for one evaluation."""

    def __init__(self, state, loss_fn, tensors, settings, dist, new_metrics, mode=eval_mode):
        self.state, self.loss_fn, self.tensors = state, loss_fn, tensors
        self.settings, self.dist, self.new_metrics, self.mode = settings, dist, new_metrics, mode

    def __call__(self, split: str, mode=None) -> dict[str, float]:
        dist = self.dist
        batches = evaluation_batches(self.tensors, split, self.settings, dist.rank, dist.world_size)
        autocast = self.state.precision.autocast()
        metrics = self.new_metrics()  # no DDP collectives: reduced in `evaluate`
        return evaluate(
            self.state.model,
            self.loss_fn,
            batches,
            metrics,
            autocast,
            dist.all_reduce_sum,
            mode or self.mode,
        )


def model_outputs(
    model: nn.Module,
    features: np.ndarray,
    device: torch.device,
    batch_size: int,
    autocast: contextlib.AbstractContextManager | None = None,
) -> torch.Tensor:
    """The model's raw outputs (float32) for an array of features, `batch_size` rows at a time."""
    chunks = []
    with eval_mode(model), autocast or contextlib.nullcontext():
        x = torch.as_tensor(features, dtype=torch.float32, device=device)
        for i in range(0, len(x), batch_size):
            chunks.append(model(x[i : i + batch_size]).float())
    return torch.cat(chunks)


class Predictions:
    """Predictions of the model as it is now, in the data's own terms (for figures and users)."""

    def __init__(
        self,
        model: nn.Module,
        head: Head,
        data: DataModule,
        device: torch.device,
        batch_size: int,
        autocast_factory,
    ) -> None:
        self.model, self.head, self.data = model, head, data
        self.device, self.batch_size, self._autocast = device, batch_size, autocast_factory

    def _outputs(self, features: np.ndarray) -> torch.Tensor:
        return model_outputs(self.model, features, self.device, self.batch_size, self._autocast())

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Class indices, or regression values in the target's units, for standardised features."""
        out = self.head.predict(self._outputs(features)).cpu().numpy()
        scaler = self.data.target_scaler
        return out if scaler is None else scaler.inverse(out)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities (n, num_classes) for standardised features."""
        return self.head.probabilities(self._outputs(features)).cpu().numpy()

    def on_split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(targets, predictions) on a split: class indices, or values in the target's units."""
        x, y = self.data.arrays[split]
        scaler = self.data.target_scaler
        return np.asarray(y if scaler is None else scaler.inverse(y)), self.predict(x)
