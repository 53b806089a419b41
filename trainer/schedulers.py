"""Learning-rate schedules: when each one steps, and lengths that default to the run's length."""

from __future__ import annotations

import functools
import inspect
import math

import torch
from torch.optim.lr_scheduler import CyclicLR, LRScheduler, OneCycleLR, ReduceLROnPlateau

from .errors import UserError


class WarmupCosine(LRScheduler):
    """Linear warm-up from ~0 to the base learning rate, then cosine decay to
    `min_lr_ratio` x base. Steps every optimizer step."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        warmup_fraction: float = 0.05,
        warmup_steps: int | None = None,
        min_lr_ratio: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if warmup_steps is None:
            warmup_steps = int(round(warmup_fraction * total_steps))
        if not 0 <= warmup_steps <= total_steps:
            raise UserError(
                f"scheduler: warm-up of {warmup_steps} steps does not fit a run of {total_steps} "
                "steps; lower scheduler.warmup_fraction or scheduler.warmup_steps.",
                key="scheduler.warmup_steps",
            )
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.min_lr_ratio = float(min_lr_ratio)
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        progress = min(
            1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        )
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )

    def get_lr(self) -> list[float]:
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]


STEP_SCHEDULERS = (OneCycleLR, CyclicLR, WarmupCosine)
# Arguments that mean "the run's length" when left null, and how to derive them from it.
_LENGTHS = {
    "T_max": lambda n: n,  # CosineAnnealingLR
    "total_steps": lambda n: n,  # OneCycleLR, WarmupCosine
    "T_0": lambda n: n,  # CosineAnnealingWarmRestarts
    "step_size": lambda n: max(1, n // 3),  # StepLR: decay twice over the run
    "step_size_up": lambda n: max(1, n // 4),  # CyclicLR: two full cycles
    "total_iters": lambda n: n,  # LinearLR, PolynomialLR, ConstantLR
}


class Schedule:
    """A built scheduler and when it steps: 'epoch' or 'step' (every optimizer step)."""

    def __init__(self, scheduler, interval: str) -> None:
        self.scheduler = scheduler
        self.interval = interval
        self.on_metric = isinstance(scheduler, ReduceLROnPlateau)

    def after_step(self) -> None:
        """After every optimizer step."""
        if self.interval == "step":
            self.scheduler.step()

    def after_epoch(self, monitored: float) -> None:
        """After every epoch's validation; plateau schedulers read the monitored metric."""
        if self.interval == "epoch":
            self.scheduler.step(monitored) if self.on_metric else self.scheduler.step()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)


def build_schedule(
    factory,
    optimizer: torch.optim.Optimizer,
    interval: str | None,
    steps_per_epoch: int,
    max_epochs: int,
) -> Schedule:
    """Call a scheduler factory (a `_partial_` from the config) for this run."""
    target = factory.func if isinstance(factory, functools.partial) else factory
    if interval is None:
        interval = (
            "step" if isinstance(target, type) and issubclass(target, STEP_SCHEDULERS) else "epoch"
        )
    if interval not in ("epoch", "step"):
        raise UserError(
            f"scheduler.interval='{interval}' is not valid; use epoch or step.",
            key="scheduler.interval",
        )
    if interval == "step" and isinstance(target, type) and issubclass(target, ReduceLROnPlateau):
        raise UserError(
            "scheduler.interval=step does not fit a plateau scheduler: it steps on the "
            "validation metric, once per epoch.",
            key="scheduler.interval",
        )
    run_length = max_epochs if interval == "epoch" else max(1, steps_per_epoch) * max_epochs
    params = inspect.signature(target).parameters
    given = factory.keywords if isinstance(factory, functools.partial) else {}
    fill = {
        name: derive(run_length)
        for name, derive in _LENGTHS.items()
        if name in params
        and given.get(name) is None
        and (
            params[name].default is inspect.Parameter.empty
            or params[name].default is None
            or name in given
        )
    }
    missing = [  # required, and not given (or given as null) nor derived from the run's length
        name
        for name, p in params.items()
        if name not in ("optimizer", "self", "args", "kwargs")
        and p.default is inspect.Parameter.empty
        and given.get(name) is None
        and name not in fill
    ]
    if missing:
        raise UserError(
            f"scheduler ({target.__name__}) needs {', '.join('scheduler.' + m for m in missing)}.",
            key=f"scheduler.{missing[0]}",
        )
    try:
        return Schedule(factory(optimizer, **fill), interval)
    except (ValueError, TypeError) as error:
        raise UserError(
            f"scheduler: {target.__name__} rejected its settings: {error}.", key="scheduler"
        ) from None
