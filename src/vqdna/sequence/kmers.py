"""The project's one k-mer encoder: the base-4 code of every window of k nucleotides.

Every k-mer feature of the project goes through :func:`rolling_kmer_codes`: the hand-crafted
k-mer tokenizers (:mod:`vqdna.tokenizers.handcrafted`), the bag-of-k-mers reference row
(:mod:`vqdna.references.kmer`) and the k-mer distances between clades
(:mod:`vqdna.analysis.treedist`). A k-mer's code reads its letters as base-4 digits (A=0, C=1,
G=2, T=3), the first letter most significant, so codes sort like the k-mers; a window holding
a non-ACGT letter is flagged, and its code is meaningless.

:func:`window_codes` is the arithmetic underneath (any alphabet size). Its torch twin,
:func:`vqdna.hub.convnext.kmer_codes` (the stem lookup of the learned tokenizer, on
tensors, centred windows with padding), is tested equal to it in ``tests/test_one_place.py``.
"""
from __future__ import annotations

import numpy as np

from .alphabet import OTHER

__all__ = ["rolling_kmer_codes", "window_codes"]


def window_codes(symbols: np.ndarray, k: int, base: int) -> np.ndarray:
    """int64 code of every window ``symbols[i:i+k]``, its symbols read as base-``base`` digits
    (first most significant); ``len(symbols) - k + 1`` codes."""
    n = len(symbols) - k + 1
    if n <= 0:
        return np.zeros(0, np.int64)
    digits = np.asarray(symbols).astype(np.int64)
    vals = np.zeros(n, np.int64)
    for j in range(k):
        vals = vals * base + digits[j:j + n]
    return vals


def rolling_kmer_codes(idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Base-4 code of every window ``idx[i:i+k]`` (first base most significant) and a
    mask of the windows that hold a non-ACGT letter. Both have ``len(idx) - k + 1`` rows.

    ``idx`` holds alphabet indices (:func:`vqdna.sequence.alphabet.encode`): 0..3 for A/C/G/T,
    :data:`~vqdna.sequence.alphabet.OTHER` for N and the other IUPAC codes. Codes are int64,
    exact up to k = 31."""
    n = len(idx) - k + 1
    if n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    vals = window_codes(np.minimum(idx, 3), k, 4)
    bad = np.concatenate(([0], np.cumsum(idx == OTHER, dtype=np.int64)))
    has_n = (bad[k:] - bad[:n]) > 0
    return vals, has_n
