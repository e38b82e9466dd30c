"""Seeded splits into labeled set / unlabeled pool / validation / test, and standardization.

Each learner draws its own split from its own seed. Features are standardized with the mean and standard deviation
of the learner's non-test rows (labeled + pool + validation: all the inputs a practitioner sees before testing);
a constant feature keeps scale 1. An intercept column of ones is appended last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reciprocal_gym.data.datasets import Dataset, from_arrays

PARTS = ("labeled", "pool", "val", "test")


@dataclass(frozen=True)
class SplitSizes:
    n_labeled: int
    n_pool: int
    n_val: int
    n_test: int

    @property
    def total(self) -> int:
        return self.n_labeled + self.n_pool + self.n_val + self.n_test


def _check_size(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}={value!r} is not allowed; it must be a positive int")
    return int(value)


def resolve_sizes(
    n_samples: int,
    n_labeled: int = 20,
    n_pool: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
) -> SplitSizes:
    """Fill in default sizes and check them against the dataset size.

    Defaults: ``n_pool`` = half of the rows that are not labeled; ``n_val`` and ``n_test`` share what is left
    (validation gets the smaller half). Every part must have at least one row and all parts together at most
    ``n_samples`` rows.
    """
    n_labeled = _check_size("n_labeled", n_labeled)
    rest = n_samples - n_labeled
    if rest < 3:
        raise ValueError(
            f"n_labeled={n_labeled} is too large: the dataset has {n_samples} rows and pool, validation and "
            f"test need at least one row each, so n_labeled must be <= {n_samples - 3}"
        )
    n_pool = rest // 2 if n_pool is None else _check_size("n_pool", n_pool)
    if n_labeled + n_pool > n_samples - 2:
        raise ValueError(
            f"n_pool={n_pool} is too large: the dataset has {n_samples} rows, n_labeled={n_labeled}, and "
            f"validation and test need at least one row each, so n_pool must be <= {n_samples - n_labeled - 2}"
        )
    left = n_samples - n_labeled - n_pool
    if n_val is None and n_test is None:
        n_val, n_test = left // 2, left - left // 2
    elif n_val is None:
        n_test = _check_size("n_test", n_test)
        n_val = left - n_test
    elif n_test is None:
        n_val = _check_size("n_val", n_val)
        n_test = left - n_val
    n_val = _check_size("n_val", n_val)
    n_test = _check_size("n_test", n_test)
    sizes = SplitSizes(n_labeled, n_pool, n_val, n_test)
    if sizes.total > n_samples:
        raise ValueError(
            f"the split needs {sizes.total} rows (n_labeled={n_labeled}, n_pool={n_pool}, n_val={n_val}, "
            f"n_test={n_test}) but the dataset has only {n_samples}"
        )
    return sizes


@dataclass(frozen=True)
class Split:
    """One learner's data: standardized features with an intercept column, and integer labels per part."""

    X: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    rows: dict[str, np.ndarray] | None
    """Row numbers into the dataset per part (None for a split given as arrays)."""


def _stratified_head(y: np.ndarray, order: np.ndarray, n: int) -> np.ndarray:
    """Positions (into ``order``) of ``n`` rows drawn round-robin over classes, each class in ``order``'s order."""
    by_class = [np.flatnonzero(y[order] == c) for c in np.unique(y)]
    picked: list[int] = []
    depth = 0
    while len(picked) < n:
        for members in by_class:
            if depth < len(members) and len(picked) < n:
                picked.append(int(members[depth]))
        depth += 1
    return np.sort(np.asarray(picked, dtype=np.int64))


def _standardize(parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    fit_rows = np.concatenate([parts[k] for k in ("labeled", "pool", "val")])
    mean = fit_rows.mean(axis=0)
    scale = fit_rows.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    out = {}
    for key, value in parts.items():
        z = (value - mean) / scale
        out[key] = np.hstack([z, np.ones((len(z), 1))])
    return out


def make_split(dataset: Dataset, sizes: SplitSizes, rng: np.random.Generator, stratify: bool = True) -> Split:
    """Draw one learner's split.

    The labeled set is stratified (drawn round-robin over classes, so every class appears once n_labeled >= C)
    when ``stratify``; pool, validation and test are then taken in random order from the remaining rows.
    """
    order = rng.permutation(dataset.n_samples)
    if stratify:
        head = _stratified_head(dataset.y, order, sizes.n_labeled)
    else:
        head = np.arange(sizes.n_labeled)
    rest = np.delete(order, head)
    labeled = order[head]
    bounds = np.cumsum([sizes.n_pool, sizes.n_val, sizes.n_test])
    rows = {
        "labeled": labeled,
        "pool": rest[: bounds[0]],
        "val": rest[bounds[0] : bounds[1]],
        "test": rest[bounds[1] : bounds[2]],
    }
    X = _standardize({k: dataset.X[v] for k, v in rows.items()})
    y = {k: dataset.y[v] for k, v in rows.items()}
    return Split(X=X, y=y, rows=rows)


def split_from_arrays(parts: dict[str, tuple[Any, Any]]) -> tuple[Split, int]:
    """A fixed split given by the user: ``{"labeled": (X, y), "pool": (X, y), "val": (X, y), "test": (X, y)}``.

    Labels are recoded jointly over all parts. Returns the split and the number of classes.
    """
    if not isinstance(parts, dict) or set(parts) != set(PARTS):
        got = sorted(parts) if isinstance(parts, dict) else type(parts).__name__
        raise ValueError(f"split must be a dict with exactly the keys {PARTS}, each an (X, y) pair; got {got}")
    checked = {}
    for key in PARTS:
        pair = parts[key]
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"split[{key!r}] must be an (X, y) pair")
        Xk = np.asarray(pair[0], dtype=np.float64)
        yk = np.asarray(pair[1])
        if Xk.ndim != 2 or len(Xk) == 0:
            raise ValueError(f"split[{key!r}] X must be a non-empty 2-D array, got shape {Xk.shape}")
        if not np.isfinite(Xk).all():
            raise ValueError(f"split[{key!r}] X contains NaN or inf; all feature values must be finite")
        if yk.ndim != 1 or len(yk) != len(Xk):
            raise ValueError(f"split[{key!r}]: X has {len(Xk)} rows but y has shape {yk.shape}")
        checked[key] = (Xk, yk)
    widths = {k: v[0].shape[1] for k, v in checked.items()}
    if len(set(widths.values())) != 1:
        raise ValueError(f"split parts must have the same number of features, got {widths}")
    all_y = np.concatenate([checked[k][1] for k in PARTS])
    full = from_arrays(np.concatenate([checked[k][0] for k in PARTS]), all_y)
    bounds = np.cumsum([0] + [len(checked[k][1]) for k in PARTS])
    X = _standardize({k: full.X[bounds[i] : bounds[i + 1]] for i, k in enumerate(PARTS)})
    y = {k: full.y[bounds[i] : bounds[i + 1]] for i, k in enumerate(PARTS)}
    return Split(X=X, y=y, rows=None), full.n_classes
