"""Models. Input and output sizes come from the data set; configs only set the architecture."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence

from torch import nn

from .errors import UserError, choices_text
from .settings import SIZE_ARGUMENTS

ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "sigmoid": nn.Sigmoid,
}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise UserError(
            f"model.activation='{name}' is not known; valid: {choices_text(ACTIVATIONS)}.",
            key="model.activation",
        )
    return ACTIVATIONS[name]()


def _check_dropout(p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise UserError(f"model.dropout must be in [0, 1), got {p}.", key="model.dropout")


class Linear(nn.Module):
    """One linear layer: logistic / softmax / linear regression."""

    def __init__(self, input_shape: Sequence[int], num_outputs: int) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(math.prod(input_shape), num_outputs)

    def forward(self, x):
        return self.linear(self.flatten(x))


class MLP(nn.Module):
    """Fully connected layers: [Linear -> (BatchNorm) -> activation -> (Dropout)] x N -> Linear."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        _check_dropout(dropout)
        if any(int(h) < 1 for h in hidden_sizes):
            raise UserError(
                f"model.hidden_sizes must be positive, got {list(hidden_sizes)}.",
                key="model.hidden_sizes",
            )
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for size in hidden_sizes:
            layers.append(nn.Linear(width, int(size)))
            if batch_norm:
                layers.append(nn.BatchNorm1d(int(size)))
            layers.append(_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(size)
        layers.append(nn.Linear(width, num_outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class CNN(nn.Module):
    """A small convolutional net for images: [Conv3x3 -> (BatchNorm) -> ReLU] x 2 + MaxPool per block,
    then a fully connected head."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        channels: Sequence[int] = (16, 32),
        hidden_size: int = 64,
        dropout: float = 0.0,
        batch_norm: bool = False,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        _check_dropout(dropout)
        if len(input_shape) != 3:
            raise UserError(
                f"model=cnn needs image data shaped (channels, height, width); this data set has "
                f"{math.prod(input_shape)} flat features. Use an image data set such as "
                "dataset=digits, or model=mlp / model=linear for tabular data.",
                key="model",
            )
        in_channels, height, width = input_shape
        blocks: list[nn.Module] = []
        for out_channels in channels:
            blocks += [nn.Conv2d(in_channels, int(out_channels), 3, padding=1)]
            if batch_norm:
                blocks.append(nn.BatchNorm2d(int(out_channels)))
            blocks.append(_activation(activation))
            if min(height, width) >= 2:
                blocks.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            in_channels = int(out_channels)
        self.input_shape = tuple(input_shape)
        self.features = nn.Sequential(*blocks)
        head: list[nn.Module] = [
            nn.Flatten(),
            nn.Linear(in_channels * height * width, hidden_size),
            _activation(activation),
        ]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(hidden_size, num_outputs))
        self.head = nn.Sequential(*head)

    def forward(self, x):
        return self.head(self.features(x.reshape(-1, *self.input_shape)))


def size_arguments(
    target,
    input_shape: Sequence[int],
    num_classes: int | None,
    num_outputs: int,
    given: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The keyword arguments `target` (a model class) declares among SIZE_ARGUMENTS and the
    config does not set, with this data set's values: input_shape (one sample's shape),
    in_features (its number of values), in_channels (its first dimension, for images and
    sequences), num_classes (classification), num_outputs (what the loss needs per sample)."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return {}
    shape = tuple(int(d) for d in input_shape)
    values = {
        "input_shape": shape,
        "in_features": math.prod(shape),
        "in_channels": shape[0] if len(shape) >= 2 else None,
        "num_classes": num_classes,
        "num_outputs": num_outputs,
    }
    kwargs = {}
    for name in SIZE_ARGUMENTS:
        if name not in params or name in (given or {}):
            continue
        if values[name] is not None:
            kwargs[name] = values[name]
        elif params[name].default is inspect.Parameter.empty:
            why, use = (
                (f"this data set's samples are flat ({shape[0]} features)", "in_features")
                if name == "in_channels"
                else ("this data set is a regression", "num_outputs")
            )
            raise UserError(
                f"model._target_={getattr(target, '__qualname__', target)} requires {name}, but "
                f"{why}: declare {use} instead (trainer passes {use}={values[use]}), give "
                f"{name} a default, or set it: +model.{name}=<value>.",
                key=f"model.{name}",
            )
    return kwargs


def summarize(model: nn.Module) -> tuple[int, int, str]:
    """(parameters, trainable parameters, a text table of the layers)."""
    rows = ["| layer | type | parameters |", "|---|---|---:|"]
    for name, module in model.named_modules():
        if name and not list(module.children()):
            count = sum(p.numel() for p in module.parameters(recurse=False))
            rows.append(f"| {name} | {module.__class__.__name__}{_shape(module)} | {count:,} |")
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    rows.append(f"| **total** | | **{total:,}** |")
    return total, trainable, "\n".join(rows)


def _shape(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return f"({module.in_features} -> {module.out_features})"
    if isinstance(module, nn.Conv2d):
        return f"({module.in_channels} -> {module.out_channels}, {module.kernel_size[0]}x{module.kernel_size[1]})"
    return ""
