"""How a data set reaches the model: in memory (the whole split one tensor on the device,
batches by indexing) or through a torch DataLoader (read batch by batch). The choice is
automatic: in memory when the data fits in `memory_limit_mb`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UserError

LOADERS = ("auto", "memory", "dataloader")


@dataclass
class LoaderOptions:
    """The `dataset.loader ... prefetch_factor` options of the sources that have them."""

    loader: str = "auto"  # auto | memory | dataloader
    memory_limit_mb: float = 1024.0  # auto: in memory up to this many MB of float32 inputs
    num_workers: int = 0  # DataLoader worker processes (0: read in the training process)
    pin_memory: bool = False  # page-locked host memory, for faster copies to a GPU
    persistent_workers: bool = False  # keep the workers alive between epochs
    prefetch_factor: int = 2  # batches each worker reads ahead

    def __post_init__(self) -> None:
        if self.loader not in LOADERS:
            raise UserError(
                f"dataset.loader={self.loader!r} is not one of: {', '.join(LOADERS)}.",
                key="dataset.loader",
            )
        for key in ("num_workers", "prefetch_factor"):
            value = getattr(self, key)
            low = 0 if key == "num_workers" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserError(
                    f"dataset.{key}={value!r} must be a whole number >= {low}.",
                    key=f"dataset.{key}",
                )
        if not self.memory_limit_mb > 0:
            raise UserError(
                f"dataset.memory_limit_mb={self.memory_limit_mb} must be > 0.",
                key="dataset.memory_limit_mb",
            )

    def describe(self, chosen: str, nbytes: int) -> str:
        """What the start panel says about the choice."""
        size = f"{nbytes / 2**20:,.1f} MB"
        why = (
            f"{size} {'fits' if chosen == 'memory' else 'exceeds'} dataset.memory_limit_mb="
            f"{self.memory_limit_mb:g}"
            if self.loader == "auto"
            else f"dataset.loader={self.loader}"
        )
        if chosen == "memory":
            return f"in memory, batches indexed on the device ({why})"
        extra = f", prefetch {self.prefetch_factor}" if self.num_workers else ""
        extra += ", pinned" if self.pin_memory else ""
        extra += ", persistent workers" if self.persistent_workers and self.num_workers else ""
        return (
            f"torch DataLoader, {self.num_workers} worker{'s' * (self.num_workers != 1)}"
            f"{extra} ({why}); a resume is bitwise exact at every batch"
        )


def choose_loader(options: LoaderOptions, nbytes: int) -> str:
    """memory | dataloader, for data of `nbytes` float32 bytes."""
    if options.loader != "auto":
        return options.loader
    return "memory" if nbytes <= options.memory_limit_mb * 2**20 else "dataloader"


class ArrayRows:
    """Rows of (possibly memory-mapped) arrays as a map-style Dataset of (input, target)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, shape: tuple[int, ...]) -> None:
        self.x, self.y, self.shape = x, y, shape

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        return np.array(self.x[index], dtype=np.float32), self.y[index]  # a copy: mmap is read-only


@dataclass
class DatasetData:
    """A data set the DataLoader path reads: datasets (train, and val / test when given),
    every target in memory (in that order), and what the model needs to know."""

    parts: dict[str, Any]
    targets: np.ndarray
    task: str
    name: str
    input_shape: tuple[int, ...]
    class_names: list[str] | None
    splits: dict | None
    options: LoaderOptions
    augment: dict | None = None
    items: Any = field(init=False)

    def __post_init__(self) -> None:
        parts = list(self.parts.values())
        from torch.utils.data import ConcatDataset

        self.items = parts[0] if len(parts) == 1 else ConcatDataset(parts)
        self.targets = np.asarray(self.targets)
        if self.task == "regression":
            self.targets = self.targets.astype(np.float32)
        else:
            self.targets = self.targets.astype(np.int64)
        if len(self.targets) < 10:
            raise UserError(
                f"dataset '{self.name}' has {len(self.targets)} samples; at least 10 are "
                "needed to split it into train, validation and test sets.",
                key="dataset",
            )
