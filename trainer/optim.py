"""Optimizer construction: parameter groups (no weight decay on biases and norm weights,
per-module learning rates) and the fastest implementation the device supports."""

from __future__ import annotations

import functools
import inspect

import torch
from torch import nn

from .errors import UserError
from .settings import ParamGroupSettings


def _target(factory) -> type:
    return factory.func if isinstance(factory, functools.partial) else factory


def _setting(factory, name: str, default=None):
    if isinstance(factory, functools.partial) and name in factory.keywords:
        return factory.keywords[name]
    param = inspect.signature(_target(factory)).parameters.get(name)
    return default if param is None or param.default is inspect.Parameter.empty else param.default


def parameter_groups(
    model: nn.Module,
    weight_decay: float,
    decay_bias_and_norm: bool = ParamGroupSettings.decay_bias_and_norm,
    module_lr: dict[str, float] | None = None,
) -> list[dict]:
    """Named parameter groups. Without decay on biases and norm weights (every parameter with
    fewer than 2 dimensions) they get weight_decay=0; `module_lr` maps a module name prefix
    (as in `model.named_parameters()`) to its own learning rate."""
    module_lr = dict(module_lr or {})
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    for prefix in module_lr:
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            tops = sorted({n.split(".")[0] for n in names})
            raise UserError(
                f"param_groups.module_lr names '{prefix}', which matches no parameter of the model. "
                f"Its modules: {', '.join(tops)} (prefixes of {', '.join(names[:6])}, ...).",
                key="param_groups.module_lr",
            )
    groups: dict[tuple[str, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        prefix = next(
            (
                p
                for p in sorted(module_lr, key=len, reverse=True)
                if name == p or name.startswith(p + ".")
            ),
            None,
        )
        no_decay = not decay_bias_and_norm and weight_decay > 0 and param.ndim < 2
        key = (prefix or "", no_decay)
        if key not in groups:
            label = (
                "/".join(part for part in (prefix, "no_decay" if no_decay else "") if part)
                or "default"
            )
            group = {"params": [], "name": label}
            if prefix is not None:
                group["lr"] = float(module_lr[prefix])
            if no_decay:
                group["weight_decay"] = 0.0
            groups[key] = group
        groups[key]["params"].append(param)
    return list(groups.values())


def build_optimizer(
    factory,
    model: nn.Module,
    device: torch.device,
    decay_bias_and_norm: bool = ParamGroupSettings.decay_bias_and_norm,
    module_lr: dict[str, float] | None = None,
) -> torch.optim.Optimizer:
    """Call the optimizer factory (a `_partial_` from the config) on the model's parameter groups.

    Uses the fused kernels where the optimizer and device support them and the config chose
    neither `fused` nor `foreach`."""
    weight_decay = float(_setting(factory, "weight_decay", 0.0) or 0.0)
    groups = parameter_groups(model, weight_decay, decay_bias_and_norm, module_lr)
    params = inspect.signature(_target(factory)).parameters
    chosen = isinstance(factory, functools.partial) and (
        {"fused", "foreach"} & set(factory.keywords)
    )
    if "fused" in params and not chosen and device.type in ("cpu", "cuda"):
        try:
            return factory(groups, fused=True)
        except Exception:
            pass  # no fused kernel for this optimizer / dtype / device (or bad settings: below)
    try:
        return factory(groups)
    except Exception as error:  # e.g. betas=[0.9]: IndexError inside torch
        name = _target(factory).__name__
        given = factory.keywords if isinstance(factory, functools.partial) else {}
        settings = ", ".join(f"optimizer.{k}={v}" for k, v in given.items())
        raise UserError(
            f"optimizer: {name} rejected its settings ({settings}): {type(error).__name__}: "
            f"{error}. See the arguments of torch.optim.{name}.",
            key="optimizer",
        ) from None
