"""A folder of images, one subfolder per class: `dataset=image_folder dataset.path=DIR`.

    DIR/cat/001.png  DIR/cat/002.jpg  DIR/dog/001.jpeg ...

Images are decoded with Pillow (torchvision is not needed), resized to `size`, made grayscale
or RGB, and kept as uint8 (channels, height, width). The decoded images are cached in
`cache_dir` (default `~/.cache/trainer/images`, or `$XDG_CACHE_HOME/trainer/images`) under a
key made of the folder, every file's name, size and modification time, and the decoding
options: a second run reads one .npy file instead of decoding again; changing any image makes
a new cache entry. Standardisation per channel with train statistics happens in DataModule;
random crops and flips happen on the training device (augment.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from .arrays import ArrayData
from .loading import ArrayRows, DatasetData, LoaderOptions, choose_loader

log = logging.getLogger("trainer")
_L = LoaderOptions
EXTENSIONS = (".png", ".jpg", ".jpeg")
COLORS = ("auto", "grayscale", "rgb")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def scan(path: str | None, key: str = "dataset.path") -> tuple[list[str], list[Path], np.ndarray]:
    """(class names, image files, labels) of a folder of class subfolders, sorted by name."""
    if not path:
        raise UserError(
            f"{key} is not set: name a folder with one subfolder of PNG/JPEG images per class, "
            f"e.g. {key}=data/images.",
            key=key,
        )
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"{key}='{path}' is not a folder.", key=key)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise UserError(
            f"{key}='{path}' has {len(folders)} class subfolder(s); it needs one subfolder of "
            "images per class, and at least two classes (e.g. DIR/cat/*.png, DIR/dog/*.png).",
            key=key,
        )
    files, labels = [], []
    for label, folder in enumerate(folders):
        images = sorted(images_in(folder))
        if not images:
            raise UserError(
                f"{key}: the class folder '{folder}' holds no images ({', '.join(EXTENSIONS)}); "
                "remove it or add its images.",
                key=key,
            )
        files += images
        labels += [label] * len(images)
    return [f.name for f in folders], files, np.asarray(labels, dtype=np.int64)


def images_in(folder: Path) -> list[Path]:
    return [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")
    ]


def _size(size) -> tuple[int, int]:
    values = [size, size] if isinstance(size, int) else list(size or [])
    if len(values) != 2 or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values
    ):
        raise UserError(
            f"dataset.size={size!r} must be [height, width] in pixels (or one number), "
            "e.g. dataset.size=[32,32].",
            key="dataset.size",
        )
    return values[0], values[1]


def decode(file: Path, size: tuple[int, int], channels: int, key: str) -> np.ndarray:
    """One image as uint8 (channels, height, width), or a UserError naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise UserError(
            f"{key}: the image '{file}' cannot be read ({type(error).__name__}: {error}); "
            "remove or replace it.",
            key=key,
        ) from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _is_gray(file: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(file) as image:
            return image.mode in _GRAY_MODES
    except OSError:
        return False  # decode() names the file


def _cache_root(cache_dir: str | None) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "trainer" / "images"


def _cache_key(root: Path, files: list[Path], size: tuple[int, int], color: str) -> str:
    digest = hashlib.sha256(json.dumps([str(root.resolve()), list(size), color]).encode())
    for file in files:
        stat = file.stat()
        digest.update(f"{file.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def decoded_images(
    root: Path, files: list[Path], size: tuple[int, int], color: str, cache: bool, cache_dir
) -> tuple[np.ndarray, str]:
    """uint8 (n, channels, height, width) for `files` (from the cache when it has them) and
    where they came from."""
    entry = _cache_root(cache_dir) / f"{_cache_key(root, files, size, color)}.npy"
    if cache and entry.is_file():
        try:
            return np.load(entry, mmap_mode="r"), f"decoded cache {entry}"
        except (ValueError, OSError):
            log.warning(
                f"dataset.cache_dir: the cache file '{entry}' is unreadable; decoding again."
            )
    channels = 1 if color == "grayscale" else 3
    if color == "auto":
        channels = 1 if all(_is_gray(f) for f in files) else 3
    images = np.empty((len(files), channels, *size), dtype=np.uint8)
    for i, file in enumerate(files):
        images[i] = decode(file, size, channels, "dataset.path")
    if cache:
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            partial = entry.with_name(f".{entry.name}.{os.getpid()}.partial")
            with partial.open("wb") as handle:
                np.save(handle, images)
            os.replace(partial, entry)
        except OSError as error:
            log.warning(f"dataset.cache_dir: cannot write the decoded cache ({error}).")
            return images, f"decoded {len(files)} files (cache not written)"
        return images, f"decoded {len(files)} files, cached in {entry}"
    return images, f"decoded {len(files)} files (dataset.cache=false)"


def image_folder(
    path: str | None = None,
    size: list[int] | int = (32, 32),
    color: str = "auto",
    crop_padding: int = 0,
    flip: bool = False,
    cache: bool = True,
    cache_dir: str | None = None,
    name: str | None = None,
    loader: str = _L.loader,
    memory_limit_mb: float = _L.memory_limit_mb,
    num_workers: int = _L.num_workers,
    pin_memory: bool = _L.pin_memory,
    persistent_workers: bool = _L.persistent_workers,
    prefetch_factor: int = _L.prefetch_factor,
):
    """Images in class subfolders as a multiclass (or binary) data set; class names are the
    folder names."""
    options = LoaderOptions(
        loader, memory_limit_mb, num_workers, pin_memory, persistent_workers, prefetch_factor
    )
    if color not in COLORS:
        raise UserError(
            f"dataset.color={color!r} is not one of: {', '.join(COLORS)} (auto: grayscale when "
            "every image is).",
            key="dataset.color",
        )
    if isinstance(crop_padding, bool) or not isinstance(crop_padding, int) or crop_padding < 0:
        raise UserError(
            f"dataset.crop_padding={crop_padding!r} must be a whole number of pixels >= 0.",
            key="dataset.crop_padding",
        )
    hw = _size(size)
    classes, files, labels = scan(path)
    root = Path(path).expanduser()
    images, origin = decoded_images(root, files, hw, color, cache, cache_dir)
    log.info(f"dataset.path: {len(files)} images in {len(classes)} classes; {origin}.")
    shape = tuple(images.shape[1:])
    task = "binary" if len(classes) == 2 else "multiclass"
    augment = {"crop_padding": crop_padding, "flip": flip} if crop_padding or flip else None
    if choose_loader(options, images.size * 4) == "dataloader":
        return DatasetData(
            parts={"train": ArrayRows(images, labels, shape)},
            targets=labels,
            task=task,
            name=name or root.name,
            input_shape=shape,
            class_names=classes,
            splits=None,
            options=options,
            augment=augment,
        )
    features = np.asarray(images, dtype=np.float32).reshape(len(files), -1)
    return ArrayData(
        features,
        labels,
        task=task,
        name=name or root.name,
        feature_names=[
            f"c{c}_{r}_{k}" for c in range(shape[0]) for r in range(hw[0]) for k in range(hw[1])
        ],
        class_names=classes,
        image_shape=shape,
        loading=options,
        augment=augment,
    )
