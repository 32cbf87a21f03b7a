"""Numbers that make the code-space figure checkable.

* :func:`nn_purity` -- nearest-neighbour class purity of codes: among the codes that support
  some class (Grad-CAM ``support >= 0``), the share whose nearest other such code in the
  codebook (cosine or Euclidean) supports the same class. Chance level: the same share after
  permuting the class labels over the codes (the embedding, hence every code's neighbour, is
  fixed), ``n_perm`` times; also the exact expectation under permutation,
  ``sum_c n_c (n_c - 1) / (n (n - 1))``. One-sided permutation p-value
  ``(1 + #{perm >= observed}) / (1 + n_perm)``.
* :func:`class_centroids` -- attribution-weighted mean code vector of each class,
  ``m_c = sum_k A[c, k] e_k / sum_k A[c, k]`` (undefined, NaN, when ``A[c]`` is all zero).
* :func:`mantel` -- Spearman correlation between the upper triangles of two class-distance
  matrices, with a Mantel permutation p-value (rows and columns of one matrix permuted
  together; one-sided, positive association).
* :func:`group_separation` -- mean distance between classes of the same group (e.g. the WHO
  variant: 21A/21I/21J are Delta) divided by the mean distance between classes of different
  groups; < 1 means related classes sit together. Permutation p-value of the group labels over
  the classes (one-sided, small ratio). Per group with 2+ members: its mean within distance,
  its mean distance to the members of other groups, their ratio and its permutation p-value.
* :func:`nearest_class_agreement` -- share of classes whose nearest class in embedding space is
  also their nearest class by the reference distance (tree), and share whose nearest class is
  in the same group.
"""
from __future__ import annotations

import numpy as np

__all__ = ["pairwise_distances", "nn_purity", "class_centroids", "mantel", "group_separation",
           "nearest_class_agreement"]


