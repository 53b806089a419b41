"""Config schemas and validation: every bad value is reported with its key before any work starts.

The sections this tool owns (trainer, data, param_groups, predict, lr_find) have dataclass
schemas; merging a section into its schema catches wrong types with the full key. Groups that
instantiate a `_target_` (dataset, model, loss, optimizer, scheduler, callbacks, logger) are
checked against the target's own signature: unknown arguments, wrong types and out-of-range
values. Validation runs inside the job (not at composition), so in a sweep a bad value fails
its own job, with its message, and not the whole sweep.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
from dataclasses import fields
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .best import check_same_monitor, resolve_mode
from .errors import UserError, did_you_mean
from .settings import MODEL_KEYS, SECTIONS, SIZE_ARGUMENTS

SCHEMAS = SECTIONS  # each section the tool owns, checked against its settings class
MODES = ("train", "test", "predict", "lr_find")

# Ranges for well-known arguments of the instantiated groups: (test, what it must be).
_POSITIVE = (lambda v: v > 0, "> 0")
_NON_NEGATIVE = (lambda v: v >= 0, ">= 0")
_UNIT = (lambda v: 0 <= v <= 1, "in [0, 1]")
_UNIT_OPEN = (lambda v: 0 <= v < 1, "in [0, 1)")
RANGES = {
    "optimizer.lr": _POSITIVE,
    "optimizer.weight_decay": _NON_NEGATIVE,
    "optimizer.momentum": _UNIT,
    "optimizer.eps": _POSITIVE,
    "optimizer.dampening": _UNIT,
    "optimizer.alpha": _UNIT,
    "optimizer.lr_decay": _NON_NEGATIVE,
    "scheduler.gamma": _POSITIVE,
    "scheduler.eta_min": _NON_NEGATIVE,
    "scheduler.factor": _UNIT_OPEN,
    "scheduler.patience": _NON_NEGATIVE,
    "scheduler.max_lr": _POSITIVE,
    "scheduler.base_lr": _POSITIVE,
    "scheduler.pct_start": _UNIT,
    "scheduler.warmup_fraction": _UNIT,
    "scheduler.min_lr_ratio": _UNIT,
    "dataset.n_samples": _POSITIVE,
    "dataset.noise": _NON_NEGATIVE,
    "dataset.n_features": _POSITIVE,
    "dataset.n_classes": _POSITIVE,
    "dataset.centers": _POSITIVE,
    "dataset.cluster_std": _POSITIVE,
    "dataset.factor": _UNIT_OPEN,
    "model.dropout": _UNIT_OPEN,
    "model.hidden_size": _POSITIVE,
    "loss.label_smoothing": _UNIT_OPEN,
    "loss.gamma": _NON_NEGATIVE,
    "loss.beta": _NON_NEGATIVE,
    "loss.delta": _POSITIVE,
    "pitfall.factor": _POSITIVE,
    "callbacks.early_stopping.patience": _NON_NEGATIVE,
    "callbacks.early_stopping.min_delta": _NON_NEGATIVE,
    "callbacks.model_checkpoint.save_top_k": _NON_NEGATIVE,
    "callbacks.model_checkpoint.every_n_epochs": _POSITIVE,
    "callbacks.model_checkpoint.every_n_seconds": _NON_NEGATIVE,
}
TARGET_GROUPS = ("dataset", "model", "loss", "optimizer", "scheduler", "pitfall")


def _schema_error(error: OmegaConfBaseException, section: str) -> UserError:
    key = f"{section}.{error.full_key}" if getattr(error, "full_key", None) else section
    message = getattr(error, "msg", str(error)).splitlines()[0]
    if "not in" in message and "Key" in message:
        valid = [f.name for f in fields(SCHEMAS[section])]
        name = str(error.full_key).split(".")[-1]
        return UserError(
            f"{key} is not a setting of '{section}'; valid: {', '.join(valid)}."
            f"{did_you_mean(name, valid)}",
            key=key,
        )
    return UserError(f"{key}: {message}.", key=key)


def _typed(cfg: DictConfig, section: str):
    node = cfg.get(section) or {}
    if section == "trainer" and "_target_" in node:  # what builds the Trainer, not a setting
        node = {k: v for k, v in node.items() if k != "_target_"}
    try:
        return OmegaConf.merge(OmegaConf.structured(SCHEMAS[section]), node)
    except OmegaConfBaseException as error:
        raise _schema_error(error, section) from None


def _check_type(key: str, value: Any, param: inspect.Parameter) -> None:
    """Compare a value with the parameter's default (and an `int` annotation)."""
    default, annotation = param.default, param.annotation
    if value is None or (
        default is inspect.Parameter.empty and annotation is inspect.Parameter.empty
    ):
        return
    if isinstance(default, bool) or annotation in (bool, "bool"):
        if not isinstance(value, bool):
            raise UserError(f"{key}={value!r} must be true or false.", key=key)
    elif isinstance(default, (int, float)) or annotation in (int, float, "int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{key}={value!r} is not a number.", key=key)
        if annotation in (int, "int") and not float(value).is_integer():
            raise UserError(f"{key}={value!r} must be a whole number.", key=key)
    elif isinstance(default, str) and not isinstance(value, str):
        raise UserError(f"{key}={value!r} must be text.", key=key)


