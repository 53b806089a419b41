"""Splitting a data set 70/15/15 and standardising it with train-split statistics only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import UserError


def _largest_remainder(quotas: np.ndarray, total: int, caps: np.ndarray) -> np.ndarray:
    """Whole numbers close to `quotas` that sum to `total` without exceeding `caps`."""
    counts = np.minimum(np.floor(quotas).astype(int), caps)
    order = np.argsort(-(quotas - np.floor(quotas)), kind="stable")
    i = 0
    while counts.sum() < total and i < 10 * len(order) + 10:
        j = order[i % len(order)]
        if counts[j] < caps[j]:
            counts[j] += 1
        i += 1
    return counts


def split_indices(
    n: int, fractions: Sequence[float], seed: int, stratify: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffled train/val/test index arrays; with `stratify` (class labels) each split keeps the
    class proportions. The split sizes are exactly round(fraction * n) for train and val. A
    fraction of 0 is a split left out on purpose (no validation or no test split): it is empty,
    and the rest goes to the splits before it; a fraction > 0 that rounds to no sample is an
    error."""
    train_frac, val_frac, test_frac = fractions
    n_train = int(round(train_frac * n))
    n_val = int(round(val_frac * n))
    if test_frac == 0:  # (rounding must not leave a sample or two for a split that is not there)
        n_train = n if val_frac == 0 else n_train
        n_val = n - n_train
    elif val_frac == 0:
        n_val = 0
    n_test = n - n_train - n_val
    given = (train_frac, val_frac, test_frac)
    if any(f > 0 and count < 1 for f, count in zip(given, (n_train, n_val, n_test))):
        raise UserError(
            f"data.split={list(fractions)} leaves an empty split for {n} samples "
            f"(train {n_train}, val {n_val}, test {n_test}); use larger fractions or more data "
            "(a fraction of 0 leaves that split out on purpose, e.g. data.split=[0.8,0.2,0]).",
            key="data.split",
        )
    rng = np.random.RandomState(seed)
    if stratify is None:
        order = rng.permutation(n)
        return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]

    classes, labels = np.unique(stratify, return_inverse=True)
    members = [rng.permutation(np.flatnonzero(labels == c)) for c in range(len(classes))]
    sizes = np.array([len(m) for m in members])
    train_counts = _largest_remainder(sizes * train_frac, n_train, sizes)
    val_counts = (
        sizes - train_counts  # no test split: validation takes the rest of every class
        if test_frac == 0
        else _largest_remainder(sizes * val_frac, n_val, sizes - train_counts)
    )
    parts = ([], [], [])
    for m, a, b in zip(members, train_counts, val_counts):
        parts[0].append(m[:a])
        parts[1].append(m[a : a + b])
        parts[2].append(m[a + b :])
    return tuple(rng.permutation(np.concatenate(p)) for p in parts)  # type: ignore[return-value]


