"""Classification datasets: scikit-learn's bundled sets, the Swiss banknote data, seeded synthetic generators, and
user arrays.

Nothing is downloaded: the named real datasets are the ones scikit-learn ships inside its package, and the Swiss
banknote measurements (Flury and Riedwyl, *Multivariate Statistics: A Practical Approach*, 1988; 200 notes, six
measurements in mm, 100 genuine and 100 counterfeit), which ship inside this package (``swiss_banknote.csv``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reciprocal_gym.arguments import MAX_SEED, Integer, Real, show

BUNDLED = ("breast_cancer", "wine", "digits", "iris", "swiss_banknote")
BANKNOTE_FEATURES = ("Length", "Left", "Right", "Bottom", "Top", "Diagonal")
"""The Swiss banknote measurements (mm), in the file's column order."""
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


MAX_FEATURE = 1e100
"""Largest feature magnitude accepted: the standardization squares the features, and 1e100 keeps the squares and
their sums finite in float64. Rescale larger features (e.g. to other units) before passing them."""

MAX_FEATURE_FLOAT32 = 1e18
"""Largest feature magnitude a float32 pool env accepts: it keeps the raw rows and their products with the
standardization's folded weights finite in float32."""

MAX_CLASSES = 1000


def real_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a float64 array; a clear error for complex, text, object or ragged input (nothing dropped)."""
    if value is None:
        raise ValueError(f"{name}=None is not allowed; it must be an array of real numbers")
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise ValueError(f"{name} must be an array of real numbers with a regular shape: {exc}") from exc
    if raw.dtype.kind == "c":
        raise ValueError(f"{name} has complex values (dtype {raw.dtype}); it must be real (imaginary parts are not "
                         "dropped silently: pass the real part, or both parts as separate columns)")
    if raw.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be an array of real numbers, got dtype {raw.dtype} (e.g. {show(raw.flat[0])})"
                         if raw.size else f"{name} must be an array of real numbers, got dtype {raw.dtype}")
    return raw.astype(np.float64)


def check_features(name: str, X: np.ndarray) -> None:
    """Raise unless the 2-D float array ``X`` is non-empty, finite and within :data:`MAX_FEATURE`."""
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n_samples, n_features), got shape {X.shape}")
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(axis=1).sum())
        raise ValueError(f"{name} contains NaN or inf in {bad} row(s); all feature values must be finite")
    largest = float(np.abs(X).max())
    if largest > MAX_FEATURE:
        raise ValueError(f"{name} has features as large as {largest:.3g}; the largest magnitude allowed is "
                         f"{MAX_FEATURE:g} (the standardization would overflow): rescale the features")


def encode_labels(name: str, y: Any, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(classes, codes) of class labels ``y`` (ints, integer-valued floats, strings or bools, not mixed)."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of labels, got shape {y.shape}")
    if len(y) != n_rows:
        raise ValueError(f"X and {name} must have the same length: X has {n_rows} rows, {name} has {len(y)} labels")
    if y.dtype.kind == "c":
        raise ValueError(f"{name} has complex values (dtype {y.dtype}); labels must be class values")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise ValueError(f"{name} contains NaN or inf; labels must be finite class values")
        fractional = y[y != np.round(y)]
        if len(fractional):
            raise ValueError(f"{name} has non-integer values (e.g. {float(fractional[0])!r}): it looks like a "
                             "regression target; the learners are classifiers, so give class labels (ints or strings)")
    if y.dtype.kind == "O":
        kinds = {type(v).__name__ for v in y}
        if any(v is None or (isinstance(v, float) and not np.isfinite(v)) for v in y):
            raise ValueError(f"{name} contains None or NaN; every row needs a class label")
        if len({"str" if k in ("str", "str_") else "number" for k in kinds}) > 1:
            raise ValueError(f"{name} mixes label types ({', '.join(sorted(kinds))}); give labels of one kind, "
                             "e.g. all ints or all strings")
    if y.dtype.kind not in "biufUSO":
        raise ValueError(f"{name} must hold class labels (ints or strings), got dtype {y.dtype}")
    try:
        classes, codes = np.unique(y, return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"{name} holds labels that cannot be ordered ({exc}); give ints or strings") from exc
    if len(classes) < 2:
        raise ValueError(f"{name} must contain at least two classes, got {len(classes)}")
    if len(classes) > min(MAX_CLASSES, n_rows / 2):
        raise ValueError(f"{name} has {len(classes)} distinct values in {n_rows} rows: too many classes for a "
                         f"classification set (at most {MAX_CLASSES} and at most one class per two rows); "
                         "is it a regression target?")
    return classes, codes.astype(np.int64).reshape(-1)


def from_arrays(X: Any, y: Any, name: str = "user") -> Dataset:
    """Check user arrays and recode the labels (ints, integer-valued floats, strings) to 0..C-1.

    Raises:
        ValueError: X not a 2-D real array (complex and text are refused, not converted), X with NaN/inf or
            features beyond :data:`MAX_FEATURE`; y not 1-D, with NaN, non-integer floats (a regression target),
            mixed label types, fewer than two classes or more classes than half the rows; lengths that differ.
    """
    X = real_array("X", X)
    check_features("X", X)
    classes, codes = encode_labels("y", y, len(X))
    return Dataset(name=name, X=X, y=codes, classes=classes)


def load_dataset(name: str, **params: Any) -> Dataset:
    """Load a named dataset.

    Bundled (scikit-learn, no parameters): ``breast_cancer`` (569 x 30, 2 classes), ``wine`` (178 x 13, 3),
    ``digits`` (1797 x 64, 10), ``iris`` (150 x 4, 3). ``swiss_banknote`` (200 x 6, 2 classes: 0 counterfeit,
    1 genuine; Flury and Riedwyl 1988), parameter ``features``: a sequence of column names from
    :data:`BANKNOTE_FEATURES` (default all six, e.g. ``("Diagonal", "Bottom", "Length")`` as in the seed paper).

    Synthetic (parameters; the data are fixed by ``seed``, the per-learner splits by the env's seed):

    - ``moons``: two interleaving half circles in 2-D. ``n_samples=500``, ``noise=0.2`` (Gaussian jitter),
      ``label_noise=0.0`` (fraction of labels flipped), ``seed=0``.
    - ``blobs``: Gaussian classes with identity covariance, means at ``separation`` times random unit directions.
      ``n_samples=500``, ``n_features=2``, ``n_classes=2``, ``separation=2.0``, ``label_noise=0.0``, ``seed=0``.
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"dataset={show(name)} is not known; choose one of {DATASETS} or pass X and y arrays")
    if name == "swiss_banknote":
        if set(params) - {"features"}:
            raise ValueError(f"dataset_kwargs {sorted(set(params) - {'features'})} are not parameters of "
                             "'swiss_banknote'; allowed: ('features',)")
        return _swiss_banknote(**params)
    if name in BUNDLED:
        if params:
            raise ValueError(f"dataset {name!r} takes no parameters, got {sorted(params)}")
        import sklearn.datasets as skd

        X, y = getattr(skd, f"load_{name}")(return_X_y=True)
        return from_arrays(X, y, name=name)
    maker = {"moons": _moons, "blobs": _blobs}[name]
    unknown = sorted(set(params) - set(SYNTHETIC_PARAMS[name]))
    if unknown:
        raise ValueError(f"dataset_kwargs {unknown} are not parameters of {name!r}; allowed: "
                         f"{tuple(SYNTHETIC_PARAMS[name])}")
    for key, value in params.items():  # the generators take checked values only (their defaults are valid)
        SYNTHETIC_PARAMS[name][key].check(f"dataset_kwargs[{key!r}]", value)
    return maker(**params)


