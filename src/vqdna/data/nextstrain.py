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
* **Labels** (``label_level``): the label can be cut to its first ``label_level`` dot-separated
  levels (a Pango lineage ``BA.2.86.1.1`` at level 3 is ``BA.2.86``). Pango names are aliased
  (``JN.1`` is ``BA.2.86.1.1``, ``EG.5`` is ``XBB.1.9.2.5``), so a cut of the raw name splits a
  lineage from its descendants; with ``unalias=True`` (the default) the cut is made on the
  unaliased name, the tip attribute :data:`UNALIASED` names for the label (``partiallyAliased``
  for ``Nextclade_pango``; a tip without it keeps its raw name, counted in the summary).
  ``parameters.tree_label`` in the summary is the attribute the classes were cut from.
* ``max_tips``: a seeded random sample of that many of the remaining labelled tips is used
  (not the first ones in tree order, which would be a few clades only).
* Classes with fewer than ``min_class_size`` tips are dropped and listed in the summary; fewer
  than ``min_classes`` classes left (default 2) is an error naming the largest classes.
* Splitting is **by genome**: tips are grouped by identical genome (same set of differences
  from the reference), and a group goes to one split only, so no genome is in two splits. The
  split is stratified per class: within a class, groups are shuffled (numpy generator seeded
  with ``seed`` and the class name) and ``round(n * fraction)`` go to dev and test; a class
  with at least 3 groups gets at least one group in each split with a positive fraction,
  and train always keeps at least one.
* Rows per tip (``per_tip``): ``"windows"`` (the default): ``window`` nt every ``stride`` nt
  (default ``stride = window``, no overlap) from the start of each tip genome; the last partial
  window is **dropped** (unlike :func:`vqdna.sequence.fasta.window_starts`, no window is
  end-aligned). ``"random-window"``: one window of ``window`` nt per tip at a random start
  (a generator seeded with ``seed``, the tip's name and its index: the same tip gets the same
  start whatever the other options). ``"whole"``: the whole genome is the row (``window`` is
  not used). A row with more than ``max_n_fraction`` non-ACGT letters (N and other IUPAC codes)
  is dropped and counted.
* Duplicate windows: related genomes share most windows, so most dev/test windows have an
  exact copy in train (often under another class). ``dedupe="cross_split"`` (default) drops
  every dev/test window whose exact sequence is a train window (and every test window that is
  a dev window), counted in the summary; a dev or test split left without rows is an error.
  ``dedupe="none"`` keeps them and counts them in the summary (``vqdna data nextstrain --dedupe
  none`` prints a warning with the counts). Windows repeated within one split are kept.
* ``max_train_per_class``: after the windows are written (and deduplicated against **every**
  training row, so dev and test do not depend on the cap), at most that many training rows per
  class are kept in ``train.csv``: a seeded random choice (``seed`` and the class name), in file
  order. The genomes of all training tips stay in ``train_genomes.fa``.
* Every class keeps at least one training window: a class whose training windows were all
  dropped (``max_n_fraction``) but that has dev/test windows is an error, as
  :func:`vqdna.sequence.tasks.load_task` would reject the task.
* Output folder: ``genomes.fa`` (the genomes used, header ``>tip label=<class> split=<split>``;
  whitespace in names is replaced by ``_``), ``train_genomes.fa`` (the same records for the
  training tips only: a pre-training corpus that never saw a dev or test genome),
  ``sources.csv`` (one line per tip: ``tip,label,class_id,split,start,end,rows``: its class, its
  split, the start and end of its row for ``random-window`` and ``whole`` (0-based, end
  exclusive; empty for ``windows``) and how many rows of its split's CSV it gave, 0 for a
  training tip left out by ``max_train_per_class``), ``train.csv``/``dev.csv``/``test.csv`` with header
  ``sequence,label`` where ``label`` is the **integer** class id, ``labels.json`` mapping class
  name -> id (ids 0..k-1 in sorted class-name order, readable by
  :func:`vqdna.sequence.tasks.load_task`), and ``summary.json`` (parameters, counts per class
  and split, skipped tips, dropped classes, and how many dev/test windows have an exact copy
  in train, which is common for closely related genomes).
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..sequence.alphabet import BYTE_TO_INDEX, OTHER, encode
from ..sequence.fasta import read_fasta
from .auspice import ABSENT, MISSING, TreeError, node_value, nuc_mutations, parse_mutation, roots, safe_name, \
    tip_labels, walk_with_undo

