"""Checkpoint files: atomic writes on a background thread, safe loading, RNG state capture.

A checkpoint is plain containers and tensors only, so `torch.load(weights_only=True)` reads
it and loading never executes code.
"""

from __future__ import annotations

import atexit
import queue
import random
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import UserError
from .files import atomic_write, write_json
from .paths import resolve_checkpoint, run_dir_of

__all__ = [
    "BackgroundWriter",
    "atomic_write",
    "load_checkpoint",
    "resolve_checkpoint",
    "run_dir_of",
    "save_checkpoint",
    "write_json",
]


def save_checkpoint(state: dict, path: str | Path) -> None:
    atomic_write(path, lambda handle: torch.save(state, handle))


def cpu_copy(obj: Any) -> Any:
    """A deep copy with every tensor copied to the CPU and every value a plain container, number
    or string (no subclasses, no numpy): a snapshot training can't change, loadable with
    `weights_only=True`."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {cpu_copy(k): cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return (list if isinstance(obj, list) else tuple)(cpu_copy(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    for plain in (bool, int, float, str):
        if isinstance(obj, plain):
            return plain(obj)
    return obj


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
    state = {
        "python": random.getstate(),
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
    random.setstate(_as_tuple(state["python"]))
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


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


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
    if not isinstance(state, dict) or "model" not in state or "format" not in state:
        raise UserError(
            f"'{path}' is not a checkpoint written by trainer (no model state in it).",
            key="trainer.resume",
        )
    return state
