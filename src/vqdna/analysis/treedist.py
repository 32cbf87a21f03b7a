"""Reference distances between classes (clades): from the tree, or from the genomes.

Tree (:func:`clade_tree_distances`)
-----------------------------------
On an Auspice tree the length of a branch is its number of nucleotide mutations
(``len(branch_attrs.mutations.nuc)``: substitutions, deletions and reversions each count 1), so
the patristic distance of two tips is the number of mutations on the path between them:
``d(i, j) = depth(i) + depth(j) - 2 depth(lca(i, j))``. The distance of clades ``a != b`` is
the mean over all pairs of a tip of ``a`` and a tip of ``b``::

    D[a, b] = mean_a(depth) + mean_b(depth) - 2 * S[a, b] / (N_a N_b)

where ``S[a, b] = sum over pairs of depth(lca)`` is accumulated in one post-order pass: the
pairs whose LCA is node ``v`` number ``n_v n_v^T - sum_children n_ch n_ch^T`` (``n_v`` = tips
of each class below ``v``). The diagonal holds the mean distance between two different tips
of the clade (its diversity). Only the tips that the task used are counted when the task
folder lists them (``genomes.fa`` of ``vqdna data nextstrain``), matched by name with
whitespace replaced by ``_`` as the importer writes it.

Genomes (:func:`clade_hamming_distances`, the default reference when a tree is given)
-----------------------------------------------------------------------------------
The genome of a tip is the root (reference) sequence with the mutations of its path applied.
The distance of two tips is the number of reference positions at which their genomes differ
(a substitution or a deleted base counts 1 per position; a position mutated and mutated back
counts 0); the distance of two clades is its mean over all pairs of a tip of each. With
``P_i`` the set of positions where tip ``i`` differs from the reference and ``S_i`` the set of
(position, base) pairs, ``H(i, j) = |P_i| + |P_j| - |P_i & P_j| - |S_i & S_j|``, so the clade
means come from class-by-position count matrices ``Q`` as ``Q Q^T`` (no loop over pairs).
Unlike the patristic distance this is not distorted where the tree is not a tree: Nextstrain
attaches recombinant lineages (XBB = 22F and its descendants 23A.., XEC = 24F, XDV = 24D, the
``recombinant`` clade) to a ``rec_parent`` at the root with a long branch (XBB: 143
mutations), so their patristic distance to their Omicron parents is several times the number
of positions at which the genomes differ.

Groups (:func:`clade_groups`)
-----------------------------
A coarser label (``clade_who``: Delta, Omicron, ...) groups the classes. A tip whose own value
is missing (None, empty, ``?``) inherits the nearest ancestor's value (Nextclade trees leave
``clade_who`` empty on some Omicron descendants such as XBB, 22F, which sit below Omicron
nodes); a class gets the most common value over its tips, or none.

Sequences (:func:`kmer_class_distances`, the fallback without a tree)
---------------------------------------------------------------------
For each class, the set of k-mers (k = 16) present in at least half of its sequences (the
clade's consensus k-mers; the union if that set is empty); the distance of two classes is the
Mash distance ``-ln(2J / (1 + J)) / k`` of their sets (J = Jaccard index), an alignment-free
estimate of substitutions per site (Ondov et al. 2016). Sequences are the genomes of
``genomes.fa`` when the task folder has it, else the train windows.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..data.auspice import ABSENT, SUBSTITUTION, load_tree, mutation_depths, node_label, nuc_mutations, safe_name, \
    single_root, walk_with_undo
from ..sequence.alphabet import BYTE_TO_INDEX, OTHER
from ..sequence.kmers import rolling_kmer_codes

__all__ = ["load_tree", "clade_tree_distances", "clade_hamming_distances", "tip_differences", "clade_groups", "kmer_class_distances", "task_tip_names",
           "task_genomes", "resolve_tree"]

def task_tip_names(task_dir) -> set[str] | None:
    """Tip names in ``genomes.fa`` of a task folder made by ``vqdna data nextstrain`` (or None)."""
    fa = Path(task_dir) / "genomes.fa"
    if not fa.is_file():
        return None
    names = set()
    with open(fa) as fh:
        for line in fh:
            if line.startswith(">"):
                names.add(line[1:].split()[0])
    return names


def task_genomes(task_dir) -> dict[str, list[str]]:
    """Genomes of ``genomes.fa`` grouped by the ``label=`` field of their headers ({} if absent)."""
    fa = Path(task_dir) / "genomes.fa"
    out: dict[str, list[str]] = {}
    if not fa.is_file():
        return out
    lab, parts = None, []

    def flush():
        if lab is not None:
            out.setdefault(lab, []).append("".join(parts).upper())

    with open(fa) as fh:
        for line in fh:
            if line.startswith(">"):
                flush()
                fields = line[1:].split()
                lab = next((f.split("=", 1)[1] for f in fields[1:] if f.startswith("label=")), "")
                parts = []
            else:
                parts.append(line.strip())
    flush()
    return out


def resolve_tree(task_dir, tree=None) -> tuple[Path | None, str | None]:
    """The tree to use and its class attribute: ``tree`` if given, else the ``tree`` recorded
    in the task's ``summary.json`` (as written, or relative to the task folder) if it exists."""
    task_dir = Path(task_dir)
    label = None
    s = task_dir / "summary.json"
    rec = None
    if s.is_file():
        try:
            summ = json.loads(s.read_text())
            label = (summ.get("parameters") or {}).get("label")
            rec = summ.get("tree")
        except (json.JSONDecodeError, AttributeError):
            pass
    if tree is not None:
        return Path(tree), label
    if rec:
        for cand in (Path(rec), task_dir / rec):
            if cand.is_file():
                return cand, label
    return None, label