log = logging.getLogger(__name__)

__all__ = [
    "TreeError",  # these three live in vqdna.data.auspice (the tree reader) and import from here too
    "parse_mutation",
    "tip_labels",
    "rebuild_genomes",
    "import_nextstrain",
    "cut_label",
]

#: the class attributes of Nextclade trees
LABELS = ("clade_nextstrain", "clade_who", "Nextclade_pango")
#: the tip attribute holding the unaliased name of a label (cut by ``label_level``)
UNALIASED = {"Nextclade_pango": "partiallyAliased"}
#: what one tip gives: its windows, one random window, or its whole genome
PER_TIP = ("windows", "random-window", "whole")
SPLITS = ("train", "dev", "test")
_GAP = ord("-")


# --------------------------------------------------------------------------- the reference


def _clean_reference(reference: str) -> str:
    ref = reference.strip().upper()
    if not ref:
        raise TreeError("empty reference sequence")
    encode(ref, where="reference")  # raises on characters outside the project alphabet
    return ref


# --------------------------------------------------------------------------- the walk


def _iter_tips(tree, ref: str, *, strict: bool, mismatches: list | None):
    """Yield ``(name, node, diff, ins)`` for every tip; ``diff``/``ins`` are live dicts.

    ``diff`` maps 1-based positions to a base differing from the reference (``-`` = deleted);
    ``ins`` maps a position to the bases inserted after it. Both are only valid at yield time.
    """
    n_ref = len(ref)
    diff: dict[int, str] = {}
    ins: dict[int, str] = {}
    n_mismatch = 0
    for node, undo, is_tip in walk_with_undo(roots(tree)):
        name = str(node.get("name", "?"))
        for m in nuc_mutations(node):
            where = f"node {name!r}: "
            a, p, b = parse_mutation(m, where=where)
            if a == "":  # insertion after position p
                if not 0 <= p <= n_ref:
                    raise TreeError(f"{where}insertion {m!r} at position {p} outside the reference (0..{n_ref})")
                undo.append((ins, p, ins.get(p, ABSENT)))
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
            undo.append((diff, p, diff.get(p, ABSENT)))
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


@dataclass
class _Tip:
    """A labelled tip of the tree: its differences from the reference, not yet its genome."""

    index: int  # position among all tips, in tree order
    name: str
    label: str
    diff: dict  # 1-based position -> base ("-" = deleted)
    ins: dict  # position -> bases inserted after it
    length: int  # genome length

    def genome_key(self) -> tuple:
        """Equal for tips with identical genomes."""
        return frozenset(self.diff.items()), frozenset(self.ins.items())


@dataclass
class _Windows:
    """What writing the windows counted (for the checks and the summary)."""

    per_class: dict  # class -> {"id", "tips": {split: n}, "windows": {split: n}}
    rows: dict = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    tip_rows: dict = field(default_factory=dict)  # tip index -> rows written to its split's CSV
    tip_span: dict = field(default_factory=dict)  # tip index -> (start, end) of its row (per-tip modes)
    train_row_tips: list = field(default_factory=list)  # the tip of every train.csv row, in file order
    train_rows_before_cap: int = 0
    dropped_ambiguous: int = 0
    deduped: int = 0
    copies: dict = field(default_factory=lambda: {"dev_rows_with_copy_in_train": 0, "test_rows_with_copy_in_train": 0,
                                                  "test_rows_with_copy_in_dev": 0})
    hashes: dict = field(default_factory=lambda: {s: set() for s in SPLITS})  # split -> window hashes
    window_classes: dict = field(default_factory=lambda: defaultdict(set))  # window hash -> class ids
    lengths: list = field(default_factory=list)  # genome length of every tip written


