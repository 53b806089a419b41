"""The learning-rate range test (Smith 2017; fastai's lr_find): train a fresh model for a bounded
number of steps while the learning rate grows exponentially, and read a good rate off the curve.

It runs in its own run directory on its own model and optimizer, and writes nothing else: no
checkpoint, no change to any other run.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from . import report
from .errors import UserError
from .files import write_json


def centred_average(values: list[float], window: int = 9) -> np.ndarray:
    """A moving average centred on each point: smooth, without the lag of a running average."""
    values = np.asarray(values, dtype=np.float64)
    kernel = np.ones(window)
    return np.convolve(values, kernel, "same") / np.convolve(np.ones_like(values), kernel, "same")


def suggest(rates: list[float], losses: list[float]) -> tuple[float | None, str]:
    """The rate where the smoothed loss falls fastest (per unit of log lr), before its minimum."""
    finite = [i for i, v in enumerate(losses) if math.isfinite(v)]
    n = finite[-1] + 1 if finite else 0
    if n < 10:
        return None, f"only {n} steps before the loss diverged; lower lr_find.min_lr"
    smoothed = centred_average(losses[:n])
    low = max(1, n // 10)  # the first steps say little: nothing has been learnt yet
    best = int(np.argmin(smoothed[low:])) + low
    if best - low < 3:
        return None, "the loss never fell: the model may not learn at any rate in this range"
    slopes = np.gradient(smoothed[low : best + 1], np.log10(rates[low : best + 1]))
    return float(rates[low + int(np.argmin(slopes))]), "steepest descent of the smoothed loss"


def run_lr_find(
    cfg: DictConfig, run_dir: Path, choices: dict[str, str], overrides: list[str], settings
) -> float | None:
    from .build import build_trainer
    from .report import command_line

    steps = int(settings.num_steps)
    if steps < 10:
        raise UserError(
            f"lr_find.num_steps={steps} is too few; use at least 10 (100 is typical).",
            key="lr_find.num_steps",
        )
    trainer, data = build_trainer(cfg, run_dir, choices, overrides)
    trainer.callbacks = {}  # a throwaway model: no checkpoints, no logs
    trainer.setup(data)
    # The run's own training step: the same precision, clipping and accumulation as training.
    step, optimizer, batches = trainer.step, trainer.state.optimizer, trainer.train_batches
    factor = (settings.max_lr / settings.min_lr) ** (1 / (steps - 1))
    for group in optimizer.param_groups:
        group["lr"] = settings.min_lr
    rates, losses = [], []
    average, best, beta = 0.0, math.inf, 0.98
    trainer.model.train()
    epoch, stop = 0, None
    while stop is None:
        epoch += 1
        step.start_epoch(batches)
        for batch_idx, (x, y) in enumerate(batches.batches(epoch)):
            if step.starts_group(batch_idx):
                step.zero_grad()
                loss_sum, samples = 0.0, 0
            loss, _ = step.forward_backward(x, y, batch_idx)
            loss_sum += float(loss) * len(x)  # a diagnostic: reading every step is the point
            samples += len(x)
            if not step.ends_group(batch_idx):
                continue
            lr = optimizer.param_groups[0]["lr"]
            step.unscale()
            step.apply()
            value = loss_sum / samples
            average = beta * average + (1 - beta) * value
            current = average / (1 - beta ** (len(losses) + 1))
            rates.append(lr)
            losses.append(value)
            if not math.isfinite(value) or current > settings.divergence_factor * best:
                stop = f"the loss exploded at lr {lr:.3g} (step {len(losses)})"
                break
            best = min(best, current)
            if len(losses) >= steps:
                stop = f"reached lr_find.max_lr={settings.max_lr:g} after {steps} steps"
                break
            for group in optimizer.param_groups:
                group["lr"] = lr * factor
    suggestion, how = suggest(rates, losses)
    curve = centred_average(
        losses[: len(losses) - (0 if math.isfinite(losses[-1]) else 1)]
    ).tolist()

    from . import figures

    figure = figures.loss_vs_lr(rates, losses, curve, suggestion)
    image = figures.save_png(figure, run_dir / "lr_find.png")
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run_dir)) as writer:
        writer.add_image("lr_find/loss_vs_lr", image, 0, dataformats="HWC")
        for i, (r, v) in enumerate(zip(rates, curve)):
            if math.isfinite(v):
                writer.add_scalar("lr_find/smoothed_loss", v, i)
                writer.add_scalar("lr_find/lr", r, i)
    result = {
        "mode": "lr_find",
        "status": "completed",
        "suggested_lr": suggestion,
        "how": how,
        "stopped": stop,
        "min_loss_lr": rates[int(np.argmin(curve))] if curve else None,
        "lr": rates,
        "loss": losses,
        "smoothed_loss": curve,
    }
    write_json(result, run_dir / "metrics.json")
    sample = np.linspace(0, len(rates) - 1, num=min(8, len(rates))).astype(int)
    points = "  ".join(f"{rates[i]:.1e}:{curve[min(i, len(curve) - 1)]:.3g}" for i in sample)
    kept = [o for o in overrides if not o.startswith(("mode=", "lr_find.", "optimizer.lr="))]
    rows = [("steps", f"{len(rates)} ({stop})"), ("loss vs lr", points)]
    if suggestion is not None:
        rows += [
            ("suggested lr", f"{suggestion:.3g} ({how})"),
            ("use it", command_line([*kept, f"optimizer.lr={suggestion:.3g}"])),
        ]
    else:
        rows.append(("suggested lr", f"none: {how}"))
    rows.append(("figure", f"{run_dir / 'lr_find.png'} (and TensorBoard: lr_find/loss_vs_lr)"))
    report.key_values("learning-rate range test", rows)
    return suggestion
