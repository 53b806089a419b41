"""What one job does: validate the config, then run the chosen mode.

train:    trainer, data = build_trainer(cfg)    # build.py, the composition root
          trainer.fit(data); trainer.test(data); trainer.finish()
          return the best monitored validation metric (what sweepers optimise)
test, predict: evaluate.py;  lr_find: lr_find.py
"""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from . import report, rundir
from .argv import claimed
from .config import validate
from .data.encoding import describe_columns
from .errors import UserError
from .paths import resume_override

log = logging.getLogger("trainer")


def run(
    cfg: DictConfig, run_dir: Path, choices: dict[str, str], overrides: list[str]
) -> float | None:
    """Run one job; returns the best monitored validation metric (train and lr_find modes)."""
    from .argv import replayed

    if replayed:  # a resume replayed its run's saved overrides: a file, not the user's typing
        from .trust import check_stored_config

        check_stored_config(
            OmegaConf.to_container(cfg),
            source=str(replayed["source"]),
            command_line=replayed["typed"],
            trusted=bool(cfg.trainer.get("trust_checkpoint_code")),
        )
    typed = validate(cfg)  # (imports every _target_ it checks)
    _set_log_level(cfg.get("log_level", "INFO"))
    _reset_process_state(cfg)
    if cfg.get("print_config"):
        report.config_tree(OmegaConf.to_container(cfg, resolve=True))
    mode = cfg.get("mode", "train")
    if mode != "train" and choices.get("pitfall") not in (None, "none"):
        raise UserError(
            f"+pitfall={choices['pitfall']} repeats a mistake inside a training run; mode={mode} "
            "does not train, so it cannot show it. Drop +pitfall, or use mode=train.",
            key="pitfall",
        )
    if mode == "train":
        return train(cfg, run_dir, choices, overrides)
    _settle_heap()
    if mode == "lr_find":
        from .lr_find import run_lr_find

        return run_lr_find(cfg, run_dir, choices, overrides, typed["lr_find"])
    if mode == "test":
        from .evaluate import evaluate_checkpoint

        return evaluate_checkpoint(cfg, run_dir, overrides)
    from .predict import predict_csv

    return predict_csv(cfg, run_dir, typed["predict"], overrides)


# ---------------------------------------------------------------------- train
def train(
    cfg: DictConfig, run_dir: Path, choices: dict[str, str], overrides: list[str]
) -> float | None:
    from .build import build_trainer

    if cfg.trainer.get("resume") == "auto":  # continue this run directory's own run if it has one
        last = run_dir / "checkpoints" / "last.pt"
        with open_dict(cfg):
            cfg.trainer.resume = str(last) if last.is_file() else None
    trainer, data = build_trainer(cfg, run_dir, choices, overrides)
    try:
        trainer.setup(data)
        done = _nothing_to_train(trainer)
        if done is not None:  # a resume of a finished run: say so, and change no file
            if trainer.is_main_process:
                report.key_values("nothing to do", done, style="yellow")
            return trainer.record.best.value
        records = claimed.get("resume_records")
        if records and trainer.is_main_process:  # the resume trains: its records go in the run
            rundir.keep_resume_records(run_dir, records, OmegaConf.to_yaml(cfg), overrides)
        if trainer.is_main_process:
            report.start_panel(start_rows(trainer, data, cfg, choices, run_dir))
            if data.spec.columns:
                report.key_values("columns", describe_columns(data.spec.columns), style="cyan")
        _settle_heap()
        trainer.fit(data)
        if data.spec.sizes["test"]:  # (data.split may leave it out: record.absent_splits)
            trainer.test(data)
        summary = trainer.finish()
    except BaseException as error:
        summary = trainer.finish(error=error)
        shown = trainer.record.history or (trainer.pitfall and trainer.record.nonfinite)
        if trainer.is_main_process and shown:  # (a failed set-up: the error says it all)
            report.end_summary(summary, run_dir, trainer.writes_files)
        raise
    finally:
        gc.unfreeze()  # this job's objects: collectable again once unused (the next job's)
    if trainer.is_main_process:
        report.end_summary(summary, run_dir, trainer.writes_files)
    if trainer.writes_files and "tensorboard" not in trainer.callbacks:  # (it draws its own)
        from .curve_figures import write_run_curves

        write_run_curves(run_dir, summary["history"], summary)
    return summary["best_val_metric"]


def _settle_heap() -> None:
    """The CLI keeps Python's cycle collector off through start-up (cli.main): the ~340,000
    objects that torch, torch._dynamo and Hydra create there live as long as the process, and
    six full collections re-scanned them for nothing (0.56 s of a 1-epoch run). Before the first
    epoch: one collection, then `gc.freeze` keeps what survives out of later ones."""
    if not gc.isenabled():
        gc.collect()
        gc.freeze()
        gc.enable()


def _nothing_to_train(trainer) -> list[tuple[str, str]] | None:
    """For a resumed run that has nothing left to train: what to tell the user."""
    state, record, run_dir = trainer.state, trainer.record, trainer.run_dir
    if not record.resumed_from or not state.epoch_complete:
        return None
    if record.should_stop:
        why = f"it stopped early at epoch {state.epoch}: {record.stop_reason}"
        how = "an uninterrupted run would stop there too; start a new run to train differently"
    elif state.epoch >= trainer.settings.max_epochs:
        why = f"it completed {state.epoch} of trainer.max_epochs={trainer.settings.max_epochs}"
        how = f"python -m trainer {resume_override(run_dir)} trainer.max_epochs={2 * state.epoch}"
    else:
        return None
    return [
        ("run", str(run_dir)),
        ("status", why),
        ("nothing changed", "no file was written"),
        ("to train further", how),
    ]


