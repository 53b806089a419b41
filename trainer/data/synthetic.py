"""Synthetic data sets, generated on the fly from a seed.

moons and circles follow scikit-learn's `make_moons` / `make_circles` draw for draw (a test
checks it) without importing scikit-learn, which would add about a second to start-up.
"""

from __future__ import annotations

import numpy as np

from .arrays import ArrayData


def _shuffle_and_noise(
    rng: np.random.RandomState, x: np.ndarray, y: np.ndarray, noise: float | None
):
    order = np.arange(len(x))
    rng.shuffle(order)
    x, y = x[order], y[order]
    if noise:
        x = x + rng.normal(scale=noise, size=x.shape)
    return x, y


def moons(n_samples: int = 1000, noise: float = 0.2, seed: int = 0) -> ArrayData:
    """Two interleaving half circles: binary classification with 2 features."""
    rng = np.random.RandomState(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    outer = np.linspace(0, np.pi, n_out)
    inner = np.linspace(0, np.pi, n_in)
    x = np.vstack(
        [
            np.append(np.cos(outer), 1 - np.cos(inner)),
            np.append(np.sin(outer), 1 - np.sin(inner) - 0.5),
        ]
    ).T
    y = np.hstack([np.zeros(n_out, dtype=np.int64), np.ones(n_in, dtype=np.int64)])
    x, y = _shuffle_and_noise(rng, x, y, noise)
    return ArrayData(
        x, y, task="binary", name="moons", feature_names=["x0", "x1"], class_names=["0", "1"]
    )


def circles(
    n_samples: int = 1000, noise: float = 0.1, factor: float = 0.5, seed: int = 0
) -> ArrayData:
    """A small circle inside a large one: binary classification with 2 features."""
    rng = np.random.RandomState(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    outer = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    inner = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    x = np.vstack(
        [
            np.append(np.cos(outer), np.cos(inner) * factor),
            np.append(np.sin(outer), np.sin(inner) * factor),
        ]
    ).T
    y = np.hstack([np.zeros(n_out, dtype=np.int64), np.ones(n_in, dtype=np.int64)])
    x, y = _shuffle_and_noise(rng, x, y, noise)
    return ArrayData(
        x, y, task="binary", name="circles", feature_names=["x0", "x1"], class_names=["0", "1"]
    )


def blobs(
    n_samples: int = 1000,
    centers: int = 3,
    n_features: int = 2,
    cluster_std: float = 1.0,
    seed: int = 0,
) -> ArrayData:
    """Gaussian clusters, one class each (scikit-learn's make_blobs)."""
    from sklearn.datasets import make_blobs

    x, y = make_blobs(
        n_samples=n_samples,
        centers=centers,
        n_features=n_features,
        cluster_std=cluster_std,
        random_state=seed,
    )
    return ArrayData(
        x,
        y,
        task="binary" if centers == 2 else "multiclass",
        name="blobs",
        feature_names=[f"x{i}" for i in range(n_features)],
    )


def classification(
    n_samples: int = 1000,
    n_features: int = 20,
    n_informative: int = 10,
    n_classes: int = 3,
    class_sep: float = 1.0,
    seed: int = 0,
) -> ArrayData:
    """scikit-learn's make_classification: informative, redundant and noise features."""
    from sklearn.datasets import make_classification

    from ..errors import UserError

    if n_informative > n_features:
        raise UserError(
            f"dataset.n_informative={n_informative} is larger than dataset.n_features="
            f"{n_features}.",
            key="dataset.n_informative",
        )
    if n_classes > 2**n_informative:
        raise UserError(
            f"dataset.n_classes={n_classes} needs dataset.n_informative >= "
            f"{int(np.ceil(np.log2(n_classes)))}.",
            key="dataset.n_classes",
        )
    x, y = make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=n_informative,
        n_redundant=min(2, n_features - n_informative),
        n_classes=n_classes,
        n_clusters_per_class=1,
        class_sep=class_sep,
        random_state=seed,
    )
    return ArrayData(
        x,
        y,
        task="binary" if n_classes == 2 else "multiclass",
        name="classification",
        feature_names=[f"x{i}" for i in range(n_features)],
    )


def linear(
    n_samples: int = 500,
    slope: float = 3.0,
    intercept: float = -2.0,
    noise: float = 0.5,
    seed: int = 0,
) -> ArrayData:
    """y = slope * x + intercept + Gaussian noise, x uniform in [-3, 3]: regression."""
    rng = np.random.RandomState(seed)
    x = rng.uniform(-3, 3, size=(n_samples, 1))
    y = slope * x[:, 0] + intercept + rng.normal(scale=noise, size=n_samples)
    return ArrayData(
        x, y, task="regression", name="linear", feature_names=["x"], target_names=["y"]
    )


def quadratic(n_samples: int = 500, noise: float = 0.5, seed: int = 0) -> ArrayData:
    """y = x^2 + Gaussian noise, x uniform in [-3, 3]: non-linear regression."""
    rng = np.random.RandomState(seed)
    x = rng.uniform(-3, 3, size=(n_samples, 1))
    y = x[:, 0] ** 2 + rng.normal(scale=noise, size=n_samples)
    return ArrayData(
        x, y, task="regression", name="quadratic", feature_names=["x"], target_names=["y"]
    )
