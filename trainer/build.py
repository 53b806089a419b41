"""The composition root: the only place that turns a composed config into objects.

    data      = DataModule(instantiate(cfg.dataset), **cfg.data)     # split 70/15/15, standardise
    loss      = instantiate(cfg.loss)(task)                          # picks the output layout
    model     = instantiate(cfg.model, <the data's sizes it declares>)   # then init, weights, freeze
    callbacks = {name: instantiate(node)}, loggers = {tensorboard: instantiate(cfg.logger)}
    trainer   = instantiate(cfg.trainer, model=..., loss=..., optimizer=instantiate(cfg.optimizer), ...)

The parts are built in dependency order: the data first (its sizes and task shape the loss and
the model), the loss before the model (it decides how many outputs the model needs), the
optimizer and scheduler as factories (the Trainer calls them once the model is on its device).
A config read from a file (a checkpoint) is checked by `stored_config` before anything in it
is built.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .context import RunConfig
from .errors import UserError

log = logging.getLogger("trainer")


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


def stored_config(config: dict, cfg: DictConfig, source: str, overrides: list[str]) -> DictConfig:
    """A config read from `source` (a checkpoint), as a DictConfig, once every `_target_` in it
    is one this tool may build: its own, torch's, or one the user trusts (see trust.py)."""
    from .trust import check_stored_config

    check_stored_config(
        config,
        source=source,
        command_line=overrides,
        trusted=bool(cfg.trainer.get("trust_checkpoint_code")),
    )
    return OmegaConf.create(config)


def load_stored_run(
    cfg: DictConfig, mode: str, overrides: list[str]
) -> tuple[Path, dict, DictConfig]:
    """(checkpoint path, its state, its config checked by `stored_config`) for mode=test/predict."""
    from .checkpoints import load_checkpoint
    from .paths import resolve_checkpoint

    if not cfg.trainer.get("resume"):
        raise UserError(
            f"mode={mode} needs the run to use: trainer.resume=<run dir or checkpoint file>, e.g. "
            f"python -m trainer mode={mode} trainer.resume=outputs/runs/2026-01-01/12-00-00-000000",
            key="trainer.resume",
        )
    path = resolve_checkpoint(cfg.trainer.resume, prefer="best")
    state = load_checkpoint(path)
    return path, state, stored_config(state["config"], cfg, str(path), overrides)


def stored_choices(saved: DictConfig) -> dict[str, str]:
    """Group names for messages about a stored config (its targets' last parts)."""
    return {
        "dataset": saved.dataset.get("_target_", "dataset").rsplit(".", 1)[-1],
        "loss": saved.loss.get("_target_", "loss").rsplit(".", 1)[-1],
    }


def build_data(cfg: DictConfig):
    """Instantiate the data set and split / standardise it."""
    from .data import ArrayData, DataModule
    from .data.loaders import LoaderDataModule
    from .data.loading import DatasetData

    source = instantiate(cfg.dataset, "dataset")
    data = cfg.data
    if isinstance(source, DatasetData):  # too large for memory: read through a DataLoader
        return LoaderDataModule(
            source,
            split=tuple(data.split),
            seed=data.seed,
            standardize=data.standardize,
            standardize_targets=data.standardize_targets,
        )
    if not isinstance(source, ArrayData):
        raise UserError(
            f"dataset._target_={cfg.dataset._target_} returned {type(source).__name__}; a dataset "
            "config must build trainer.data.ArrayData (or use dataset=custom for a torch "
            "Dataset).",
            key="dataset._target_",
        )
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
    model = build_model(cfg.model, spec, head.num_outputs)
    return model, loss, head


def build_model(node: DictConfig, spec, num_outputs: int):
    """The model, its constructor given the data's sizes it declares (models.size_arguments);
    the `model:` keys that say what is done to it (settings.ModelSettings) are not arguments."""
    from hydra.utils import get_object
    from torch import nn

    from .models import size_arguments
    from .settings import MODEL_KEYS

    arguments = OmegaConf.create(
        {k: v for k, v in OmegaConf.to_container(node).items() if k not in MODEL_KEYS}
    )
    if arguments.get("_target_") is None:
        raise UserError(
            "model._target_ is not set: model=custom needs the import path of your nn.Module "
            "class, e.g. model=custom model._target_=mymodels.Net (mymodels.py in the current "
            "directory), its own arguments as +model.<arg>=<value>.",
            key="model._target_",
        )
    try:
        target = get_object(arguments._target_)
    except Exception as error:
        raise UserError(
            f"model._target_='{arguments._target_}' cannot be imported "
            f"({str(error).strip().splitlines()[-1]}). Run trainer from the directory that holds "
            "your module, or install it.",
            key="model._target_",
        ) from None
    sizes = size_arguments(target, spec.input_shape, spec.num_classes, num_outputs, arguments)
    model = instantiate(arguments, "model", **sizes)
    if not isinstance(model, nn.Module):
        raise UserError(
            f"model._target_={arguments._target_} built a {type(model).__name__}, not a "
            "torch.nn.Module; name a class that derives from nn.Module.",
            key="model._target_",
        )
    return model


