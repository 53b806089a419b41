"""Before training: one forward pass on a real batch checks that the model's output fits the
loss and the targets, so a wrong last layer is one clear message, not a broadcasting surprise
(MSE of (n,) against (n, 1)) or an error deep inside the first step."""

from __future__ import annotations

import traceback
from pathlib import Path

import torch
from torch import nn

from .errors import UserError
from .tasks import Head


def _shape(shape) -> str:
    return str(tuple(shape))


def _what(head: Head, loss_name: str) -> str:
    if head.kind == "logits":
        return f"{loss_name} on {head.num_outputs} classes"
    if head.kind == "logit":
        return f"{loss_name} on binary classification (one logit per sample)"
    targets = "target" if head.num_outputs == 1 else "targets"
    return f"{loss_name} on {head.num_outputs} regression {targets}"


def _fix(head: Head, got: tuple[int, ...]) -> str:
    k = head.num_outputs
    fix = (
        f"the last layer must give {k} output{'s' if k > 1 else ''} per sample: declare "
        f"num_outputs in the model's __init__ (trainer passes {k}) and end with e.g. "
        f"nn.Linear(..., num_outputs)"
    )
    if head.kind == "logit" and len(got) == 2 and got[1] == 2:
        fix += "; or keep two outputs and use loss=cross_entropy"
    if len(got) == 1:
        fix += f"; a model returning shape (n,) can end with .reshape(-1, {k})"
    return fix


def _user_frame(error: BaseException) -> str:
    """' (at file:line in function)' for the innermost frame outside torch, if any."""
    torch_dir = str(Path(torch.__file__).resolve().parent)
    frames = [
        f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith(torch_dir)
    ]
    if not frames:
        return ""
    frame = frames[-1]
    return f" (at {frame.filename}:{frame.lineno}, in {frame.name})"


@torch.no_grad()
def check_output(
    model: nn.Module, loss_fn: nn.Module, head: Head, x: torch.Tensor, y: torch.Tensor
) -> None:
    """Run `model` on the inputs `x` (in evaluation mode: no dropout noise, no BatchNorm
    statistics updated, no random number drawn) and compute the loss against `y` (targets in
    the loss's form, `head.targets`). Raises UserError naming both shapes and the fix."""
    name = type(model).__name__
    loss_name = type(loss_fn).__name__
    n = len(x)
    training = model.training
    model.eval()
    try:
        out = model(x)
    except Exception as error:
        raise UserError(
            f"model: {name} failed on a batch of inputs shaped {_shape(x.shape)}: "
            f"{type(error).__name__}: {error}{_user_frame(error)}. Its first layer must take "
            f"inputs shaped {_shape(x.shape[1:])} per sample: declare input_shape, in_features "
            "or in_channels in its __init__ and trainer passes this data set's sizes.",
            key="model",
        ) from None
    finally:
        model.train(training)
    if not isinstance(out, torch.Tensor):
        raise UserError(
            f"model: {name}.forward returned a {type(out).__name__}; it must return one tensor "
            f"of shape ({n}, {head.num_outputs}) for {_what(head, loss_name)}.",
            key="model",
        )
    expected = (n, head.num_outputs)
    if tuple(out.shape) != expected:
        raise UserError(
            f"model: {name} returns {_shape(out.shape)} for a batch of {n}, but "
            f"{_what(head, loss_name)} needs {_shape(expected)}: {_fix(head, tuple(out.shape))}.",
            key="model",
        )
    if not out.is_floating_point():
        raise UserError(
            f"model: {name} returns {out.dtype} values; {loss_name} needs floating-point outputs "
            "(raw scores / logits).",
            key="model",
        )
    try:
        loss = loss_fn(out.float(), y)
    except Exception as error:
        raise UserError(
            f"model: the loss {loss_name} failed on the model's output {_shape(out.shape)} and "
            f"targets {_shape(y.shape)}: {type(error).__name__}: {error}.",
            key="model",
        ) from None
    if loss.ndim != 0:
        raise UserError(
            f"loss: {loss_name} returned shape {_shape(loss.shape)} for outputs "
            f"{_shape(out.shape)}; it must reduce to one number (reduction='mean').",
            key="loss",
        )
