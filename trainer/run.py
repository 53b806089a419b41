"""What one job does: validate the config, compose the objects it names, run the chosen mode.

data      = DataModule(instantiate(cfg.dataset), **cfg.data)     # split 70/15/15, standardise
loss      = instantiate(cfg.loss)(task)                          # picks the output layout
model     = instantiate(cfg.model, input_shape=..., num_outputs=...)
trainer   = instantiate(cfg.trainer, model=..., loss=..., optimizer=instantiate(cfg.optimizer), ...)
trainer.fit(data); trainer.test(data); trainer.finish()
return the best monitored validation metric (what sweepers optimise)
"""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from . import report
from .config import validate
from .errors import UserError

log = logging.getLogger("trainer")


def run(
    cfg: DictConfig, run_dir: Path, choices: dict[str, str], overrides: list[str]
) -> float | None:
    """Run one job; returns the best monitored validation metric (train and lr_find modes)."""
    typed = validate(cfg)
    # Resolve once, so that ${trainer.mode} in callbacks and schedulers agrees.
    if cfg.trainer.mode == "auto":
        from .metrics import metric_mode

        with open_dict(cfg):
            cfg.trainer.mode = metric_mode(cfg.trainer.monitor)
    _set_log_level(cfg.get("log_level", "INFO"))
    _reset_process_state(cfg)
    if cfg.get("print_config"):
        report.config_tree(OmegaConf.to_container(cfg, resolve=True))
    mode = cfg.get("mode", "train")
    if mode == "train":
        return train(cfg, run_dir, choices, overrides)
    if mode == "lr_find":
        from .lr_find import run_lr_find

        return run_lr_find(cfg, run_dir, choices, overrides, typed["lr_find"])
    from .evaluate import evaluate_checkpoint, predict_csv

    if mode == "test":
        return evaluate_checkpoint(cfg, run_dir)
    return predict_csv(cfg, run_dir, typed["predict"])


