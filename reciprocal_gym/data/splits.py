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


def _check_size(name: str, value: Any, smallest: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < smallest:
        kind = "a positive int" if smallest == 1 else f"an int >= {smallest}"
        raise ValueError(f"{name}={value!r} is not allowed; it must be {kind}")
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
    (validation gets the smaller half). Every part must have at least one row, except validation, which may be
    given as ``n_val=0`` (no validation rows), and all parts together at most ``n_samples`` rows.
    """
    n_labeled = _check_size("n_labeled", n_labeled)
    no_val = isinstance(n_val, (int, np.integer)) and not isinstance(n_val, bool) and n_val == 0
    others = "pool and test" if no_val else "pool, validation and test"
    rest = n_samples - n_labeled
    if rest < 3 - no_val:
        raise ValueError(
            f"n_labeled={n_labeled} is too large: the dataset has {n_samples} rows and {others} need at least one "
            f"row each, so n_labeled must be <= {n_samples - 3 + no_val}"
        )
    n_pool = rest // 2 if n_pool is None else _check_size("n_pool", n_pool)
    if n_labeled + n_pool > n_samples - 2 + no_val:
        after = "test needs" if no_val else "validation and test need"
        raise ValueError(
            f"n_pool={n_pool} is too large: the dataset has {n_samples} rows, n_labeled={n_labeled}, and "
            f"{after} at least one row each, so n_pool must be <= {n_samples - n_labeled - 2 + no_val}"
        )
    left = n_samples - n_labeled - n_pool
    if n_val is None and n_test is None:
        n_val, n_test = left // 2, left - left // 2
    elif n_val is None:
        n_test = _check_size("n_test", n_test)
        n_val = left - n_test
    elif n_test is None:
        n_val = _check_size("n_val", n_val, 0)
        n_test = left - n_val
    n_val = _check_size("n_val", n_val, 0)
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


def _part_pairs(parts: Any, where: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (X, y) arrays of one explicit split, in the order of :data:`PARTS` (an absent ``val`` is empty)."""
    required = ("labeled", "pool", "test")
    if not isinstance(parts, dict) or not set(required) <= set(parts) or not set(parts) <= set(PARTS):
        got = sorted(parts) if isinstance(parts, dict) else type(parts).__name__
        raise ValueError(f"{where} must be a dict with the keys {required} and optionally 'val', each an (X, y) "
                         f"pair; got {got}")
    arrays = []
    width = None
    for key in PARTS:
        if key not in parts:
            arrays.append((np.zeros((0, width or 0)), np.zeros(0, dtype=np.int64)))
            continue
        pair = parts[key]
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"{where}[{key!r}] must be an (X, y) pair")
        Xk, yk = real_array(f"{where}[{key!r}] X", pair[0]), np.asarray(pair[1])
        if key == "val" and Xk.size == 0:
            Xk = Xk.reshape(0, Xk.shape[1] if Xk.ndim == 2 else 0)
        else:
            check_features(f"{where}[{key!r}] X", Xk)
        if yk.ndim != 1 or len(yk) != len(Xk):
            raise ValueError(f"{where}[{key!r}]: X has {len(Xk)} rows but y has shape {yk.shape}")
        width = Xk.shape[1] if Xk.shape[0] else width
        arrays.append((Xk, yk))
    widths = {k: a[0].shape[1] for k, a in zip(PARTS, arrays, strict=True) if len(a[0])}
    if len(set(widths.values())) != 1:
        raise ValueError(f"{where} parts must have the same number of features, got {widths}")
    d = next(iter(widths.values()))
    arrays = [(a[0].reshape(0, d), a[1]) if not len(a[0]) else a for a in arrays]
    _check_disjoint({k: a[0] for k, a in zip(PARTS, arrays, strict=True)}, where)
    return arrays


def _check_disjoint(parts: dict[str, np.ndarray], where: str = "split") -> None:
    """Raise if a feature row occurs in two parts (exact equality)."""
    earlier: dict[str, set[bytes]] = {}
    for key, X in parts.items():
        rows = {np.ascontiguousarray(row + 0.0).tobytes() for row in X}  # + 0.0: -0.0 and 0.0 are one value
        for other, other_rows in earlier.items():
            shared = len(rows & other_rows)
            if shared:
                raise ValueError(f"split parts overlap: {shared} feature row(s) of {where}[{key!r}] also appear in "
                                 f"{where}[{other!r}]; the parts must be disjoint (remove the duplicates)")
        earlier[key] = rows