_COMMON = {"n_samples": Integer(4, 10_000_000), "label_noise": Real(0.0, 1.0, open_high=True),
           "seed": Integer(0, MAX_SEED)}
SYNTHETIC_PARAMS = {
    "moons": {**_COMMON, "noise": Real(0.0, 1e6)},
    "blobs": {**_COMMON, "n_features": Integer(1, 10_000), "n_classes": Integer(2, MAX_CLASSES),
              "separation": Real(0.0, 1e6)},
}
"""The parameters of the synthetic datasets and what each allows."""


def _swiss_banknote(features: Any = BANKNOTE_FEATURES) -> Dataset:
    if isinstance(features, str) or not isinstance(features, (list, tuple)) or not features:
        raise ValueError(f"dataset_kwargs['features']={show(features)} is not allowed; give a non-empty sequence of "
                         f"column names from {BANKNOTE_FEATURES}")
    unknown = [f for f in features if f not in BANKNOTE_FEATURES]
    if unknown or len(set(features)) != len(features):
        raise ValueError(f"dataset_kwargs['features']={show(features)} is not allowed; the names must be distinct "
                         f"and from {BANKNOTE_FEATURES}")
    from importlib.resources import files

    text = files("reciprocal_gym.data").joinpath("swiss_banknote.csv").read_text()
    lines = [line.split(",") for line in text.strip().splitlines()]
    header, rows = lines[0], lines[1:]
    columns = [header.index(f) for f in features]
    X = np.array([[float(row[c]) for c in columns] for row in rows])
    y = np.array([row[header.index("Status")] for row in rows])
    return from_arrays(X, y, name="swiss_banknote")


def _flip(y: np.ndarray, n_classes: int, label_noise: float, rng: np.random.Generator) -> np.ndarray:
    """Move a ``label_noise`` fraction of labels to a uniformly drawn other class."""
    y = y.copy()
    flip = rng.random(len(y)) < label_noise
    shift = rng.integers(1, n_classes, size=len(y))
    y[flip] = (y[flip] + shift[flip]) % n_classes
    return y


def _moons(n_samples: int = 500, noise: float = 0.2, label_noise: float = 0.0, seed: int = 0) -> Dataset:
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
    if n_classes > n_samples // 2:
        raise ValueError(f"n_classes={n_classes!r} is not allowed with n_samples={n_samples}; it must be at most "
                         "n_samples / 2")
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((n_classes, n_features))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    means = separation * directions
    y = np.arange(n_samples) % n_classes
    rng.shuffle(y)
    X = means[y] + rng.standard_normal((n_samples, n_features))
    y = _flip(y.astype(np.int64), n_classes, label_noise, rng)
    return Dataset(name="blobs", X=X, y=y, classes=np.arange(n_classes))
