"""Your own torch Dataset: map-style, `dataset[i]` returns `(input, target)`.

    python -m trainer dataset=custom dataset.dataset._target_=mypkg.MyDataset +dataset.dataset.n=500

The task, input shape and class count come from the targets and one sample (a `classes`
attribute names the classes); each can be set. The data is split 70/15/15 (stratified for
classes) unless `dataset.val` / `dataset.test` datasets are given. Data that fits in
`dataset.memory_limit_mb` is read once into memory (the fast path); larger data, or
`dataset.loader=dataloader`, is read batch by batch through a torch DataLoader (loaders.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import UserError
from .arrays import ArrayData
from .loading import DatasetData, LoaderOptions, choose_loader

_L = LoaderOptions  # the one place the loader options' defaults live
TASKS = ("auto", "classification", "binary", "multiclass", "regression")
SPLITS = ("train", "val", "test")


def _name(dataset: Any) -> str:
    return type(dataset).__name__


def _item(dataset: Any, index: int, key: str) -> tuple[np.ndarray, np.ndarray]:
    """`dataset[index]` as (input, target) numpy arrays, or a UserError saying what it was."""
    try:
        item = dataset[index]
    except Exception as error:
        raise UserError(
            f"{key}: {_name(dataset)}[{index}] failed: {type(error).__name__}: {error}.", key=key
        ) from None
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        what = f"a {type(item).__name__}" + (
            f" of {len(item)} items" if isinstance(item, (tuple, list)) else ""
        )
        raise UserError(
            f"{key}: {_name(dataset)}[{index}] returned {what}; a dataset's items must be "
            "(input, target) pairs, e.g. `return torch.tensor(x), 3`.",
            key=key,
        )
    x, y = (_array(v, dataset, index, part, key) for v, part in zip(item, ("input", "target")))
    return x, y


def _array(value: Any, dataset: Any, index: int, part: str, key: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except Exception:
        array = np.asarray(None)
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise UserError(
            f"{key}: the {part} of {_name(dataset)}[{index}] is a {type(value).__name__}; "
            f"it must be a number, a numpy array or a tensor of numbers.",
            key=key,
        )
    return array


def dataset_size(dataset: Any, key: str) -> int:
    try:
        n = len(dataset)
    except TypeError:
        raise UserError(
            f"{key}: {_name(dataset)} has no len(); a map-style Dataset (with __len__ and "
            "__getitem__) is needed. Iterable datasets cannot be split or shuffled reproducibly.",
            key=key,
        ) from None
    if n < 1:
        raise UserError(f"{key}: {_name(dataset)} is empty (len 0).", key=key)
    return n


def infer_task(targets: np.ndarray, task: str, key: str = "dataset.task") -> str:
    """binary / multiclass for whole-number targets of one value per sample, else regression."""
    if task not in TASKS:
        raise UserError(f"{key}={task!r} is not one of: {', '.join(TASKS)}.", key=key)
    whole = targets.dtype.kind in "biu" and targets.ndim == 1
    if task == "auto":
        task = "classification" if whole else "regression"
    if task in ("classification", "binary", "multiclass"):
        if targets.ndim != 1 or not np.all(np.isfinite(targets)) or np.any(targets % 1 != 0):
            raise UserError(
                f"{key}={task}: the targets must be one whole number (a class index) per "
                f"sample; these are {targets.dtype} of shape {targets.shape[1:] or 'scalar'}.",
                key=key,
            )
        if targets.min() < 0:
            raise UserError(
                f"{key}={task}: class indices must be 0..C-1; a target is {int(targets.min())}.",
                key=key,
            )
    return task


def class_info(
    targets: np.ndarray, task: str, classes: Sequence[Any] | None, num_classes: int | None
) -> tuple[str, list[str] | None]:
    """(binary | multiclass | regression, class names)."""
    if task == "regression":
        return task, None
    seen = int(targets.max()) + 1
    count = num_classes or (len(classes) if classes is not None else seen)
    if seen > count:
        source = "dataset.num_classes" if num_classes else "the dataset's `classes`"
        raise UserError(
            f"a target is class {seen - 1}, but {source} gives {count} classes (0..{count - 1}).",
            key="dataset.num_classes",
        )
    names = [str(c) for c in classes][:count] if classes is not None else []
    names += [str(i) for i in range(len(names), count)]
    if task == "classification":
        task = "binary" if count == 2 else "multiclass"
    return task, names


def sample_shape(x: np.ndarray, input_shape: Sequence[int] | None, key: str) -> tuple[int, ...]:
    """The input shape a model sees: channels first for images ((H, W) becomes (1, H, W))."""
    if input_shape is not None:
        shape = tuple(int(v) for v in input_shape)
        if int(np.prod(shape)) != x.size:
            raise UserError(
                f"dataset.input_shape={list(shape)} holds {int(np.prod(shape))} values; a "
                f"sample of {key} has shape {list(x.shape)} ({x.size} values).",
                key="dataset.input_shape",
            )
        return shape
    if x.ndim == 0:
        return (1,)
    return (1, *x.shape) if x.ndim == 2 else tuple(x.shape)


def _targets(dataset: Any, n: int, key: str) -> np.ndarray:
    """Every target, read through a `targets` attribute when the dataset has one."""
    stored = getattr(dataset, "targets", None)
    if stored is not None:
        try:
            values = np.asarray(stored.numpy() if hasattr(stored, "numpy") else stored)
            if len(values) == n and values.dtype.kind in "biuf":
                return values
        except TypeError:
            pass
    return np.stack([_item(dataset, i, key)[1] for i in range(n)])


def _read_all(dataset: Any, n: int, shape: tuple[int, ...], key: str) -> np.ndarray:
    size = int(np.prod(shape))
    x = np.empty((n, size), dtype=np.float32)
    for i in range(n):
        xi = _item(dataset, i, key)[0]
        if xi.size != size:
            raise UserError(
                f"{key}: {_name(dataset)}[{i}] has an input of shape {list(xi.shape)}; sample 0 "
                f"has {list(shape)}. Every sample must have the same shape (resize them).",
                key=key,
            )
        x[i] = xi.reshape(-1)
    return x


def from_dataset(
    dataset: Any = None,
    val: Any = None,
    test: Any = None,
    task: str = "auto",
    num_classes: int | None = None,
    input_shape: list[int] | None = None,
    name: str | None = None,
    loader: str = _L.loader,
    memory_limit_mb: float = _L.memory_limit_mb,
    num_workers: int = _L.num_workers,
    pin_memory: bool = _L.pin_memory,
    persistent_workers: bool = _L.persistent_workers,
    prefetch_factor: int = _L.prefetch_factor,
):
    """Your map-style Dataset (and optional val / test datasets) as data the tool trains on:
    ArrayData (in memory) or DatasetData (read through a DataLoader)."""
    if dataset is None:
        raise UserError(
            "dataset=custom needs your Dataset: dataset.dataset._target_=mypkg.MyDataset "
            "(importable from the current directory), its arguments as "
            "+dataset.dataset.<name>=<value>.",
            key="dataset.dataset._target_",
        )
    parts = {"train": dataset, "val": val, "test": test}
    given = {k: d for k, d in parts.items() if d is not None}
    sizes = {
        k: dataset_size(d, f"dataset.{'dataset' if k == 'train' else k}") for k, d in given.items()
    }
    first_x, _ = _item(dataset, 0, "dataset.dataset")
    shape = sample_shape(first_x, input_shape, "dataset.dataset")
    targets = {
        k: _targets(d, sizes[k], f"dataset.{'dataset' if k == 'train' else k}")
        for k, d in given.items()
    }
    all_targets = np.concatenate(list(targets.values()))
    kind = infer_task(all_targets, task)
    kind, class_names = class_info(
        all_targets, kind, getattr(dataset, "classes", None), num_classes
    )
    options = LoaderOptions(
        loader, memory_limit_mb, num_workers, pin_memory, persistent_workers, prefetch_factor
    )
    total = sum(sizes.values())
    name = name or _name(dataset)
    splits = _given_splits(sizes)
    if choose_loader(options, total * int(np.prod(shape)) * 4) == "dataloader":
        return DatasetData(
            parts=given,
            targets=all_targets,
            task=kind,
            name=name,
            input_shape=shape,
            class_names=class_names,
            splits=splits,
            options=options,
        )
    features = np.concatenate(
        [
            _read_all(d, sizes[k], shape, f"dataset.{'dataset' if k == 'train' else k}")
            for k, d in given.items()
        ]
    )
    image = shape if len(shape) == 3 else None
    names = [f"x{i}" for i in range(features.shape[1])]
    return ArrayData(
        features,
        all_targets,
        task=kind,
        name=name,
        feature_names=names,
        class_names=class_names,
        image_shape=image,
        input_shape=shape,
        splits=splits,
        loading=options,
    )


def _given_splits(sizes: dict[str, int]) -> dict[str, np.ndarray | None] | None:
    """Index arrays into the concatenated (train, val, test) parts when val or test were given;
    a part not given (None) is held out of the train dataset by DataModule."""
    if len(sizes) == 1:
        return None
    splits: dict[str, np.ndarray | None] = {"train": np.arange(sizes["train"])}
    offset = sizes["train"]
    for k in ("val", "test"):
        splits[k] = None
        if k in sizes:
            splits[k] = np.arange(offset, offset + sizes[k])
            offset += sizes[k]
    return splits
