"""Which `_target_`s read from a file (a checkpoint, a run's saved config) may be built: Hydra
builds whatever a `_target_` names, so a tampered file could otherwise run any function."""

from __future__ import annotations

import functools
import importlib
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import yaml
from omegaconf import OmegaConf

from .errors import UserError
from .paths import config_dir

TRUST_KEY = "trainer.trust_checkpoint_code"
# The only modules is_allowed imports, with the base classes their allowed classes derive from.
_LIBRARY = {
    "torch.nn": ("Module",),
    "torch.optim": ("Optimizer",),
    "torch.optim.lr_scheduler": ("LRScheduler", "ReduceLROnPlateau"),
}


@functools.cache
def shipped_targets() -> frozenset[str]:
    """Every `_target_` in the YAML files shipped under config_dir(), Hydra's own settings aside."""
    root = config_dir()
    targets = set()
    for path in root.rglob("*.yaml"):
        if path.relative_to(root).parts[0] == "hydra":
            continue
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "hydra"}
        targets.update(t for _, t in stored_targets(data) if isinstance(t, str))
    return frozenset(targets)


def is_allowed(target: str) -> bool:
    """Whether a stored `_target_` may be built without the user's say-so; never imports it."""
    return isinstance(target, str) and (target in shipped_targets() or _library_class(target))


@functools.cache
def _library_class(target: str) -> bool:
    """A torch.nn module, torch.optim optimizer or scheduler class, found with getattr."""
    module_name, _, name = target.rpartition(".")
    if module_name not in _LIBRARY or not name.isidentifier():
        return False
    module = importlib.import_module(module_name)  # one of the three keys of _LIBRARY
    obj = getattr(module, name, None)
    bases = tuple(getattr(module, base) for base in _LIBRARY[module_name])
    return isinstance(obj, type) and issubclass(obj, bases)


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(key path, value) of every node below `node`, containers included."""
    if isinstance(node, Mapping):
        items = ((f"{path}.{key}" if path else str(key), value) for key, value in node.items())
    elif isinstance(node, (list, tuple)):
        items = ((f"{path}[{i}]", value) for i, value in enumerate(node))
    else:
        return
    for key_path, value in items:
        yield key_path, value
        yield from _walk(value, key_path)


def _is_target(path: str) -> bool:
    return path.rpartition(".")[2] == "_target_"


def _plain(config: Any) -> Any:
    """`config` as plain dicts and lists, interpolations left unresolved."""
    return OmegaConf.to_container(config, resolve=False) if OmegaConf.is_config(config) else config


def stored_targets(config: Any) -> list[tuple[str, object]]:
    """(key path, value) of every `_target_` in a nested dict/list (or OmegaConf) structure."""
    return [(path, value) for path, value in _walk(_plain(config)) if _is_target(path)]


def _typed_targets(command_line: Iterable[str]) -> set[str]:
    """The values of the `[+|++]<key>._target_=<value>` overrides on the command line."""
    typed = set()
    for override in command_line:
        key, _, value = str(override).partition("=")
        if _is_target(key.lstrip("+")) and key[:1] != "~":
            quoted = len(value) > 1 and value[0] == value[-1] and value[0] in "'\""
            typed.add(value[1:-1] if quoted else value)
    typed.discard("")
    return typed


def _override(path: str, target: str) -> str | None:
    """The command-line override that accepts `target`, if it is a dotted import path."""
    key = re.sub(r"\[(\d+)\]", r".\1", path)  # Hydra spells a list item a.1.b
    override = shlex.quote(f"{key}={target}")
    dotted = all(part.isidentifier() for part in target.split("."))
    return override if dotted and override.isprintable() else None


def _interpolated(config: Any) -> list[str]:
    """Key paths of the strings holding an interpolation (`${...}`)."""
    return [path for path, value in _walk(config) if isinstance(value, str) and "${" in value]


def _resolved(config: Any, source: str) -> Any:
    """`config` resolved as Hydra resolves it before building (oc.create can make a node)."""
    if not _interpolated(config):
        return config
    try:
        resolved = OmegaConf.to_container(OmegaConf.create(config), resolve=True)
    except Exception as error:
        cause = (str(error).strip().splitlines() or [type(error).__name__])[0]
    else:
        if not _interpolated(resolved):
            return resolved
        cause = f"{_interpolated(resolved)[0]} holds an interpolation again once resolved"
        # (an escaped \${...}): left as it is, a later load or save would resolve it unchecked
    raise UserError(
        f"{source}: its interpolations cannot be resolved ({cause}), so trainer cannot tell what "
        f"it would build; pass {TRUST_KEY}=true only if you trust the file.",
        key=TRUST_KEY,
    )


def check_stored_config(
    config: Any, *, source: str, command_line: Iterable[str] = (), trusted: bool = False
) -> None:
    """Raise UserError, before anything is built, if `config` names code that is not accepted."""
    source, typed = str(source).replace("\n", " "), _typed_targets(command_line)
    config = _plain(config) if trusted else _resolved(_plain(config), source)
    refused = [
        (path, target)
        for path, target in stored_targets(config)
        if not isinstance(target, str) or not (trusted or target in typed or is_allowed(target))
    ]
    if not refused:
        return
    listing = ", ".join(
        f"{path if path.isprintable() else repr(path)}={target!r}"
        + ("" if isinstance(target, str) else " (not an import path: the file is damaged)")
        for path, target in refused
    )
    message = (
        f"{source} asks to build code that is not on trainer's allowlist (trainer's own config "
        f"targets and torch.nn, torch.optim and torch.optim.lr_scheduler classes): {listing}."
    )
    trustable = [(path, target) for path, target in refused if isinstance(target, str)]
    if trustable:
        them = "it" if len(trustable) == 1 else "them"
        overrides = [_override(path, target) for path, target in trustable]
        ways = f"pass {TRUST_KEY}=true"
        if all(overrides):
            ways = f"repeat {them} on the command line ({' '.join(overrides)}) or {ways}"
        message += (
            f" To accept {them}, {ways}; trusting runs that code, so only do it for checkpoints "
            "from a source you trust."
        )
    raise UserError(message, key=TRUST_KEY)
