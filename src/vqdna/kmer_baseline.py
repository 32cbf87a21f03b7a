"""Reference row without deep learning: bag of k-mers + a linear model.

Features: overlapping k-mer counts for k = 1..6 (4 + 16 + ... + 4096 = 5460 columns, ordered
by k then by the base-4 code of the k-mer with A=0, C=1, G=2, T=3, first letter most
significant). A k-mer that contains N or another IUPAC code is not counted. Each k block is
normalised per sequence to frequencies (counts / number of counted k-mers of that k in the
sequence; an all-N sequence gives a zero row). Counting is vectorised: all sequences are
concatenated with an N separator, rolling base-4 codes are built per k with numpy and the
counts land in a ``scipy.sparse`` CSR matrix.

Model: features are standardised (``StandardScaler(with_mean=False)`` fitted on train), then

* classification: ``LogisticRegression``; ``C`` tuned on dev over ``C_GRID`` by dev MCC;
* regression: ``Ridge``; ``alpha`` tuned on dev over ``ALPHA_GRID`` by dev Spearman.

Every candidate is fitted on train only; the one with the best dev score (ties -> the stronger
regularisation, i.e. the first in the grid) is evaluated once on test.
"""
from __future__ import annotations

import time
import warnings
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from .metrics import classification_metrics, primary_metric, regression_metrics
from .sequence.alphabet import OTHER, encode

__all__ = [
    "kmer_counts", "kmer_features", "kmer_feature_names", "run_kmer_baseline",
    "C_GRID", "ALPHA_GRID", "K_RANGE",
]

K_RANGE = tuple(range(1, 7))
C_GRID = (0.01, 0.1, 1.0, 10.0)
ALPHA_GRID = (1.0, 10.0, 100.0, 1000.0, 10000.0)


def _concat(sequences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate encoded sequences with an N (=OTHER) after each; return codes and row ids."""
    n = len(sequences)
    if n == 0:
        return np.zeros(0, np.uint8), np.zeros(0, np.int32)
    lens = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=n)
    codes = encode("N".join(sequences) + "N")
    rows = np.repeat(np.arange(n, dtype=np.int32), lens + 1)
    return codes, rows


def _counts_from_concat(codes: np.ndarray, rows: np.ndarray, n: int, k: int) -> sp.csr_matrix:
    L = codes.size
    if L < k:
        return sp.csr_matrix((n, 4 ** k), dtype=np.float32)
    bad = (codes == OTHER).astype(np.int32)
    cbad = np.concatenate(([0], np.cumsum(bad)))
    m = L - k + 1
    valid = (cbad[k:k + m] - cbad[:m]) == 0
    c = codes.astype(np.int32)
    c[codes == OTHER] = 0
    kc = c[:m].copy()
    for j in range(1, k):
        kc *= 4
        kc += c[j:j + m]
    kc = kc[valid]
    r = rows[:m][valid]
    data = np.ones(kc.size, dtype=np.float32)
    mat = sp.csr_matrix((data, (r, kc)), shape=(n, 4 ** k), dtype=np.float32)
    mat.sum_duplicates()
    return mat


def kmer_counts(sequences: Sequence[str], k: int) -> sp.csr_matrix:
    """Raw overlapping k-mer counts, shape ``(n, 4**k)``; k-mers with N/IUPAC are skipped."""
    if k < 1:
        raise ValueError("k must be >= 1")
    codes, rows = _concat(list(sequences))
    return _counts_from_concat(codes, rows, len(sequences), k)


def kmer_features(sequences: Sequence[str], ks: Iterable[int] = K_RANGE, *, normalize: bool = True) -> sp.csr_matrix:
    """Stacked k-mer blocks for every k in ``ks`` (CSR, float32), frequencies per block if ``normalize``."""
    seqs = list(sequences)
    n = len(seqs)
    codes, rows = _concat(seqs)
    blocks = []
    for k in ks:
        m = _counts_from_concat(codes, rows, n, k)
        if normalize:
            tot = np.asarray(m.sum(axis=1)).ravel()
            inv = np.divide(1.0, tot, out=np.zeros_like(tot), where=tot > 0).astype(np.float32)
            m = sp.diags(inv).dot(m).tocsr()
        blocks.append(m)
    return sp.hstack(blocks, format="csr", dtype=np.float32)


def kmer_feature_names(ks: Iterable[int] = K_RANGE) -> list[str]:
    """Column names matching :func:`kmer_features` (e.g. ``"A"``, ..., ``"TTTTTT"``)."""
    names = []
    for k in ks:
        idx = np.arange(4 ** k)
        digits = [(idx // 4 ** (k - 1 - j)) % 4 for j in range(k)]
        letters = np.array(list("ACGT"))
        names.extend("".join(t) for t in zip(*(letters[d] for d in digits)))
    return names


def _score(kind: str, y, pred) -> dict[str, float]:
    return classification_metrics(y, pred) if kind == "classification" else regression_metrics(y, pred)


def run_kmer_baseline(task, seed: int = 0, *, ks: Iterable[int] = K_RANGE, grid: Sequence[float] | None = None,
                      max_iter: int = 1000) -> dict:
    """Fit the k-mer baseline on ``task`` (a :class:`vqdna.sequence.tasks.Task`).

    Returns ``{"task", "kind", "primary_metric", "test": {metrics}, "dev": {metrics of the
    chosen model}, "param_name": "C"|"alpha", "param": value, "dev_grid": {value: dev primary},
    "n_features", "seed", "wall_time"}`` (``wall_time`` in seconds, features included).
    """
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    ks = tuple(ks)
    kind = task.kind
    metric = primary_metric(kind)
    X = {s: kmer_features(task.splits[s].sequences, ks) for s in ("train", "dev", "test")}
    y = {s: task.splits[s].labels for s in ("train", "dev", "test")}
    scaler = StandardScaler(with_mean=False).fit(X["train"])
    X = {s: scaler.transform(v).astype(np.float32) for s, v in X.items()}

    if kind == "classification":
        param_name, grid = "C", tuple(grid or C_GRID)

        def make(v):
            return LogisticRegression(C=v, max_iter=max_iter, random_state=seed)
    else:
        param_name, grid = "alpha", tuple(grid or ALPHA_GRID)

        def make(v):
            return Ridge(alpha=v, random_state=seed)

    best = None
    dev_grid = {}
    for v in grid:
        model = make(v)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at large C is harmless here
            model.fit(X["train"], y["train"])
        dev_m = _score(kind, y["dev"], model.predict(X["dev"]))
        dev_grid[v] = dev_m[metric]
        if best is None or dev_m[metric] > best[1][metric]:
            best = (v, dev_m, model)
    v, dev_m, model = best
    test_m = _score(kind, y["test"], model.predict(X["test"]))
    return {
        "task": task.name,
        "kind": kind,
        "primary_metric": metric,
        "test": test_m,
        "dev": dev_m,
        "param_name": param_name,
        "param": v,
        "dev_grid": dev_grid,
        "n_features": int(X["train"].shape[1]),
        "seed": seed,
        "wall_time": time.perf_counter() - t0,
    }
