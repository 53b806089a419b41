"""Batches of in-memory tensors by indexing: no per-sample `__getitem__`, no collate.

The shuffle of epoch e is drawn from a generator seeded with (seed, e), so it does not depend
on anything else the run did: a resumed run sees exactly the batches it would have seen.
Under DDP every global batch is divided between the ranks, so N processes together take the
same optimizer steps as one process with the same `batch_size`.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..settings import TrainerSettings, batch_limit
from .splits import require_split


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


class TensorBatches:
    """Training batches: `batches(epoch, start)` yields this rank's (x, y) of each global batch
    (under DDP the ranks' shares differ by at most one sample)."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        limit: int | None = None,
        min_per_rank: int = 1,
        augment=None,
    ) -> None:
        self.x, self.y = x, y
        self.augment = augment  # augment.Augment: train-only, on the device, per batch
        self.batch_size = int(batch_size)
        self.shuffle, self.seed = shuffle, seed
        self.rank, self.world_size = rank, world_size
        n = len(x)
        full = -(-n // self.batch_size)
        if n % self.batch_size and n % self.batch_size < world_size * min_per_rank:
            # a last batch too small to give every rank `min_per_rank` samples (an empty rank;
            # BatchNorm, which cannot train on one sample) is left out of the epoch
            full -= 1
        self.num_batches = full if limit is None else min(full, int(limit))

    def __len__(self) -> int:
        return self.num_batches

    def samples(self) -> int:
        """Samples per epoch across all ranks."""
        return min(len(self.x), self.num_batches * self.batch_size)

    def global_sizes(self) -> list[int]:
        """Samples in each global batch of an epoch (all ranks together)."""
        n = len(self.x)
        return [min(self.batch_size, n - b * self.batch_size) for b in range(self.num_batches)]

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.x)
        order = epoch_permutation(n, self.seed, epoch).to(self.x.device) if self.shuffle else None
        for b in range(start, self.num_batches):
            lo, hi = b * self.batch_size, min(n, (b + 1) * self.batch_size)
            if self.world_size > 1:
                size = hi - lo
                lo, hi = (
                    lo + self.rank * size // self.world_size,
                    lo + (self.rank + 1) * size // self.world_size,
                )
            if order is None:
                x, y = self.x[lo:hi], self.y[lo:hi]
            else:
                idx = order[lo:hi]
                x, y = self.x.index_select(0, idx), self.y.index_select(0, idx)
            if self.augment is not None:
                x = self.augment(x, self.seed, epoch, b * self.world_size + self.rank)
            yield x, y


class EvalBatches:
    """Evaluation batches: contiguous slices (views) of this rank's contiguous shard."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        limit: int | None = None,
    ) -> None:
        n = len(x)
        lo, hi = rank * n // world_size, (rank + 1) * n // world_size
        self.x, self.y = x[lo:hi], y[lo:hi]
        self.batch_size = int(batch_size)
        count = -(-len(self.x) // self.batch_size)
        self.num_batches = count if limit is None else min(count, int(limit))

    def __len__(self) -> int:
        return self.num_batches

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for b in range(self.num_batches):
            yield (
                self.x[b * self.batch_size : (b + 1) * self.batch_size],
                self.y[b * self.batch_size : (b + 1) * self.batch_size],
            )


def _batches(split, cls, method: str):
    """A batches class for a split: in-memory (x, y) tensors, or a LoaderSplit (loaders.py)."""
    if isinstance(split, tuple):
        return lambda *args, **kwargs: cls(*split, *args, **kwargs)
    return getattr(split, method)


def training_batches(
    split,
    settings: TrainerSettings,
    rank: int = 0,
    world_size: int = 1,
    min_per_rank: int = 1,
    augment=None,
):
    """The training batches a run's settings ask for (TrainerSettings: batch size, seed,
    overfit_batches, fast_dev_run, limit_train_batches) over `split` ((x, y) tensors, or a
    LoaderSplit); each rank's share of a batch holds at least `min_per_rank` samples (2 for
    BatchNorm)."""
    make = _batches(split, TensorBatches, "train_batches")
    if settings.overfit_batches:  # the same first N batches every epoch, no shuffle
        return make(
            settings.batch_size,
            shuffle=False,
            rank=rank,
            world_size=world_size,
            limit=settings.overfit_batches,
            augment=augment,
        )
    batches = make(
        settings.batch_size,
        seed=settings.seed,
        rank=rank,
        world_size=world_size,
        min_per_rank=min_per_rank,
        augment=augment,
    )
    limit = (
        1
        if settings.fast_dev_run
        else batch_limit(settings.limit_train_batches, len(batches), "trainer.limit_train_batches")
    )
    if limit is not None:
        batches.num_batches = min(batches.num_batches, limit)
    return batches


def evaluation_batches(
    tensors: dict,
    split: str,
    settings: TrainerSettings,
    rank: int = 0,
    world_size: int = 1,
):
    """A split's evaluation batches; with overfit_batches, validation uses the training batches."""
    data = tensors[split]
    if not (settings.overfit_batches and split == "val"):  # (data.split may leave one out)
        what = "Trainer.test" if split == "test" else f"evaluating the {split} split"
        require_split({split: len(data[0] if isinstance(data, tuple) else data)}, split, what)
    count = None
    if settings.overfit_batches and split == "val":
        data = tensors["train"]
        count = settings.overfit_batches * settings.batch_size
        if isinstance(data, tuple):
            data, count = (data[0][:count], data[1][:count]), None
    make = _batches(data, EvalBatches, "eval_batches")
    extra = {} if count is None else {"count": count}
    batches = make(settings.eval_batch_size, rank=rank, world_size=world_size, **extra)
    if settings.overfit_batches and split == "val":
        return batches
    limit = (
        1
        if settings.fast_dev_run
        else batch_limit(
            settings.limit_val_batches if split == "val" else None,
            len(batches),
            f"trainer.limit_{split}_batches",
        )
    )
    if limit is not None:
        batches.num_batches = min(batches.num_batches, limit)
    return batches