# ---------------------------------------------------------------------- building blocks
def instantiate(node, key: str, **kwargs):
    """Hydra's instantiate, with failures reported against the config key that caused them."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        target = node.get("_target_") if hasattr(node, "get") else None
        detail = (
            f"{type(cause).__name__}: {cause}" if cause is not None else str(error).splitlines()[0]
        )
        raise UserError(
            f"{key}: building {target} failed: {detail}. Check the {key} settings "
            f"(`python -m trainer --cfg job` shows them).",
            key=key,
        ) from None


def build_data(cfg: DictConfig):
    """Instantiate the data set and split / standardise it."""
    from .data import ArrayData, DataModule

    source = instantiate(cfg.dataset, "dataset")
    if not isinstance(source, ArrayData):
        raise UserError(
            f"dataset._target_={cfg.dataset._target_} returned {type(source).__name__}; a dataset "
            "config must build trainer.data.ArrayData.",
            key="dataset._target_",
        )
    data = cfg.data
    return DataModule(
        source,
        split=tuple(data.split),
        seed=data.seed,
        standardize=data.standardize,
        standardize_targets=data.standardize_targets,
    )


def build_model_and_loss(cfg: DictConfig, spec, class_counts, choices: dict[str, str]):
    """The loss first: it decides how many outputs the model needs for this task."""
    from .losses import build_loss, head_for

    loss = build_loss(instantiate(cfg.loss, "loss"), spec.task, class_counts)
    head = head_for(
        loss,
        spec.task,
        spec.num_classes,
        spec.num_targets,
        choices.get("loss", "custom"),
        choices.get("dataset", spec.name),
    )
    model = instantiate(
        cfg.model, "model", input_shape=tuple(spec.input_shape), num_outputs=head.num_outputs
    )
    return model, loss, head


def build_callbacks(cfg: DictConfig) -> tuple[dict, dict]:
    callbacks = {
        name: instantiate(node, f"callbacks.{name}")
        for name, node in (cfg.get("callbacks") or {}).items()
        if node is not None
    }
    loggers = {"tensorboard": instantiate(cfg.logger, "logger")} if cfg.get("logger") else {}
    return callbacks, loggers


def build_trainer(cfg: DictConfig, run_dir: Path, choices: dict[str, str], overrides: list[str]):
    """Everything for a training run, composed from the config."""
    from .loop import seed_everything

    seed_everything(cfg.trainer.seed)
    if cfg.trainer.get("resume") == "auto":  # continue this run directory's own run if it has one
        last = run_dir / "checkpoints" / "last.pt"
        with open_dict(cfg):
            cfg.trainer.resume = str(last) if last.is_file() else None
    data = build_data(cfg)
    model, loss, _ = build_model_and_loss(cfg, data.spec, data.class_counts(), choices)
    callbacks, loggers = build_callbacks(cfg)
    scheduler, interval = None, None
    if cfg.get("scheduler"):
        node = OmegaConf.to_container(cfg.scheduler, resolve=True)
        interval = node.pop("interval", None)
        node.pop("monitor", None)
        scheduler = instantiate(node, "scheduler")
    resolved = OmegaConf.to_container(cfg, resolve=True)
    trainer = instantiate(
        cfg.trainer,
        "trainer",
        model=model,
        loss=loss,
        optimizer=instantiate(cfg.optimizer, "optimizer"),
        scheduler=scheduler,
        scheduler_interval=interval,
        callbacks=callbacks,
        loggers=loggers,
        decay_bias_and_norm=cfg.param_groups.decay_bias_and_norm,
        module_lr=OmegaConf.to_container(cfg.param_groups.module_lr or OmegaConf.create({})),
        run_dir=run_dir,
    )
    trainer.config = resolved  # (not through instantiate: it would build the _target_ nodes inside)
    trainer.hparams = hyperparameters(cfg, choices, overrides)
    trainer.hparams_varied = _varied_keys()
    return trainer, data


def hyperparameters(
    cfg: DictConfig, choices: dict[str, str], overrides: list[str]
) -> dict[str, Any]:
    """Flat, readable hyper-parameters for TensorBoard's HParams table. What the command line set
    (what a sweep varies) comes first: TensorBoard shows the first few columns by default."""
    hp: dict[str, Any] = {}
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key and not key.startswith(("hydra", "experiment", "hparams_search")) and "/" not in key:
            hp[key] = _scalar(OmegaConf.select(cfg, key, default=value))
            if key in choices:
                hp[key] = choices[key]
    for group in ("optimizer", "scheduler", "model", "dataset", "loss"):
        hp.setdefault(group, choices.get(group, "custom"))
    for key in ("lr", "weight_decay", "momentum"):
        if cfg.optimizer and key in cfg.optimizer:
            hp.setdefault(f"optimizer.{key}", _scalar(cfg.optimizer[key]))
    for key, value in (cfg.model or {}).items():
        if not str(key).startswith("_"):
            hp.setdefault(f"model.{key}", _scalar(value))
    for key in ("batch_size", "max_epochs", "precision", "seed", "accumulate_grad_batches"):
        hp.setdefault(f"trainer.{key}", _scalar(cfg.trainer[key]))
    return hp


def _varied_keys() -> set[str]:
    """The overrides that name this job's directory: in a sweep, what varies between its jobs."""
    from hydra.core.hydra_config import HydraConfig

    try:
        dirname = HydraConfig.get().job.override_dirname
    except ValueError:  # not run by Hydra
        return set()
    return {item.split("=", 1)[0].lstrip("+~") for item in dirname.split(",") if "=" in item}


def _scalar(value: Any) -> Any:
    if isinstance(value, (int, float, str, bool)) or value is None:
        return "null" if value is None else value
    return str(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)


# ---------------------------------------------------------------------- train
def train(
    cfg: DictConfig, run_dir: Path, choices: dict[str, str], overrides: list[str]
) -> float | None:
    trainer, data = build_trainer(cfg, run_dir, choices, overrides)
    try:
        trainer.setup(data)
        if trainer.is_main_process:
            report.start_panel(start_rows(trainer, data, cfg, choices, run_dir))
        trainer.fit(data)
        trainer.test(data)
        summary = trainer.finish()
    except BaseException as error:
        summary = trainer.finish(error=error)
        if trainer.is_main_process and trainer.history:  # (a failed set-up: the error says it all)
            report.end_summary(summary, run_dir, trainer.writes_files)
        raise
    if trainer.is_main_process:
        report.end_summary(summary, run_dir, trainer.writes_files)
    return summary["best_val_metric"]


