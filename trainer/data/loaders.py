"""The DataLoader path: data read batch by batch through a torch DataLoader, for data that
should not be one tensor in memory (dataset.loader=dataloader, or auto above memory_limit_mb).

The batches are the in-memory path's: the shuffle of epoch e is `epoch_permutation(n, seed,
e)`, cut into global batches, and under DDP each rank reads only its own share of each global
batch (what DistributedSampler does, per global batch so that N processes take the steps one
process takes). A batch sampler hands the DataLoader exactly the index lists of the batches
left in the epoch, so a resume mid-epoch reads no batch twice and skips none: with a Dataset
whose items do not depend on random numbers the resumed run is bitwise equal to the
uninterrupted one at every batch. Worker processes get seeds from a generator seeded with
(seed, epoch), never from the global RNG (so dropout draws are the in-memory path's); a
Dataset that draws random numbers in `__getitem__` is exactly reproduced from epoch
boundaries (without persistent_workers, whose workers keep their RNG across epochs).

Inputs are standardised on the device (train statistics, gathered in one streaming pass
before training); targets are held in memory (one number per sample).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from .batches import epoch_permutation
from .loading import DatasetData
from .module import SPLITS, DataModule, DataSpec
from .splits import Standardizer, given_split_indices, split_indices


class _Inputs(torch.utils.data.Dataset):
    """Split position -> (flat float32 input, position); runs in the worker processes."""

    def __init__(self, items: Any, indices: np.ndarray, size: int) -> None:
        self.items, self.indices, self.size = items, indices, size

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        index = int(self.indices[position])
        item = self.items[index]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise UserError(
                f"dataset: item {index} of {type(self.items).__name__} is not an (input, "
                "target) pair.",
                key="dataset",
            )
        x = torch.as_tensor(np.asarray(item[0]), dtype=torch.float32).reshape(-1)
        if x.numel() != self.size:
            raise UserError(
                f"dataset: item {index} of {type(self.items).__name__} has {x.numel()} input "
                f"values; the first has {self.size}. Every sample must have the same shape.",
                key="dataset",
            )
        return x, position


class _EpochBatches(torch.utils.data.Sampler):
    """The index lists of the batches a DataLoader reads next (set before each pass)."""

    def __init__(self) -> None:
        self.lists: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.lists)

    def __len__(self) -> int:
        return len(self.lists)


class LoaderSplit:
    """One split read through a DataLoader, standardised on the device."""

    def __init__(self, data: LoaderDataModule, split: str, device: torch.device, to_target):
        self.indices = data.indices[split]
        self.options, self.device, self.seed = data.source.options, device, data.seed
        size = int(np.prod(data.spec.input_shape))
        self.dataset = _Inputs(data.source.items, self.indices, size)
        scaler = data.feature_scaler
        self.mean, self.std, self.fill = (
            torch.as_tensor(v, dtype=torch.float32, device=device)
            for v in (scaler.mean, scaler.std, scaler.fill)
        )
        self.y = to_target(data.split_targets(split)).to(device)
        self.sampler = _EpochBatches()
        self._loader: torch.utils.data.DataLoader | None = None
        self._generator = torch.Generator()

    def __len__(self) -> int:
        return len(self.indices)

    def _make_loader(self) -> torch.utils.data.DataLoader:
        o = self.options
        workers = {}
        if o.num_workers:
            workers = {
                "prefetch_factor": o.prefetch_factor,
                "persistent_workers": o.persistent_workers,
                **_watch_parent(),
            }
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=self.sampler,
            num_workers=o.num_workers,
            pin_memory=o.pin_memory and self.device.type == "cuda",
            generator=self._generator,
            **workers,
        )

    def read(
        self, lists: list[list[int]], epoch: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(standardised x, y) on the device for each index list, in order."""
        self.sampler.lists = lists
        self._generator.manual_seed(self.seed * 1_000_003 + epoch)
        if self._loader is None or not self.options.persistent_workers:
            self._loader = self._make_loader()
        for x, positions in _reported(self._loader):
            x = x.to(self.device, non_blocking=True)
            x = torch.where(torch.isnan(x), self.fill, x)
            yield (x - self.mean) / self.std, self.y[positions.to(self.device)]

    def train_batches(self, batch_size: int, **kwargs) -> LoaderBatches:
        return LoaderBatches(self, batch_size, **kwargs)

    def eval_batches(self, batch_size: int, **kwargs) -> LoaderEvalBatches:
        return LoaderEvalBatches(self, batch_size, **kwargs)

    def materialise(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole split as standardised arrays (figures and predictions of one split)."""
        n, size = len(self.indices), 4096
        lists = [list(range(i, min(n, i + size))) for i in range(0, n, size)]
        xs, ys = zip(*((x.cpu().numpy(), y.cpu().numpy()) for x, y in self.read(lists, 0)))
        return np.concatenate(xs), np.concatenate(ys)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _watch_parent() -> dict[str, Any]:
    """The DataLoader option that ends each worker with this process (see end_with_parent),
    when the workers are this process's children: started by fork or spawn, not by a fork
    server (the start method of a process that a fork server started, and Python 3.14's
    default on Linux), whose children torch's own check covers. The kernel's signal comes when
    the *thread* that started a worker ends: it is asked for only from the main thread (where
    the trainer reads its data), so that persistent workers started from a thread of a user's
    own program outlive that thread, as torch's do."""
    import multiprocessing
    import threading

    if multiprocessing.get_start_method() not in ("fork", "spawn"):
        return {}
    main_thread = threading.current_thread() is threading.main_thread()
    return {"worker_init_fn": functools.partial(end_with_parent, os.getpid(), main_thread)}


def end_with_parent(parent: int, with_signal: bool, worker_id: int) -> None:
    """Runs first in every worker process. torch's workers notice that the run has died by
    comparing os.getppid() with the parent they saw when they started; a worker started just
    before a `kill -9` of the run saw its new parent (init) instead and waited forever, holding
    the run's terminal and shared memory. Here the kernel ends the worker when its parent dies
    (Linux's PR_SET_PDEATHSIG, `with_signal`), and a worker whose parent has already gone ends
    now."""
    if with_signal and sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(0)


def _reported(loader) -> Iterator:
    """The loader's batches; a UserError raised in a worker process keeps its own message."""
    iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except UserError as error:  # re-raised by the DataLoader with the worker's traceback
            lines = [line for line in str(error).splitlines() if "UserError:" in line]
            message = lines[-1].split("UserError:", 1)[1].strip() if lines else str(error)
            raise UserError(message, key="dataset") from None
        yield batch


class LoaderBatches:
    """Training batches read through a DataLoader; the interface of TensorBatches."""

    def __init__(
        self,
        split: LoaderSplit,
        batch_size: int,
        *,
        shuffle=True,
        seed=0,
        rank=0,
        world_size=1,
        limit=None,
        min_per_rank=1,
        augment=None,
    ) -> None:
        self.split, self.batch_size = split, int(batch_size)
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, seed, rank, world_size
        self.augment = augment
        n = len(split)
        full = -(-n // self.batch_size)
        if n % self.batch_size and n % self.batch_size < world_size * min_per_rank:
            full -= 1  # as TensorBatches: a last batch too small for every rank is left out
        self.num_batches = full if limit is None else min(full, int(limit))

    def __len__(self) -> int:
        return self.num_batches

    def samples(self) -> int:
        return min(len(self.split), self.num_batches * self.batch_size)

    def global_sizes(self) -> list[int]:
        n = len(self.split)
        return [min(self.batch_size, n - b * self.batch_size) for b in range(self.num_batches)]

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.split)
        order = epoch_permutation(n, self.seed, epoch) if self.shuffle else torch.arange(n)
        lists = []
        for b in range(start, self.num_batches):
            lo, hi = b * self.batch_size, min(n, (b + 1) * self.batch_size)
            size = hi - lo
            lo, hi = (
                lo + self.rank * size // self.world_size,
                lo + (self.rank + 1) * size // self.world_size,
            )
            lists.append(order[lo:hi].tolist())
        for b, (x, y) in enumerate(self.split.read(lists, epoch), start=start):
            if self.augment is not None:
                x = self.augment(x, self.seed, epoch, b * self.world_size + self.rank)
            yield x, y


class LoaderEvalBatches:
    """Evaluation batches of this rank's contiguous shard, read through a DataLoader."""

    def __init__(
        self, split: LoaderSplit, batch_size: int, *, rank=0, world_size=1, limit=None, count=None
    ):
        n = len(split) if count is None else min(len(split), count)
        self.split, self.batch_size = split, int(batch_size)
        self.lo, self.hi = rank * n // world_size, (rank + 1) * n // world_size
        count = -(-(self.hi - self.lo) // self.batch_size)
        self.num_batches = count if limit is None else min(count, int(limit))

    def __len__(self) -> int:
        return self.num_batches

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        lists = [
            list(
                range(
                    self.lo + b * self.batch_size, min(self.hi, self.lo + (b + 1) * self.batch_size)
                )
            )
            for b in range(self.num_batches)
        ]
        yield from self.split.read(lists, 0)


class _LazyArrays(dict):
    """split -> standardised (x, y), read on first use (for figures and predictions)."""

    def __init__(self, data: LoaderDataModule) -> None:
        super().__init__()
        self.data = data

    def __missing__(self, split: str):
        to_target = torch.as_tensor
        x, y = LoaderSplit(self.data, split, torch.device("cpu"), to_target).materialise()
        self[split] = (x, y)
        return x, y


class LoaderDataModule(DataModule):
    """DataModule for the DataLoader path: the same split, statistics, spec and state_dict,
    without holding the inputs in memory."""

    streams = True

    def __init__(
        self,
        source: DatasetData,
        split=(0.7, 0.15, 0.15),
        seed: int = 0,
        standardize: bool = True,
        standardize_targets: bool = True,
    ) -> None:
        self.source, self.seed = source, seed
        n = len(source.targets)
        stratify = source.targets if source.task != "regression" else None
        if source.splits is not None:
            indices = given_split_indices(source.splits, split, seed, stratify)
        else:
            indices = split_indices(n, split, seed, stratify)
        self.indices = dict(zip(SPLITS, indices))
        shape = tuple(source.input_shape)
        image = shape if len(shape) == 3 else None
        self.feature_scaler = _streamed_scaler(
            source, self.indices["train"], shape, image, standardize
        )
        self.target_scaler = None
        targets = source.targets
        if source.task == "regression":
            targets = targets.reshape(n, -1)
            self.target_scaler = Standardizer.fit(
                targets[self.indices["train"]], scale=standardize_targets
            )
            targets = self.target_scaler.transform(targets)
        self._targets = targets
        size = int(np.prod(shape))
        self.spec = DataSpec(
            name=source.name,
            task=source.task,
            input_shape=shape,
            num_classes=None if source.task == "regression" else len(source.class_names),
            num_targets=1 if source.task != "regression" else targets.shape[1],
            feature_names=[f"x{i}" for i in range(size)],
            class_names=source.class_names,
            target_names=None
            if source.task != "regression"
            else (["y"] if targets.shape[1] == 1 else [f"y{i}" for i in range(targets.shape[1])]),
            sizes={k: len(v) for k, v in self.indices.items()},
        )
        self.spec.loading = source.options.describe("dataloader", n * size * 4)
        self.augment = None
        if source.augment and image:
            from .augment import Augment

            self.augment = Augment(image, **source.augment)
            self.spec.loading += f"; augmentation: {self.augment.describe()}"
        self.arrays = _LazyArrays(self)

    def split_targets(self, split: str) -> np.ndarray:
        return self._targets[self.indices[split]]

    def class_counts(self) -> np.ndarray | None:
        if self.spec.task == "regression":
            return None
        return np.bincount(self.split_targets("train"), minlength=self.spec.num_classes)

    def raw_features(self, split: str) -> np.ndarray:
        x, _ = self.arrays[split]
        return self.feature_scaler.inverse(x)

    def splits_on(self, device: torch.device, to_target) -> dict[str, LoaderSplit]:
        return {name: LoaderSplit(self, name, device, to_target) for name in SPLITS}


def _streamed_scaler(
    source: DatasetData, train: np.ndarray, shape, image, scale: bool
) -> Standardizer:
    """Train statistics (per column, or per channel for images) in one pass, in float64."""
    size = int(np.prod(shape))
    loader = torch.utils.data.DataLoader(
        _Inputs(source.items, train, size),
        batch_size=1024,
        num_workers=source.options.num_workers,
    )
    groups = shape[0] if image else size
    count = np.zeros(groups)
    total = np.zeros(groups)
    squares = np.zeros(groups)
    for x, _ in loader:
        x = x.double().numpy()
        if image:
            x = x.reshape(len(x), shape[0], -1).transpose(0, 2, 1).reshape(-1, shape[0])
        seen = ~np.isnan(x)
        count += seen.sum(0)
        total += np.where(seen, x, 0).sum(0)
        squares += np.where(seen, x * x, 0).sum(0)
    with np.errstate(all="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
        std = np.sqrt(np.maximum(squares / np.maximum(count, 1) - mean**2, 0.0))
    std = np.where(~np.isfinite(std) | (std < 1e-6 * np.maximum(1.0, np.abs(mean))), 1.0, std)
    if image:
        mean, std = np.repeat(mean, size // shape[0]), np.repeat(std, size // shape[0])
    if not scale:
        return Standardizer(np.zeros_like(mean), np.ones_like(std), fill=mean)
    return Standardizer(mean, std)
