"""``vqdna analyze``: which codes drive which lineage, and do related lineages sit together?

Reproduces the analysis of Sec. 4.4 / App. B (Fig. 5) of the paper and adds the numbers that
make its claim checkable. For a trained tokenizer and a classification task folder:

1. **Linear probe** ("Lin."): bag of codes per level -> multinomial logistic regression, fitted
   on train, ``C`` chosen on dev, scored on test (:mod:`vqdna.analysis.gradcam`).
2. **Grad-CAM** of the probe: ``A[c, k] = ReLU(W[c, k] * xbar[c, k])`` and every code's
   supported class ``argmax_c A[c, k]`` (or none) (:mod:`vqdna.analysis.gradcam`).
3. **UMAP** of each level's codebook (and of all levels together for HRQ, one marker per
   level as in Fig. 5), points coloured by the supported class.
4. **Numbers** (:mod:`vqdna.analysis.codespace`, :mod:`vqdna.analysis.treedist`): nearest-
   neighbour class purity of the codes against its permutation chance level; Spearman/Mantel
   correlation between the distances of the classes' attribution-weighted code centroids and
   reference distances of the clades -- from the tree: the mean number of genome positions at
   which tips of the two clades differ (``hamming``, default) and the mean patristic distance
   in mutations (``patristic``), both reported; without a tree: Mash distances of the clades'
   consensus k-mers; the within/between-group distance ratio for a coarser grouping (the
   tree's ``clade_who``, inherited from ancestors where missing, or a ``--groups`` JSON file);
   the probe metrics.
5. ``report.md`` (figures by relative path, tables, parameters) and ``analysis.json``.

The tree is ``--tree``, or the one recorded in the task's ``summary.json`` by
``vqdna data nextstrain`` when that file exists. Identical windows are tokenized once (related
genomes share most windows), so a 36-clade SARS-CoV-2 task with 85k windows costs ~9k encodes;
``cache_dir`` keeps the code features and the fitted probe for reruns.

CLI::

    vqdna analyze --tokenizer tok/ --task task/ --out report/ [--max-per-class N] [--seed S]
        [--tree tree.json] [--groups groups.json] [--distance hamming|patristic]
        [--metric cosine|euclidean] [--n-perm 999] [--C 0.001 0.01 0.1 1] [--projection umap|pca]
"""
from __future__ import annotations

import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .codespace import (class_centroids, group_separation, mantel, nearest_class_agreement, nn_purity,
                        pairwise_distances)
from .gradcam import DEFAULT_CS, code_features, fit_probe, gradcam_attribution, level_slices, merge_duplicates, \
    support_class
from .treedist import clade_groups, clade_hamming_distances, clade_tree_distances, kmer_class_distances, load_tree, resolve_tree, \
    task_genomes, task_tip_names
from ..sequence.subsample import cap_per_class as subsample_per_class  # its old name

__all__ = ["analyze", "subsample_per_class"]

MARKERS = ["p", "o", "s", "^", "D", "v"]  # level 0 pentagons, level 1 circles (as in Fig. 5)


