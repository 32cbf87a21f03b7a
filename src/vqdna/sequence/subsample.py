"""Choosing a subset of a task's rows: the project's subsamplers, in one place.

* :func:`stratified_subsample`: ``n`` rows in all, stratified by class (regression: by label
  quintile), seeded. The benchmark's training rows (``max_train``): fine-tuning, the k-mer and
  CNN reference rows and the demo all call it with seed 0, so every row of a table trains on
  the same rows.
* :func:`cap_per_class`: at most ``max_per_class`` random rows of each class (small classes
  whole), for the lineage analysis, which wants every class present however rare.
"""
from __future__ import annotations

import numpy as np

__all__ = ["stratified_subsample", "cap_per_class"]


def stratified_subsample(labels: np.ndarray, n: int, kind: str, seed: int = 0) -> np.ndarray:
    """Indices of a stratified subsample of ``n`` rows (regression: strata = label quintiles)."""
    if n <= 0 or n >= len(labels):
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    strata = labels if kind == "classification" else np.digitize(labels, np.quantile(labels, [.2, .4, .6, .8]))
    _, counts = np.unique(strata, return_counts=True)
    idx = np.arange(len(labels))
    try:
        keep, _ = train_test_split(idx, train_size=n, random_state=seed,
                                   stratify=strata if counts.min() >= 2 else None)
    except ValueError:
        keep, _ = train_test_split(idx, train_size=n, random_state=seed)
    return np.sort(keep)


def cap_per_class(y: np.ndarray, max_per_class: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices keeping at most ``max_per_class`` random rows of each class."""
    y = np.asarray(y)
    if max_per_class is None:
        return np.arange(len(y))
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) > max_per_class:
            idx = rng.choice(idx, size=max_per_class, replace=False)
        keep.append(idx)
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