def clade_tree_distances(tree: dict, label: str, class_names: Sequence[str],
                         tips: Iterable[str] | None = None) -> dict:
    """Mean patristic distance (nucleotide mutations) between the tips of every two classes.

    Returns ``{"D": (C, C) array (NaN for a class without tips), "n_tips": [...],
    "mean_depth": [...]}``; ``tips`` restricts the tips by (``_``-safe) name.
    """
    names = list(class_names)
    cid = {c: i for i, c in enumerate(names)}
    C = len(names)
    allowed = set(tips) if tips is not None else None
    nodes = mutation_depths(tree)
    counts = np.zeros((len(nodes), C))  # tips of each class below each node
    S = np.zeros((C, C))  # sum of depth(lca) over ordered tip pairs (incl. i == j) per class pair
    sum_depth = np.zeros(C)  # sum of tip depths per class
    acc: dict[int, np.ndarray] = {}  # node -> sum of its children's outer products
    for i in range(len(nodes) - 1, -1, -1):  # reverse pre-order: children before parents
        node, parent, d = nodes[i]
        if not node.get("children"):
            lab = node_label(node, label)
            if lab in cid and (allowed is None or safe_name(node.get("name", "")) in allowed):
                counts[i, cid[lab]] = 1.0
                sum_depth[cid[lab]] += d
        n = counts[i]
        S += d * (np.outer(n, n) - acc.pop(i, 0.0))
        if parent >= 0:
            counts[parent] += n
            acc[parent] = acc.get(parent, 0.0) + np.outer(n, n)
    N = counts[0] if len(nodes) else np.zeros(C)
    mean_depth = np.divide(sum_depth, N, out=np.full(C, np.nan), where=N > 0)
    D = _mean_pair_distances(sum_depth, N, 2 * S)
    return {"D": D, "n_tips": N.astype(int).tolist(), "mean_depth": mean_depth.tolist()}


