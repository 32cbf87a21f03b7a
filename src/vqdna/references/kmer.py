"""Reference row without deep learning: bag of k-mers + a linear model (``kmer-bag`` in the benchmark).

(Formerly ``vqdna.kmer_baseline``, which still imports.)

Features: overlapping k-mer counts for k = 1..6 (4 + 16 + ... + 4096 = 5460 columns, ordered
by k then by the base-4 code of the k-mer with A=0, C=1, G=2, T=3, first letter most
significant). A k-mer that contains N or another IUPAC code is not counted. Each k block is
normalised per sequence to frequencies (counts / number of counted k-mers of that k in the
sequence; an all-N sequence gives a zero row). Counting is vectorised: all sequences are
concatenated with an N separator, rolling base-4 codes are built per k with
:func:`vqdna.sequence.kmers.rolling_kmer_codes` (the project's one k-mer encoder) and the
counts land in a ``scipy.sparse`` CSR matrix.

Model: the project's linear probe, :func:`vqdna.evaluate.linear_probe` (all candidates fitted on
train only, chosen on dev by the primary metric, the chosen one evaluated once on test; ties go
to the earlier candidate, i.e. the stronger regularisation), with these settings:

* classification: ``StandardScaler(with_mean=False)`` fitted on train, then
  ``LogisticRegression`` (lbfgs, multinomial for K > 2); ``C`` over ``GRIDS["classification",
  "standard"]`` = 1e-5 .. 1e-2, by dev MCC. The grid is fitted in ascending ``C`` with warm
  starts (same optimum, 4x faster). After standardisation 5460 features need strong
  regularisation: C = 0.01 .. 10 over-fits (prom_core_tata test MCC 36 against 50 at C = 1e-4).
* regression: ``Ridge``; both the standardised features and the raw frequencies are candidates,
  each with its own ``alpha`` grid, by dev Spearman. Standardising gives every rare 6-mer of a
  30 nt guide the weight of a common 1-mer, and on doench2016 no alpha recovers from that
  (dev 0.32 / test 0.16, against dev 0.34 / test 0.21 on raw frequencies), hence the choice is
  left to dev. Ridge fits take well under a second, so the doubled grid costs nothing.

The result records the chosen scaling and hyper-parameter and the dev score of every candidate.
"""
from __future__ import annotations

import time
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from ..evaluate import linear_probe
from ..sequence.alphabet import encode
from ..sequence.kmers import rolling_kmer_codes

__all__ = [
    "kmer_counts", "kmer_features", "kmer_feature_names", "run_kmer_baseline",
    "GRIDS", "DEFAULT_SCALINGS", "K_RANGE",
]

K_RANGE = tuple(range(1, 7))
#: hyper-parameter grid per (task kind, feature scaling): C for classification, alpha for regression
GRIDS: dict[tuple[str, str], tuple[float, ...]] = {
    ("classification", "standard"): (1e-5, 1e-4, 1e-3, 1e-2),
    ("classification", "none"): (1.0, 10.0, 100.0, 1000.0),
    ("regression", "standard"): (1e2, 1e3, 1e4, 1e5, 1e6),
    ("regression", "none"): (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0),
}
#: feature scalings tried (and chosen between on dev) per task kind
DEFAULT_SCALINGS = {"classification": ("standard",), "regression": ("standard", "none")}


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
    """Counts of the k-mers of ``codes`` (see :func:`_concat`) per row; N k-mers skipped."""
    if codes.size < k:
        return sp.csr_matrix((n, 4 ** k), dtype=np.float32)
    vals, has_n = rolling_kmer_codes(codes, k)
    valid = ~has_n
    kc = vals[valid].astype(np.int32 if k <= 15 else np.int64)  # column index
    r = rows[:len(vals)][valid]
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


def run_kmer_baseline(task, seed: int = 0, *, ks: Iterable[int] = K_RANGE,
                      scalings: Sequence[str] | None = None,
                      grids: dict[tuple[str, str], Sequence[float]] | None = None,
                      max_iter: int = 1000) -> dict:
    """Fit the k-mer baseline on ``task`` (a :class:`vqdna.sequence.tasks.Task`).

    ``scalings`` is a subset of ``("standard", "none")`` (default :data:`DEFAULT_SCALINGS`),
    ``grids`` overrides entries of :data:`GRIDS`. ``seed`` is passed to the estimators as
    ``random_state`` (lbfgs and Ridge are deterministic; it is recorded for the report).

    Returns ``{"task", "kind", "primary_metric", "test": {metrics}, "dev": {metrics of the
    chosen model}, "scaling", "param_name": "C"|"alpha", "param": value,
    "dev_grid": {"<scaling>:<value>": dev primary}, "n_features", "n_train", "seed",
    "wall_time"}`` (``wall_time`` in seconds, feature extraction included).
    """
    t0 = time.perf_counter()
    ks = tuple(ks)
    kind = task.kind
    scalings = tuple(scalings or DEFAULT_SCALINGS[kind])
    all_grids = dict(GRIDS)
    if grids:
        all_grids.update({k: tuple(v) for k, v in grids.items()})
    for sc in scalings:
        if (kind, sc) not in all_grids:
            raise ValueError(f"unknown scaling {sc!r} (expected 'standard' or 'none')")

    names = ("train", "dev", "test")
    X_raw = {s: kmer_features(task.splits[s].sequences, ks) for s in names}
    y = {s: task.splits[s].labels for s in names}
    r = linear_probe(X_raw, y, kind, scalings=scalings, grid={sc: all_grids[(kind, sc)] for sc in scalings},
                     warm_start=True, max_iter=max_iter, seed=seed)
    return {
        "task": task.name,
        "kind": kind,
        "primary_metric": r["metric"],
        "test": r["test"],
        "dev": r["dev"],
        "scaling": r["scaling"],
        "param_name": r["param_name"],
        "param": r["value"],
        "dev_grid": r["dev_grid"],
        "n_features": r["n_features"],
        "n_train": r["n_train"],
        "seed": seed,
        "wall_time": time.perf_counter() - t0,
    }
