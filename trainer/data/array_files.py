"""Your own arrays: a `.npz` file (arrays `x` and `y`, other names settable) or a pair of `.npy`
files. `.npy` files larger than `dataset.memory_limit_mb` are memory-mapped and read batch by
batch through a DataLoader; anything smaller is read into memory (the fast path).

    python -m trainer dataset=arrays dataset.path=data.npz
    python -m trainer dataset=arrays dataset.path=x.npy dataset.targets_path=y.npy
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from .arrays import ArrayData
from .custom import class_info, infer_task, sample_shape
from .loading import ArrayRows, DatasetData, LoaderOptions, choose_loader

_L = LoaderOptions  # the one place the loader options' defaults live


def _file(path: str | None, key: str, suffixes: tuple[str, ...]) -> Path:
    if not path:
        raise UserError(
            f"{key} is not set: name the file, e.g. {key}=data.npz (arrays x and y) or "
            f"{key}=x.npy with dataset.targets_path=y.npy.",
            key=key,
        )
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"{key}='{path}' does not exist (or is not a file).", key=key)
    if file.suffix.lower() not in suffixes:
        raise UserError(f"{key}='{path}' is not a {' or '.join(suffixes)} file.", key=key)
    return file


def _npy(file: Path, key: str, mmap: bool) -> np.ndarray:
    try:
        return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise UserError(
            f"{key}='{file}' cannot be read as a numpy .npy array ({error}).", key=key
        ) from None


def read_npz(file: Path, names: dict[str, str | None], key: str) -> dict[str, np.ndarray]:
    """The named arrays of a .npz file (a name None: optional, left out when absent)."""
    try:
        with np.load(file, allow_pickle=False) as archive:
            present = list(archive.files)
            out = {}
            for role, name in names.items():
                if name is None or (role == "classes" and name not in present):
                    continue
                if name not in present:
                    option = f"dataset.{role}_key"
                    raise UserError(
                        f"{key}='{file}' has no array '{name}' ({option}); it holds: "
                        f"{', '.join(present) or 'nothing'}. Set {option}=<one of them>.",
                        key=option,
                    )
                out[role] = archive[name]
            return out
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise UserError(
            f"{key}='{file}' cannot be read as a numpy .npz archive ({error}).", key=key
        ) from None


def load_arrays(
    path: str | None = None,
    targets_path: str | None = None,
    x_key: str = "x",
    y_key: str = "y",
    task: str = "auto",
    num_classes: int | None = None,
    class_names: list[str] | None = None,
    input_shape: list[int] | None = None,
    name: str | None = None,
    loader: str = _L.loader,
    memory_limit_mb: float = _L.memory_limit_mb,
    num_workers: int = _L.num_workers,
    pin_memory: bool = _L.pin_memory,
    persistent_workers: bool = _L.persistent_workers,
    prefetch_factor: int = _L.prefetch_factor,
):
    """Features x (n, ...) and targets y (n,) or (n, k) from .npz / .npy files."""
    options = LoaderOptions(
        loader, memory_limit_mb, num_workers, pin_memory, persistent_workers, prefetch_factor
    )
    file = _file(path, "dataset.path", (".npz", ".npy"))
    classes = None
    if file.suffix.lower() == ".npz":
        if targets_path:
            raise UserError(
                f"dataset.targets_path='{targets_path}' is for an x .npy file; "
                f"dataset.path='{path}' is a .npz archive that holds y itself "
                "(dataset.y_key names it).",
                key="dataset.targets_path",
            )
        arrays = read_npz(file, {"x": x_key, "y": y_key, "classes": "classes"}, "dataset.path")
        x, y, classes = arrays["x"], arrays["y"], arrays.get("classes")
    else:
        if not targets_path:
            raise UserError(
                f"dataset.path='{path}' is a .npy file of features; name its targets too: "
                "dataset.targets_path=y.npy (or give one .npz holding x and y).",
                key="dataset.targets_path",
            )
        target_file = _file(targets_path, "dataset.targets_path", (".npy",))
        big = file.stat().st_size > memory_limit_mb * 2**20 and loader != "memory"
        x = _npy(file, "dataset.path", mmap=big)
        y = _npy(target_file, "dataset.targets_path", mmap=False)
    where = f"'{file}'" + (f" and '{targets_path}'" if targets_path else "")
    if x.ndim == 0 or x.dtype.kind not in "biuf":
        raise UserError(
            f"dataset.path: x in {where} must be numbers of shape (samples, ...); it is "
            f"{x.dtype} of shape {list(x.shape)}.",
            key="dataset.path",
        )
    if len(x) != len(y):
        raise UserError(
            f"dataset.path: x and y in {where} differ in length: x has {len(x)} samples, "
            f"y has {len(y)}. They must hold one target per sample.",
            key="dataset.path",
        )
    if y.dtype.kind not in "biuf":
        raise UserError(
            f"dataset.path: y in {where} must be numbers (class indices or values); it is "
            f"{y.dtype}.",
            key="dataset.path",
        )
    kind = infer_task(np.asarray(y), task)
    names = class_names if class_names is not None else classes
    kind, names = class_info(
        np.asarray(y), kind, None if names is None else list(names), num_classes
    )
    shape = sample_shape(x[0], input_shape, where)
    label = name or file.stem
    nbytes = len(x) * int(np.prod(shape)) * 4
    if choose_loader(options, nbytes) == "dataloader":
        return DatasetData(
            parts={"train": ArrayRows(x, y, shape)},
            targets=np.asarray(y),
            task=kind,
            name=label,
            input_shape=shape,
            class_names=names,
            splits=None,
            options=options,
        )
    features = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    return ArrayData(
        features,
        np.asarray(y),
        task=kind,
        name=label,
        feature_names=[f"x{i}" for i in range(features.shape[1])],
        class_names=names,
        image_shape=shape if len(shape) == 3 else None,
        input_shape=shape,
        loading=options,
    )
