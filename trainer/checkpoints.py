"""Checkpoint files: snapshots, atomic writes with torch.save, safe loading, RNG state.

A checkpoint is plain containers and tensors only, so `torch.load(weights_only=True)` reads
it and loading never executes code.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import UserError
from .files import _fsync_dir, atomic_write

CHECKPOINT_FORMAT = 2  # 1: trainer 0.1, some parts packed (still read)


def save_checkpoint(state: dict, path: str | Path) -> None:
    atomic_write(path, lambda handle: torch.save(state, handle))


def copy_checkpoint(source: str | Path, path: str | Path) -> None:
    """best.pt from the last.pt just written, without serialising the state a second time: a hard
    link, renamed into place (the next last.pt replaces its own name, not this file), or a copy
    where the file system has no hard links."""
    source, path = Path(source), Path(path)
    link = path.with_name(f".{path.name}.link")
    try:
        link.unlink(missing_ok=True)
        os.link(source, link)
        os.replace(link, path)
        _fsync_dir(path.parent)
    except OSError:
        link.unlink(missing_ok=True)
        with open(source, "rb") as original:
            atomic_write(path, lambda handle: shutil.copyfileobj(original, handle, 1 << 20))


def snapshot(obj: Any) -> Any:
    """A CPU copy of a nested structure of containers and tensors, that training can't change
    while the copy waits to be written."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(snapshot(v) for v in obj)
    return obj


def _read_format_1(stored: dict) -> dict:
    """Checkpoints of trainer 0.1 before the redesign kept some parts packed: one flat tensor per
    dtype plus a JSON layout of where each tensor lay. Read them back into the plain layout."""
    blobs = stored["packed"]["blobs"]

    def walk(value: Any) -> Any:
        if type(value) is dict:
            if len(value) == 1 and "__packed__" in value:
                key, offset, shape = value["__packed__"]
                return blobs[key][offset : offset + math.prod(shape)].reshape(shape).clone()
            if len(value) == 1 and "__items__" in value:
                return {walk(k): walk(v) for k, v in value["__items__"]}
            if len(value) == 1 and "__tuple__" in value:
                return tuple(walk(v) for v in value["__tuple__"])
            return {k: walk(v) for k, v in value.items()}
        if type(value) is list:
            return [walk(v) for v in value]
        return value

    state = {k: v for k, v in stored.items() if k not in ("packed", "json")}
    for key, text in stored.get("json", {}).items():
        state[key] = walk(json.loads(text))
    state.update(walk(json.loads(stored["packed"]["layout"])))
    return state


def rng_state() -> dict:
    """The state of every random number generator a run draws from (plain containers)."""
    np_state = np.random.get_state()
    version, keys, gauss = random.getstate()
    state = {
        "python": {
            "version": version,
            "keys": torch.from_numpy(np.array(keys, dtype=np.int64)),
            "gauss": gauss,
        },
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    python = state["python"]
    random.setstate((python["version"], tuple(python["keys"].tolist()), python["gauss"]))
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _written_by_torch_save(path: Path) -> bool:
    """torch.save writes a zip archive (or, before torch 1.6, a pickle: protocol byte 0x80)."""
    import zipfile

    with path.open("rb") as handle:
        first = handle.read(1)
    return zipfile.is_zipfile(path) or first == b"\x80"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load with `weights_only=True`: a file that would run code when unpickled is refused."""
    path = Path(path)
    if path.is_file() and not _written_by_torch_save(path):
        raise UserError(
            f"'{path}' is not a checkpoint: torch.save did not write it, or it is truncated or "
            "corrupt. Resume from another one, e.g. checkpoints/best.pt.",
            key="trainer.resume",
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UserError(
            f"trainer.resume: no such checkpoint: '{path}'.", key="trainer.resume"
        ) from None
    except Exception as error:  # UnpicklingError for unsafe content, RuntimeError for corrupt zips
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
        unsafe = re.search(
            r"Unsupported global: GLOBAL (\S+)|Unsupported operand \S+|WeightsUnpickler error: (.*)",
            text,
        )
        if unsafe or "weights_only" in text:
            what = (
                unsafe.group(0).replace("WeightsUnpickler error: ", "")
                if unsafe
                else "a non-tensor object"
            )
            raise UserError(
                f"refused to load '{path}': it is not a plain checkpoint ({what}), and loading it "
                "could execute code. Only load checkpoints written by this tool from a source you "
                "trust.",
                key="trainer.resume",
            ) from None
        first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        raise UserError(
            f"'{path}' is not a readable checkpoint ({first}); it may be truncated or corrupt. "
            "Resume from another one, e.g. checkpoints/best.pt.",
            key="trainer.resume",
        ) from None
    if isinstance(state, dict) and "packed" in state:
        state = _read_format_1(state)
    if isinstance(state, dict) and isinstance(state.get("progress"), str):
        state["progress"] = json.loads(state["progress"])  # format 1 stored it as JSON text
    if not isinstance(state, dict) or "model" not in state or "format" not in state:
        raise UserError(
            f"'{path}' is not a checkpoint written by trainer (no model state in it).",
            key="trainer.resume",
        )
    return state