def given_split_indices(
    given: dict, fractions: Sequence[float], seed: int, stratify: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Splits the user gave (index arrays; None for one not given, which is held out of the
    train indices at its share of `fractions`, stratified like `split_indices`)."""
    train = np.asarray(given["train"])
    out = {"train": train}
    for position, name in ((1, "val"), (2, "test")):
        if given.get(name) is not None:
            out[name] = np.asarray(given[name])
            continue
        share = fractions[position] / (fractions[0] + fractions[position])
        labels = None if stratify is None else stratify[train]
        keep, held = _two_way(len(train), share, seed + position, labels, name)
        out[name], train = train[held], train[keep]
        out["train"] = train
    return out["train"], out["val"], out["test"]


def _two_way(
    n: int, share: float, seed: int, labels: np.ndarray | None, name: str
) -> tuple[np.ndarray, np.ndarray]:
    n_held = int(round(share * n))
    if share == 0:  # data.split gives this split no share: it is left out on purpose
        return np.random.RandomState(seed).permutation(n), np.arange(0)
    if n_held < 1 or n - n_held < 1:
        raise UserError(
            f"the {name} split, held out of the {n} training samples at {share:.0%}, would "
            f"be empty; give dataset.{name} or more data.",
            key=f"dataset.{name}",
        )
    rng = np.random.RandomState(seed)
    if labels is None:
        order = rng.permutation(n)
        return order[n_held:], order[:n_held]
    classes, inverse = np.unique(labels, return_inverse=True)
    members = [rng.permutation(np.flatnonzero(inverse == c)) for c in range(len(classes))]
    sizes = np.array([len(m) for m in members])
    counts = _largest_remainder(sizes * share, n_held, sizes)
    held = np.concatenate([m[:c] for m, c in zip(members, counts)])
    keep = np.concatenate([m[c:] for m, c in zip(members, counts)])
    return rng.permutation(keep), rng.permutation(held)


def absent_splits(sizes: dict[str, int], monitor: str = "loss/train") -> dict[str, str]:
    """What a run without a validation or a test split says about it (the panels, metrics.json's
    `absent_splits`); {} when it has both."""
    notes = {}
    if not sizes.get("val"):
        notes["val"] = (
            "all data for training (data.split validation and test fractions 0): nothing "
            "measures how well the model generalises"
            if not sizes.get("test")
            else "no validation split (data.split validation fraction 0): nothing measures how "
            "well the model generalises before the test"
        ) + f"; the run monitors {monitor} (best.pt: its best epoch, last.pt: the final weights)"
    if not sizes.get("test"):
        notes["test"] = "no test split (data.split test fraction 0)" + (
            ": the end reports validation only" if sizes.get("val") else ""
        )
    return notes


def require_split(
    sizes: dict[str, int], name: str, what: str, split: Sequence[float] | None = None
) -> None:
    """`what` (e.g. "Trainer.test") needs the `name` split, which data.split (`split`, the
    run's) may have left out."""
    if not sizes.get(name):
        long = {"val": "validation", "test": "test"}[name]
        given = (
            "data.split=[" + ",".join(f"{float(f):g}" for f in split) + "]"
            if split is not None
            else "data.split"
        )
        raise UserError(
            f"{what} needs a {long} split, and this run has none: {given} gave the {long} "
            "fraction 0, so there is nothing to evaluate; its metrics.json reports what it "
            "has (python -m trainer.runs lists it). To measure a test score, train with a test "
            "share, e.g. data.split=[0.7,0.15,0.15].",
            key="data.split",
        )


class Standardizer:
    """Per-column (x - mean) / std with statistics from the rows it was fitted on.

    Missing values (NaN) are filled with the fitted mean first; constant columns keep
    std 1. With `scale=False` only the filling happens.
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray, fill: np.ndarray | None = None) -> None:
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.fill = self.mean if fill is None else np.asarray(fill, dtype=np.float32)

    @classmethod
    def fit(
        cls, values: np.ndarray, scale: bool = True, image_shape: tuple[int, ...] | None = None
    ) -> Standardizer:
        """Statistics per column; for images (`image_shape`: channels first) per channel, over
        every pixel of it, as image pipelines do: a pixel that is nearly constant in training
        must not become 50 standard deviations on one test image."""
        values = np.asarray(values, dtype=np.float64)
        pooled = values
        if image_shape is not None and len(values):
            pooled = values.reshape(len(values), image_shape[0], -1).transpose(0, 2, 1)
            pooled = pooled.reshape(-1, image_shape[0])  # (samples x pixels, channels)
        with np.errstate(all="ignore"):
            mean = np.nanmean(pooled, axis=0) if len(values) else np.zeros(values.shape[1:])
            std = np.nanstd(pooled, axis=0) if len(values) else np.ones(values.shape[1:])
        mean = np.where(np.isnan(mean), 0.0, mean)  # a column without a single value
        # (nearly) constant: float noise must not be scaled up into a feature
        std = np.where(~np.isfinite(std) | (std < 1e-6 * np.maximum(1.0, np.abs(mean))), 1.0, std)
        if image_shape is not None and len(values):
            pixels = values.shape[1] // image_shape[0]
            mean, std = np.repeat(mean, pixels), np.repeat(std, pixels)
        if not scale:
            return cls(np.zeros_like(mean), np.ones_like(std), fill=mean)
        return cls(mean, std)

    def transform(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float32)
        values = np.where(np.isnan(values), self.fill, values)
        return ((values - self.mean) / self.std).astype(np.float32)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float32) * self.std + self.mean

    def state_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "fill": self.fill.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict) -> Standardizer:
        return cls(np.asarray(state["mean"]), np.asarray(state["std"]), np.asarray(state["fill"]))
