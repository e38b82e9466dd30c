"""Classification datasets: scikit-learn's bundled sets, seeded synthetic generators, and user arrays.

Nothing is downloaded: the named real datasets are the ones scikit-learn ships inside its package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

BUNDLED = ("breast_cancer", "wine", "digits", "iris")
SYNTHETIC = ("moons", "blobs")
DATASETS = BUNDLED + SYNTHETIC


@dataclass(frozen=True)
class Dataset:
    """A classification dataset with labels recoded to 0..C-1.

    Attributes:
        name: dataset name ("user" for arrays given by the caller).
        X: (N, d) float64 features, finite.
        y: (N,) int64 labels in 0..C-1.
        classes: the original label values; ``classes[y]`` gives them back.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    classes: np.ndarray

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]


def from_arrays(X: Any, y: Any, name: str = "user") -> Dataset:
    """Check user arrays and recode the labels (any hashable values) to 0..C-1.

    Raises:
        ValueError: X not 2-D, X or y with NaN/inf, lengths that differ, fewer than two classes.
    """
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"X must be a numeric 2-D array (n_samples, n_features): {exc}") from exc
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must be a non-empty 2-D array (n_samples, n_features), got shape {X.shape}")
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(axis=1).sum())
        raise ValueError(f"X contains NaN or inf in {bad} row(s); all feature values must be finite")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D array of labels, got shape {y.shape}")
    if len(y) != len(X):
        raise ValueError(f"X and y must have the same length: X has {len(X)} rows, y has {len(y)} labels")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y contains NaN or inf; labels must be finite class values")
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"y must contain at least two classes, got {len(classes)}")
    return Dataset(name=name, X=X, y=codes.astype(np.int64), classes=classes)


def load_dataset(name: str, **params: Any) -> Dataset:
    """Load a named dataset.

    Bundled (scikit-learn, no parameters): ``breast_cancer`` (569 x 30, 2 classes), ``wine`` (178 x 13, 3),
    ``digits`` (1797 x 64, 10), ``iris`` (150 x 4, 3).

    Synthetic (parameters; the data are fixed by ``seed``, the per-learner splits by the env's seed):

    - ``moons``: two interleaving half circles in 2-D. ``n_samples=500``, ``noise=0.2`` (Gaussian jitter),
      ``label_noise=0.0`` (fraction of labels flipped), ``seed=0``.
    - ``blobs``: Gaussian classes with identity covariance, means at ``separation`` times random unit directions.
      ``n_samples=500``, ``n_features=2``, ``n_classes=2``, ``separation=2.0``, ``label_noise=0.0``, ``seed=0``.
    """
    if name in BUNDLED:
        if params:
            raise ValueError(f"dataset {name!r} takes no parameters, got {sorted(params)}")
        import sklearn.datasets as skd

        X, y = getattr(skd, f"load_{name}")(return_X_y=True)
        return from_arrays(X, y, name=name)
    if name == "moons":
        return _moons(**params)
    if name == "blobs":
        return _blobs(**params)
    raise ValueError(f"dataset={name!r} is not known; choose one of {DATASETS} or pass X and y arrays")


def _check_params(name: str, n_samples: int, label_noise: float, seed: int) -> None:
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 4:
        raise ValueError(f"n_samples={n_samples!r} is not allowed for {name!r}; it must be an int >= 4")
    if not (0.0 <= label_noise < 1.0):
        raise ValueError(f"label_noise={label_noise!r} is not allowed; it must be in [0, 1)")
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed={seed!r} is not allowed; it must be an int")


def _flip(y: np.ndarray, n_classes: int, label_noise: float, rng: np.random.Generator) -> np.ndarray:
    """Move a ``label_noise`` fraction of labels to a uniformly drawn other class."""
    y = y.copy()
    flip = rng.random(len(y)) < label_noise
    shift = rng.integers(1, n_classes, size=len(y))
    y[flip] = (y[flip] + shift[flip]) % n_classes
    return y


def _moons(n_samples: int = 500, noise: float = 0.2, label_noise: float = 0.0, seed: int = 0) -> Dataset:
    _check_params("moons", n_samples, label_noise, seed)
    if not (noise >= 0 and np.isfinite(noise)):
        raise ValueError(f"noise={noise!r} is not allowed; it must be a finite number >= 0")
    rng = np.random.default_rng(seed)
    n0 = n_samples // 2
    angle = np.concatenate([np.linspace(0, np.pi, n0), np.linspace(0, np.pi, n_samples - n0)])
    y = np.concatenate([np.zeros(n0, dtype=np.int64), np.ones(n_samples - n0, dtype=np.int64)])
    X = np.where(
        (y == 0)[:, None],
        np.stack([np.cos(angle), np.sin(angle)], 1),
        np.stack([1.0 - np.cos(angle), 0.5 - np.sin(angle)], 1),
    )
    X = X + noise * rng.standard_normal(X.shape)
    order = rng.permutation(n_samples)
    y = _flip(y[order], 2, label_noise, rng)
    return Dataset(name="moons", X=X[order], y=y, classes=np.arange(2))


def _blobs(
    n_samples: int = 500,
    n_features: int = 2,
    n_classes: int = 2,
    separation: float = 2.0,
    label_noise: float = 0.0,
    seed: int = 0,
) -> Dataset:
    _check_params("blobs", n_samples, label_noise, seed)
    if not isinstance(n_features, (int, np.integer)) or n_features < 1:
        raise ValueError(f"n_features={n_features!r} is not allowed; it must be an int >= 1")
    if not isinstance(n_classes, (int, np.integer)) or not (2 <= n_classes <= n_samples):
        raise ValueError(f"n_classes={n_classes!r} is not allowed; it must be an int in [2, n_samples]")
    if not (separation >= 0 and np.isfinite(separation)):
        raise ValueError(f"separation={separation!r} is not allowed; it must be a finite number >= 0")
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((n_classes, n_features))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    means = separation * directions
    y = np.arange(n_samples) % n_classes
    rng.shuffle(y)
    X = means[y] + rng.standard_normal((n_samples, n_features))
    y = _flip(y.astype(np.int64), n_classes, label_noise, rng)
    return Dataset(name="blobs", X=X, y=y, classes=np.arange(n_classes))
