"""The real data sets that scikit-learn ships on disk (nothing is downloaded)."""

from __future__ import annotations

import numpy as np

from .arrays import ArrayData


def digits() -> ArrayData:
    """8x8 images of handwritten digits 0-9 (1,797 samples); a CNN sees images, an MLP 64 pixels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    names = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    return ArrayData(
        bunch.data,
        bunch.target,
        task="multiclass",
        name="digits",
        feature_names=names,
        class_names=[str(c) for c in bunch.target_names],
        image_shape=(1, 8, 8),
    )


def _bunch(loader, name: str, task: str) -> ArrayData:
    bunch = loader()
    class_names = None if task == "regression" else [str(c) for c in bunch.target_names]
    return ArrayData(
        np.asarray(bunch.data),
        bunch.target,
        task=task,
        name=name,
        feature_names=[str(f) for f in bunch.feature_names],
        class_names=class_names,
    )


def iris() -> ArrayData:
    """Fisher's iris flowers: 150 samples, 4 features, 3 classes."""
    from sklearn.datasets import load_iris

    return _bunch(load_iris, "iris", "multiclass")


def wine() -> ArrayData:
    """Wine cultivars: 178 samples, 13 chemical features, 3 classes."""
    from sklearn.datasets import load_wine

    return _bunch(load_wine, "wine", "multiclass")


def breast_cancer() -> ArrayData:
    """Wisconsin breast cancer: 569 samples, 30 features, malignant vs benign (binary)."""
    from sklearn.datasets import load_breast_cancer

    return _bunch(load_breast_cancer, "breast_cancer", "binary")


def diabetes() -> ArrayData:
    """Diabetes progression after one year: 442 patients, 10 features, regression."""
    from sklearn.datasets import load_diabetes

    data = _bunch(load_diabetes, "diabetes", "regression")
    data.target_names = ["progression"]
    return data