# ----------------------------------------------------------------------------- helpers
def _clean(o):
    """JSON-safe: numpy -> Python, NaN/inf -> None."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        o = float(o)
        return o if math.isfinite(o) else None
    if isinstance(o, Path):
        return str(o)
    return o


def _log(progress: bool, t0: float, msg: str) -> None:
    if progress:
        print(f"[analyze {time.time() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def _palette(n: int):
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


def _project(emb: np.ndarray, method: str, metric: str, seed: int) -> np.ndarray:
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


def _plot_codes(path: Path, xy: np.ndarray, support: np.ndarray, level_of: np.ndarray, names: list[str],
                title: str, level_names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    C = len(names)
    cols = _palette(C)
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


def _plot_distances(path: Path, D_emb: np.ndarray, D_ref: np.ndarray, groups: np.ndarray, title: str,
                    ref_name: str, metric: str) -> None:
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


def _fmt(v, nd=3):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{nd}g}" if 0 < abs(v) < 10 ** -(nd - 1) else f"{v:.{nd}f}"
    return str(v)


# ----------------------------------------------------------------------------- main entry
def analyze(tokenizer, task, out, *, max_per_class: int | None = None, seed: int = 0, tree=None,
            tree_label: str | None = None, group_label: str | None = "clade_who", group_map=None,
            distance: str = "hamming", metric: str = "cosine",
            n_perm: int = 999, Cs: Sequence[float] = DEFAULT_CS, max_iter: int = 300, projection: str = "umap",
            save_arrays: bool = False, cache_dir=None, progress: bool = True) -> dict:
    """Run the whole analysis and write ``out/report.md``, ``out/analysis.json`` and the PNGs.

    ``tokenizer``: a folder or a loaded learned tokenizer (a :class:`~vqdna.tokenizers.base.GenomeTokenizer`
    whose ``codebooks()`` are not None); ``task``: a classification task folder (or :class:`~vqdna.sequence.tasks.Task`
    with ``.path``). Returns the dictionary written to ``analysis.json``.
    """
    from ..sequence.tasks import load_task
    from ..tokenizers import load_tokenizer

    t0 = time.time()
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', not {metric!r}")
    if distance not in ("hamming", "patristic"):
        raise ValueError(f"distance must be 'hamming' or 'patristic', not {distance!r}")
    if projection not in ("umap", "pca"):
        raise ValueError(f"projection must be 'umap' or 'pca', not {projection!r}")
    if max_per_class is not None and max_per_class < 1:
        raise ValueError(f"max_per_class must be >= 1, got {max_per_class}")
    tok_path = None
    if isinstance(tokenizer, (str, Path)):
        tok_path = str(tokenizer)
        tokenizer = load_tokenizer(tokenizer)
    books = tokenizer.codebooks()
    if books is None:
        raise ValueError(f"tokenizer {tok_path or tokenizer!r} has no codebooks (a learned VQ/HRQ tokenizer is needed)")
    task_obj = load_task(task) if isinstance(task, (str, Path)) else task
    task_dir = Path(task_obj.path)
    if task_obj.kind != "classification":
        raise ValueError(f"{task_dir}: the analysis needs a classification task, this one is {task_obj.kind}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    C = int(task_obj.n_classes)
    names = [f"class {i}" for i in range(C)]
    if task_obj.label_names:
        for nm, i in task_obj.label_names.items():
            names[i] = nm
    vocab = [int(k) for k in tokenizer.vocab_sizes]
    n_levels = len(vocab)
    slices = level_slices(vocab)
    books = [np.asarray(b, dtype=np.float64) for b in books]
    tok_type = tokenizer.tokenizer_type

    # ---- rows (optionally subsampled per class) and unique sequences
    rows = {}
    for si, split in enumerate(("train", "dev", "test")):
        sp = task_obj.splits[split]
        idx = subsample_per_class(sp.labels, max_per_class, np.random.default_rng([seed, si]))
        rows[split] = ([sp.sequences[i] for i in idx], np.asarray(sp.labels)[idx])
    uniq: dict[str, int] = {}
    uidx = {}
    for split, (seqs, _) in rows.items():
        uidx[split] = np.fromiter((uniq.setdefault(s, len(uniq)) for s in seqs), dtype=np.int64, count=len(seqs))
    useqs = list(uniq)
    _log(progress, t0, f"{sum(len(r[0]) for r in rows.values())} rows, {len(useqs)} distinct sequences; "
                       f"tokenizing with {tok_type} ({'+'.join(map(str, vocab))} codes)")
    cache_file = None
    if cache_dir is not None and tok_path is not None and (Path(tok_path) / "model.safetensors").is_file():
        import hashlib

        from ..io import file_sha256

        h = hashlib.sha256(file_sha256(Path(tok_path) / "model.safetensors").encode())
        for q in useqs:
            h.update(q.encode("ascii", "replace") + b"\n")
        cache_file = Path(cache_dir) / f"codefeatures-{h.hexdigest()[:24]}.npz"
    if cache_file is not None and cache_file.is_file():
        z = np.load(cache_file)
        Xu, usage = z["Xu"], [int(u) for u in z["usage"]]
        _log(progress, t0, f"code features from the cache {cache_file}")
    else:
        codes = []
        step = 256
        for b in range(0, len(useqs), step):
            codes += tokenizer.encode(useqs[b:b + step])
            if progress and (b // step) % 10 == 0:
                _log(progress, t0, f"tokenized {min(b + step, len(useqs))}/{len(useqs)}")
        Xu = code_features(codes, vocab)
        usage = []
        for lev in range(n_levels):
            used = np.zeros(vocab[lev], dtype=bool)
            for c in codes:
                used[np.unique(c[lev])] = True
            usage.append(int(used.sum()))
        del codes
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(".tmp.npz")
            np.savez(tmp, Xu=Xu, usage=np.asarray(usage))
            tmp.replace(cache_file)

    # ---- probe
    tr_keep, tr_w = merge_duplicates(uidx["train"].tolist(), rows["train"][1])
    X_tr, y_tr = Xu[uidx["train"][tr_keep]], rows["train"][1][tr_keep]
    X_dev, y_dev = Xu[uidx["dev"]], rows["dev"][1]
    X_te, y_te = Xu[uidx["test"]], rows["test"][1]
    probe_file = None
    if cache_file is not None:
        import hashlib

        h = hashlib.sha256(cache_file.name.encode())
        for split in ("train", "dev", "test"):
            h.update(np.ascontiguousarray(uidx[split]).tobytes() + np.ascontiguousarray(rows[split][1]).tobytes())
        h.update(json.dumps([sorted(float(c) for c in Cs), max_iter, seed]).encode())
        probe_file = cache_file.with_name(f"probe-{h.hexdigest()[:24]}.npz")
    if probe_file is not None and probe_file.is_file():
        z = np.load(probe_file, allow_pickle=False)
        probe = json.loads(str(z["meta"]))
        probe.update(W=z["W"], b=z["b"], test_pred=z["test_pred"])
        _log(progress, t0, f"probe from the cache {probe_file}")
    else:
        _log(progress, t0, f"fitting the probe on {len(y_tr)} distinct train rows (weights sum {tr_w.sum():.0f}), "
                           f"{Xu.shape[1]} features, C grid {list(Cs)}")
        probe = fit_probe(X_tr, y_tr, X_dev, y_dev, X_te, y_te, C, sample_weight=tr_w, Cs=Cs, seed=seed,
                          max_iter=max_iter)
        if probe_file is not None:
            meta = {k: v for k, v in probe.items() if k not in ("W", "b", "test_pred")}
            tmp = probe_file.with_suffix(".tmp.npz")
            np.savez(tmp, W=probe["W"], b=probe["b"], test_pred=probe["test_pred"],
                     meta=np.array(json.dumps(_clean(meta))))
            tmp.replace(probe_file)
    maj = int(np.bincount(rows["train"][1], minlength=C).argmax())
    from ..metrics import classification_metrics

    majority = classification_metrics(y_te, np.full(len(y_te), maj)) if len(y_te) else {}
    test_recall = []
    for c in range(C):
        m = y_te == c
        test_recall.append(float(np.mean(probe["test_pred"][m] == c)) if m.any() else float("nan"))
    _log(progress, t0, f"probe: C={probe['C']}, test {probe.get('test')}")

    # ---- Grad-CAM
    A, xbar = gradcam_attribution(probe["W"], X_tr, y_tr, C, sample_weight=tr_w)
    support = support_class(A)

    # ---- reference distances between classes
    tree_path, rec_label = resolve_tree(task_dir, tree)
    label_attr = tree_label or rec_label or "clade_nextstrain"
    tips = task_tip_names(task_dir)
    refs: dict[str, dict] = {}  # every available reference distance; `distance` picks the primary one
    groups: list = [None] * C
    if tree_path is not None:
        tj = load_tree(tree_path)
        hd = clade_hamming_distances(tj, label_attr, names, tips)
        refs["hamming"] = {"source": "tree genomes", "D": hd["D"], "n_tips": hd["n_tips"],
                           "unit": "mean genome differences (positions)"}
        td = clade_tree_distances(tj, label_attr, names, tips)
        refs["patristic"] = {"source": "tree branches", "D": td["D"], "n_tips": td["n_tips"],
                             "unit": "mean patristic distance (mutations)"}
        if group_label and group_label != label_attr:
            groups = clade_groups(tj, label_attr, group_label, names, tips)
        del tj
        if distance not in refs:
            raise ValueError(f"distance must be one of {sorted(refs)} with a tree, not {distance!r}")
        primary = distance
    else:
        genomes = task_genomes(task_dir)
        if genomes:
            by = [genomes.get(re.sub(r"\s+", "_", n.strip()), []) for n in names]
            src = "genomes.fa"
        else:
            by = [[s for s, y in zip(*rows["train"]) if y == c] for c in range(C)]
            src = "train windows"
        kd = kmer_class_distances(by)
        refs["kmer"] = {"source": src, "D": kd["D"], "k": kd["k"],
                        "unit": f"Mash distance of consensus {kd['k']}-mers"}
        primary = "kmer"
    if group_map:
        if isinstance(group_map, (str, Path)):
            from ..io import read_json

            group_map = read_json(group_map)
        if not isinstance(group_map, dict):
            raise ValueError("groups must map class name -> group name (a JSON object)")
        matched = set(group_map) & set(names)
        if not matched:
            raise ValueError(f"groups name none of the task's classes ({names[:5]} ...)")
        groups = [group_map.get(n) or None for n in names]  # names the task lacks are ignored
        group_source = "file"
    else:
        group_source = group_label if any(g is not None for g in groups) else None
    ref_D = {}
    for k, rf in refs.items():
        D = np.array(rf["D"], dtype=np.float64)
        rf["within_class"] = np.diag(D).copy()  # mean distance of two members of a class
        np.fill_diagonal(D, 0.0)
        ref_D[k] = D
    D_ref = ref_D[primary]
    ref = refs[primary]
    ref_valid = np.isfinite(D_ref).sum(1) > 1  # a class without tips / sequences has a NaN row
    group_names = sorted({g for g in groups if g is not None})
    gid = np.array([group_names.index(g) if g is not None else -1 for g in groups], dtype=np.int64)
    _log(progress, t0, f"reference distances: {list(refs)} (primary {primary}); groups: {group_names or 'none'}")

    # ---- per level numbers and figures
    levels = [(f"L{l}", [l]) for l in range(n_levels)]
    if n_levels > 1:
        levels.append(("all", list(range(n_levels))))
    level_names = [f"level {l} ({vocab[l]} codes)" for l in range(n_levels)]
    results = {}
    figures = {}
    legend_names = [f"{n} ({g})" if g else n for n, g in zip(names, groups)]
    for key, levs in levels:
        emb = np.vstack([books[l] for l in levs])
        cols = np.concatenate([np.arange(slices[l].start, slices[l].stop) for l in levs])
        A_l, sup = A[:, cols], support[cols]
        level_of = np.concatenate([np.full(vocab[l], l) for l in levs])
        pur = nn_purity(emb, sup, metric=metric, n_perm=n_perm, seed=seed)
        code_gid = np.where(sup >= 0, gid[np.maximum(sup, 0)], -1)
        gpur = nn_purity(emb, code_gid, metric=metric, n_perm=n_perm, seed=seed) if len(group_names) > 1 else None
        cent = class_centroids(A_l, emb)
        ok = np.flatnonzero(np.isfinite(cent).all(1) & ref_valid)
        D_emb = pairwise_distances(cent[ok], metric)
        D_r = D_ref[np.ix_(ok, ok)]
        man = mantel(D_emb, D_r, n_perm=n_perm, seed=seed)
        other = "euclidean" if metric == "cosine" else "cosine"
        pur_o = nn_purity(emb, sup, metric=other, n_perm=n_perm, seed=seed)
        man_o = mantel(pairwise_distances(cent[ok], other), D_r, n_perm=n_perm, seed=seed)
        man_all = {k: mantel(D_emb, Dk[np.ix_(ok, ok)], n_perm=n_perm, seed=seed) if np.isfinite(
            Dk[np.ix_(ok, ok)]).all() else None for k, Dk in ref_D.items()}
        sep = group_separation(D_emb, gid[ok], n_perm=n_perm, seed=seed) if len(group_names) > 1 else None
        sep_ref = group_separation(D_r, gid[ok], n_perm=0, seed=seed) if len(group_names) > 1 else None
        for sp in (sep, sep_ref):
            if sp:
                sp["per_group"] = {group_names[k]: v for k, v in sp["per_group"].items()}
        near = nearest_class_agreement(D_emb, D_r, gid[ok] if len(group_names) > 1 else None)
        nearest = {names[ok[i]]: names[ok[j]] for i, j in enumerate(near["nearest"])}
        nearest_ref = {names[ok[i]]: names[ok[j]] for i, j in enumerate(near.get("nearest_ref", []))}
        results[key] = {
            "levels": levs,
            "codes": int(len(sup)),
            "codes_used_in_task": int(sum(usage[l] for l in levs)),
            "codes_with_class": int((sup >= 0).sum()),
            "codes_per_class": {names[c]: int((sup == c).sum()) for c in range(C)},
            "support": sup.tolist(),
            "nn_purity": pur,
            "nn_group_purity": gpur,
            "centroid_classes": [names[i] for i in ok],
            "centroid_distances": D_emb,
            "mantel_vs_reference": man,
            "mantel_vs_each_reference": man_all,
            "other_metric": {"metric": other, "nn_purity": pur_o, "mantel_vs_reference": man_o},
            "group_separation": sep,
            "group_separation_in_reference": sep_ref,
            "nearest_class": {k: v for k, v in near.items() if k not in ("nearest", "nearest_ref")},
            "nearest_class_by_class": nearest,
            "nearest_class_by_reference": nearest_ref,
        }
        _log(progress, t0, f"{key}: purity {pur['purity']:.3f} (chance {pur['chance_expected']:.3f}), "
                           f"Mantel r={man['spearman']}, p={man['p_value']}")
        xy = _project(emb, projection, metric, seed)
        fn = f"codes_{key}.png"
        title = (f"{tok_type.upper()} codebook {key} ({projection.upper()}, {metric}); colour = class a code supports "
                 f"most (Grad-CAM)\nNN purity {pur['purity']:.2f} vs chance {pur['chance_expected']:.2f}")
        _plot_codes(out / fn, xy, sup, level_of, legend_names, title, level_names)
        figures[f"codes_{key}"] = fn
        if len(ok) >= 3:
            fn = f"distances_{key}.png"
            _plot_distances(out / fn, D_emb, D_r, gid[ok],
                            f"{tok_type.upper()} {key}: class centroids vs {primary} distance\n"
                            f"Spearman {_fmt(man['spearman'], 2)} (Mantel p {_fmt(man['p_value'], 3)})",
                            ref["unit"], metric)
            figures[f"distances_{key}"] = fn

    per_class = []
    n_rows = {s: np.bincount(rows[s][1], minlength=C) for s in rows}
    for c in range(C):
        per_class.append({"name": names[c], "id": c, "group": groups[c],
                          "rows": {s: int(n_rows[s][c]) for s in rows},
                          "test_recall": test_recall[c],
                          "codes_supported": {k: results[k]["codes_per_class"][names[c]] for k, _ in levels}})
    result = {
        "parameters": {"tokenizer": tok_path, "tokenizer_type": tok_type, "vocab_sizes": vocab, "task": str(task_dir),
                       "max_per_class": max_per_class, "seed": seed, "metric": metric, "n_perm": n_perm,
                       "Cs": list(Cs), "max_iter": max_iter, "projection": projection, "tree": str(tree_path) if tree_path else None,
                       "tree_label": label_attr, "distance": primary, "groups": group_source,
                       "features": "per level K_l * count/L (bag of codes), concatenated over levels; standardised for the "
                                   "fit, W reported on the raw features",
                       "gradcam": "A[c,k] = max(0, W[c,k] * mean_{train rows of class c} x[k]); "
                                  "support[k] = argmax_c A[c,k], or none if A[:,k] == 0"},
        "data": {"classes": names, "groups": groups, "rows": {s: int(len(rows[s][1])) for s in rows},
                 "distinct_sequences": len(useqs), "distinct_train_rows": int(len(y_tr)),
                 "codes_used_per_level": usage},
        "probe": {"C": probe["C"], "candidates": probe["candidates"], "train": probe["train"], "dev": probe["dev"],
                  "test": probe.get("test", {}), "majority_baseline_test": majority},
        "reference": {"primary": primary, **refs},
        "levels": results,
        "per_class": per_class,
        "figures": figures,
        "seconds": round(time.time() - t0, 1),
    }
    if save_arrays:
        np.savez_compressed(out / "arrays.npz", A=A, xbar=xbar, W=probe["W"], b=probe["b"], support=support,
                            D_ref=D_ref)
    with open(out / "analysis.json", "w") as fh:
        json.dump(_clean(result), fh, indent=1)
    (out / "report.md").write_text(_report_md(result, levels))
    _log(progress, t0, f"wrote {out / 'report.md'} and {out / 'analysis.json'}")
    return _clean(result)


# ----------------------------------------------------------------------------- report
def _report_md(r: dict, levels) -> str:
    p, d, pr = r["parameters"], r["data"], r["probe"]
    L = []
    L.append(f"# Code-space analysis: {p['tokenizer_type'].upper()} tokenizer on `{Path(p['task']).name}`\n")
    L.append("Reproduces Sec. 4.4 / App. B (Fig. 5) of VQDNA: a linear probe on bags of codes, Grad-CAM "
             "attribution of every code to the class it supports most, a 2-D map of each codebook, and the "
             "numbers that make the figure checkable.\n")
    L.append("## Parameters\n")
    L.append("| parameter | value |\n|---|---|")
    for k in ("tokenizer", "tokenizer_type", "vocab_sizes", "task", "max_per_class", "seed", "metric", "n_perm",
              "Cs", "max_iter", "projection", "tree", "tree_label", "distance", "groups"):
        L.append(f"| {k} | `{p[k]}` |")
    L.append(f"| features | {p['features']} |")
    L.append(f"| Grad-CAM | `{p['gradcam']}` |")
    rp = r["reference"]["primary"]
    L.append(f"| reference distance | {rp}: {r['reference'][rp].get('unit')} ({r['reference'][rp].get('source')}) |")
    L.append("")
    L.append(f"Rows train/dev/test: {d['rows']['train']}/{d['rows']['dev']}/{d['rows']['test']} "
             f"({d['distinct_sequences']} distinct sequences; {d['distinct_train_rows']} distinct train "
             f"(sequence, label) rows, fitted with multiplicity weights). {len(d['classes'])} classes. "
             f"Codes used per level: {d['codes_used_per_level']} of {p['vocab_sizes']}. "
             f"Run time {r['seconds']} s.\n")
    L.append("## Linear probe (Lin.)\n")
    te, mj = pr["test"], pr["majority_baseline_test"]
    L.append("| | accuracy | macro F1 | MCC |\n|---|---|---|---|")
    L.append(f"| probe, test (C = {pr['C']}) | {_fmt(te.get('accuracy'))} | {_fmt(te.get('f1_macro'))} | "
             f"{_fmt(te.get('mcc'))} |")
    L.append(f"| probe, dev | {_fmt(pr['dev'].get('accuracy'))} | {_fmt(pr['dev'].get('f1_macro'))} | "
             f"{_fmt(pr['dev'].get('mcc'))} |")
    L.append(f"| majority class, test | {_fmt(mj.get('accuracy'))} | {_fmt(mj.get('f1_macro'))} | "
             f"{_fmt(mj.get('mcc'))} |")
    L.append(f"\nTrain accuracy {_fmt(pr['train'].get('accuracy'))}. Dev MCC per C: "
             + ", ".join(f"{c['C']}: {_fmt(c['dev_mcc'])}{'' if c['converged'] else ' (max_iter)'}"
                         for c in pr["candidates"]) + "\n")
    L.append("## Code space\n")
    L.append("NN purity: share of class-supporting codes whose nearest such code (same level, "
             f"{p['metric']}) supports the same class; chance = expectation under permuting the classes over "
             "the codes (p: permutation test). Mantel: Spearman correlation between the distances of the "
             "classes' attribution-weighted code centroids and the reference distances of the classes. "
             "Group ratio: mean centroid distance within a group / between groups (< 1: related classes "
             "together). Nearest class: share of classes whose nearest centroid is their nearest clade in "
             "the reference (chance 1/(n-1)).\n")
    hdr = ("| level | codes with class / used / all | NN purity | chance | p | group NN purity (chance) | "
           "Mantel r (p, n) | group ratio (p) [in reference] | nearest = reference nearest (chance) | "
           "nearest in same group (chance) |")
    L.append(hdr)
    L.append("|" + "---|" * 10)
    for key, _ in levels:
        x = r["levels"][key]
        pu, gp, m, s, sr, nc = (x["nn_purity"], x["nn_group_purity"], x["mantel_vs_reference"],
                                x["group_separation"], x["group_separation_in_reference"], x["nearest_class"])
        gps = f"{_fmt(gp['purity'])} ({_fmt(gp['chance_expected'])})" if gp else "n/a"
        seps = f"{_fmt(s['ratio'])} ({_fmt(s['p_value'])}) [{_fmt(sr['ratio'])}]" if s else "n/a"
        L.append(f"| {key} | {x['codes_with_class']} / {x['codes_used_in_task']} / {x['codes']} | "
                 f"{_fmt(pu['purity'])} | {_fmt(pu['chance_expected'])} | {_fmt(pu['p_value'])} | {gps} | "
                 f"{_fmt(m['spearman'])} ({_fmt(m['p_value'])}, {m['n']}) | {seps} | "
                 f"{_fmt(nc.get('agree_with_ref'))} ({_fmt(nc.get('agree_with_ref_chance'))}) | "
                 f"{_fmt(nc.get('same_group'))} ({_fmt(nc.get('same_group_chance'))}) |")
    L.append("")
    others = [k for k in r["reference"] if k != "primary"]
    if len(others) > 1:
        L.append("Mantel correlation of the centroid distances with each reference distance "
                 "(Spearman r, permutation p):\n")
        L.append("| level | " + " | ".join(f"{k} ({r['reference'][k]['unit']})" for k in others) + " |")
        L.append("|---|" + "---|" * len(others))
        for key, _ in levels:
            ms = r["levels"][key]["mantel_vs_each_reference"]
            L.append(f"| {key} | " + " | ".join(
                f"{_fmt(ms[k]['spearman'])} ({_fmt(ms[k]['p_value'])})" if ms.get(k) else "n/a" for k in others) + " |")
        L.append("")
    om = r["levels"][levels[0][0]]["other_metric"]["metric"]
    L.append(f"The same with {om} distances in code space (NN purity vs chance, p; Mantel r, p):\n")
    L.append("| level | NN purity | chance | p | Mantel r | p |\n|---|---|---|---|---|---|")
    for key, _ in levels:
        o = r["levels"][key]["other_metric"]
        L.append(f"| {key} | {_fmt(o['nn_purity']['purity'])} | {_fmt(o['nn_purity']['chance_expected'])} | "
                 f"{_fmt(o['nn_purity']['p_value'])} | {_fmt(o['mantel_vs_reference']['spearman'])} | "
                 f"{_fmt(o['mantel_vs_reference']['p_value'])} |")
    L.append("")
    if any(r["levels"][k]["group_separation"] for k, _ in levels):
        L.append("Per group: mean centroid distance within the group / to the classes of other groups = ratio "
                 "(permutation p of the ratio); in brackets the ratio for the reference distance:\n")
        gnames = sorted({g for k, _ in levels if r["levels"][k]["group_separation"]
                         for g in r["levels"][k]["group_separation"]["per_group"]})
        L.append("| level | " + " | ".join(gnames) + " |")
        L.append("|---|" + "---|" * len(gnames))
        for key, _ in levels:
            sp, sr = r["levels"][key]["group_separation"], r["levels"][key]["group_separation_in_reference"]
            if not sp:
                continue
            cells = []
            for g in gnames:
                a, b = sp["per_group"].get(g), sr["per_group"].get(g)
                cells.append(f"{_fmt(a['within'])} / {_fmt(a['to_others'])} = {_fmt(a['ratio'], 2)} "
                             f"(p {_fmt(a.get('p_value'), 2)}) [{_fmt(b['ratio'], 2)}]" if a and b else "n/a")
            L.append(f"| {key} | " + " | ".join(cells) + " |")
        L.append("")
    L.append("## Figures\n")
    for key, fn in r["figures"].items():
        L.append(f"![{key}]({fn})\n")
    L.append("## Per class\n")
    keys = [k for k, _ in levels]
    last = keys[-1]
    L.append("| class | group | train/dev/test rows | test recall | codes supported (" + ", ".join(keys) +
             f") | nearest class ({last}) | nearest clade (reference) |")
    L.append("|---|---|---|---|---|---|---|")
    near, near_ref = r["levels"][last]["nearest_class_by_class"], r["levels"][last]["nearest_class_by_reference"]
    for pc in r["per_class"]:
        rw = pc["rows"]
        L.append(f"| {pc['name']} | {pc['group'] or ''} | {rw['train']}/{rw['dev']}/{rw['test']} | "
                 f"{_fmt(pc['test_recall'], 2)} | {', '.join(str(pc['codes_supported'][k]) for k in keys)} | "
                 f"{near.get(pc['name'], 'n/a')} | {near_ref.get(pc['name'], 'n/a')} |")
    L.append("")
    L.append("All numbers are in `analysis.json`.\n")
    return "\n".join(L)