def import_nextstrain(tree_path, reference_path, out_dir, *, label: str = "clade_nextstrain",
                      window: int = 1000, stride: int | None = None, min_class_size: int = 10,
                      split: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0,
                      max_tips: int | None = None, max_n_fraction: float = 0.1, strict: bool = True,
                      dedupe: str = "cross_split", per_tip: str = "windows", label_level: int | None = None,
                      unalias: bool = True, min_classes: int = 2, max_train_per_class: int | None = None,
                      progress: bool = True) -> dict:
    """Rebuild the tip genomes of a tree and write a GUE-style classification task to ``out_dir``.

    Returns the summary also written to ``out_dir/summary.json``. See the module docstring for
    every policy (skipped tips, class filter, split by genome, windows, output files).
    """
    t0 = time.time()
    stride = window if stride is None else stride
    split = _check_parameters(window, stride, min_class_size, split, dedupe, max_n_fraction,
                              per_tip, label_level, min_classes, max_train_per_class)
    tree_label = UNALIASED.get(label, label) if label_level and unalias else label
    tree_path = Path(tree_path)
    from ..io import read_json

    tree_json = read_json(tree_path)  # a damaged file: an error naming it
    ref = _read_reference(reference_path, tree_json)
    mismatches: list[str] = []
    min_length = 1 if per_tip == "whole" else window
    tips, n_tips, skipped = _labelled_tips(tree_json, ref, label, min_length, strict, mismatches,
                                           label_level=label_level, tree_label=tree_label)
    if n_tips == 0:
        raise TreeError(f"{tree_path}: the tree has no tips")
    not_unaliased = skipped.pop("label_not_unaliased", 0)
    tips = _sample_tips(tips, max_tips, seed, skipped)
    desc = label if not label_level else f"{label} at level {label_level} (cut on {tree_label!r})"
    kept, dropped = _choose_classes(tips, min_class_size, desc, tree_path, min_classes=min_classes)
    skipped["small_class"] = sum(dropped.values())
    class_id = {c: i for i, c in enumerate(kept)}
    tips = [t for t in tips if t.label in class_id]
    groups = _genome_groups(tips)
    split_of = _split_by_genome(tips, groups, kept, split, seed)
    _check_every_split_has_genomes(split_of, split, tips, kept, tree_path)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w = _write_genomes_and_windows(out, tips, split_of, class_id, ref, window=window, stride=stride,
                                   max_n_fraction=max_n_fraction, dedupe=dedupe, per_tip=per_tip, seed=seed,
                                   desc=f"tips ({tree_path.name})", progress=progress)
    _check_windows(w, kept, split, window, max_n_fraction, dedupe, tree_path, out)
    if max_train_per_class:
        _cap_train_rows(out / "train.csv", w, tips, max_train_per_class, seed)
    _write_sources(out / "sources.csv", tips, split_of, class_id, w)
    with open(out / "labels.json", "w") as fh:
        json.dump(class_id, fh, indent=1)
    summary = {
        "tree": str(tree_path),
        "reference": str(reference_path) if reference_path is not None else "root_sequence",
        "reference_length": len(ref),
        "parameters": {"label": label, "window": None if per_tip == "whole" else window,
                       "stride": stride if per_tip == "windows" else None, "min_class_size": min_class_size,
                       "split": list(split), "seed": seed, "max_tips": max_tips,
                       "max_n_fraction": max_n_fraction, "strict": strict, "per_tip": per_tip,
                       "label_level": label_level, "unalias": bool(unalias and label_level),
                       "tree_label": tree_label, "min_classes": min_classes,
                       "max_train_per_class": max_train_per_class, "dedupe": dedupe},
        "tips_in_tree": n_tips,
        "tips_used": len(tips),
        "skipped_tips": dict(skipped),
        "dropped_classes": dropped,
        "labels_not_unaliased": not_unaliased,
        "n_classes": len(kept),
        "classes": w.per_class,
        "tips_per_split": {s: sum(w.per_class[c]["tips"][s] for c in kept) for s in SPLITS},
        "rows": w.rows,
        "train_rows_before_cap": w.train_rows_before_cap,
        "train_tips": sum(w.per_class[c]["tips"]["train"] for c in kept),
        "windows_dropped_ambiguous": w.dropped_ambiguous,
        "from_base_mismatches": len(mismatches),
        "identical_genome_groups": sum(1 for g in groups.values() if len(g) > 1),
        "genome_length": {"min": int(min(w.lengths)), "max": int(max(w.lengths)),
                          "mean": float(np.mean(w.lengths))},
        "window_duplicates": {
            "dedupe": dedupe,
            "rows_dropped": w.deduped,
            "distinct_windows_written": len(w.window_classes),
            "distinct_windows_in_several_classes": sum(1 for v in w.window_classes.values() if len(v) > 1),
            **w.copies,
        },
        "seconds": round(time.time() - t0, 2),
    }
    with open(out / "summary.json", "w") as fh:
        json.dump(summary, fh, indent=1)
    return summary


