"""Datasets (bundled, synthetic, user arrays) and seeded per-learner splits."""

from reciprocal_gym.data.datasets import BUNDLED, DATASETS, SYNTHETIC, Dataset, from_arrays, load_dataset
from reciprocal_gym.data.splits import (
    PARTS,
    STANDARDIZE,
    Split,
    SplitSizes,
    make_split,
    resolve_sizes,
    split_from_arrays,
    splits_from_arrays,
    splits_from_rows,
)

__all__ = [
    "BUNDLED",
    "DATASETS",
    "PARTS",
    "SYNTHETIC",
    "Dataset",
    "Split",
    "SplitSizes",
    "from_arrays",
    "load_dataset",
    "STANDARDIZE",
    "make_split",
    "resolve_sizes",
    "split_from_arrays",
    "splits_from_arrays",
    "splits_from_rows",
]