def start_rows(
    trainer, data, cfg: DictConfig, choices: dict[str, str], run_dir: Path
) -> list[tuple[str, str]]:
    from .models import summarize
    from .settings import AUTO_MIN_EPOCHS

    spec = data.spec
    sizes = spec.sizes
    unit = "labels" if spec.task == "multilabel" else "classes"
    kind = spec.task if spec.task == "regression" else f"{spec.task}, {spec.num_classes} {unit}"
    shape = "x".join(map(str, spec.input_shape))
    state, settings = trainer.state, trainer.settings
    total, _, _ = summarize(state.model)
    opt_text = _optimizer_text(
        cfg,
        f"{choices.get('optimizer', 'custom')} ({type(trainer.state.optimizer).__name__})",
        getattr(trainer.pitfall, "factor", None),
    )
    schedule = (
        "none"
        if state.schedule is None
        else f"{choices.get('scheduler', 'custom')} (steps every {state.schedule.interval})"
    )
    rows = [
        (
            "data",
            f"{choices.get('dataset', spec.name)}: {sizes['train']} train / {sizes['val']} val / "
            f"{sizes['test']} test, input {shape}, {kind}",
        ),
        *[("split", note) for note in list(trainer.record.absent_splits.values())[:1]],
        ("loading", getattr(spec, "loading", "in memory")),
        (
            "model",
            f"{choices.get('model', 'custom')} ({type(state.model).__name__}): {total:,} parameters",
        ),
        (
            "loss",
            f"{type(trainer.loss_fn).__name__} ({choices.get('loss', 'custom')}), {trainer.head.num_outputs} output(s)",
        ),
        ("optimizer", opt_text),
        ("scheduler", schedule),
        (
            "training",
            f"{settings.max_epochs} epochs x {state.steps_per_epoch} steps"
            + (
                f" (max_epochs auto: at least {AUTO_MIN_EPOCHS} and trainer.min_steps="
                f"{settings.min_steps} optimizer steps)"
                if cfg.trainer.get("max_epochs", 0) is None
                else ""
            )
            + f", batch {settings.batch_size}"
            + (
                f" x {settings.accumulate_grad_batches} accumulated"
                if settings.accumulate_grad_batches > 1
                else ""
            )
            + f", monitor {trainer.record.best.monitor} ({trainer.record.best.mode})",
        ),
        (
            "device",
            f"{trainer.device}"
            + (f" x {trainer.dist.world_size} processes (DDP)" if trainer.dist.active else "")
            + f", precision {state.precision.name}, seed {settings.seed}",
        ),
        ("callbacks", _callbacks_text(trainer, choices.get("callbacks"))),
        ("output", str(run_dir) if trainer.writes_files else "nothing is written (fast_dev_run)"),
    ]
    if trainer.pitfall is not None:  # a demonstration: said first, where everyone looks
        rows.insert(0, ("pitfall lab", report.demonstration(trainer.pitfall.banner())))
    if trainer.record.resumed_from:
        rows.append(
            (
                "resumed",
                f"{trainer.record.resumed_from} (epoch {state.epoch}, step {state.global_step})",
            )
        )
    return rows


def _optimizer_text(cfg: DictConfig, choice: str, lr_factor: float | None = None) -> str:
    """The optimizer's settings as they are used: the rate (times `lr_factor`, the pitfall lab's
    lr_far_too_high), weight decay (and what it skips), momentum and whether it is Nesterov's."""
    opt, parts = cfg.optimizer, []
    for key in ("lr", "weight_decay", "momentum"):
        if isinstance(opt.get(key), (int, float)) and not isinstance(opt.get(key), bool):
            parts.append(f"{key} {opt[key]:g}")
            if key == "lr" and lr_factor is not None:
                parts[-1] = f"lr {opt.lr * lr_factor:g} (+pitfall: {opt.lr:g} set x {lr_factor:g})"
    if opt.get("momentum") and "nesterov" in opt:
        parts.append("Nesterov" if opt.nesterov else "classic momentum")
    if (opt.get("weight_decay") or 0) > 0 and not cfg.param_groups.decay_bias_and_norm:
        parts.append("no decay on biases and norm weights (param_groups.decay_bias_and_norm)")
    return f"{choice}: " + ", ".join(parts)


SINGLE_CALLBACK_FILES = ("early_stopping", "lr_monitor", "model_checkpoint", "progress")


def _callbacks_text(trainer, choice: str | None) -> str:
    lab = trainer.pitfall is not None  # (the pitfall lab's callback has a row of its own)
    names = ", ".join(n for n in trainer.callbacks if not (lab and n == "pitfall")) or "none"
    if choice in SINGLE_CALLBACK_FILES:
        return (
            f"{names} only: callbacks={choice} replaced the default set; to drop one callback "
            "from the set instead: ~callbacks.<name>"
        )
    return names


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