def pairwise_distances(X: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Dense distance matrix; ``cosine`` = 1 - cosine similarity, ``euclidean`` = L2."""
    X = np.asarray(X, dtype=np.float64)
    if metric == "cosine":
        n = np.linalg.norm(X, axis=1, keepdims=True)
        U = X / np.where(n > 0, n, 1.0)
        D = 1.0 - U @ U.T
    elif metric in ("euclidean", "l2"):
        sq = (X * X).sum(1)
        D = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0))
    else:
        raise ValueError(f"metric must be 'cosine' or 'euclidean', not {metric!r}")
    D = np.maximum(D, 0.0)
    np.fill_diagonal(D, 0.0)
    return D


def nn_purity(emb: np.ndarray, labels: np.ndarray, *, metric: str = "cosine", n_perm: int = 999,
              seed: int = 0) -> dict:
    """Nearest-neighbour label purity of the codes with ``labels >= 0`` (see module docstring)."""
    labels = np.asarray(labels).reshape(-1)
    keep = np.flatnonzero(labels >= 0)
    n = len(keep)
    out = {"n_codes": int(n), "n_classes": int(len(np.unique(labels[keep]))) if n else 0, "metric": metric}
    if n < 2:
        return {**out, "purity": float("nan"), "chance_expected": float("nan"), "chance_perm_mean": float("nan"),
                "chance_perm_q95": float("nan"), "p_value": float("nan"), "n_perm": 0}
    D = pairwise_distances(np.asarray(emb)[keep], metric)
    np.fill_diagonal(D, np.inf)
    nn = D.argmin(axis=1)
    lab = labels[keep]
    purity = float(np.mean(lab[nn] == lab))
    _, counts = np.unique(lab, return_counts=True)
    expected = float((counts * (counts - 1)).sum() / (n * (n - 1)))
    rng = np.random.default_rng(seed)
    perm = np.empty(n_perm)
    for t in range(n_perm):
        p = rng.permutation(lab)
        perm[t] = np.mean(p[nn] == p)
    return {**out, "purity": purity, "chance_expected": expected,
            "chance_perm_mean": float(perm.mean()) if n_perm else float("nan"),
            "chance_perm_q95": float(np.quantile(perm, 0.95)) if n_perm else float("nan"),
            "p_value": float((1 + (perm >= purity - 1e-12).sum()) / (1 + n_perm)) if n_perm else float("nan"),
            "n_perm": int(n_perm), "lift": purity / expected if expected > 0 else float("nan")}


def class_centroids(A: np.ndarray, emb: np.ndarray) -> np.ndarray:
    """``(C, dim)`` attribution-weighted mean code vector per class; NaN rows for empty classes."""
    A = np.asarray(A, dtype=np.float64)
    emb = np.asarray(emb, dtype=np.float64)
    s = A.sum(1, keepdims=True)
    M = (A @ emb) / np.where(s > 0, s, 1.0)
    M[s[:, 0] <= 0] = np.nan
    return M


def _upper(D: np.ndarray) -> np.ndarray:
    return D[np.triu_indices(D.shape[0], 1)]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


def mantel(D1: np.ndarray, D2: np.ndarray, *, n_perm: int = 999, seed: int = 0) -> dict:
    """Spearman correlation of two distance matrices (upper triangles) with a Mantel
    permutation test (one-sided: positive association). Needs 3 or more items."""
    D1, D2 = np.asarray(D1, dtype=np.float64), np.asarray(D2, dtype=np.float64)
    n = D1.shape[0]
    if D1.shape != D2.shape or D1.shape != (n, n):
        raise ValueError(f"distance matrices must be square and equal in shape, got {D1.shape} and {D2.shape}")
    if n < 3:
        return {"n": int(n), "spearman": float("nan"), "p_value": float("nan"), "n_perm": 0}
    a = _upper(D1)
    r = _spearman(a, _upper(D2))
    if not np.isfinite(r):
        return {"n": int(n), "spearman": r, "p_value": float("nan"), "n_perm": 0}
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_perm):
        p = rng.permutation(n)
        hits += _spearman(a, _upper(D2[np.ix_(p, p)])) >= r - 1e-12
    return {"n": int(n), "spearman": r, "p_value": float((1 + hits) / (1 + n_perm)), "n_perm": int(n_perm)}


def _within_between(D: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    iu = np.triu_indices(len(g), 1)
    same = g[iu[0]] == g[iu[1]]
    d = D[iu]
    if not same.any() or same.all():
        return float("nan"), float("nan")
    return float(d[same].mean()), float(d[~same].mean())


def _per_group(D: np.ndarray, g: np.ndarray) -> dict:
    per = {}
    for x in np.unique(g):
        m = g == x
        n = int(m.sum())
        if n >= 2 and (~m).any():
            w = float(D[np.ix_(m, m)][np.triu_indices(n, 1)].mean())
            o = float(D[np.ix_(m, ~m)].mean())
            per[int(x)] = {"n": n, "within": w, "to_others": o, "ratio": w / o if o > 0 else float("nan")}
    return per


def group_separation(D: np.ndarray, groups: np.ndarray, *, n_perm: int = 999, seed: int = 0) -> dict:
    """Within-group / between-group mean distance over the items with ``groups >= 0``; per group
    with 2+ members its within / to-others ratio, each with a permutation p-value."""
    groups = np.asarray(groups).reshape(-1)
    keep = np.flatnonzero(groups >= 0)
    D = np.asarray(D, dtype=np.float64)[np.ix_(keep, keep)]
    g = groups[keep]
    w, b = _within_between(D, g)
    per = _per_group(D, g)
    out = {"n_items": int(len(keep)), "n_groups": int(len(np.unique(g))), "within": w, "between": b,
           "per_group": per}
    if not (np.isfinite(w) and np.isfinite(b) and b > 0):
        return {**out, "ratio": float("nan"), "p_value": float("nan"), "n_perm": 0}
    ratio = w / b
    rng = np.random.default_rng(seed)
    hits = 0
    per_hits = dict.fromkeys(per, 0)
    for _ in range(n_perm):
        pg = rng.permutation(g)
        pw, pb = _within_between(D, pg)
        hits += (pw / pb) <= ratio + 1e-12
        pp = _per_group(D, pg)  # the permutation keeps every group's size
        for x in per:
            per_hits[x] += pp[x]["ratio"] <= per[x]["ratio"] + 1e-12
    for x in per:
        per[x]["p_value"] = float((1 + per_hits[x]) / (1 + n_perm)) if n_perm else float("nan")
    return {**out, "ratio": ratio, "p_value": float((1 + hits) / (1 + n_perm)), "n_perm": int(n_perm)}


def nearest_class_agreement(D_emb: np.ndarray, D_ref: np.ndarray | None = None,
                            groups: np.ndarray | None = None) -> dict:
    """Nearest class of each class in embedding space, and how often it agrees with ``D_ref``'s
    nearest class or lies in the same group (``groups >= 0``; -1 = no group)."""
    D = np.array(D_emb, dtype=np.float64)
    n = D.shape[0]
    np.fill_diagonal(D, np.inf)
    nearest = D.argmin(1) if n > 1 else np.zeros(n, int)
    out = {"nearest": nearest.tolist()}
    if D_ref is not None and n > 1:
        R = np.array(D_ref, dtype=np.float64)
        np.fill_diagonal(R, np.inf)
        ref_nearest = R.argmin(1)
        out["nearest_ref"] = ref_nearest.tolist()
        out["agree_with_ref"] = float(np.mean(nearest == ref_nearest))
        # chance: the nearest class drawn uniformly from the other n - 1 classes
        out["agree_with_ref_chance"] = 1.0 / (n - 1)
    if groups is not None and n > 1:
        g = np.asarray(groups)
        has = np.flatnonzero(g >= 0)
        if len(has):
            same = [g[nearest[i]] == g[i] for i in has]
            out["same_group"] = float(np.mean(same))
            # chance: share of the other classes (all n - 1) that share the group
            ch = [(np.sum(g == g[i]) - 1) / (n - 1) for i in has]
            out["same_group_chance"] = float(np.mean(ch))
    return out