def _mean_pair_distances(sums: np.ndarray, N: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """Mean distance between tips of clades a and b when d(i, j) = x_i + x_j - c(i, j):
    ``sums[a]`` = sum of x over a's N[a] tips, ``cross[a, b]`` = sum of c(i, j) over the pairs.
    Off the diagonal: mean over all pairs; on it: over ordered pairs i != j (self pairs are 0).
    NaN where a clade has no tips (or, on the diagonal, one tip)."""
    C = len(N)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = sums / N
        D = mean[:, None] + mean[None, :] - cross / np.outer(N, N)
        diag = (2 * N * sums - np.diag(cross)) / (N * (N - 1))
    D[np.arange(C), np.arange(C)] = np.where(N > 1, diag, np.nan)
    D[(N == 0)[:, None] | (N == 0)[None, :]] = np.nan
    return D


def tip_differences(tree: dict, label: str):
    """Yield ``(safe_name, label_value, {position: base})`` per tip: its differences from the root.

    The root base of a position is the ``from`` base of the first mutation at it on the path;
    a mutation back to it removes the position. Insertions (``pos:bases``) are ignored.
    """
    diff: dict[int, str] = {}
    root_base: dict[int, str] = {}
    for node, undo, is_tip in walk_with_undo([single_root(tree)]):
        for m in nuc_mutations(node):
            hit = SUBSTITUTION.match(str(m).strip())
            if not hit:
                continue
            a, pos, b = hit.group(1).upper(), int(hit.group(2)), hit.group(3).upper()
            if pos not in root_base:
                undo.append((root_base, pos, ABSENT))
                root_base[pos] = a
            undo.append((diff, pos, diff.get(pos, ABSENT)))
            if b == root_base[pos]:
                diff.pop(pos, None)
            else:
                diff[pos] = b
        if is_tip:
            yield safe_name(node.get("name", "")), node_label(node, label), dict(diff)


def clade_hamming_distances(tree: dict, label: str, class_names: Sequence[str],
                            tips: Iterable[str] | None = None) -> dict:
    """Mean number of differing reference positions between the genomes of two clades' tips
    (see the module docstring). Same return layout as :func:`clade_tree_distances`."""
    cid = {c: i for i, c in enumerate(class_names)}
    C = len(class_names)
    allowed = set(tips) if tips is not None else None
    members = []
    pos_id: dict[int, int] = {}
    pb_id: dict[tuple, int] = {}
    for name, lab, diff in tip_differences(tree, label):
        if lab in cid and (allowed is None or name in allowed):
            members.append((cid[lab], [pos_id.setdefault(p, len(pos_id)) for p in diff],
                            [pb_id.setdefault(pb, len(pb_id)) for pb in diff.items()]))
    N = np.zeros(C)
    sumP = np.zeros(C)
    Qp = np.zeros((C, max(len(pos_id), 1)))
    Qs = np.zeros((C, max(len(pb_id), 1)))
    for c, ps, pbs in members:
        N[c] += 1
        sumP[c] += len(ps)
        np.add.at(Qp[c], ps, 1)
        np.add.at(Qs[c], pbs, 1)
    SP, SS = Qp @ Qp.T, Qs @ Qs.T
    mean_p = np.divide(sumP, N, out=np.full(C, np.nan), where=N > 0)
    D = _mean_pair_distances(sumP, N, SP + SS)
    return {"D": D, "n_tips": N.astype(int).tolist(), "mean_differences_from_root": mean_p.tolist()}


def clade_groups(tree: dict, label: str, group_label: str, class_names: Sequence[str],
                 tips: Iterable[str] | None = None) -> list[str | None]:
    """The most common ``group_label`` value (inherited from ancestors when missing) per class."""
    cid = {c: i for i, c in enumerate(class_names)}
    allowed = set(tips) if tips is not None else None
    tip_groups = []  # (class id, group) of every counted tip, in tree (JSON) order
    above: dict = {}  # "group": the nearest ancestor's own value
    for node, undo, is_tip in walk_with_undo([single_root(tree)]):
        own = node_label(node, group_label)
        g = own if own is not None else above.get("group")
        if is_tip:
            lab = node_label(node, label)
            if lab in cid and g is not None and (allowed is None or safe_name(node.get("name", "")) in allowed):
                tip_groups.append((cid[lab], g))
        elif own is not None:
            undo.append((above, "group", above.get("group", ABSENT)))
            above["group"] = own
    votes = [Counter() for _ in class_names]
    for c, g in reversed(tip_groups):  # a tie goes to the value seen first: the last tip's, as it always did
        votes[c][g] += 1
    return [v.most_common(1)[0][0] if v else None for v in votes]


# ----------------------------------------------------------------------------- sequence fallback
def _kmers(seq: str, k: int) -> np.ndarray:
    """Distinct k-mers (k <= 31) of the ACGT runs of ``seq``, as uint64 codes (any letter
    but A/C/G/T, an invalid one included, breaks a run)."""
    idx = np.minimum(BYTE_TO_INDEX[np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)], OTHER)
    if len(idx) < k:
        return np.zeros(0, dtype=np.uint64)
    codes, has_n = rolling_kmer_codes(idx, k)
    return np.unique(codes[~has_n].astype(np.uint64))


def kmer_class_distances(seqs_by_class: Sequence[Sequence[str]], *, k: int = 16, min_share: float = 0.5) -> dict:
    """Mash distances between the classes' consensus k-mer sets (see the module docstring)."""
    sets = []
    for seqs in seqs_by_class:
        if not len(seqs):
            sets.append(None)
            continue
        allk = np.concatenate([_kmers(s, k) for s in seqs])
        u, c = np.unique(allk, return_counts=True)
        s = u[c >= min_share * len(seqs)]
        sets.append(s if len(s) else u)
    C = len(sets)
    D = np.full((C, C), np.nan)
    for a in range(C):
        for b in range(a, C):
            if sets[a] is None or sets[b] is None:
                continue
            inter = len(np.intersect1d(sets[a], sets[b], assume_unique=True))
            union = len(sets[a]) + len(sets[b]) - inter
            J = inter / union if union else 1.0
            D[a, b] = D[b, a] = 1.0 if J == 0 else -np.log(2 * J / (1 + J)) / k
    return {"D": D, "k": k, "min_share": min_share, "n_kmers": [0 if s is None else int(len(s)) for s in sets]}
