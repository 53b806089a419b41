"""Epoch metrics kept on the device equal the textbook formulas, sample-weighted."""

import numpy as np
import pytest
import torch

from trainer.best import resolve_mode
from trainer.metrics import MetricAccumulator
from trainer.tasks import Head


def test_classification_loss_and_accuracy_are_sample_weighted():
    head = Head("multiclass", "logits", 3)
    acc = MetricAccumulator(head, torch.device("cpu"))
    logits = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    target = torch.randint(0, 3, (50,), generator=torch.Generator().manual_seed(1))
    for lo, hi in ((0, 32), (32, 50)):  # unequal batches
        loss = torch.nn.functional.cross_entropy(logits[lo:hi], target[lo:hi])
        acc.update(loss, logits[lo:hi], target[lo:hi])
    result = acc.compute()
    assert result["loss"] == pytest.approx(
        torch.nn.functional.cross_entropy(logits, target).item(), rel=1e-6
    )
    assert result["accuracy"] == pytest.approx((logits.argmax(1) == target).float().mean().item())


def test_regression_metrics_are_in_original_units():
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    rng = np.random.RandomState(0)
    y = rng.normal(size=(80, 1)).astype(np.float32)
    pred = (y + 0.3 * rng.normal(size=(80, 1))).astype(np.float32)
    std = 7.0
    acc = MetricAccumulator(
        Head("regression", "values", 1), torch.device("cpu"), torch.tensor([std])
    )
    for i in range(0, 80, 16):
        acc.update(
            torch.tensor(0.0), torch.from_numpy(pred[i : i + 16]), torch.from_numpy(y[i : i + 16])
        )
    result = acc.compute()
    assert result["mae"] == pytest.approx(mean_absolute_error(y * std, pred * std), rel=1e-5)
    assert result["rmse"] == pytest.approx(mean_squared_error(y * std, pred * std) ** 0.5, rel=1e-5)
    assert result["r2"] == pytest.approx(r2_score(y, pred), rel=1e-5)


def test_binary_logit_accuracy_and_metric_directions():
    acc = MetricAccumulator(Head("binary", "logit", 1), torch.device("cpu"))
    acc.update(
        torch.tensor(0.5), torch.tensor([[2.0], [-1.0], [0.5]]), torch.tensor([[1.0], [1.0], [0.0]])
    )
    assert acc.compute()["accuracy"] == pytest.approx(1 / 3)
    assert resolve_mode("accuracy/val") == "max" and resolve_mode("r2/val") == "max"
    assert resolve_mode("loss/val") == "min" and resolve_mode("mae/val") == "min"
    assert resolve_mode("accuracy/val", "min") == "min"  # what the user set wins
