"""Figures of ``vqdna analyze`` (:mod:`vqdna.analysis.lineage`): the 2-D map of each codebook
coloured by the class a code supports (as Fig. 5 of the paper), and the scatter of class-centroid
distances against the reference distances."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["MARKERS", "palette", "project", "plot_codes", "plot_distances"]

MARKERS = ["p", "o", "s", "^", "D", "v"]  # level 0 pentagons, level 1 circles (as in Fig. 5)


def palette(n: int):
    """``n`` distinct colours without greys (grey marks codes that support no class)."""
    import matplotlib.pyplot as plt

    cols = []
    for name in ("tab20", "tab20b", "tab20c"):
        cmap = plt.get_cmap(name)
        cols += [cmap(i) for i in range(cmap.N)]
    cols = [c for c in cols if max(c[:3]) - min(c[:3]) > 0.1]
    # tab20 alternates dark/light shades: dark ones first, so that few classes get strong colours
    cols = cols[0:18:2] + cols[1:18:2] + cols[18:]
    if n > len(cols):
        cmap = plt.get_cmap("hsv")
        return [cmap(i / n) for i in range(n)]
    return cols[:n]


def project(emb: np.ndarray, method: str, metric: str, seed: int) -> np.ndarray:
    """2-D coordinates of the codebook vectors ``emb`` (UMAP or PCA, seeded)."""
    emb = np.asarray(emb, dtype=np.float64)
    if len(emb) < 3:
        return np.pad(emb[:, :2], ((0, 0), (0, max(0, 2 - emb.shape[1]))))
    if method == "umap":
        import warnings

        import umap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return umap.UMAP(n_neighbors=min(15, len(emb) - 1), min_dist=0.1, metric=metric,
                             random_state=seed).fit_transform(emb)
    if method == "pca":
        X = emb
        if metric == "cosine":
            X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        X = X - X.mean(0)
        U, S, _ = np.linalg.svd(X, full_matrices=False)
        P = U[:, :2] * S[:2]
        return np.pad(P, ((0, 0), (0, 2 - P.shape[1])))
    raise ValueError(f"projection must be 'umap' or 'pca', not {method!r}")


def plot_codes(path: Path, xy: np.ndarray, support: np.ndarray, level_of: np.ndarray, names: list[str],
                title: str, level_names: list[str]) -> None:
    """The codebook map: one point per code, coloured by the class it supports (grey: none),
    one marker per level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    C = len(names)
    cols = palette(C)
    fig, ax = plt.subplots(figsize=(9.5, 6.5), dpi=90)
    none = support < 0
    for lev in np.unique(level_of):
        m = (level_of == lev) & none
        ax.scatter(xy[m, 0], xy[m, 1], s=6, c="#cccccc", marker=MARKERS[lev % len(MARKERS)], linewidths=0)
    for c in range(C):
        for lev in np.unique(level_of):
            m = (support == c) & (level_of == lev)
            if m.any():
                ax.scatter(xy[m, 0], xy[m, 1], s=22 if lev == 0 else 14, color=cols[c],
                           marker=MARKERS[lev % len(MARKERS)], linewidths=0.2, edgecolors="k")
    handles = [Line2D([], [], marker="o", ls="", color=cols[c], label=names[c]) for c in range(C)]
    handles.append(Line2D([], [], marker="o", ls="", color="#cccccc", label="none"))
    if len(np.unique(level_of)) > 1:
        handles += [Line2D([], [], marker=MARKERS[lev % len(MARKERS)], ls="", color="k", label=level_names[lev])
                    for lev in np.unique(level_of)]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7,
              ncol=1 if len(handles) <= 24 else 2, frameon=False)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_distances(path: Path, D_emb: np.ndarray, D_ref: np.ndarray, groups: np.ndarray, title: str,
                    ref_name: str, metric: str) -> None:
    """Class-centroid distances against the reference distances, pairs in one group in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iu = np.triu_indices(D_emb.shape[0], 1)
    x, y = D_ref[iu], D_emb[iu]
    same = (groups[iu[0]] == groups[iu[1]]) & (groups[iu[0]] >= 0)
    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=90)
    ax.scatter(x[~same], y[~same], s=8, alpha=0.6, c="tab:gray", label="different group / no group")
    if same.any():
        ax.scatter(x[same], y[same], s=12, alpha=0.9, c="tab:red", label="same group")
    ax.set_xlabel(ref_name)
    ax.set_ylabel(f"centroid distance ({metric})")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