def _check_parameters(window, stride, min_class_size, split, dedupe, max_n_fraction, per_tip, label_level,
                      min_classes, max_train_per_class) -> tuple[float, float, float]:
    """Raise on a bad parameter; return ``split`` as three floats."""
    if per_tip not in PER_TIP:
        raise ValueError(f"per_tip must be one of {', '.join(PER_TIP)}, got {per_tip!r}")
    if label_level is not None and label_level < 1:
        raise ValueError(f"label_level must be >= 1, got {label_level}")
    if min_classes < 2:
        raise ValueError(f"min_classes must be >= 2 (a classification task), got {min_classes}")
    if max_train_per_class is not None and max_train_per_class < 1:
        raise ValueError(f"max_train_per_class must be >= 1, got {max_train_per_class}")
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
    return split


def cut_label(name: str, level: int | None) -> str:
    """The first ``level`` dot-separated levels of a name (all of it for ``None``):
    ``cut_label("BA.2.86.1.1", 3) == "BA.2.86"``; a shorter name is kept whole."""
    return name if not level else ".".join(name.split(".")[:level])


def _tip_label(node: dict, label: str, label_level: int | None, tree_label: str, skipped: Counter):
    """The class of a tip: its ``label`` (None when missing), cut at ``label_level`` on its
    ``tree_label`` attribute (the unaliased name) when it has one, else on the label itself."""
    attrs = node.get("node_attrs") or {}
    lab = node_value(attrs.get(label))
    if isinstance(lab, str):
        lab = lab.strip()
    if lab in MISSING:
        return None
    if not label_level:
        return str(lab)
    full = lab
    if tree_label != label:
        full = node_value(attrs.get(tree_label))
        full = full.strip() if isinstance(full, str) else full
        if full in MISSING:
            skipped["label_not_unaliased"] += 1  # counted, not skipped: the raw name is cut
            full = lab
    return cut_label(str(full), label_level)


def _labelled_tips(tree_json, ref: str, label: str, window: int, strict: bool,
                   mismatches: list, *, label_level: int | None = None,
                   tree_label: str | None = None) -> tuple[list[_Tip], int, Counter]:
    """Walk the tree once, keeping the differences of every labelled tip with a genome of at
    least one window (cheap: no genome yet). Returns the tips, the number of tips in the tree
    and the skipped tips by reason."""
    tips: list[_Tip] = []
    n_tips, skipped = 0, Counter()
    for name, node, diff, ins in _iter_tips(tree_json, ref, strict=strict, mismatches=mismatches):
        n_tips += 1
        lab = _tip_label(node, label, label_level, tree_label or label, skipped)
        if lab is None:
            skipped["unlabelled"] += 1
            continue
        length = len(ref) - sum(1 for b in diff.values() if b == "-") + sum(len(s) for s in ins.values())
        if length < window:
            skipped["shorter_than_window"] += 1
            continue
        tips.append(_Tip(n_tips - 1, name, str(lab), dict(diff), dict(ins), length))
    return tips, n_tips, skipped


