"""Seeded splits into labeled set / unlabeled pool / validation / test, and standardization.

Each learner draws its own split from its own seed. Features are standardized (``standardize``) with the mean and
standard deviation of the learner's non-test rows (``"non_test"``, the default: labeled + pool + validation, all the
inputs a practitioner sees before testing), of its labeled rows only (``"labeled"``), or not at all (``"none"``: mean
0, scale 1, the raw features as R's ``glm`` and a plain scikit-learn ``LogisticRegression`` see them); a constant
feature keeps scale 1. An intercept column of ones is appended last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reciprocal_gym.data.datasets import Dataset, check_features, from_arrays, real_array

PARTS = ("labeled", "pool", "val", "test")
STANDARDIZE = ("non_test", "labeled", "none")
"""Which rows a learner's standardization statistics come from (``"none"``: no standardization)."""


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
    """One learner's split: row numbers into the dataset per part, labels, and standardization statistics.

    Features are not copied per learner; :meth:`features` builds a part's standardized rows (intercept last).
    """

    rows: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    mean: np.ndarray
    scale: np.ndarray

    def features(self, X: np.ndarray, part: str) -> np.ndarray:
        """Standardized rows of ``part`` with an intercept column of ones appended; ``X`` is the dataset's X."""
        z = (X[self.rows[part]] - self.mean) / self.scale
        return np.hstack([z, np.ones((len(z), 1))])


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


def standardization(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of the rows of X; a constant feature keeps scale 1 (finite for |X| <= MAX_FEATURE)."""
    scale = X.std(axis=0)
    return X.mean(axis=0), np.where(scale > 1e-12, scale, 1.0)


def _statistics(X: np.ndarray, rows: dict[str, np.ndarray], standardize: str = "non_test"
                ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of the rows ``standardize`` names (see :data:`STANDARDIZE`); a constant feature keeps
    scale 1."""
    if standardize == "none":
        return np.zeros(X.shape[1]), np.ones(X.shape[1])
    if standardize == "labeled":
        return standardization(X[rows["labeled"]])
    if standardize != "non_test":
        raise ValueError(f"standardize={standardize!r} is not allowed; choose one of {STANDARDIZE}")
    return standardization(X[np.concatenate([rows[k] for k in ("labeled", "pool", "val")])])


def make_split(dataset: Dataset, sizes: SplitSizes, rng: np.random.Generator, stratify: bool = True,
               standardize: str = "non_test") -> Split:
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
    mean, scale = _statistics(dataset.X, rows, standardize)
    return Split(rows=rows, y={k: dataset.y[v] for k, v in rows.items()}, mean=mean, scale=scale)


def _check_disjoint(parts: dict[str, np.ndarray]) -> None:
    """Raise if a feature row occurs in two parts (exact equality)."""
    earlier: dict[str, set[bytes]] = {}
    for key, X in parts.items():
        rows = {np.ascontiguousarray(row + 0.0).tobytes() for row in X}  # + 0.0: -0.0 and 0.0 are one value
        for other, other_rows in earlier.items():
            shared = len(rows & other_rows)
            if shared:
                raise ValueError(f"split parts overlap: {shared} feature row(s) of split[{key!r}] also appear in "
                                 f"split[{other!r}]; the parts must be disjoint (remove the duplicates)")
        earlier[key] = rows


def split_from_arrays(parts: dict[str, tuple[Any, Any]], standardize: str = "non_test") -> tuple[Dataset, Split]:
    """A fixed split given by the user: ``{"labeled": (X, y), "pool": (X, y), "val": (X, y), "test": (X, y)}``.

    Returns the parts stacked as one dataset (labels recoded jointly) and the split into it. A feature row that
    appears in two parts (e.g. test rows that are also labeled rows) is refused: it would leak between them.
    """
    if not isinstance(parts, dict) or set(parts) != set(PARTS):
        got = sorted(parts) if isinstance(parts, dict) else type(parts).__name__
        raise ValueError(f"split must be a dict with exactly the keys {PARTS}, each an (X, y) pair; got {got}")
    arrays = []
    for key in PARTS:
        pair = parts[key]
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"split[{key!r}] must be an (X, y) pair")
        Xk, yk = real_array(f"split[{key!r}] X", pair[0]), np.asarray(pair[1])
        check_features(f"split[{key!r}] X", Xk)
        if yk.ndim != 1 or len(yk) != len(Xk):
            raise ValueError(f"split[{key!r}]: X has {len(Xk)} rows but y has shape {yk.shape}")
        arrays.append((Xk, yk))
    widths = {k: a[0].shape[1] for k, a in zip(PARTS, arrays, strict=True)}
    if len(set(widths.values())) != 1:
        raise ValueError(f"split parts must have the same number of features, got {widths}")
    _check_disjoint({k: a[0] for k, a in zip(PARTS, arrays, strict=True)})
    try:
        labels = np.concatenate([a[1] for a in arrays])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"split labels must be of one kind in every part (ints or strings): {exc}") from exc
    full = from_arrays(np.concatenate([a[0] for a in arrays]), labels, name="split")
    bounds = np.cumsum([0] + [len(a[1]) for a in arrays])
    rows = {k: np.arange(bounds[i], bounds[i + 1]) for i, k in enumerate(PARTS)}
    mean, scale = _statistics(full.X, rows, standardize)
    return full, Split(rows=rows, y={k: full.y[v] for k, v in rows.items()}, mean=mean, scale=scale)
