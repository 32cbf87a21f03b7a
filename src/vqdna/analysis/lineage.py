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
5. ``report.md`` (figures by relative path, tables, parameters; :mod:`vqdna.analysis.lineage_report`)
   and ``analysis.json``; the figures are drawn by :mod:`vqdna.analysis.lineage_figures`.

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
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.auspice import safe_name
from ..sequence.subsample import cap_per_class
from .codespace import (class_centroids, group_separation, mantel, nearest_class_agreement, nn_purity,
                        pairwise_distances)
from .gradcam import DEFAULT_CS, code_features, fit_probe, gradcam_attribution, level_slices, merge_duplicates, \
    support_class
from .lineage_figures import plot_codes, plot_distances, project
from .lineage_report import fmt, report_markdown
from .treedist import clade_groups, clade_hamming_distances, clade_tree_distances, kmer_class_distances, load_tree, \
    resolve_tree, task_genomes, task_tip_names

__all__ = ["analyze", "subsample_per_class"]

subsample_per_class = cap_per_class  # its name before vqdna.sequence.subsample
SPLITS = ("train", "dev", "test")


# ----------------------------------------------------------------------------- what the steps pass on
@dataclass
class _Rows:
    """The analysed rows of every split, and the distinct sequences (tokenized once each)."""

    sequences: dict[str, list[str]]
    labels: dict[str, np.ndarray]
    distinct: list[str]  # first-seen order over train, dev, test
    distinct_index: dict[str, np.ndarray]  # split -> index into ``distinct`` of every row


@dataclass
class _ProbeFit:
    """The linear probe and the train rows it was fitted on."""

    probe: dict  # fit_probe's result: W, b, C, candidates, train/dev/test metrics, test_pred
    X_train: np.ndarray  # features of the distinct (sequence, label) train rows
    y_train: np.ndarray
    train_weights: np.ndarray  # how often each distinct train row occurs
    majority: dict  # test metrics of always predicting the most common train class
    test_recall: list[float]  # per class


@dataclass
class _TreeReferences:
    """Reference distances between the classes (from the tree, or k-mers without one)."""

    distances: dict[str, dict]  # name -> {"source", "D", "unit", ...}, as reported
    primary: str
    tree_path: Path | None
    label_attr: str  # the tree attribute holding the class names
    groups: list  # group of every class from the tree (None: no group)


@dataclass
class _Codes:
    """A tokenizer's codes as the per-level numbers need them."""

    books: list[np.ndarray]  # codebook vectors per level (float64)
    vocab: list[int]  # codes per level
    slices: list[slice]  # columns of each level in the feature matrix
    attribution: np.ndarray  # Grad-CAM A (n_classes, n_codes)
    support: np.ndarray  # class each code supports most, -1: none
    usage: list[int]  # codes used by the task's sequences, per level


@dataclass
class _Reference:
    """The reference distance matrices (diagonal zeroed) and the class groups."""

    matrices: dict[str, np.ndarray]
    primary: str
    group_names: list[str]
    group_of_class: np.ndarray  # index into group_names, -1: none

    @property
    def D(self) -> np.ndarray:
        return self.matrices[self.primary]

    @property
    def valid(self) -> np.ndarray:
        """Classes with a reference distance (a class without tips / sequences has a NaN row)."""
        return np.isfinite(self.D).sum(1) > 1