def splits_from_arrays(splits: Any, standardize: str = "non_test") -> tuple[Dataset, list[Split]]:
    """Explicit splits given by the user: one dict ``{"labeled": (X, y), "pool": (X, y), "val": (X, y),
    "test": (X, y)}`` (``val`` optional) shared by every learner, or a list of such dicts, one per learner (every
    split with the same part sizes).

    Returns one dataset holding every split's parts stacked (labels recoded jointly; split i's parts in the order
    labeled, pool, val, test, each in its given row order) and each split's rows into it. A feature row that appears
    in two parts of one split (e.g. test rows that are also labeled rows) is refused: it would leak between them.
    """
    many = isinstance(splits, (list, tuple))
    given = list(splits) if many else [splits]
    if not given:
        raise ValueError("split=[] is not allowed; give one split dict or a list with one per learner")
    arrays = [_part_pairs(parts, f"split[{i}]" if many else "split") for i, parts in enumerate(given)]
    sizes = {tuple(len(a[1]) for a in split) for split in arrays}
    if len(sizes) > 1:
        raise ValueError(f"every split must have the same part sizes (labeled, pool, val, test); got {sorted(sizes)}")
    widths = {split[0][0].shape[1] for split in arrays}
    if len(widths) > 1:
        raise ValueError(f"every split must have the same number of features, got {sorted(widths)}")
    pieces = [pair for split in arrays for pair in split]
    try:
        labels = np.concatenate([pair[1] for pair in pieces])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"split labels must be of one kind in every part (ints or strings): {exc}") from exc
    full = from_arrays(np.concatenate([pair[0] for pair in pieces]), labels, name="split")
    bounds = np.cumsum([0] + [len(pair[1]) for pair in pieces])
    out = []
    for i in range(len(arrays)):
        rows = {k: np.arange(bounds[4 * i + j], bounds[4 * i + j + 1]) for j, k in enumerate(PARTS)}
        mean, scale = _statistics(full.X, rows, standardize)
        out.append(Split(rows=rows, y={k: full.y[v] for k, v in rows.items()}, mean=mean, scale=scale))
    return full, out


def split_from_arrays(parts: dict[str, tuple[Any, Any]], standardize: str = "non_test") -> tuple[Dataset, Split]:
    """One explicit split (see :func:`splits_from_arrays`)."""
    dataset, splits = splits_from_arrays(parts, standardize)
    return dataset, splits[0]


def splits_from_rows(dataset: Dataset, rows: Any, num_learners: int, standardize: str = "non_test") -> list[Split]:
    """Splits given as dataset row ids: ``{"labeled": ids, "pool": ids, "val": ids, "test": ids}`` (``val``
    optional), each an int array (n_part,) shared by every learner or (num_learners, n_part) with one row of ids per
    learner. A learner's parts must not share a row id."""
    required = ("labeled", "pool", "test")
    if not isinstance(rows, dict) or not set(required) <= set(rows) or not set(rows) <= set(PARTS):
        got = sorted(rows) if isinstance(rows, dict) else type(rows).__name__
        raise ValueError(f"split_rows must be a dict with the keys {required} and optionally 'val', each an int "
                         f"array of dataset row ids, (n,) or ({num_learners}, n); got {got}")
    ids = {}
    for key in PARTS:
        value = np.asarray(rows.get(key, np.zeros((0,), dtype=np.int64)))
        if value.dtype.kind not in "iu" and value.size:
            raise ValueError(f"split_rows[{key!r}] must hold integer row ids, got dtype {value.dtype}")
        value = value.astype(np.int64)
        if value.ndim == 1:
            value = np.broadcast_to(value, (num_learners, len(value)))
        if value.ndim != 2 or value.shape[0] != num_learners:
            raise ValueError(f"split_rows[{key!r}] must have shape (n,) or ({num_learners}, n) for {num_learners} "
                             f"learner(s), got {value.shape}")
        if value.size and (value.min() < 0 or value.max() >= dataset.n_samples):
            raise ValueError(f"split_rows[{key!r}] has row ids outside 0..{dataset.n_samples - 1} (the dataset has "
                             f"{dataset.n_samples} rows)")
        if key != "val" and value.shape[1] == 0:
            raise ValueError(f"split_rows[{key!r}] is empty; labeled, pool and test need at least one row each")
        ids[key] = value
    out = []
    for b in range(num_learners):
        learner = {key: ids[key][b] for key in PARTS}
        together = np.concatenate(list(learner.values()))
        if len(np.unique(together)) != len(together):
            raise ValueError(f"split_rows: learner {b} has a row id twice (within a part or in two parts); the "
                             "parts must be disjoint")
        mean, scale = _statistics(dataset.X, learner, standardize)
        out.append(Split(rows=learner, y={k: dataset.y[v] for k, v in learner.items()}, mean=mean, scale=scale))
    return out