def start_rows(
    trainer, data, cfg: DictConfig, choices: dict[str, str], run_dir: Path
) -> list[tuple[str, str]]:
    from .models import summarize

    spec = data.spec
    sizes = spec.sizes
    kind = spec.task if spec.task == "regression" else f"{spec.task}, {spec.num_classes} classes"
    shape = "x".join(map(str, spec.input_shape))
    total, _, _ = summarize(trainer.unwrapped_model)
    opt = cfg.optimizer
    opt_text = (
        choices.get("optimizer", "custom")
        + " "
        + ", ".join(
            f"{k} {opt[k]:g}"
            for k in ("lr", "weight_decay", "momentum")
            if k in opt and isinstance(opt[k], (int, float))
        )
    )
    schedule = (
        "none"
        if trainer.schedule is None
        else f"{choices.get('scheduler', 'custom')} (steps every {trainer.schedule.interval})"
    )
    rows = [
        (
            "data",
            f"{choices.get('dataset', spec.name)}: {sizes['train']} train / {sizes['val']} val / "
            f"{sizes['test']} test, input {shape}, {kind}",
        ),
        (
            "model",
            f"{choices.get('model', 'custom')} ({type(trainer.unwrapped_model).__name__}): {total:,} parameters",
        ),
        (
            "loss",
            f"{type(trainer.loss_fn).__name__} ({choices.get('loss', 'custom')}), {trainer.head.num_outputs} output(s)",
        ),
        ("optimizer", f"{opt_text} ({type(trainer.optimizer).__name__})"),
        ("scheduler", schedule),
        (
            "training",
            f"{trainer.max_epochs} epochs x {trainer.steps_per_epoch} steps, batch {trainer.batch_size}"
            + (
                f" x {trainer.accumulate_grad_batches} accumulated"
                if trainer.accumulate_grad_batches > 1
                else ""
            )
            + f", monitor {trainer.monitor} ({trainer.mode})",
        ),
        (
            "device",
            f"{trainer.device}"
            + (f" x {trainer.dist.world_size} processes (DDP)" if trainer.dist.active else "")
            + f", precision {trainer.precision.name}, seed {trainer.seed}",
        ),
        ("output", str(run_dir) if trainer.writes_files else "nothing is written (fast_dev_run)"),
    ]
    if trainer.resumed_from:
        rows.append(
            (
                "resumed",
                f"{trainer.resumed_from} (epoch {trainer.epoch}, step {trainer.global_step})",
            )
        )
    return rows


def command_line(overrides: list[str]) -> str:
    """The command that re-runs a job with these overrides."""
    # Sweep machinery is not part of a run: hparams_search only configures the sweeper.
    kept = [o for o in overrides if not o.startswith(("hydra.", "hydra/", "hparams_search="))]
    return "python -m trainer " + " ".join(shlex.quote(o) for o in kept)


# ---------------------------------------------------------------------- per-job process settings
def _set_log_level(level: str) -> None:
    from .console import ConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, ConsoleHandler):
            try:
                handler.setLevel(str(level).upper())
            except ValueError:
                raise UserError(
                    f"log_level='{level}' is not a level; use DEBUG, INFO, WARNING or ERROR.",
                    key="log_level",
                ) from None


_DEFAULT_THREADS: int | None = None


def _reset_process_state(cfg: DictConfig) -> None:
    """Process-wide torch settings, set anew for every job: joblib reuses worker processes, and
    one job's settings must not leak into the next. Jobs running in parallel share the cores:
    each gets cores / jobs torch threads."""
    import torch

    deterministic = bool(cfg.trainer.deterministic)
    # Only when it changes: the call imports torch._inductor (~2 s), which mode=test and
    # mode=predict never need.
    if torch.are_deterministic_algorithms_enabled() != deterministic:
        torch.use_deterministic_algorithms(deterministic)

    global _DEFAULT_THREADS
    if _DEFAULT_THREADS is None:
        _DEFAULT_THREADS = torch.get_num_threads()
    threads = cfg.trainer.get("num_threads")
    if threads is None:
        parallel = _parallel_jobs()
        threads = max(1, (os.cpu_count() or 1) // parallel) if parallel > 1 else _DEFAULT_THREADS
    torch.set_num_threads(int(threads))


def _parallel_jobs() -> int:
    """How many jobs of this sweep run at the same time on this machine."""
    from hydra.core.hydra_config import HydraConfig

    try:
        hydra = HydraConfig.get()
    except ValueError:
        return 1
    launcher = hydra.launcher
    target = str(launcher.get("_target_", "")) if launcher else ""
    if "joblib" not in target.lower():
        return 1
    n_jobs = launcher.get("n_jobs", -1)
    cores = os.cpu_count() or 1
    return cores if n_jobs is None or n_jobs < 1 else min(int(n_jobs), cores)
