"""Checkpoint files: atomic writes on a background thread, safe loading, RNG state capture.

A checkpoint is plain containers and tensors only, so `torch.load(weights_only=True)` reads
it and loading never executes code.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import queue
import random
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import UserError
from .files import _fsync_dir, atomic_write, write_json
from .paths import resolve_checkpoint, run_dir_of

__all__ = [
    "BackgroundWriter",
    "atomic_write",
    "copy_checkpoint",
    "load_checkpoint",
    "resolve_checkpoint",
    "run_dir_of",
    "save_checkpoint",
    "write_json",
]


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


_PACKED = "__packed__"  # marks a tensor's place in a packed structure


def pack(obj: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Copy every tensor of a nested structure into one flat CPU tensor per dtype, leaving a
    reference [dtype, offset, shape] in its place. torch.save pays ~55 us per tensor; an
    optimizer's dozens of small state tensors packed this way cost as much as one."""
    pieces: dict[str, list[torch.Tensor]] = {}
    sizes: dict[str, int] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            key = str(value.dtype).removeprefix("torch.")
            flat = value.detach().reshape(-1)
            offset = sizes.get(key, 0)
            sizes[key] = offset + flat.numel()
            pieces.setdefault(key, []).append(flat)
            return {_PACKED: [key, offset, list(value.shape)]}
        if type(value) is dict:
            return {k: walk(v) for k, v in value.items()}
        if type(value) in (list, tuple):
            return type(value)(walk(v) for v in value)
        return value

    structure = walk(obj)
    blobs = {key: torch.cat(parts).to("cpu", copy=True) for key, parts in pieces.items()}
    return structure, blobs


def unpack(structure: Any, blobs: dict[str, torch.Tensor]) -> Any:
    def walk(value: Any) -> Any:
        if type(value) is dict:
            if len(value) == 1 and _PACKED in value:
                key, offset, shape = value[_PACKED]
                count = math.prod(shape)
                return blobs[key][offset : offset + count].reshape(shape).clone()
            return {k: walk(v) for k, v in value.items()}
        if type(value) in (list, tuple):
            return type(value)(walk(v) for v in value)
        return value

    return walk(structure)


def _to_json(value: Any) -> Any:
    """JSON that keeps what plain JSON would lose: non-string dict keys and tuples."""
    if type(value) is dict:
        if all(type(k) is str for k in value):
            return {k: _to_json(v) for k, v in value.items()}
        return {"__items__": [[_to_json(k), _to_json(v)] for k, v in value.items()]}
    if type(value) is tuple:
        return {"__tuple__": [_to_json(v) for v in value]}
    if type(value) is list:
        return [_to_json(v) for v in value]
    return value


def _from_json(value: Any) -> Any:
    if type(value) is dict:
        if "__items__" in value and len(value) == 1:
            return {_from_json(k): _from_json(v) for k, v in value["__items__"]}
        if "__tuple__" in value and len(value) == 1:
            return tuple(_from_json(v) for v in value["__tuple__"])
        return {k: _from_json(v) for k, v in value.items()}
    if type(value) is list:
        return [_from_json(v) for v in value]
    return value


def freeze(state: dict, packed_keys: tuple[str, ...], json_keys: tuple[str, ...] = ()) -> dict:
    """The file form of a checkpoint, as a snapshot training can't change: the model's weights
    one tensor per parameter (readable with torch.load); the parts in `packed_keys` as one flat
    tensor per dtype plus their layout in one JSON string; the parts in `json_keys` as JSON. Few
    objects, because torch.save pays per object."""
    frozen = {
        k: v
        for k, v in state.items()
        if k not in packed_keys and k not in json_keys and k != "model"
    }
    frozen["model"] = {k: v.detach().to("cpu", copy=True) for k, v in state["model"].items()}
    structure, blobs = pack({k: state[k] for k in packed_keys})
    frozen["packed"] = {"layout": json.dumps(_to_json(structure)), "blobs": blobs}
    frozen["json"] = {k: json.dumps(_to_json(state[k])) for k in json_keys}
    return frozen


def thaw(frozen: dict) -> dict:
    """The logical checkpoint back from its file form."""
    state = {k: v for k, v in frozen.items() if k not in ("packed", "json")}
    for key, text in frozen.get("json", {}).items():
        state[key] = _from_json(json.loads(text))
    if "packed" in frozen:
        layout = _from_json(json.loads(frozen["packed"]["layout"]))
        state.update(unpack(layout, frozen["packed"]["blobs"]))
    return state


class BackgroundWriter:
    """Writes files in submission order on one daemon thread, so the training loop never waits
    for the disk. `wait()` blocks until everything submitted is on disk and re-raises a failure."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(self, write, *args) -> None:
        self._raise_pending()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._work, name="checkpoint-writer", daemon=True
            )
            self._thread.start()
            atexit.register(self._drain)  # never let the interpreter exit in the middle of a write
        self._queue.put((write, args))

    def _drain(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.join()

    def _work(self) -> None:
        while True:
            write, args = self._queue.get()
            try:
                if self._error is None:
                    write(*args)
            except BaseException as error:  # reported to the training thread on its next call
                self._error = error
            finally:
                self._queue.task_done()

    def wait(self) -> None:
        self._queue.join()
        self._raise_pending()

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load with `weights_only=True`: a file that would run code when unpickled is refused."""
    path = Path(path)
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
        state = thaw(state)
    if not isinstance(state, dict) or "model" not in state or "format" not in state:
        raise UserError(
            f"'{path}' is not a checkpoint written by trainer (no model state in it).",
            key="trainer.resume",
        )
    return state
