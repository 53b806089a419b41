"""`python -m trainer.schedule [overrides] [--steps-per-epoch N] [--output PATH]`: draw the
learning-rate schedule a run would train with, from the config alone, without training.

The config is composed as the CLI composes it (the same groups, overrides and checks); the
optimizer's parameter groups come from the real model (`param_groups.module_lr`, no decay on
biases), and the number of optimizer steps per epoch from the data set's training split, the
batch size and gradient accumulation, as a run counts them (or from --steps-per-epoch). Every
step's rate is the one that step would train with, as the run's own figure records it.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import EXIT_USER_ERROR, UserError

USAGE = """usage: python -m trainer.schedule [OVERRIDES ...] [--steps-per-epoch N] [--output PATH]

Draw the learning-rate schedule of a run's config, without training, e.g.
  python -m trainer.schedule scheduler=cosine optimizer.lr=0.1 trainer.max_epochs=50
  python -m trainer.schedule scheduler=onecycle dataset=digits --output onecycle.png

OVERRIDES are the training command's (scheduler=..., optimizer.lr=..., trainer.max_epochs=...,
dataset=..., trainer.batch_size=..., param_groups.module_lr=...).
--steps-per-epoch N  optimizer steps per epoch (default: counted from the data set's training
                     split, trainer.batch_size and trainer.accumulate_grad_batches)
--output PATH        the PNG to write (default: outputs/schedules/<time>_<scheduler>.png)"""


def _options(argv: list[str]) -> tuple[list[str], int | None, Path | None]:
    overrides, steps, output = [], None, None
    items = iter(argv)
    for item in items:
        name, has_value, value = item.partition("=")
        if name in ("--steps-per-epoch", "--output"):
            if not has_value:
                value = next(items, None)
                if value is None:
                    raise UserError(f"{name} needs a value, e.g. {name} {_example(name)}.")
            if name == "--output":
                output = Path(value)
                if output.suffix.lower() != ".png":
                    raise UserError(f"--output {value}: the figure is a PNG; name a .png file.")
                continue
            if not value.isdigit() or int(value) < 1:
                raise UserError(f"--steps-per-epoch {value}: give a whole number >= 1, e.g. 10.")
            steps = int(value)
        elif item.startswith("-"):
            raise UserError(
                f"unknown option '{item}'; the options are --steps-per-epoch N, --output PATH "
                "and the training command's overrides (scheduler=cosine).\n\n" + USAGE
            )
        else:
            overrides.append(item)
    return overrides, steps, output


def _example(name: str) -> str:
    return "10" if name == "--steps-per-epoch" else "schedule.png"


def compose(overrides: list[str]):
    """The config as the CLI composes it, checked; (config, group choices, trainer settings)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    from .config import register_resolvers, validate
    from .paths import config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = hydra_compose("config", overrides=overrides, return_hydra_config=True)
    choices = {k: str(v) for k, v in cfg.hydra.runtime.choices.items()}
    with open_dict(cfg):
        del cfg["hydra"]
    from omegaconf import OmegaConf

    settings = OmegaConf.to_object(validate(cfg)["trainer"])
    return cfg, choices, settings


