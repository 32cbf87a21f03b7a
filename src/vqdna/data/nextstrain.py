"""Genomes and a labelled window-classification task from a Nextstrain/Auspice tree.

An Auspice v2 tree JSON (``{"version": "v2", "meta": ..., "tree": {...}}``) stores, on every
branch, the nucleotide mutations of that branch (``branch_attrs.mutations.nuc``) and, on every
node, attributes such as ``clade_nextstrain``, ``clade_who`` or ``Nextclade_pango`` (usually as
``{"value": ...}``). The genome of a tip is the reference with the mutations of every branch
from the root down to the tip applied in order, parent before child.

Reconstruction policy (:func:`rebuild_genomes`)
-----------------------------------------------
* Positions are 1-based, as in Auspice. A mutation is ``<from><pos><to>`` (``C241T``).
* Mutations apply in tree order (root -> tip) and, on one branch, in list order; a later
  mutation at a position overrides an earlier one (so a child overrides its parent).
* **Deletions** (``A123-``) mark the position as a gap while walking the tree; the final
  genome has the deleted bases **removed**, so it is plain IUPAC DNA without ``-`` (a tip
  genome is therefore shorter than the reference, and its coordinates are no longer the
  reference's after the first deletion).
* **Reversions** need no special case: a mutation back to the reference base (``T241C`` after
  ``C241T``) or the reversal of a deletion (``-123A``) just sets the position again; a
  position back at its reference base is dropped from the set of differences.
* **Insertions**: Auspice nucleotide mutations cannot express insertions and the Nextclade
  trees carry none. If a branch lists one in the Nextclade notation ``<pos>:<bases>``
  (``22204:GAGCCAGAA``: bases inserted *after* reference position ``pos``; ``0`` = before the
  first base), it is applied; a later insertion at the same position replaces the earlier one.
* **Ambiguous bases**: ``N`` and the other IUPAC codes (``R Y S W K M B D H V``, and ``U``)
  in a mutation are kept as their (upper-case) letter. Any other letter is an error.
* **Validation**: the ``from`` base of every mutation is checked against the current base at
  that position (reference plus the mutations above it; ``-`` for a deleted base). With
  ``strict=True`` (the default) a disagreement raises :class:`TreeError` naming the node and
  the mutation. With ``strict=False`` the mutation is applied anyway (its ``to`` base wins),
  and the disagreement is counted (and appended to the ``mismatches`` list when one is given).
  A position outside the reference or an unparseable mutation is always an error.

The walk is iterative (deep trees are fine) and keeps only a ``{position: base}`` dict of
differences from the reference, undone on the way back up; a genome is materialised (numpy
copy of the reference, positions set, gaps removed) only at a tip.

Task policy (:func:`import_nextstrain`)
---------------------------------------
* The reference FASTA must hold exactly one record. If the tree JSON ships a
  ``root_sequence.nuc``, it must equal the reference (mutations are relative to it); without
  a reference path the ``root_sequence`` is used.
* Tips whose label attribute is missing, empty, ``None`` or ``"?"`` are skipped and counted.
  Tips whose genome is shorter than one window are skipped and counted.
* ``max_tips``: a seeded random sample of that many of the remaining labelled tips is used
  (not the first ones in tree order, which would be a few clades only).
* Classes with fewer than ``min_class_size`` tips are dropped and listed in the summary.
* Splitting is **by genome**: tips are grouped by identical genome (same set of differences
  from the reference), and a group goes to one split only, so no genome is in two splits. The
  split is stratified per class: within a class, groups are shuffled (numpy generator seeded
  with ``seed`` and the class name) and ``round(n * fraction)`` go to dev and test; a class
  with at least 3 groups gets at least one group in each split with a positive fraction,
  and train always keeps at least one.
* Windows: ``window`` nt every ``stride`` nt (default ``stride = window``, no overlap) from the
  start of each tip genome; the last partial window is **dropped** (unlike
  :func:`vqdna.sequence.fasta.window_starts`, no window is end-aligned). A window with more than
  ``max_n_fraction`` non-ACGT letters (N and other IUPAC codes) is dropped and counted.
* Duplicate windows: related genomes share most windows, so most dev/test windows have an
  exact copy in train (often under another class). ``dedupe="cross_split"`` (default) drops
  every dev/test window whose exact sequence is a train window (and every test window that is
  a dev window), counted in the summary; a dev or test split left without rows is an error.
  ``dedupe="none"`` keeps them and counts them in the summary (``vqdna data nextstrain --dedupe
  none`` prints a warning with the counts). Windows repeated within one split are kept.
* Every class keeps at least one training window: a class whose training windows were all
  dropped (``max_n_fraction``) but that has dev/test windows is an error, as
  :func:`vqdna.sequence.tasks.load_task` would reject the task.
* Output folder: ``genomes.fa`` (the genomes used, header ``>tip label=<class> split=<split>``;
  whitespace in names is replaced by ``_``), ``train.csv``/``dev.csv``/``test.csv`` with header
  ``sequence,label`` where ``label`` is the **integer** class id, ``labels.json`` mapping class
  name -> id (ids 0..k-1 in sorted class-name order, readable by
  :func:`vqdna.sequence.tasks.load_task`), and ``summary.json`` (parameters, counts per class
  and split, skipped tips, dropped classes, and how many dev/test windows have an exact copy
  in train, which is common for closely related genomes).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import re
import sys
import time
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..sequence.alphabet import BYTE_TO_INDEX, OTHER, encode
from ..sequence.fasta import read_fasta

log = logging.getLogger(__name__)

__all__ = [
    "TreeError",
    "parse_mutation",
    "tip_labels",
    "rebuild_genomes",
    "import_nextstrain",
    "add_arguments",
    "run",
]

LABELS = ("clade_nextstrain", "clade_who", "Nextclade_pango")
MISSING = (None, "", "?")
_BASES = "ACGTNRYSWKMBDHVU-"
_SUB = re.compile(r"^([A-Za-z\-])(\d+)([A-Za-z\-])$")
_INS = re.compile(r"^(\d+):([A-Za-z]+)$")
_GAP = ord("-")
_ABSENT = object()


class TreeError(ValueError):
    """Bad tree content; the message names the node and the mutation."""


# --------------------------------------------------------------------------- parsing


def parse_mutation(m: str, *, where: str = "") -> tuple[str, int, str]:
    """Parse a nucleotide mutation into ``(from, position, to)``.

    ``"C241T"`` -> ``("C", 241, "T")``; a deletion has ``to == "-"``; the insertion notation
    ``"22204:GAG"`` -> ``("", 22204, "GAG")`` (``from`` is empty for an insertion).
    """
    s = str(m).strip()
    hit = _SUB.match(s)
    if hit:
        a, p, b = hit.group(1).upper(), int(hit.group(2)), hit.group(3).upper()
        for x in (a, b):
            if x not in _BASES:
                raise TreeError(f"{where}mutation {m!r}: {x!r} is not a nucleotide (IUPAC or '-')")
        return a, p, b
    hit = _INS.match(s)
    if hit:
        seq = hit.group(2).upper()
        bad = [c for c in seq if c not in _BASES or c == "-"]
        if bad:
            raise TreeError(f"{where}insertion {m!r}: {bad[0]!r} is not a nucleotide")
        return "", int(hit.group(1)), seq
    raise TreeError(f"{where}cannot parse nucleotide mutation {m!r} (expected like 'C241T', 'A123-', '-123A')")


def _value(v: Any) -> Any:
    return v.get("value") if isinstance(v, dict) and "value" in v else v


def tip_labels(node: dict) -> dict:
    """All ``node_attrs`` of a node, with ``{"value": x}`` unwrapped to ``x``."""
    return {k: _value(v) for k, v in (node.get("node_attrs") or {}).items()}


def _roots(tree: dict | list) -> list[dict]:
    """Accept a whole Auspice JSON (``{"tree": ...}``), a root node, or a list of roots."""
    if isinstance(tree, list):
        return tree
    if isinstance(tree, dict) and "tree" in tree and "name" not in tree and "children" not in tree:
        t = tree["tree"]
        return t if isinstance(t, list) else [t]
    if not isinstance(tree, dict):
        raise TreeError(f"expected an Auspice tree (dict), got {type(tree).__name__}")
    return [tree]


def _clean_reference(reference: str) -> str:
    ref = reference.strip().upper()
    if not ref:
        raise TreeError("empty reference sequence")
    encode(ref, where="reference")  # raises on characters outside the project alphabet
    return ref


# --------------------------------------------------------------------------- the walk


def walk_with_undo(roots) -> Iterator[tuple[dict, list, bool]]:
    """Depth-first over the tree (parents before children, children in JSON order).

    Yields ``(node, undo, is_tip)``. The caller edits its state dicts for the node's branch and
    appends ``(dict, key, old value or _ABSENT)`` to ``undo`` for every edit; the edits are
    reverted, newest first, once the node's subtree is done. So a tip sees exactly the changes
    on its path from the root, with one live dict instead of a copy per node.
    """
    stack: list = [("node", r) for r in reversed(list(roots))]
    while stack:
        kind, item = stack.pop()
        if kind == "undo":
            for d, key, old in reversed(item):
                if old is _ABSENT:
                    d.pop(key, None)
                else:
                    d[key] = old
            continue
        children = item.get("children") or []
        undo: list = []
        yield item, undo, not children
        if undo:
            stack.append(("undo", undo))
        stack.extend(("node", child) for child in reversed(children))


def _iter_tips(tree, ref: str, *, strict: bool, mismatches: list | None):
    """Yield ``(name, node, diff, ins)`` for every tip; ``diff``/``ins`` are live dicts.

    ``diff`` maps 1-based positions to a base differing from the reference (``-`` = deleted);
    ``ins`` maps a position to the bases inserted after it. Both are only valid at yield time.
    """
    n_ref = len(ref)
    diff: dict[int, str] = {}
    ins: dict[int, str] = {}
    n_mismatch = 0
    for node, undo, is_tip in walk_with_undo(_roots(tree)):
        name = str(node.get("name", "?"))
        for m in ((node.get("branch_attrs") or {}).get("mutations") or {}).get("nuc") or []:
            where = f"node {name!r}: "
            a, p, b = parse_mutation(m, where=where)
            if a == "":  # insertion after position p
                if not 0 <= p <= n_ref:
                    raise TreeError(f"{where}insertion {m!r} at position {p} outside the reference (0..{n_ref})")
                undo.append((ins, p, ins.get(p, _ABSENT)))
                ins[p] = b
                continue
            if not 1 <= p <= n_ref:
                raise TreeError(f"{where}mutation {m!r}: position {p} outside the reference (1..{n_ref})")
            cur = diff.get(p, ref[p - 1])
            if a != cur:
                msg = (f"{where}mutation {m!r} expects {a!r} at position {p} but the genome has {cur!r} "
                       f"(reference {ref[p - 1]!r})")
                if strict:
                    raise TreeError(msg + "; is it the right reference? (strict=False counts and continues)")
                n_mismatch += 1
                if mismatches is not None:
                    mismatches.append(msg)
            undo.append((diff, p, diff.get(p, _ABSENT)))
            if b == ref[p - 1]:
                diff.pop(p, None)
            else:
                diff[p] = b
        if is_tip:
            yield name, node, diff, ins
    if n_mismatch:
        log.warning("%d mutation(s) disagreed with the current base (strict=False: applied anyway)", n_mismatch)


def _materialise(ref_arr: np.ndarray, diff: dict[int, str], ins: dict[int, str]) -> str:
    arr = ref_arr.copy()
    if diff:
        pos = np.fromiter(diff.keys(), dtype=np.int64, count=len(diff)) - 1
        val = np.frombuffer("".join(diff.values()).encode("ascii"), dtype=np.uint8)
        arr[pos] = val
    if ins:
        pieces, prev = [], 0
        for p in sorted(ins):
            pieces.append(arr[prev:p])
            pieces.append(np.frombuffer(ins[p].encode("ascii"), dtype=np.uint8))
            prev = p
        pieces.append(arr[prev:])
        arr = np.concatenate(pieces)
    arr = arr[arr != _GAP]
    return arr.tobytes().decode("ascii")


def rebuild_genomes(tree: dict, reference: str, *, strict: bool = True,
                    mismatches: list | None = None) -> Iterator[tuple[str, str, dict]]:
    """Yield ``(tip_name, genome, labels)`` for every tip of an Auspice tree, in tree order.

    ``tree`` is the whole Auspice JSON or its root node; ``reference`` the sequence the
    mutations are relative to. ``labels`` holds every ``node_attrs`` entry of the tip with
    ``{"value": x}`` unwrapped (``labels["clade_nextstrain"]``, ...). See the module docstring
    for deletions (removed from the genome), insertions, reversions and ``strict``.
    """
    ref = _clean_reference(reference)
    ref_arr = np.frombuffer(ref.encode("ascii"), dtype=np.uint8)
    for name, node, diff, ins in _iter_tips(tree, ref, strict=strict, mismatches=mismatches):
        yield name, _materialise(ref_arr, diff, ins), tip_labels(node)


# --------------------------------------------------------------------------- the task


def _read_reference(reference_path, tree_json: dict) -> str:
    root_seq = tree_json.get("root_sequence") if isinstance(tree_json, dict) else None
    root_nuc = root_seq.get("nuc") if isinstance(root_seq, dict) else None
    if reference_path is None:
        if not root_nuc:
            raise TreeError("no reference given and the tree JSON has no root_sequence.nuc")
        return _clean_reference(root_nuc)
    recs = list(read_fasta(reference_path))
    if len(recs) != 1:
        raise TreeError(f"{reference_path}: the reference FASTA must hold exactly one record, found {len(recs)} "
                        f"({', '.join(r.name for r in recs[:5])}{' ...' if len(recs) > 5 else ''})")
    ref = _clean_reference(recs[0].sequence)
    if root_nuc:
        rn = root_nuc.strip().upper()
        if rn != ref:
            nd = sum(x != y for x, y in zip(rn, ref))
            raise TreeError(f"{reference_path}: reference ({len(ref)} nt) differs from the tree's root_sequence "
                            f"({len(rn)} nt, {nd} differing positions); the mutations are relative to the root "
                            f"sequence: give the matching reference, or none to use the root sequence")
    return ref


def _split_counts(n: int, fracs: tuple[float, float, float]) -> tuple[int, int, int]:
    _, f_dev, f_test = fracs
    n_dev, n_test = int(round(n * f_dev)), int(round(n * f_test))
    if n >= 3:
        n_dev = max(n_dev, 1) if f_dev > 0 else 0
        n_test = max(n_test, 1) if f_test > 0 else 0
    while n_dev + n_test > n - 1 and (n_dev or n_test):  # train keeps at least one
        if n_dev >= n_test and n_dev:
            n_dev -= 1
        else:
            n_test -= 1
    return n - n_dev - n_test, n_dev, n_test


def _window_starts(length: int, window: int, stride: int) -> range:
    return range(0, length - window + 1, stride) if length >= window else range(0)


def _safe(s: str) -> str:
    return re.sub(r"\s+", "_", str(s).strip())


def import_nextstrain(tree_path, reference_path, out_dir, *, label: str = "clade_nextstrain",
                      window: int = 1000, stride: int | None = None, min_class_size: int = 10,
                      split: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0,
                      max_tips: int | None = None, max_n_fraction: float = 0.1, strict: bool = True,
                      dedupe: str = "cross_split", progress: bool = True) -> dict:
    """Rebuild the tip genomes of a tree and write a GUE-style classification task to ``out_dir``.

    Returns the summary also written to ``out_dir/summary.json``. See the module docstring for
    every policy (skipped tips, class filter, split by genome, windows, output files).
    """
    t0 = time.time()
    stride = window if stride is None else stride
    if min_class_size < 1:
        raise ValueError(f"min_class_size must be >= 1, got {min_class_size}")
    if window < 1 or stride < 1:
        raise ValueError(f"window ({window}) and stride ({stride}) must be positive")
    split = tuple(float(x) for x in split)
    if len(split) != 3 or min(split) < 0 or split[0] <= 0 or abs(sum(split) - 1) > 1e-6:
        raise ValueError(f"split must be three non-negative fractions (train > 0) summing to 1, got {split}")
    if dedupe not in ("none", "cross_split"):
        raise ValueError(f"dedupe must be 'none' or 'cross_split', got {dedupe!r}")
    if not 0 <= max_n_fraction <= 1:
        raise ValueError(f"max_n_fraction must be in [0, 1], got {max_n_fraction}")
    tree_path = Path(tree_path)
    from ..io import read_json

    tree_json = read_json(tree_path)  # a damaged file: an error naming it
    ref = _read_reference(reference_path, tree_json)
    ref_arr = np.frombuffer(ref.encode("ascii"), dtype=np.uint8)

    # pass 1: walk the tree, keep the differences of every tip (cheap), no genome yet
    mismatches: list[str] = []
    tips = []  # (index, name, class, diff, ins, length)
    n_tips, skipped = 0, Counter()
    for name, node, diff, ins in _iter_tips(tree_json, ref, strict=strict, mismatches=mismatches):
        n_tips += 1
        lab = _value((node.get("node_attrs") or {}).get(label))
        if isinstance(lab, str):
            lab = lab.strip()
        if lab in MISSING:
            skipped["unlabelled"] += 1
            continue
        length = len(ref) - sum(1 for b in diff.values() if b == "-") + sum(len(s) for s in ins.values())
        if length < window:
            skipped["shorter_than_window"] += 1
            continue
        tips.append((n_tips - 1, name, str(lab), dict(diff), dict(ins), length))
    if n_tips == 0:
        raise TreeError(f"{tree_path}: the tree has no tips")
    if max_tips is not None and len(tips) > max_tips:
        keep = np.sort(np.random.default_rng(seed).choice(len(tips), size=max_tips, replace=False))
        skipped["max_tips"] = len(tips) - max_tips
        tips = [tips[i] for i in keep]

    sizes = Counter(t[2] for t in tips)
    dropped = {c: n for c, n in sorted(sizes.items()) if n < min_class_size}
    kept = sorted(c for c in sizes if c not in dropped)
    skipped["small_class"] = sum(dropped.values())
    biggest = sizes.most_common(3)
    singletons = bool(sizes) and biggest[0][1] == 1
    if len(kept) < 2 or singletons:
        hint = ("every tip has its own value of this label, so it cannot be a class on this tree; "
                "choose another label" if singletons else "lower min_class_size or choose another label")
        raise TreeError(
            f"{tree_path}: label {label!r} leaves {len(kept)} class(es) with >= {min_class_size} tips "
            f"({len(tips)} usable tips in {len(sizes)} classes; largest {biggest}); "
            f"a classification task needs 2: {hint}")
    class_id = {c: i for i, c in enumerate(kept)}
    tips = [t for t in tips if t[2] in class_id]

    # split by genome: identical genomes form one unit; stratify units by class
    groups: dict[tuple, list[int]] = defaultdict(list)
    for k, t in enumerate(tips):
        groups[(frozenset(t[3].items()), frozenset(t[4].items()))].append(k)
    units_by_class: dict[str, list[list[int]]] = defaultdict(list)
    for members in groups.values():
        cls = Counter(tips[k][2] for k in members).most_common()
        top = min(c for c, n in cls if n == cls[0][1])
        units_by_class[top].append(members)
    split_of: dict[int, str] = {}
    for cls in kept:
        units = sorted(units_by_class.get(cls, []), key=lambda u: tips[u[0]][0])
        rng = np.random.default_rng([seed, zlib.crc32(cls.encode("utf-8"))])
        order = rng.permutation(len(units))
        n_tr, n_dev, _ = _split_counts(len(units), split)
        for rank, u in enumerate(order):
            s = "train" if rank < n_tr else "dev" if rank < n_tr + n_dev else "test"
            for k in units[u]:
                split_of[k] = s

    n_split = Counter(split_of.values())
    empty_splits = [x for x, f in zip(("train", "dev", "test"), split) if f > 0 and not n_split[x]]
    if empty_splits:
        raise TreeError(f"{tree_path}: no genome falls in split(s) {empty_splits} ({len(tips)} tips in "
                        f"{len(kept)} classes, split {split}); raise min_class_size or use more tips")

    # pass 2: materialise, write FASTA and windows
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = ("train", "dev", "test")
    per_class = {c: {"id": class_id[c], "tips": dict.fromkeys(splits, 0), "windows": dict.fromkeys(splits, 0)}
                 for c in kept}
    rows = dict.fromkeys(splits, 0)
    n_dropped_windows = 0
    seen_hashes: dict[str, set[bytes]] = {s: set() for s in splits}
    copies = {"dev_rows_with_copy_in_train": 0, "test_rows_with_copy_in_train": 0,
              "test_rows_with_copy_in_dev": 0}
    n_deduped = 0
    window_classes: dict[bytes, set] = defaultdict(set)
    lengths = []
    files = {s: open(out / f"{s}.csv", "w", newline="") for s in splits}
    try:
        # train tips first so that dev/test windows can be checked against every train window
        order = sorted(range(len(tips)), key=lambda k: splits.index(split_of[k]))
        writers = {s: csv.writer(files[s], lineterminator="\n") for s in splits}
        for w in writers.values():
            w.writerow(["sequence", "label"])
        try:
            from tqdm.auto import tqdm
            it = tqdm(order, desc=f"tips ({tree_path.name})", unit="tip", disable=not progress)
        except ImportError:  # pragma: no cover - tqdm is a dependency
            it = order
        with open(out / "genomes.fa", "w") as fa:
            for k in it:
                idx, name, cls, diff, ins, length = tips[k]
                s = split_of[k]
                genome = _materialise(ref_arr, diff, ins)
                assert len(genome) == length
                lengths.append(length)
                fa.write(f">{_safe(name)} label={_safe(cls)} split={s}\n")
                for i in range(0, len(genome), 80):
                    fa.write(genome[i:i + 80] + "\n")
                per_class[cls]["tips"][s] += 1
                codes = BYTE_TO_INDEX[np.frombuffer(genome.encode("ascii"), dtype=np.uint8)]
                other = np.concatenate([[0], np.cumsum(codes >= OTHER)])
                cid = class_id[cls]
                for st in _window_starts(length, window, stride):
                    if other[st + window] - other[st] > max_n_fraction * window:
                        n_dropped_windows += 1
                        continue
                    seq = genome[st:st + window]
                    h = hashlib.blake2b(seq.encode("ascii"), digest_size=8).digest()
                    dup = False
                    if s != "train" and h in seen_hashes["train"]:
                        copies[f"{s}_rows_with_copy_in_train"] += 1
                        dup = True
                    if s == "test" and h in seen_hashes["dev"]:
                        copies["test_rows_with_copy_in_dev"] += 1
                        dup = True
                    if dup and dedupe == "cross_split":
                        n_deduped += 1
                        continue
                    window_classes[h].add(cid)
                    seen_hashes[s].add(h)
                    writers[s].writerow([seq, cid])
                    rows[s] += 1
                    per_class[cls]["windows"][s] += 1
    finally:
        for f in files.values():
            f.close()
    empty = [c for c in kept if sum(per_class[c]["windows"].values()) == 0]
    if empty:
        raise TreeError(f"class(es) {empty} kept but got no window (all dropped by max_n_fraction="
                        f"{max_n_fraction}?); the task in {out} is not usable")
    no_train = [c for c in kept if per_class[c]["windows"]["train"] == 0]
    if no_train:
        raise TreeError(f"{tree_path}: class(es) {no_train} have dev/test windows but no training window (all "
                        f"dropped by max_n_fraction={max_n_fraction}); the task in {out} is not usable")
    for s in ("dev", "test"):
        if split[splits.index(s)] > 0 and rows[s] == 0:
            why = (f"after dropping {n_deduped:,} windows identical to a train (or dev) window (dedupe="
                   f"{dedupe!r}): the genomes differ too little for windows of {window} nt; use longer windows, "
                   f"or --dedupe none to keep the copies" if n_deduped else
                   f"(max_n_fraction={max_n_fraction} dropped {n_dropped_windows:,} windows)")
            raise TreeError(f"{tree_path}: the {s} split has no window left {why}; the task in {out} is not usable")
    with open(out / "labels.json", "w") as fh:
        json.dump(class_id, fh, indent=1)
    summary = {
        "tree": str(tree_path),
        "reference": str(reference_path) if reference_path is not None else "root_sequence",
        "reference_length": len(ref),
        "parameters": {"label": label, "window": window, "stride": stride, "min_class_size": min_class_size,
                       "split": list(split), "seed": seed, "max_tips": max_tips,
                       "max_n_fraction": max_n_fraction, "strict": strict},
        "tips_in_tree": n_tips,
        "tips_used": len(tips),
        "skipped_tips": dict(skipped),
        "dropped_classes": dropped,
        "n_classes": len(kept),
        "classes": per_class,
        "tips_per_split": {s: sum(per_class[c]["tips"][s] for c in kept) for s in splits},
        "rows": rows,
        "windows_dropped_ambiguous": n_dropped_windows,
        "from_base_mismatches": len(mismatches),
        "identical_genome_groups": sum(1 for g in groups.values() if len(g) > 1),
        "genome_length": {"min": int(min(lengths)), "max": int(max(lengths)),
                          "mean": float(np.mean(lengths))},
        "window_duplicates": {
            "dedupe": dedupe,
            "rows_dropped": n_deduped,
            "distinct_windows_written": len(window_classes),
            "distinct_windows_in_several_classes": sum(1 for v in window_classes.values() if len(v) > 1),
            **copies,
        },
        "seconds": round(time.time() - t0, 2),
    }
    with open(out / "summary.json", "w") as fh:
        json.dump(summary, fh, indent=1)
    return summary


# --------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``vqdna data nextstrain``."""
    p.add_argument("--tree", required=True, help="Auspice v2 tree JSON (Nextstrain / Nextclade dataset tree.json)")
    p.add_argument("--reference", default=None,
                   help="reference FASTA with one record (default: the tree's root_sequence.nuc)")
    p.add_argument("--label", default="clade_nextstrain",
                   help=f"tip attribute used as the class: {', '.join(LABELS)}, ... (default: %(default)s)")
    p.add_argument("--window", type=int, default=1000, help="window length in nt (default: %(default)s)")
    p.add_argument("--stride", type=int, default=None, help="window step in nt (default: = --window)")
    p.add_argument("--min-class-size", type=int, default=10,
                   help="drop classes with fewer tips (default: %(default)s)")
    p.add_argument("--split", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "DEV", "TEST"),
                   help="fractions of genomes per split (default: 0.8 0.1 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of --max-tips (default: 0)")
    p.add_argument("--max-tips", type=int, default=None, help="use a seeded random sample of this many tips")
    p.add_argument("--max-n-fraction", type=float, default=0.1,
                   help="drop windows with more than this fraction of N/IUPAC letters (default: %(default)s)")
    p.add_argument("--no-strict", dest="strict", action="store_false",
                   help="count mutations whose 'from' base disagrees instead of failing")
    p.add_argument("--dedupe", choices=("none", "cross_split"), default="cross_split",
                   help="cross_split (default): drop dev/test windows whose exact sequence is in train (or test "
                        "windows in dev), counted in summary.json; none: keep them (a warning prints how many)")
    p.add_argument("--out", required=True, help="output task folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``vqdna data nextstrain``."""
    s = import_nextstrain(args.tree, args.reference, args.out, label=args.label, window=args.window,
                          stride=args.stride, min_class_size=args.min_class_size, split=tuple(args.split),
                          seed=args.seed, max_tips=args.max_tips, max_n_fraction=args.max_n_fraction,
                          strict=args.strict, dedupe=args.dedupe, progress=not getattr(args, "quiet", False))
    wd = s["window_duplicates"]
    if wd["dedupe"] == "none" and (wd["dev_rows_with_copy_in_train"] or wd["test_rows_with_copy_in_train"]
                                   or wd["test_rows_with_copy_in_dev"]):
        print(f"warning: --dedupe none kept {wd['dev_rows_with_copy_in_train']:,} of {s['rows']['dev']:,} dev and "
              f"{wd['test_rows_with_copy_in_train']:,} of {s['rows']['test']:,} test windows identical to a train "
              f"window ({wd['test_rows_with_copy_in_dev']:,} test windows identical to a dev window): scores on "
              f"them measure memory, not generalisation; the default --dedupe cross_split drops them",
              file=sys.stderr)
    dup = (f"dropped {wd['rows_dropped']:,} dev/test windows identical to a train (or dev) window"
           if wd["dedupe"] == "cross_split" else
           f"kept dev/test windows with a copy in train: {wd['dev_rows_with_copy_in_train']}/"
           f"{wd['test_rows_with_copy_in_train']}")
    print(f"{s['tips_used']} of {s['tips_in_tree']} tips, {s['n_classes']} classes of {args.label!r}; "
          f"rows train/dev/test = {s['rows']['train']}/{s['rows']['dev']}/{s['rows']['test']}; "
          f"skipped {s['skipped_tips']}; dropped classes: {len(s['dropped_classes'])}; {dup}; "
          f"written to {args.out} in {s['seconds']} s")
    return 0