def _sample_tips(tips: list[_Tip], max_tips: int | None, seed: int, skipped: Counter) -> list[_Tip]:
    """A seeded random sample of ``max_tips`` tips, in tree order (all when there are fewer)."""
    if max_tips is None or len(tips) <= max_tips:
        return tips
    keep = np.sort(np.random.default_rng(seed).choice(len(tips), size=max_tips, replace=False))
    skipped["max_tips"] = len(tips) - max_tips
    return [tips[i] for i in keep]


def _choose_classes(tips: list[_Tip], min_class_size: int, label: str, tree_path, *,
                    min_classes: int = 2) -> tuple[list[str], dict]:
    """The classes with at least ``min_class_size`` tips (sorted) and the dropped ones with their
    sizes; raise unless two (and ``min_classes``) classes remain."""
    sizes = Counter(t.label for t in tips)
    dropped = {c: n for c, n in sorted(sizes.items()) if n < min_class_size}
    kept = sorted(c for c in sizes if c not in dropped)
    biggest = sizes.most_common(3)
    singletons = bool(sizes) and biggest[0][1] == 1
    if len(kept) < 2 or singletons:
        hint = ("every tip has its own value of this label, so it cannot be a class on this tree; "
                "choose another label" if singletons else "lower min_class_size or choose another label")
        raise TreeError(
            f"{tree_path}: label {label!r} leaves {len(kept)} class(es) with >= {min_class_size} tips "
            f"({len(tips)} usable tips in {len(sizes)} classes; largest {biggest}); "
            f"a classification task needs 2: {hint}")
    if len(kept) < min_classes:
        raise TreeError(
            f"{tree_path}: label {label!r} leaves {len(kept)} class(es) with >= {min_class_size} tips, fewer than "
            f"the {min_classes} asked for (min_classes); {len(tips)} usable tips in {len(sizes)} classes, largest "
            f"{sizes.most_common(min_classes + 2)}: lower min_class_size, or choose another label or label level")
    return kept, dropped


