"""Schedulers: when they step, and lengths that default to the run's length."""

import functools

import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, OneCycleLR, StepLR

from trainer.errors import UserError
from trainer.schedulers import WarmupCosine, build_schedule


def _optimizer(lr=1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_lengths_default_to_the_run_and_intervals_to_the_scheduler_kind():
    cosine = build_schedule(
        functools.partial(CosineAnnealingLR, T_max=None), _optimizer(), None, 10, 7
    )
    assert cosine.interval == "epoch" and cosine.scheduler.T_max == 7
    onecycle = build_schedule(functools.partial(OneCycleLR, max_lr=1.0), _optimizer(), None, 10, 7)
    assert onecycle.interval == "step" and onecycle.scheduler.total_steps == 70
    for _ in range(70):  # exactly the run's steps: no "stepped too many times" error
        onecycle.scheduler.optimizer.step()
        onecycle.scheduler.step()
    per_step_cosine = build_schedule(
        functools.partial(CosineAnnealingLR, T_max=None), _optimizer(), "step", 10, 7
    )
    assert per_step_cosine.scheduler.T_max == 70
    step = build_schedule(functools.partial(StepLR, gamma=0.5), _optimizer(), None, 10, 9)
    assert step.scheduler.step_size == 3


def test_plateau_cannot_step_per_batch_and_missing_arguments_are_named():
    plateau = functools.partial(torch.optim.lr_scheduler.ReduceLROnPlateau)
    with pytest.raises(UserError, match="plateau"):
        build_schedule(plateau, _optimizer(), "step", 10, 5)
    with pytest.raises(UserError, match="scheduler.gamma"):
        build_schedule(
            functools.partial(torch.optim.lr_scheduler.ExponentialLR), _optimizer(), None, 10, 5
        )


def test_warmup_cosine_rises_linearly_then_decays_to_the_floor():
    optimizer = _optimizer(lr=1.0)
    schedule = WarmupCosine(optimizer, total_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] < rates[5] < rates[9] < 1.0 + 1e-9
    assert max(rates) == pytest.approx(1.0, abs=1e-6)
    assert all(a >= b - 1e-12 for a, b in zip(rates[10:], rates[11:]))
    assert rates[-1] == pytest.approx(0.1, abs=0.01)
    with pytest.raises(UserError):
        WarmupCosine(_optimizer(), total_steps=10, warmup_steps=20)