@dataclass
class _LevelGeometry:
    """What the figures of one level draw."""

    embedding: np.ndarray  # codebook vectors of the level(s)
    support: np.ndarray
    level_of: np.ndarray  # level of every code
    centroid_distances: np.ndarray  # between the classes in ``classes``
    reference_distances: np.ndarray
    classes: np.ndarray  # classes with a centroid and a reference distance


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
    t0 = time.time()
    log = partial(_log, progress, t0)
    _check_options(metric, distance, projection, max_per_class)
    tokenizer, tok_path, books = _codebook_tokenizer(tokenizer)
    task_obj = _classification_task(task)
    task_dir = Path(task_obj.path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    C = int(task_obj.n_classes)
    names = _class_names(task_obj)
    vocab = [int(k) for k in tokenizer.vocab_sizes]
    tok_type = tokenizer.tokenizer_type

    rows = _sample_rows(task_obj, max_per_class, seed)
    log(f"{sum(len(s) for s in rows.sequences.values())} rows, {len(rows.distinct)} distinct sequences; "
        f"tokenizing with {tok_type} ({'+'.join(map(str, vocab))} codes)")
    cache_file = _feature_cache_file(tok_path, rows.distinct, cache_dir)
    features, usage = _code_features(tokenizer, rows.distinct, vocab, cache_file, progress, log)
    fit = _probe(features, rows, C, Cs=Cs, max_iter=max_iter, seed=seed, cache_file=cache_file, log=log)
    attribution, mean_features = gradcam_attribution(fit.probe["W"], fit.X_train, fit.y_train, C,
                                                     sample_weight=fit.train_weights)
    codes = _Codes([np.asarray(b, dtype=np.float64) for b in books], vocab, level_slices(vocab), attribution,
                   support_class(attribution), usage)

    trees = _reference_distances(task_dir, tree, tree_label, group_label, distance, names, rows)
    groups, group_source = _class_groups(group_map, trees.groups, group_label, names)
    ref = _reference_matrices(trees, groups)
    log(f"reference distances: {list(trees.distances)} (primary {trees.primary}); "
        f"groups: {ref.group_names or 'none'}")

    levels = _level_keys(len(vocab))
    results, figures = {}, {}
    legend_names = [f"{n} ({g})" if g else n for n, g in zip(names, groups)]
    for key, levs in levels:
        results[key], geometry = _analyze_level(levs, codes, ref, names, metric=metric, n_perm=n_perm, seed=seed)
        pur, man = results[key]["nn_purity"], results[key]["mantel_vs_reference"]
        log(f"{key}: purity {pur['purity']:.3f} (chance {pur['chance_expected']:.3f}), "
            f"Mantel r={man['spearman']}, p={man['p_value']}")
        figures.update(_level_figures(out, key, geometry, results[key], legend_names, vocab, tok_type=tok_type,
                                      projection=projection, metric=metric, seed=seed, primary=trees.primary,
                                      unit=trees.distances[trees.primary]["unit"], group_of_class=ref.group_of_class))

    result = {
        "parameters": {"tokenizer": tok_path, "tokenizer_type": tok_type, "vocab_sizes": vocab, "task": str(task_dir),
                       "max_per_class": max_per_class, "seed": seed, "metric": metric, "n_perm": n_perm,
                       "Cs": list(Cs), "max_iter": max_iter, "projection": projection,
                       "tree": str(trees.tree_path) if trees.tree_path else None,
                       "tree_label": trees.label_attr, "distance": trees.primary, "groups": group_source,
                       "features": "per level K_l * count/L (bag of codes), concatenated over levels; standardised for the "
                                   "fit, W reported on the raw features",
                       "gradcam": "A[c,k] = max(0, W[c,k] * mean_{train rows of class c} x[k]); "
                                  "support[k] = argmax_c A[c,k], or none if A[:,k] == 0"},
        "data": {"classes": names, "groups": groups, "rows": {s: int(len(rows.labels[s])) for s in SPLITS},
                 "distinct_sequences": len(rows.distinct), "distinct_train_rows": int(len(fit.y_train)),
                 "codes_used_per_level": usage},
        "probe": {"C": fit.probe["C"], "candidates": fit.probe["candidates"], "train": fit.probe["train"],
                  "dev": fit.probe["dev"], "test": fit.probe.get("test", {}), "majority_baseline_test": fit.majority},
        "reference": {"primary": trees.primary, **trees.distances},
        "levels": results,
        "per_class": _per_class(names, groups, rows, fit.test_recall, results, levels),
        "figures": figures,
        "seconds": round(time.time() - t0, 1),
    }
    if save_arrays:
        np.savez_compressed(out / "arrays.npz", A=attribution, xbar=mean_features, W=fit.probe["W"],
                            b=fit.probe["b"], support=codes.support, D_ref=ref.D)
    with open(out / "analysis.json", "w") as fh:
        json.dump(_clean(result), fh, indent=1)
    (out / "report.md").write_text(report_markdown(result, levels))
    log(f"wrote {out / 'report.md'} and {out / 'analysis.json'}")
    return _clean(result)


# ----------------------------------------------------------------------------- inputs
def _check_options(metric: str, distance: str, projection: str, max_per_class: int | None) -> None:
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', not {metric!r}")
    if distance not in ("hamming", "patristic"):
        raise ValueError(f"distance must be 'hamming' or 'patristic', not {distance!r}")
    if projection not in ("umap", "pca"):
        raise ValueError(f"projection must be 'umap' or 'pca', not {projection!r}")
    if max_per_class is not None and max_per_class < 1:
        raise ValueError(f"max_per_class must be >= 1, got {max_per_class}")


def _codebook_tokenizer(tokenizer):
    """(tokenizer, its folder or None, its codebooks); a tokenizer without codebooks is an error."""
    from ..tokenizers import load_tokenizer

    tok_path = None
    if isinstance(tokenizer, (str, Path)):
        tok_path = str(tokenizer)
        tokenizer = load_tokenizer(tokenizer)
    books = tokenizer.codebooks()
    if books is None:
        raise ValueError(f"tokenizer {tok_path or tokenizer!r} has no codebooks (a learned VQ/HRQ tokenizer is needed)")
    return tokenizer, tok_path, books


def _classification_task(task):
    from ..sequence.tasks import load_task

    task_obj = load_task(task) if isinstance(task, (str, Path)) else task
    if task_obj.kind != "classification":
        raise ValueError(f"{Path(task_obj.path)}: the analysis needs a classification task, "
                         f"this one is {task_obj.kind}")
    return task_obj


def _class_names(task_obj) -> list[str]:
    """``labels.json`` names, else ``class <id>``."""
    names = [f"class {i}" for i in range(int(task_obj.n_classes))]
    for nm, i in (task_obj.label_names or {}).items():
        names[i] = nm
    return names


def _sample_rows(task_obj, max_per_class: int | None, seed: int) -> _Rows:
    """The rows of every split (at most ``max_per_class`` per class, seeded per split) and their
    distinct sequences."""
    sequences, labels = {}, {}
    for si, split in enumerate(SPLITS):
        sp = task_obj.splits[split]
        idx = cap_per_class(sp.labels, max_per_class, np.random.default_rng([seed, si]))
        sequences[split] = [sp.sequences[i] for i in idx]
        labels[split] = np.asarray(sp.labels)[idx]
    first: dict[str, int] = {}
    index = {split: np.fromiter((first.setdefault(s, len(first)) for s in seqs), dtype=np.int64, count=len(seqs))
             for split, seqs in sequences.items()}
    return _Rows(sequences, labels, list(first), index)


# ----------------------------------------------------------------------------- code features
def _feature_cache_file(tok_path, distinct: list[str], cache_dir) -> Path | None:
    """Where the code features of these sequences under this tokenizer are cached (None: no cache)."""
    if cache_dir is None or tok_path is None or not (Path(tok_path) / "model.safetensors").is_file():
        return None
    import hashlib

    from ..io import file_sha256

    h = hashlib.sha256(file_sha256(Path(tok_path) / "model.safetensors").encode())
    for q in distinct:
        h.update(q.encode("ascii", "replace") + b"\n")
    return Path(cache_dir) / f"codefeatures-{h.hexdigest()[:24]}.npz"


def _code_features(tokenizer, distinct: list[str], vocab: list[int], cache_file, progress: bool, log):
    """Bag-of-codes features of every distinct sequence and the codes used per level (cached)."""
    if cache_file is not None and cache_file.is_file():
        z = np.load(cache_file)
        log(f"code features from the cache {cache_file}")
        return z["Xu"], [int(u) for u in z["usage"]]
    codes = []
    step = 256
    for b in range(0, len(distinct), step):
        codes += tokenizer.encode(distinct[b:b + step])
        if progress and (b // step) % 10 == 0:
            log(f"tokenized {min(b + step, len(distinct))}/{len(distinct)}")
    features = code_features(codes, vocab)
    usage = []
    for lev in range(len(vocab)):
        used = np.zeros(vocab[lev], dtype=bool)
        for c in codes:
            used[np.unique(c[lev])] = True
        usage.append(int(used.sum()))
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npz")
        np.savez(tmp, Xu=features, usage=np.asarray(usage))
        tmp.replace(cache_file)
    return features, usage


# ----------------------------------------------------------------------------- the probe
def _probe(features: np.ndarray, rows: _Rows, C: int, *, Cs, max_iter: int, seed: int, cache_file, log) -> _ProbeFit:
    """Fit (or read from the cache) the linear probe on the distinct train rows; its test recall
    per class and the majority-class baseline."""
    from ..metrics import classification_metrics

    ix, y = rows.distinct_index, rows.labels
    keep, weights = merge_duplicates(ix["train"].tolist(), y["train"])
    X_tr, y_tr = features[ix["train"][keep]], y["train"][keep]
    X_dev, y_dev = features[ix["dev"]], y["dev"]
    X_te, y_te = features[ix["test"]], y["test"]
    probe_file = _probe_cache_file(cache_file, rows, Cs, max_iter, seed)
    if probe_file is not None and probe_file.is_file():
        z = np.load(probe_file, allow_pickle=False)
        probe = json.loads(str(z["meta"]))
        probe.update(W=z["W"], b=z["b"], test_pred=z["test_pred"])
        log(f"probe from the cache {probe_file}")
    else:
        log(f"fitting the probe on {len(y_tr)} distinct train rows (weights sum {weights.sum():.0f}), "
            f"{features.shape[1]} features, C grid {list(Cs)}")
        probe = fit_probe(X_tr, y_tr, X_dev, y_dev, X_te, y_te, C, sample_weight=weights, Cs=Cs, seed=seed,
                          max_iter=max_iter)
        if probe_file is not None:
            meta = {k: v for k, v in probe.items() if k not in ("W", "b", "test_pred")}
            tmp = probe_file.with_suffix(".tmp.npz")
            np.savez(tmp, W=probe["W"], b=probe["b"], test_pred=probe["test_pred"],
                     meta=np.array(json.dumps(_clean(meta))))
            tmp.replace(probe_file)
    maj = int(np.bincount(y["train"], minlength=C).argmax())
    majority = classification_metrics(y_te, np.full(len(y_te), maj)) if len(y_te) else {}
    test_recall = []
    for c in range(C):
        m = y_te == c
        test_recall.append(float(np.mean(probe["test_pred"][m] == c)) if m.any() else float("nan"))
    log(f"probe: C={probe['C']}, test {probe.get('test')}")
    return _ProbeFit(probe, X_tr, y_tr, weights, majority, test_recall)


def _probe_cache_file(cache_file, rows: _Rows, Cs, max_iter: int, seed: int) -> Path | None:
    if cache_file is None:
        return None
    import hashlib

    h = hashlib.sha256(cache_file.name.encode())
    for split in SPLITS:
        h.update(np.ascontiguousarray(rows.distinct_index[split]).tobytes()
                 + np.ascontiguousarray(rows.labels[split]).tobytes())
    h.update(json.dumps([sorted(float(c) for c in Cs), max_iter, seed]).encode())
    return cache_file.with_name(f"probe-{h.hexdigest()[:24]}.npz")


# ----------------------------------------------------------------------------- reference distances
def _reference_distances(task_dir: Path, tree, tree_label, group_label, distance: str, names: list[str],
                         rows: _Rows) -> _TreeReferences:
    """Every available reference distance between the classes; ``distance`` picks the primary
    one when there is a tree, the k-mer distance is the only one without."""
    tree_path, rec_label = resolve_tree(task_dir, tree)
    label_attr = tree_label or rec_label or "clade_nextstrain"
    tips = task_tip_names(task_dir)
    refs: dict[str, dict] = {}
    groups: list = [None] * len(names)
    if tree_path is not None:
        tree_json = load_tree(tree_path)
        hd = clade_hamming_distances(tree_json, label_attr, names, tips)
        refs["hamming"] = {"source": "tree genomes", "D": hd["D"], "n_tips": hd["n_tips"],
                           "unit": "mean genome differences (positions)"}
        td = clade_tree_distances(tree_json, label_attr, names, tips)
        refs["patristic"] = {"source": "tree branches", "D": td["D"], "n_tips": td["n_tips"],
                             "unit": "mean patristic distance (mutations)"}
        if group_label and group_label != label_attr:
            groups = clade_groups(tree_json, label_attr, group_label, names, tips)
        del tree_json
        if distance not in refs:
            raise ValueError(f"distance must be one of {sorted(refs)} with a tree, not {distance!r}")
        return _TreeReferences(refs, distance, tree_path, label_attr, groups)
    genomes = task_genomes(task_dir)
    if genomes:
        by_class = [genomes.get(safe_name(n), []) for n in names]
        src = "genomes.fa"
    else:
        by_class = [[s for s, y in zip(rows.sequences["train"], rows.labels["train"]) if y == c]
                    for c in range(len(names))]
        src = "train windows"
    kd = kmer_class_distances(by_class)
    refs["kmer"] = {"source": src, "D": kd["D"], "k": kd["k"], "unit": f"Mash distance of consensus {kd['k']}-mers"}
    return _TreeReferences(refs, "kmer", tree_path, label_attr, groups)


def _class_groups(group_map, tree_groups: list, group_label, names: list[str]) -> tuple[list, str | None]:
    """The group of every class (a ``group_map`` file or dict wins over the tree's groups) and
    where the groups came from."""
    if not group_map:
        return tree_groups, (group_label if any(g is not None for g in tree_groups) else None)
    if isinstance(group_map, (str, Path)):
        from ..io import read_json

        group_map = read_json(group_map)
    if not isinstance(group_map, dict):
        raise ValueError("groups must map class name -> group name (a JSON object)")
    if not set(group_map) & set(names):
        raise ValueError(f"groups name none of the task's classes ({names[:5]} ...)")
    return [group_map.get(n) or None for n in names], "file"  # names the task lacks are ignored


def _reference_matrices(trees: _TreeReferences, groups: list) -> _Reference:
    """The reference matrices with a zero diagonal (the diagonal, the mean distance of two
    members of a class, is kept in the report as ``within_class``) and the group ids."""
    matrices = {}
    for k, rf in trees.distances.items():
        D = np.array(rf["D"], dtype=np.float64)
        rf["within_class"] = np.diag(D).copy()
        np.fill_diagonal(D, 0.0)
        matrices[k] = D
    group_names = sorted({g for g in groups if g is not None})
    group_of_class = np.array([group_names.index(g) if g is not None else -1 for g in groups], dtype=np.int64)
    return _Reference(matrices, trees.primary, group_names, group_of_class)


# ----------------------------------------------------------------------------- per level
def _level_keys(n_levels: int) -> list[tuple[str, list[int]]]:
    """``L0``, ``L1``, ... and ``all`` (every level together) for a multi-level tokenizer."""
    levels = [(f"L{l}", [l]) for l in range(n_levels)]
    if n_levels > 1:
        levels.append(("all", list(range(n_levels))))
    return levels


def _analyze_level(levs: list[int], codes: _Codes, ref: _Reference, names: list[str], *, metric: str, n_perm: int,
                   seed: int) -> tuple[dict, _LevelGeometry]:
    """The numbers of one level (or of several together): NN purity of the codes, Mantel test of
    the class centroids against the reference, group separation, nearest classes."""
    vectors = np.vstack([codes.books[l] for l in levs])
    cols = np.concatenate([np.arange(codes.slices[l].start, codes.slices[l].stop) for l in levs])
    attribution, support = codes.attribution[:, cols], codes.support[cols]
    level_of = np.concatenate([np.full(codes.vocab[l], l) for l in levs])
    grouped = len(ref.group_names) > 1
    group_of = ref.group_of_class
    purity = nn_purity(vectors, support, metric=metric, n_perm=n_perm, seed=seed)
    code_group = np.where(support >= 0, group_of[np.maximum(support, 0)], -1)
    group_purity = nn_purity(vectors, code_group, metric=metric, n_perm=n_perm, seed=seed) if grouped else None
    centroids = class_centroids(attribution, vectors)
    placed = np.flatnonzero(np.isfinite(centroids).all(1) & ref.valid)  # classes with a centroid and a reference
    centroid_dist = pairwise_distances(centroids[placed], metric)
    reference_dist = ref.D[np.ix_(placed, placed)]
    mantel_r = mantel(centroid_dist, reference_dist, n_perm=n_perm, seed=seed)
    other = "euclidean" if metric == "cosine" else "cosine"
    purity_other = nn_purity(vectors, support, metric=other, n_perm=n_perm, seed=seed)
    mantel_other = mantel(pairwise_distances(centroids[placed], other), reference_dist, n_perm=n_perm, seed=seed)
    mantel_each = {k: mantel(centroid_dist, D[np.ix_(placed, placed)], n_perm=n_perm, seed=seed)
                   if np.isfinite(D[np.ix_(placed, placed)]).all() else None for k, D in ref.matrices.items()}
    separation = group_separation(centroid_dist, group_of[placed], n_perm=n_perm, seed=seed) if grouped else None
    separation_ref = group_separation(reference_dist, group_of[placed], n_perm=0, seed=seed) if grouped else None
    for sep in (separation, separation_ref):
        if sep:
            sep["per_group"] = {ref.group_names[k]: v for k, v in sep["per_group"].items()}
    near = nearest_class_agreement(centroid_dist, reference_dist, group_of[placed] if grouped else None)
    result = {
        "levels": levs,
        "codes": int(len(support)),
        "codes_used_in_task": int(sum(codes.usage[l] for l in levs)),
        "codes_with_class": int((support >= 0).sum()),
        "codes_per_class": {name: int((support == c).sum()) for c, name in enumerate(names)},
        "support": support.tolist(),
        "nn_purity": purity,
        "nn_group_purity": group_purity,
        "centroid_classes": [names[i] for i in placed],
        "centroid_distances": centroid_dist,
        "mantel_vs_reference": mantel_r,
        "mantel_vs_each_reference": mantel_each,
        "other_metric": {"metric": other, "nn_purity": purity_other, "mantel_vs_reference": mantel_other},
        "group_separation": separation,
        "group_separation_in_reference": separation_ref,
        "nearest_class": {k: v for k, v in near.items() if k not in ("nearest", "nearest_ref")},
        "nearest_class_by_class": {names[placed[i]]: names[placed[j]] for i, j in enumerate(near["nearest"])},
        "nearest_class_by_reference": {names[placed[i]]: names[placed[j]]
                                       for i, j in enumerate(near.get("nearest_ref", []))},
    }
    return result, _LevelGeometry(vectors, support, level_of, centroid_dist, reference_dist, placed)


def _level_figures(out: Path, key: str, g: _LevelGeometry, result: dict, legend_names: list[str],
                   vocab: list[int], *, tok_type: str, projection: str, metric: str, seed: int, primary: str,
                   unit: str, group_of_class: np.ndarray) -> dict[str, str]:
    """The codebook map of a level and (with 3 classes or more) its distance scatter; returns
    ``{figure key: file name}``."""
    pur, man = result["nn_purity"], result["mantel_vs_reference"]
    level_names = [f"level {l} ({vocab[l]} codes)" for l in range(len(vocab))]
    figures = {}
    fn = f"codes_{key}.png"
    title = (f"{tok_type.upper()} codebook {key} ({projection.upper()}, {metric}); colour = class a code supports "
             f"most (Grad-CAM)\nNN purity {pur['purity']:.2f} vs chance {pur['chance_expected']:.2f}")
    plot_codes(out / fn, project(g.embedding, projection, metric, seed), g.support, g.level_of, legend_names, title,
               level_names)
    figures[f"codes_{key}"] = fn
    if len(g.classes) >= 3:
        fn = f"distances_{key}.png"
        plot_distances(out / fn, g.centroid_distances, g.reference_distances, group_of_class[g.classes],
                       f"{tok_type.upper()} {key}: class centroids vs {primary} distance\n"
                       f"Spearman {fmt(man['spearman'], 2)} (Mantel p {fmt(man['p_value'], 3)})", unit, metric)
        figures[f"distances_{key}"] = fn
    return figures


def _per_class(names: list[str], groups: list, rows: _Rows, test_recall: list[float], results: dict,
               levels) -> list[dict]:
    """Rows, test recall and supported codes of every class."""
    C = len(names)
    n_rows = {s: np.bincount(rows.labels[s], minlength=C) for s in SPLITS}
    return [{"name": names[c], "id": c, "group": groups[c],
             "rows": {s: int(n_rows[s][c]) for s in SPLITS},
             "test_recall": test_recall[c],
             "codes_supported": {k: results[k]["codes_per_class"][names[c]] for k, _ in levels}}
            for c in range(C)]


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