def _steps_per_epoch(settings, data, model) -> tuple[int, str]:
    """Optimizer steps per epoch as a run counts them, and how they were counted."""
    import torch

    from .data.batches import training_batches

    x, y = data.arrays["train"]
    norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
    batch_norm = any(isinstance(module, norms) for module in model.modules())
    batches = training_batches(
        (torch.as_tensor(x), torch.as_tensor(y)), settings, min_per_rank=2 if batch_norm else 1
    )
    accumulate = settings.accumulate_grad_batches
    steps = -(-len(batches) // accumulate)
    how = f"{len(x)} training samples / batch size {settings.batch_size} = {len(batches)} batches"
    return steps, how + (f", {accumulate} per step" if accumulate > 1 else "")


def simulate(cfg, choices: dict[str, str], settings, steps_per_epoch: int | None):
    """(steps, rates per parameter group, steps per epoch, how they were counted, schedule)."""
    import torch
    from torch.optim.lr_scheduler import ReduceLROnPlateau

    from .build import build_data, build_model_and_loss, build_scheduler, instantiate
    from .optim import build_optimizer
    from .schedulers import build_schedule

    data = build_data(cfg)
    model, _, _ = build_model_and_loss(cfg, data.spec, data.class_counts(), choices)
    counted, how = _steps_per_epoch(settings, data, model)
    if steps_per_epoch is None:
        steps_per_epoch = counted
    else:
        how = f"--steps-per-epoch {steps_per_epoch} (the data would give {counted})"
    groups = cfg.param_groups
    from omegaconf import OmegaConf

    from .settings import TrainerSettings

    module_lr = OmegaConf.to_container(groups.module_lr) if groups.module_lr else {}
    optimizer = build_optimizer(
        instantiate(cfg.optimizer, "optimizer"),
        model,
        torch.device("cpu"),
        groups.decay_bias_and_norm,
        module_lr,
    )
    factory, interval = build_scheduler(cfg)
    schedule = None
    if cfg.trainer.max_epochs is None:  # as a run resolves it, from the steps per epoch
        auto = TrainerSettings(min_steps=cfg.trainer.min_steps).auto_epochs(steps_per_epoch)
        cfg.trainer.max_epochs = auto
    max_epochs = int(cfg.trainer.max_epochs)
    if factory is not None:
        schedule = build_schedule(factory, optimizer, interval, steps_per_epoch, max_epochs)
        if isinstance(schedule.scheduler, ReduceLROnPlateau):
            raise UserError(
                f"scheduler={choices.get('scheduler', 'plateau')} lowers the rate when "
                f"{cfg.trainer.monitor} stops improving, so its schedule depends on the training "
                "itself and cannot be drawn from the config alone. A run draws the rates it "
                "used in <run dir>/figures/lr_schedule.png (and TensorBoard's figures/lr_schedule).",
                key="scheduler",
            )
    names = [g.get("name", str(i)) for i, g in enumerate(optimizer.param_groups)]
    rates: dict[str, list[float]] = {name: [] for name in names}
    steps = []
    for _epoch in range(max_epochs):
        for _ in range(steps_per_epoch):
            steps.append(len(steps) + 1)
            for name, group in zip(names, optimizer.param_groups):
                rates[name].append(float(group["lr"]))  # the rate this step trains with
            optimizer.step()  # (no gradients: changes nothing; keeps the scheduler's order check)
            if schedule is not None:
                schedule.after_step()
        if schedule is not None:
            schedule.after_epoch(0.0)
    when = "every optimizer step" if schedule and schedule.interval == "step" else "every epoch"
    return steps, rates, steps_per_epoch, how, when


def _rows(cfg, choices, steps, rates, steps_per_epoch, how, when, path) -> list[tuple[str, str]]:
    scheduler = choices.get("scheduler", "custom")
    rows: list[tuple[str, str]] = [
        ("scheduler", f"{scheduler} (steps {when})" if scheduler != "none" else "none (constant)"),
        ("length", f"{cfg.trainer.max_epochs} epochs x {steps_per_epoch} steps = {len(steps)}"),
        ("steps per epoch", how),
    ]
    marks = sorted({0, len(steps) // 4, len(steps) // 2, 3 * len(steps) // 4, len(steps) - 1})
    for name, values in rates.items():
        points = "  ".join(f"step {steps[i]}: {values[i]:.3g}" for i in marks)
        rows.append((f"lr {name}" if len(rates) > 1 else "lr", points))
    rows.append(("figure", str(path)))
    return rows


def main(argv: list[str]) -> int:
    from . import console

    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    try:
        return _main(argv)
    except UserError as error:
        console.print_user_error(str(error), title="trainer.schedule: error")
        return EXIT_USER_ERROR


def _main(argv: list[str]) -> int:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from . import console, figures, report

    overrides, steps_per_epoch, output = _options(argv)
    try:
        cfg, choices, settings = compose(overrides)
    except (HydraException, OmegaConfBaseException) as error:
        from .cli import _compose_message

        console.print_user_error(_compose_message(error), title="trainer.schedule: config error")
        return EXIT_USER_ERROR
    steps, rates, per_epoch, how, when = simulate(cfg, choices, settings, steps_per_epoch)
    scheduler = choices.get("scheduler", "custom")
    if output is None:
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
        output = Path("outputs") / "schedules" / f"{stamp}_{scheduler}.png"
    title = f"{scheduler}, optimizer.lr={cfg.optimizer.lr}, {cfg.trainer.max_epochs} epochs"
    figure = figures.lr_schedule(steps, rates, per_epoch, title=f"schedule: {title}")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        figures.save_png(figure, output)
    except OSError as error:
        raise UserError(f"--output {output}: cannot write it: {error.strerror or error}.") from None
    rows = _rows(cfg, choices, steps, rates, per_epoch, how, when, output)
    report.key_values("learning-rate schedule", rows)
    return 0


def _entry() -> Any:  # pragma: no cover - the command line
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    _entry()