def _genome_groups(tips: list[_Tip]) -> dict[tuple, list[int]]:
    """Indices into ``tips`` grouped by identical genome (first-seen order)."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for k, t in enumerate(tips):
        groups[t.genome_key()].append(k)
    return groups


def _split_by_genome(tips: list[_Tip], groups: dict, kept: list[str], split: tuple, seed: int) -> dict[int, str]:
    """The split of every tip: a group of identical genomes is one unit, given to its most common
    class (ties: the first class name); the units of each class are shuffled (seeded by ``seed``
    and the class name) and cut by :func:`_split_counts`."""
    units_by_class: dict[str, list[list[int]]] = defaultdict(list)
    for members in groups.values():
        cls = Counter(tips[k].label for k in members).most_common()
        top = min(c for c, n in cls if n == cls[0][1])
        units_by_class[top].append(members)
    split_of: dict[int, str] = {}
    for cls in kept:
        units = sorted(units_by_class.get(cls, []), key=lambda u: tips[u[0]].index)
        rng = np.random.default_rng([seed, zlib.crc32(cls.encode("utf-8"))])
        order = rng.permutation(len(units))
        n_tr, n_dev, _ = _split_counts(len(units), split)
        for rank, u in enumerate(order):
            s = "train" if rank < n_tr else "dev" if rank < n_tr + n_dev else "test"
            for k in units[u]:
                split_of[k] = s
    return split_of


def _check_every_split_has_genomes(split_of: dict, split: tuple, tips: list, kept: list, tree_path) -> None:
    n_split = Counter(split_of.values())
    empty_splits = [x for x, f in zip(SPLITS, split) if f > 0 and not n_split[x]]
    if empty_splits:
        raise TreeError(f"{tree_path}: no genome falls in split(s) {empty_splits} ({len(tips)} tips in "
                        f"{len(kept)} classes, split {split}); raise min_class_size or use more tips")


def _write_genomes_and_windows(out: Path, tips: list[_Tip], split_of: dict, class_id: dict, ref: str, *,
                               window: int, stride: int, max_n_fraction: float, dedupe: str, desc: str,
                               progress: bool, per_tip: str = "windows", seed: int = 0) -> _Windows:
    """Pass 2: materialise every tip's genome into ``genomes.fa`` (and, for a training tip,
    ``train_genomes.fa``) and its rows into the split CSVs, train tips first so that every
    dev/test row is checked against every train row."""
    ref_arr = np.frombuffer(ref.encode("ascii"), dtype=np.uint8)
    w = _Windows(per_class={c: {"id": i, "tips": dict.fromkeys(SPLITS, 0), "windows": dict.fromkeys(SPLITS, 0)}
                            for c, i in class_id.items()})
    files = {s: open(out / f"{s}.csv", "w", newline="") for s in SPLITS}
    try:
        order = sorted(range(len(tips)), key=lambda k: SPLITS.index(split_of[k]))
        writers = {s: csv.writer(files[s], lineterminator="\n") for s in SPLITS}
        for wr in writers.values():
            wr.writerow(["sequence", "label"])
        try:
            from tqdm.auto import tqdm
            it = tqdm(order, desc=desc, unit="tip", disable=not progress)
        except ImportError:  # pragma: no cover - tqdm is a dependency
            it = order
        with open(out / "genomes.fa", "w") as fa, open(out / "train_genomes.fa", "w") as train_fa:
            for k in it:
                tip, s = tips[k], split_of[k]
                genome = _materialise(ref_arr, tip.diff, tip.ins)
                assert len(genome) == tip.length
                w.lengths.append(tip.length)
                header = f"{safe_name(tip.name)} label={safe_name(tip.label)} split={s}"
                _write_fasta_record(fa, header, genome)
                if s == "train":
                    _write_fasta_record(train_fa, header, genome)
                w.per_class[tip.label]["tips"][s] += 1
                starts, length = _tip_rows(tip, per_tip, window, stride, seed)
                if per_tip != "windows":
                    w.tip_span[k] = (starts[0], starts[0] + length)
                before = w.rows[s]
                _write_windows(writers[s], w, genome, s, tip.label, class_id[tip.label], window=length,
                               starts=starts, max_n_fraction=max_n_fraction, dedupe=dedupe)
                w.tip_rows[k] = w.rows[s] - before
                if s == "train":
                    w.train_row_tips.extend([k] * w.tip_rows[k])
    finally:
        for f in files.values():
            f.close()
    return w


def _write_fasta_record(fa, header: str, genome: str) -> None:
    fa.write(f">{header}\n")
    for i in range(0, len(genome), 80):
        fa.write(genome[i:i + 80] + "\n")


def _tip_rows(tip: _Tip, per_tip: str, window: int, stride: int, seed: int) -> tuple[list[int], int]:
    """The starts of a tip's rows and their length (see ``per_tip`` in the module docstring)."""
    if per_tip == "whole":
        return [0], tip.length
    if per_tip == "random-window":
        rng = np.random.default_rng([seed, zlib.crc32(tip.name.encode("utf-8")), tip.index])
        return [int(rng.integers(0, tip.length - window + 1))], window
    return list(_window_starts(tip.length, window, stride)), window


def _write_windows(writer, w: _Windows, genome: str, s: str, cls: str, cid: int, *, window: int,
                   starts, max_n_fraction: float, dedupe: str) -> None:
    """The windows of one genome of split ``s``: drop the ambiguous ones, count (and with
    ``dedupe="cross_split"`` drop) the dev/test ones with a copy in train (test: or in dev)."""
    codes = BYTE_TO_INDEX[np.frombuffer(genome.encode("ascii"), dtype=np.uint8)]
    other = np.concatenate([[0], np.cumsum(codes >= OTHER)])
    for st in starts:
        if other[st + window] - other[st] > max_n_fraction * window:
            w.dropped_ambiguous += 1
            continue
        seq = genome[st:st + window]
        h = hashlib.blake2b(seq.encode("ascii"), digest_size=8).digest()
        dup = False
        if s != "train" and h in w.hashes["train"]:
            w.copies[f"{s}_rows_with_copy_in_train"] += 1
            dup = True
        if s == "test" and h in w.hashes["dev"]:
            w.copies["test_rows_with_copy_in_dev"] += 1
            dup = True
        if dup and dedupe == "cross_split":
            w.deduped += 1
            continue
        w.window_classes[h].add(cid)
        w.hashes[s].add(h)
        writer.writerow([seq, cid])
        w.rows[s] += 1
        w.per_class[cls]["windows"][s] += 1


