"""What mode=predict reads besides CSV files: a folder of images, or arrays (.npz / .npy).

Each gives the rows to predict with a name per row (the image's path in the folder, or the
array row's index), the raw features in the layout the model was trained on, and the true
answers when the input has them (an image's class subfolder, a `y` array).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

KEY = "predict.input"


@dataclass
class Inputs:
    header: list[str]  # the columns naming each row
    rows: list[list[str]]
    features: np.ndarray  # raw, (n, n_features) float32
    truth: list[str] | None  # the true class name or value of each row, when known


def read_inputs(path: Path, data_state: dict, dataset: dict) -> Inputs:
    """A folder of images or a .npz / .npy file, for a model trained on `data_state`."""
    shape = tuple(data_state["input_shape"])
    if path.is_dir():
        return read_images(path, shape, dataset)
    return read_arrays(path, shape, dataset, data_state.get("class_names"))


def read_images(root: Path, shape: tuple[int, ...], dataset: dict) -> Inputs:
    """Every PNG/JPEG in `root` and its subfolders, decoded as the training images were."""
    from .image_folder import EXTENSIONS, decode

    if len(shape) != 3 or shape[0] not in (1, 3):
        raise UserError(
            f"{KEY}='{root}' is a folder of images, but the model takes inputs of shape "
            f"{list(shape)}, not images (1 or 3 channels, height, width); give a .npz file "
            "(array x) or a CSV file instead.",
            key=KEY,
        )
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)
    if not files:
        raise UserError(
            f"{KEY}='{root}' holds no images ({', '.join(EXTENSIONS)}), in it or its subfolders.",
            key=KEY,
        )
    images = np.stack([decode(f, shape[1:], shape[0], KEY) for f in files])
    names = [str(f.relative_to(root)) for f in files]
    nested = all(len(Path(n).parts) == 2 for n in names)  # class subfolders: their names
    truth = [Path(n).parts[0] for n in names] if nested else None
    return Inputs(
        ["file"], [[n] for n in names], images.reshape(len(files), -1).astype(np.float32), truth
    )


def read_arrays(
    file: Path, shape: tuple[int, ...], dataset: dict, class_names: list[str] | None = None
) -> Inputs:
    """Array x of a .npz (dataset.x_key of the training run, else `x`), or a .npy file."""
    from .array_files import read_npz

    suffix = file.suffix.lower()
    if suffix not in (".npz", ".npy") or not file.is_file():
        raise UserError(
            f"{KEY}='{file}' is not a CSV file, a .npz / .npy file or a folder of images.",
            key=KEY,
        )
    x_key, y_key = dataset.get("x_key") or "x", dataset.get("y_key") or "y"
    truth = None
    if suffix == ".npz":
        arrays = read_npz(file, {"x": x_key}, KEY)
        x = arrays["x"]
        with np.load(file, allow_pickle=False) as archive:
            if y_key in archive.files and len(archive[y_key]) == len(x):
                y = archive[y_key]
                if class_names is None:
                    truth = [str(v) for v in y]
                elif y.dtype.kind in "iu" and y.min() >= 0 and y.max() < len(class_names):
                    truth = [class_names[int(v)] for v in y]
    else:
        try:
            x = np.load(file, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise UserError(
                f"{KEY}='{file}' cannot be read as a .npy array ({error}).", key=KEY
            ) from None
    size = int(np.prod(shape))
    if x.ndim == 0 or x.dtype.kind not in "biuf" or x[0].size != size:
        raise UserError(
            f"{KEY}='{file}': the model takes samples of shape {list(shape)} ({size} values); "
            f"x is {x.dtype} of shape {list(x.shape)}.",
            key=KEY,
        )
    rows = [[str(i)] for i in range(len(x))]
    return Inputs(["row"], rows, np.asarray(x, dtype=np.float32).reshape(len(x), -1), truth)
