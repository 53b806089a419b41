"""Transfer learning: start from saved weights (`model.weights`) and freeze parts of the model
(`model.freeze`). A weights file is read with `torch.load(weights_only=True)`: data, never code."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .errors import UserError

log = logging.getLogger("trainer")
KEY = "model.weights"


@dataclass
class WeightsReport:
    """What `load_weights` did, tensor by tensor."""

    source: Path
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the file
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model
    mismatched: list[str] = field(default_factory=list)  # both, shapes differ ("name (a vs b)")

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def text(self, done: bool = True) -> str:
        total = len(self.loaded) + len(self.unexpected) + len(self.mismatched)
        what = "loaded" if done else "fit"
        parts = [f"{len(self.loaded)} of the file's {total} tensors {what}"]
        for what, names in (
            ("shapes differ (file vs model)", self.mismatched),
            ("missing from the file (kept as initialised)", self.missing),
            ("unexpected (in the file, not in the model)", self.unexpected),
        ):
            if names:
                shown = ", ".join(names[:8]) + (
                    f", ... ({len(names)} in all)" if len(names) > 8 else ""
                )
                parts.append(f"{what}: {shown}")
        return "; ".join(parts)


def _resolve(source: str | Path) -> Path:
    """The file to read: a run directory's best checkpoint (else its last), or the file itself."""
    path = Path(source).expanduser()
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            for candidate in (path / "checkpoints" / name, path / name):
                if candidate.is_file():
                    return candidate
        raise UserError(
            f"{KEY}: '{path}' holds no checkpoint (no checkpoints/best.pt or checkpoints/last.pt); "
            "give a run directory that trained at least one epoch, a checkpoint file or a "
            "state_dict file (torch.save(model.state_dict(), 'weights.pt')).",
            key=KEY,
        )
    if not path.is_file():
        raise UserError(
            f"{KEY}: no such run directory or file: '{path}'. Give a run directory, a "
            "checkpoint file or a state_dict file (torch.save(model.state_dict(), 'weights.pt')).",
            key=KEY,
        )
    return path


def read_weights(source: str | Path) -> tuple[dict[str, torch.Tensor], Path]:
    """(state_dict, the file it came from) from a run directory, a trainer checkpoint (format 1
    or 2) or a plain state_dict file, loaded with weights_only=True."""
    from .checkpoints import _read_format_1

    path = _resolve(source)
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError for unsafe content, RuntimeError for corrupt files
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
        first = text.splitlines()[0] if text else type(error).__name__
        unsafe = "weights_only" in text or "Unsupported global" in text
        raise UserError(
            f"{KEY}: refused to load '{path}': it is not plain tensors ({first}), and loading it "
            "could execute code. Save the weights with torch.save(model.state_dict(), path)."
            if unsafe
            else f"{KEY}: '{path}' is not a readable weights file ({first}); it may be "
            "truncated, corrupt or not written by torch.save.",
            key=KEY,
        ) from None
    if isinstance(stored, dict) and "packed" in stored:
        stored = _read_format_1(stored)
    if isinstance(stored, dict) and "format" in stored and isinstance(stored.get("model"), dict):
        stored = stored["model"]  # a trainer checkpoint
    elif isinstance(stored, dict) and isinstance(stored.get("state_dict"), dict):
        stored = stored["state_dict"]  # the usual {"state_dict": ...} wrapper
    if not isinstance(stored, dict) or not stored:
        raise UserError(
            f"{KEY}: '{path}' holds no weights (a {type(stored).__name__}, not a state_dict of "
            "name -> tensor). Save them with torch.save(model.state_dict(), path).",
            key=KEY,
        )
    tensors = {str(k): v for k, v in stored.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise UserError(f"{KEY}: '{path}' holds no tensors.", key=KEY)
    if all(name.startswith("module.") for name in tensors):  # saved from a DDP-wrapped model
        tensors = {name[len("module.") :]: value for name, value in tensors.items()}
    return tensors, path


@torch.no_grad()
def load_weights(model: nn.Module, source: str | Path, strict: bool = True) -> WeightsReport:
    """Copy the tensors of `source` into `model` by name. `strict`: every tensor of the model
    and of the file must match (name and shape), else a UserError lists the differences and
    nothing is changed; without it the matching tensors are loaded and the rest reported."""
    stored, path = read_weights(source)
    own = model.state_dict()
    report = WeightsReport(path)
    for name, value in stored.items():
        if name not in own:
            report.unexpected.append(name)
        elif tuple(value.shape) != tuple(own[name].shape):
            report.mismatched.append(f"{name} ({_shape(value)} vs {_shape(own[name])})")
        else:
            report.loaded.append(name)
    report.missing = [name for name in own if name not in stored]
    if not report.loaded:
        raise UserError(
            f"{KEY}: no tensor of '{path}' fits this model ({report.text(done=False)}). Was it "
            "saved from "
            "another model? The names this model expects: "
            f"{', '.join(list(own)[:6])}{', ...' if len(own) > 6 else ''}.",
            key=KEY,
        )
    if strict and not report.complete:
        raise UserError(
            f"{KEY}: '{path}' does not fit this model exactly: {report.text(done=False)}. To "
            "load the "
            "tensors that fit and keep the others as initialised (e.g. a new output layer), add "
            "model.weights_strict=false.",
            key=KEY,
        )
    model.load_state_dict({name: stored[name] for name in report.loaded}, strict=False)
    return report


def _shape(tensor: torch.Tensor) -> str:
    return str(tuple(tensor.shape))


def freeze(model: nn.Module, prefixes: list[str]) -> list[str]:
    """Freeze the parameters whose names start with one of `prefixes` (a whole name or a module
    path, as in `model.named_parameters()`): no gradients, so no optimizer state and no change.
    BatchNorm layers whose parameters are all frozen keep their running statistics too (they
    normalise as in evaluation). Returns the frozen parameter names."""
    names = [name for name, _ in model.named_parameters()]

    def matches(name: str, prefix: str) -> bool:
        return name == prefix or name.startswith(prefix + ".")

    for prefix in prefixes:
        if not any(matches(name, prefix) for name in names):
            tops = [name for name, _ in model.named_children()] or names
            raise UserError(
                f"model.freeze names '{prefix}', which matches no parameter of the model. Its "
                f"top-level modules: {', '.join(tops)} (parameters such as "
                f"{', '.join(names[:6])}{', ...' if len(names) > 6 else ''}).",
                key="model.freeze",
            )
    frozen = []
    for name, param in model.named_parameters():
        if any(matches(name, prefix) for prefix in prefixes):
            param.requires_grad_(False)
            frozen.append(name)
    if len(frozen) == len(names):
        raise UserError(
            f"model.freeze={list(prefixes)} freezes every parameter of the model: nothing would "
            "train. Freeze a part of it, e.g. all but the output layer.",
            key="model.freeze",
        )
    norms = (nn.modules.batchnorm._BatchNorm,)
    for module in model.modules():
        params = list(module.parameters())
        if isinstance(module, norms) and params and not any(p.requires_grad for p in params):
            module.register_forward_pre_hook(_evaluation_mode)
    return frozen


def _evaluation_mode(module: nn.Module, args) -> None:
    """A frozen BatchNorm normalises with its running statistics and leaves them unchanged."""
    module.training = False