def _cap_train_rows(path: Path, w: _Windows, tips: list[_Tip], cap: int, seed: int) -> None:
    """Keep at most ``cap`` rows per class in ``train.csv`` (a seeded choice per class, in file
    order); the counts of ``w`` follow."""
    w.train_rows_before_cap = w.rows["train"]
    by_class: dict[str, list[int]] = defaultdict(list)
    for r, k in enumerate(w.train_row_tips):
        by_class[tips[k].label].append(r)
    keep = np.zeros(len(w.train_row_tips), dtype=bool)
    for cls, rows in by_class.items():
        if len(rows) > cap:
            rng = np.random.default_rng([seed, zlib.crc32(cls.encode("utf-8")), 2])
            rows = [rows[i] for i in rng.choice(len(rows), size=cap, replace=False)]
        keep[rows] = True
        w.per_class[cls]["windows"]["train"] = len(rows)
    tmp = path.with_name(path.name + ".tmp")
    with open(path, newline="") as src, open(tmp, "w", newline="") as dst:
        dst.write(src.readline())  # the header
        for r, line in enumerate(src):
            if keep[r]:
                dst.write(line)
    tmp.replace(path)
    w.rows["train"] = int(keep.sum())
    for k in set(w.train_row_tips):
        w.tip_rows[k] = 0
    for r in np.flatnonzero(keep):
        w.tip_rows[w.train_row_tips[r]] += 1
    w.train_row_tips = [k for r, k in enumerate(w.train_row_tips) if keep[r]]


def _write_sources(path: Path, tips: list[_Tip], split_of: dict, class_id: dict, w: _Windows) -> None:
    """``sources.csv``: one line per tip, in tree order: where it went and what it gave."""
    with open(path, "w", newline="") as fh:
        wr = csv.writer(fh, lineterminator="\n")
        wr.writerow(["tip", "label", "class_id", "split", "start", "end", "rows"])
        for k, tip in enumerate(tips):
            start, end = w.tip_span.get(k, ("", ""))
            wr.writerow([tip.name, tip.label, class_id[tip.label], split_of[k], start, end, w.tip_rows.get(k, 0)])


def _check_windows(w: _Windows, kept: list, split: tuple, window: int, max_n_fraction: float, dedupe: str,
                   tree_path, out: Path) -> None:
    """Raise when the written task is not usable: a class without windows, a class without
    training windows, or a dev/test split left empty."""
    empty = [c for c in kept if sum(w.per_class[c]["windows"].values()) == 0]
    if empty:
        raise TreeError(f"class(es) {empty} kept but got no window (all dropped by max_n_fraction="
                        f"{max_n_fraction}?); the task in {out} is not usable")
    no_train = [c for c in kept if w.per_class[c]["windows"]["train"] == 0]
    if no_train:
        raise TreeError(f"{tree_path}: class(es) {no_train} have dev/test windows but no training window (all "
                        f"dropped by max_n_fraction={max_n_fraction}); the task in {out} is not usable")
    for s in ("dev", "test"):
        if split[SPLITS.index(s)] > 0 and w.rows[s] == 0:
            why = (f"after dropping {w.deduped:,} windows identical to a train (or dev) window (dedupe="
                   f"{dedupe!r}): the genomes differ too little for windows of {window} nt; use longer windows, "
                   f"or --dedupe none to keep the copies" if w.deduped else
                   f"(max_n_fraction={max_n_fraction} dropped {w.dropped_ambiguous:,} windows)")
            raise TreeError(f"{tree_path}: the {s} split has no window left {why}; the task in {out} is not usable")