def prepare_model(cfg: DictConfig, model, loss, head, data) -> None:
    """What `model:` asks for before training (settings.ModelSettings): initialise, load weights,
    freeze; then one forward pass on a training batch checks the output fits the loss. A resumed
    run takes its weights from its checkpoint: it only freezes the same parameters again."""
    from .model_check import check_output
    from .settings import ModelSettings

    settings = ModelSettings.of(cfg.model)
    if not cfg.trainer.get("resume"):
        from .model_init import initialize
        from .transfer import load_weights

        initialize(model, settings.init)
        if settings.weights is not None:
            report = load_weights(model, settings.weights, settings.weights_strict)
            log.info("model.weights=%s: %s", report.source, report.text())
    if settings.freeze:
        from .transfer import freeze

        frozen = freeze(model, settings.freeze)
        log.info("model.freeze: %d parameter tensors frozen (%s)", len(frozen), ", ".join(frozen))
    x, y = _first_batch(data, int(cfg.trainer.batch_size))
    check_output(model, loss, head, x, head.targets(y))


def _first_batch(data, size: int):
    """The first `size` training samples as (inputs, targets), as the data set stores them."""
    import torch

    if getattr(data, "streams", False):  # the DataLoader path: read one batch, not the split
        from .data.loaders import LoaderSplit

        split = LoaderSplit(data, "train", torch.device("cpu"), torch.as_tensor)
        x, y = next(split.read([list(range(min(size, len(split))))], epoch=0))
        return x, y.numpy()
    x, y = data.arrays["train"]
    return torch.as_tensor(x[:size]), y[:size]


def build_callbacks(cfg: DictConfig) -> tuple[dict, dict]:
    callbacks = {
        name: instantiate(node, f"callbacks.{name}")
        for name, node in (cfg.get("callbacks") or {}).items()
        if node is not None
    }
    loggers = {"tensorboard": instantiate(cfg.logger, "logger")} if cfg.get("logger") else {}
    return callbacks, loggers


def build_scheduler(cfg: DictConfig) -> tuple[Any, str | None]:
    """The scheduler factory and when it steps (null: the scheduler's own way)."""
    if not cfg.get("scheduler"):
        return None, None
    node = OmegaConf.to_container(cfg.scheduler, resolve=True)
    interval = node.pop("interval", None)
    node.pop("monitor", None)
    return instantiate(node, "scheduler"), interval


def build_trainer(cfg: DictConfig, run_dir: Path, choices: dict[str, str], overrides: list[str]):
    """Everything for a training run, composed from the config: (trainer, data)."""
    from .devices import seed_everything
    from .settings import ModelSettings

    seed_everything(cfg.trainer.seed)
    ModelSettings.of(cfg.model)  # checked before any work
    data = build_data(cfg)
    if not data.spec.sizes["val"]:  # no validation split: what the run monitors instead
        from .best import monitor_without_validation

        cfg.trainer.monitor = monitor_without_validation(cfg.trainer.monitor)
    model, loss, head = build_model_and_loss(cfg, data.spec, data.class_counts(), choices)
    prepare_model(cfg, model, loss, head, data)
    callbacks, loggers = build_callbacks(cfg)
    scheduler, interval = build_scheduler(cfg)
    pitfall = instantiate(cfg.pitfall, "pitfall") if cfg.get("pitfall") else None
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
        pitfall=pitfall,
    )
    # (not through instantiate, which would build the _target_ nodes inside the config)
    trainer.config = RunConfig(
        resolved=OmegaConf.to_container(cfg, resolve=True),
        hparams=hyperparameters(cfg, choices, overrides),
        varied=_varied_keys(),
    )
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