@contextlib.contextmanager
def _quiet(logger: str):
    log = logging.getLogger(logger)
    disabled, log.disabled = log.disabled, True
    try:
        yield
    finally:
        log.disabled = disabled


def check_target(node: DictConfig, key: str, supplied: tuple[str, ...] = ()) -> None:
    """Check a `_target_` node's arguments against the target's signature."""
    from hydra.utils import get_object

    target = node.get("_target_")
    if target is None:
        example = " (model=custom model._target_=mymodels.Net)" if key == "model" else ""
        raise UserError(
            f"{key}._target_ is not set: say which class or function it builds{example}.",
            key=f"{key}._target_",
        )
    try:
        with _quiet("hydra.utils"):  # its own log lines would print before our one paragraph
            obj = get_object(target)
    except Exception as error:
        cause = str(error).strip().splitlines()[-1]
        raise UserError(
            f"{key}._target_='{target}' cannot be imported ({cause}).", key=f"{key}._target_"
        ) from None
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return
    open_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    names = [
        n
        for n, p in params.items()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    for name in node:
        if str(name).startswith("_") or (name in ("interval", "monitor") and key == "scheduler"):
            continue
        if key == "model" and name in MODEL_KEYS:  # what is done to the model (ModelSettings)
            continue
        full = f"{key}.{name}"
        if name not in params and not open_kwargs:
            valid = [n for n in names if n not in ("self", "params", "optimizer", *supplied)]
            options = (
                f"valid: {', '.join(valid)}.{did_you_mean(str(name), valid)}"
                if valid
                else f"it takes no settings; choose a {key} that does (python -m trainer --help)."
            )
            raise UserError(f"{full} is not an argument of {target}; {options}", key=full)
        value = node[name]
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
        if name in params:
            _check_type(full, value, params[name])
        check = RANGES.get(full) or RANGES.get(f"{key.split('.')[0]}.{name}")
        if check is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            test, what = check
            if not (math.isfinite(value) and test(value)):
                raise UserError(f"{full}={value} is out of range: it must be {what}.", key=full)


def _check_targets(cfg: DictConfig) -> None:
    for group in TARGET_GROUPS:
        node = cfg.get(group)
        if node:  # an empty node is "none" (e.g. scheduler=none)
            supplied = (
                (*SIZE_ARGUMENTS, *MODEL_KEYS) if group == "model" else ("task", "class_counts")
            )
            check_target(node, group, supplied)
    for section in ("callbacks",):
        for name, node in (cfg.get(section) or {}).items():
            if node is not None:
                check_target(node, f"{section}.{name}")
    if cfg.get("logger"):
        check_target(cfg.logger, "logger")


def validate(cfg: DictConfig) -> dict[str, Any]:
    """Check the whole composed config; return the typed sections. Raises UserError."""
    if cfg.get("mode", "train") not in MODES:
        raise UserError(
            f"mode='{cfg.mode}' is not valid; choose one of: {', '.join(MODES)}.", key="mode"
        )
    typed = {section: _typed(cfg, section) for section in SCHEMAS}
    OmegaConf.to_object(typed["trainer"]).check()
    check_split(cfg, typed)
    if cfg.get("mode", "train") in ("train", "lr_find"):  # test/predict build the saved config
        _check_targets(cfg)
        for name, node in (cfg.get("callbacks") or {}).items():
            if node is not None and "monitor" in node:
                check_same_monitor(name, node.monitor, typed["trainer"].monitor)
    lr_find = typed["lr_find"]
    if not 0 < lr_find.min_lr < lr_find.max_lr:
        raise UserError(
            f"lr_find.min_lr={lr_find.min_lr} and lr_find.max_lr={lr_find.max_lr} must satisfy "
            "0 < min_lr < max_lr.",
            key="lr_find.min_lr",
        )
    return typed


SPLIT_FORMS = (
    "three fractions (train, validation, test), each >= 0, train > 0, that sum to 1: "
    "[0.7,0.15,0.15] (the default), [0.8,0.2,0] (no test split) or [1,0,0] (all data for "
    "training, with early stopping off)"
)


def check_split(cfg: DictConfig, typed: dict[str, Any]) -> None:
    """data.split: three fractions summing to 1; a 0 leaves that split out on purpose. Without a
    validation split (and none given, dataset.val) nothing may need one: early stopping, or a
    validation metric named in trainer.monitor (its default, loss/val, becomes loss/train)."""
    split = list(typed["data"].split)
    bad = [f for f in split if not (math.isfinite(f) and f >= 0)]
    if len(split) != 3 or bad or not split[0] > 0 or abs(sum(split) - 1.0) > 1e-6:
        what = (
            f"these are {len(split)} fraction(s)"
            if len(split) != 3
            else f"{bad[0]:g} is not a fraction >= 0"
            if bad
            else "the train fraction is 0"
            if not split[0] > 0
            else f"these sum to {sum(split):g}"
        )
        raise UserError(f"data.split={split} must be {SPLIT_FORMS}; {what}.", key="data.split")
    dataset = cfg.get("dataset") or {}
    if (
        split[1] > 0
        or dataset.get("val") is not None
        or cfg.get("mode", "train") in ("test", "predict")  # (they use the run's own config)
    ):  # (lr_find is checked too: the command it suggests must train)
        return
    shown = "[" + ",".join(f"{f:g}" for f in split) + "]"
    if (cfg.get("callbacks") or {}).get("early_stopping") is not None:
        raise UserError(
            f"data.split={shown} leaves no validation split, and callbacks.early_stopping stops "
            f"on a validation metric (trainer.monitor={typed['trainer'].monitor}) that such a run "
            "cannot measure. Either turn early stopping off (~callbacks.early_stopping, or "
            f"callbacks=none): the run trains all trainer.max_epochs on {split[0]:.0%} of the "
            "data; or give validation a share, e.g. data.split=[0.85,0.15,0] (no test split) or "
            "data.split=[0.7,0.15,0.15].",
            key="data.split",
        )
    from .best import monitor_without_validation

    monitor_without_validation(typed["trainer"].monitor, shown)  # (raises for a val metric)


def register_resolvers() -> None:
    """OmegaConf resolvers the configs use (registered before Hydra composes anything)."""
    if not OmegaConf.has_resolver("metric_mode"):
        # ${metric_mode:${trainer.monitor},${trainer.mode}} -> min | max
        OmegaConf.register_new_resolver("metric_mode", resolve_mode)
    if not OmegaConf.has_resolver("optuna_direction"):
        # ${optuna_direction:${trainer.monitor},${trainer.mode}} -> minimize | maximize
        OmegaConf.register_new_resolver(
            "optuna_direction",
            lambda monitor, mode="auto": (
                "maximize" if resolve_mode(monitor, mode) == "max" else "minimize"
            ),
        )
