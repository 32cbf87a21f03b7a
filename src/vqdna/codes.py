"""The code store: a genome tokenized once, as uint16 arrays that stage 2 memory-maps.

Layout of a code folder (``vqdna-codes/2``)::

    manifest.json     format, tokenizer (type, vocab sizes, sha256 of its weights), dtype, levels,
                      files (the FASTA files read, in order), n_records, total_tokens,
                      total_nucleotides, complete
    records.i64       the record index: per record one row of four little-endian int64,
                      file (its index in files), offset, length (its codes, per level),
                      nucleotides (its letters)
    names.txt         the records' names (the first word of each header), one per line, UTF-8
    non_acgt.jsonl    one line per record that holds N / IUPAC letters:
                      {"record": i, "runs": [[start, length, letters], ...]} (nucleotide coordinates)
    level0.u16        codes of level 0 of every record, concatenated
    level1.u16        (HRQ) level 1, same offsets

Nothing in it grows by a Python object per record: a store of ten million reads has a 320 MB
index that :class:`CodeStore` reads with one ``np.fromfile``, and writing one costs no JSON per
record (nanoGPT's memmaps, with an index beside them).

A record's ``length`` counts its codes (per level), ``nucleotides`` its letters: equal for
one-code-per-nucleotide tokenizers, ``ceil(nucleotides / stride)`` codes for a strided VQ/HRQ
tokenizer (whose ``stride`` the manifest's tokenizer entry then records), fewer for k-mers and
BPE. Decoding cuts every record back to its ``nucleotides`` (a strided tokenizer pads the last
code) before the non-ACGT runs are put back.

**Encoding.** FASTA is read in blocks of whole records (:func:`~vqdna.sequence.fasta.read_fasta_blocks`,
parsed with numpy; the progress bar counts the input files' bytes against their total). A record of ``chunk_length`` nt or more streams in chunks
(``GenomeTokenizer.encode_chunks``: halos for learned tokenizers, in whole codes, chunks starting
at multiples of the stride; the k-1 following nt for k-mers; whole 2**20-nt words for BPE), so
the codes of a genome are never all in memory. Shorter records are encoded in batches of up to
``chunk_length`` nt and ``BATCH_RECORDS`` records (``encode_packed``, vectorised for k-mers and
characters) where the tokenizer is ``batch_invariant`` (a sequence's codes in a batch equal its
codes alone, bit for bit): every hand-crafted tokenizer, and VQ/HRQ on the packed oneDNN CPU
path; elsewhere (VQ/HRQ with ``fast=False`` or on a GPU) they go one at a time. Either way every
record's codes equal ``encode`` of the whole record.

**Durable, and linear in the records.** ``manifest.json`` is written (atomically) at the start
of a run with ``complete: false``, and once at the end with the totals and ``complete: true``.
In between, finished records are appended in commits, at least every ``COMMIT_SECONDS`` or
``COMMIT_RECORDS`` records: the code files, then ``names.txt`` and ``non_acgt.jsonl``, then the
index rows are written and fsynced, in that order, so every record in the index has its codes,
name and runs on disk. Readers (:class:`CodeStore`) refuse a manifest without ``complete: true``.

**Resume.** ``resume=True`` keeps the index's whole rows whose offsets follow each other and that
have a name, cuts every file back to them (a torn row or line, codes of an unfinished record) and
goes on: the folder ends byte-identical to an uninterrupted run's. Finished records are matched by
their position in the input (record ``i`` of the store is the ``i``-th record read), so records
sharing a name are all written; resuming checks that the input files are the same and that each
finished record is still the same (file, name, length).
"""
from __future__ import annotations

import json
import os
import time
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .io import FileFormatError, JsonObject, atomic_file, read_json, weights_sha256, write_json_atomic
from .sequence import alphabet
from .sequence.fasta import fasta_paths, read_fasta_blocks
from .tokenizers.base import GenomeTokenizer

FORMAT = "vqdna-codes/2"
MANIFEST, INDEX, NAMES, NON_ACGT = "manifest.json", "records.i64", "names.txt", "non_acgt.jsonl"
INDEX_FIELDS = ("file", "offset", "length", "nucleotides")  # the columns of records.i64
_ROW = np.dtype("<i8")
COMMIT_SECONDS = 2.0  # finished records reach the index (and the disk) at least this often ...
COMMIT_RECORDS = 1 << 16  # ... or every this many records
BATCH_RECORDS = 1 << 12  # most records encoded in one batch (besides chunk_length nt)


def tokenizer_fingerprint(tokenizer: GenomeTokenizer, path: str | Path | None) -> dict:
    """What a manifest records of the tokenizer: type, vocabulary, and (given its folder) the
    folder's path and sha256 (:func:`vqdna.io.weights_sha256`, the one tokenizer hash)."""
    info = {"type": tokenizer.tokenizer_type, "vocab_sizes": list(tokenizer.vocab_sizes),
            "n_levels": tokenizer.n_levels}
    stride = getattr(tokenizer, "stride", 1)  # a strided VQ/HRQ tokenizer: nucleotides per code
    if stride > 1:
        info["stride"] = int(stride)
    if path is not None:
        info["path"] = str(Path(path).resolve())
        info["sha256"] = weights_sha256(path)
    return info


def _chained(rows: np.ndarray) -> int:
    """How many leading rows of an index are consistent: offsets back to back from 0, counts >= 0."""
    ok = (rows >= 0).all(axis=1) & (rows[:, 1] == np.concatenate(([0], np.cumsum(rows[:-1, 2]))))
    return len(rows) if ok.all() else int(np.argmin(ok))


def _name_lines(path: Path) -> tuple[bytes, np.ndarray]:
    """``names.txt`` and the end (after its newline) of every whole line."""
    data = path.read_bytes() if path.exists() else b""
    return data, np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10) + 1


def _resume_point(out: Path, head: dict) -> tuple[np.ndarray, list[str]]:
    """The finished records of the store in ``out`` (index rows, names), after checking that it
    continues into ``head`` and cutting its files back to those records (module docstring)."""
    man_path = out / MANIFEST
    old = read_json(man_path)
    if old.get("format") != FORMAT:
        raise ValueError(f"{man_path}: format {old.get('format')!r}, not {FORMAT!r} (another vqdna version "
                         f"wrote it); cannot resume into it: start again without --resume")
    if old["tokenizer"].get("sha256") != head["tokenizer"].get("sha256"):
        raise ValueError(f"{man_path}: written by another tokenizer; cannot resume into it")
    if [os.path.realpath(f) for f in old["files"]] != [os.path.realpath(f) for f in head["files"]]:
        raise ValueError(f"{man_path}: cannot resume: the store reads {old['files']}, the input is "
                         f"{head['files']}; give the same FASTA files in the same order, or start again "
                         f"without --resume")
    raw = np.fromfile(out / INDEX, dtype=_ROW) if (out / INDEX).exists() else np.zeros(0, _ROW)
    rows = raw[:raw.size // 4 * 4].reshape(-1, 4)  # a torn last row is dropped
    names, ends = _name_lines(out / NAMES)
    n = min(_chained(rows), len(ends))
    rows = rows[:n]
    tokens = int(rows[:, 2].sum())
    for f in head["levels"]:
        size = (out / f).stat().st_size if (out / f).exists() else 0
        if size < 2 * tokens:
            raise ValueError(f"{out / f}: {size:,} bytes, fewer than the {2 * tokens:,} of the store's finished "
                             f"records; the folder is damaged: start again without --resume")
    runs = []  # the intact lines of finished records
    if (out / NON_ACGT).exists():
        for line in (out / NON_ACGT).read_text().splitlines(keepends=True):
            try:
                ok = line.endswith("\n") and json.loads(line)["record"] < n
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                break
            runs.append(line)
    head.update(n_records=n, total_tokens=tokens, total_nucleotides=int(rows[:, 3].sum()))
    _write_manifest(out, head)  # unfinished from here on, before any file is cut
    with atomic_file(out / NON_ACGT) as f:
        f.write("".join(runs))
    for name, size in [(INDEX, n * 4 * _ROW.itemsize), (NAMES, int(ends[n - 1]) if n else 0),
                       *[(f, 2 * tokens) for f in head["levels"]]]:
        with open(out / name, "ab") as f:
            f.truncate(size)
    return rows, names[:int(ends[n - 1]) if n else 0].decode("utf-8").split("\n")[:-1]


def _write_manifest(out: Path, head: dict) -> None:
    write_json_atomic(out / MANIFEST, head)


def write_codes(tokenizer: GenomeTokenizer, fasta, out: str | Path, *, tokenizer_path=None,
                chunk_length: int = 1 << 20, resume: bool = False, progress: bool = True) -> dict:
    """Tokenize FASTA records into ``out`` (see module docstring). Returns the manifest."""
    out = Path(out)
    fasta = [str(f) for f in fasta_paths(fasta)]  # pypi: specs expanded
    for f in fasta:  # a missing input fails before any output exists
        if not Path(f).is_file():
            raise FileNotFoundError(f"{f}: no such FASTA file")
    out.mkdir(parents=True, exist_ok=True)
    head = {"format": FORMAT, "tokenizer": tokenizer_fingerprint(tokenizer, tokenizer_path), "dtype": "uint16",
            "levels": [f"level{i}.u16" for i in range(tokenizer.n_levels)], "files": fasta,
            "n_records": 0, "total_tokens": 0, "total_nucleotides": 0, "complete": False}
    if resume and (out / MANIFEST).exists():
        done_rows, done_names = _resume_point(out, head)
    else:  # the old store ends here: readers see an unfinished one before any file goes
        done_rows, done_names = np.zeros((0, 4), np.int64), []
        _write_manifest(out, head)
        for f in [INDEX, NAMES, NON_ACGT, "records.jsonl", *head["levels"]]:  # (the journal of a format-1 store)
            (out / f).unlink(missing_ok=True)
    n_done = len(done_rows)
    n_records, tokens, nucleotides = n_done, head["total_tokens"], head["total_nucleotides"]
    levels = [open(out / f, "ab") for f in head["levels"]]
    index, names_f, runs_f = open(out / INDEX, "ab"), open(out / NAMES, "ab"), open(out / NON_ACGT, "a")
    pending_rows: list[np.ndarray] = []  # rows of records whose codes are written but not yet synced
    pending_names: list[bytes] = []
    pending_runs: list[str] = []
    n_pending, last_commit = 0, time.monotonic()

    def commit():
        """Make the pending records durable: codes, then names and runs, then their index rows."""
        nonlocal n_pending, last_commit
        last_commit = time.monotonic()
        if not pending_rows:
            return
        for fh in levels:
            fh.flush()
            os.fsync(fh.fileno())
        names_f.write(b"".join(pending_names))
        runs_f.write("".join(pending_runs))
        for fh in (names_f, runs_f):
            fh.flush()
            os.fsync(fh.fileno())
        index.write(np.concatenate(pending_rows).astype(_ROW).tobytes())
        index.flush()
        os.fsync(index.fileno())
        pending_rows.clear()
        pending_names.clear()
        pending_runs.clear()
        n_pending = 0

    def finished(file_i: int, n_tok: np.ndarray, n_nt: np.ndarray, names: bytes, runs: list[str]) -> None:
        nonlocal n_records, tokens, nucleotides, n_pending
        offsets = tokens + np.cumsum(n_tok) - n_tok
        pending_rows.append(np.column_stack([np.full(len(n_tok), file_i), offsets, n_tok, n_nt]))
        pending_names.append(names)
        pending_runs.extend(runs)
        n_records += len(n_tok)
        tokens += int(n_tok.sum())
        nucleotides += int(n_nt.sum())
        n_pending += len(n_tok)
        if n_pending >= COMMIT_RECORDS or time.monotonic() - last_commit >= COMMIT_SECONDS:
            commit()

    def write(codes: np.ndarray) -> None:
        for level, fh in enumerate(levels):
            fh.write(np.ascontiguousarray(codes[level], dtype=np.uint16).tobytes())

    batching = BATCH_RECORDS > 1 and getattr(tokenizer, "batch_invariant", False)
    before = np.cumsum([0] + [os.path.getsize(f) for f in fasta]).tolist()  # progress: input bytes, with a total
    bar = tqdm(desc="tokenize", total=before[-1], unit="B", unit_scale=True, disable=not progress, mininterval=1.0)
    try:
        position = 0  # records of the input read so far
        for file_i, block in ((i, b) for i, f in enumerate(fasta) for b in read_fasta_blocks(f)):
            m = len(block)
            bar.update(before[file_i] + block.file_bytes - bar.n)
            skip = min(max(n_done - position, 0), m)
            if skip:
                _check_same(out, block, file_i, skip, position, head["files"], done_rows, done_names)
            position += m
            if skip == m:
                continue
            ends = np.cumsum(block.lengths)
            starts = ends - block.lengths
            name_ends = np.flatnonzero(np.frombuffer(block.names_blob, dtype=np.uint8) == 10) + 1
            name_starts = np.concatenate(([0], name_ends[:-1]))
            idx = alphabet.BYTE_TO_INDEX[block.raw]
            bad = np.flatnonzero(idx[starts[skip]:] == alphabet.INVALID)
            if bad.size:  # named before any of the block is written
                i = int(np.searchsorted(ends, bad[0] + starts[skip], side="right"))
                alphabet.encode(block.raw[starts[i]:ends[i]].tobytes(), where=block.where(i))
            other = idx == alphabet.OTHER

            def runs_of(i0: int, i1: int) -> list[str]:
                """The non_acgt.jsonl lines of records i0..i1-1 of the block (those with N / IUPAC)."""
                pos = np.flatnonzero(other[starts[i0]:ends[i1 - 1]])
                lines = []
                for i in np.unique(np.searchsorted(ends, pos + starts[i0], side="right")).tolist():
                    r = alphabet.non_acgt_runs_of(block.raw[starts[i]:ends[i]].tobytes(), idx[starts[i]:ends[i]])
                    lines.append(json.dumps({"record": n_records + i - i0, "runs": r}) + "\n")
                return lines

            def write_one(i: int) -> None:
                """Record ``i`` of the block, of any length, streamed in chunks."""
                n_tok = 0
                try:
                    for _, codes in tokenizer.encode_chunks(idx[starts[i]:ends[i]], chunk_length):
                        write(codes)
                        n_tok += codes.shape[1]
                except alphabet.SequenceError as e:
                    raise alphabet.SequenceError(f"{block.where(i)}: {e}") from None
                finished(file_i, np.array([n_tok]), block.lengths[i:i + 1],
                         block.names_blob[name_starts[i]:name_ends[i]], runs_of(i, i + 1))

            long = np.flatnonzero(block.lengths >= chunk_length)
            i = skip
            while i < m:
                if not batching or block.lengths[i] >= chunk_length:
                    write_one(i)
                    i += 1
                    continue
                # a batch: the short records from i on, up to chunk_length nt (the record reaching it
                # included), BATCH_RECORDS records and the next long record
                next_long = int(long[np.searchsorted(long, i)]) if long.size and long[-1] > i else m
                j = min(int(np.searchsorted(ends, starts[i] + chunk_length)) + 1, i + BATCH_RECORDS, next_long, m)
                try:
                    codes, n_tok = tokenizer.encode_packed(idx[starts[i]:ends[j - 1]], block.lengths[i:j])
                except alphabet.SequenceError:  # a record it cannot encode (shorter than k): the ones
                    for r in range(i, j):         # before it are written, then it is named
                        write_one(r)
                    i = j
                    continue
                write(codes)
                finished(file_i, n_tok, block.lengths[i:j], block.names_blob[name_starts[i]:name_ends[j - 1]],
                         runs_of(i, j))
                i = j
            bar.set_postfix_str(f"{n_records:,} records, {nucleotides:,} nt", refresh=False)
        if position < n_done:
            raise ValueError(f"{out / MANIFEST}: cannot resume: the store holds {n_done} records but the input "
                             f"only {position}; give the same FASTA files, or start again without --resume")
    finally:  # also when stopped by an exception: the finished records stay, for --resume
        try:
            commit()
        finally:
            for fh in [*levels, index, names_f, runs_f]:
                fh.close()
            bar.close()
    head.update(n_records=n_records, total_tokens=tokens, total_nucleotides=nucleotides, complete=True)
    _write_manifest(out, head)
    manifest = JsonObject(head)
    manifest.source = str(out / MANIFEST)
    return manifest


def store_status(out: str | Path) -> str:
    """``"complete"``, ``"partial"`` (a run of this format to resume) or ``"none"`` (no store, or one
    another vqdna version wrote, which a run writes again) for the code folder ``out``."""
    man = Path(out) / MANIFEST
    if not man.exists():
        return "none"
    head = read_json(man)
    if head.get("format") != FORMAT:
        return "none"
    return "complete" if head.get("complete") else "partial"


def _check_same(out: Path, block, file_i: int, skip: int, position: int, files: list, rows: np.ndarray,
                names: list[str]) -> None:
    """Resuming: the first ``skip`` records of ``block`` (input records ``position``...) are the
    store's finished ones (same file, name and length), or a ValueError says where they differ."""
    got_names = block.names[:skip]
    want = rows[position:position + skip]
    same = (want[:, 0] == file_i) & (want[:, 3] == block.lengths[:skip])
    same &= np.array([a == b for a, b in zip(got_names, names[position:position + skip])])
    if not same.all():
        i = int(np.argmin(same))
        n = position + i + 1
        raise ValueError(
            f"{out / MANIFEST}: cannot resume: record {n} of the input is {block.file}: {got_names[i]!r} "
            f"({int(block.lengths[i]):,} nt) but the store's record {n} is {files[int(want[i, 0])]}: "
            f"{names[position + i]!r} ({int(want[i, 3]):,} nt); give the same FASTA files in the same order, "
            f"or start again without --resume")


def _check_head(path: Path, man: dict) -> None:
    """The typed fields of a finished manifest, checked before any record is read: the tokenizer's
    vocabulary, the level files, the file table and the totals. A damaged or hand-edited manifest
    is a ``FileFormatError`` naming the file and the field, not a TypeError half-way through a run."""
    def bad(what: str):
        return FileFormatError(f"{path}: {what}; the file is damaged or hand-edited")

    def count(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    tok = man["tokenizer"]
    if not isinstance(tok, dict) or not isinstance(tok.get("vocab_sizes"), list) \
            or not all(count(v) and v > 0 for v in tok["vocab_sizes"]):
        raise bad(f"tokenizer.vocab_sizes {tok.get('vocab_sizes') if isinstance(tok, dict) else tok!r} "
                  f"is not a list of positive integers")
    levels = man["levels"]
    if not isinstance(levels, list) or len(levels) != len(tok["vocab_sizes"]) \
            or not all(isinstance(f, str) and f and Path(f).name == f for f in levels):
        raise bad(f"levels {levels!r} are not one file name per tokenizer level")
    if not isinstance(man["files"], list) or not all(isinstance(f, str) for f in man["files"]):
        raise bad(f"files {man['files']!r} is not a list of paths")
    for key in ("n_records", "total_tokens", "total_nucleotides"):
        if not count(man[key]):
            raise bad(f"{key} {man[key]!r} is not an integer >= 0")


class CodeStore:
    """Read side: the record index and memory-mapped code arrays of one code folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        man = self.path / MANIFEST
        if not man.exists():
            raise FileNotFoundError(f"{path}: not a code folder (no {MANIFEST})")
        self.manifest = read_json(man)
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"{man}: format {self.manifest.get('format')!r}, expected {FORMAT!r} (another vqdna "
                             f"version wrote it); tokenize again with `vqdna tokenize`")
        if not self.manifest.get("complete"):
            raise ValueError(f"{man}: tokenization did not finish; rerun `vqdna tokenize ... --resume`")
        _check_head(man, self.manifest)
        n, n_rec = self.manifest["total_tokens"], self.manifest["n_records"]
        ipath = self.path / INDEX
        size = ipath.stat().st_size if ipath.exists() else 0
        if size != n_rec * 4 * _ROW.itemsize:
            raise FileFormatError(f"{ipath}: {size:,} bytes, but {MANIFEST} says {n_rec:,} records "
                                  f"({n_rec * 4 * _ROW.itemsize:,} bytes); the folder is damaged")
        rows = np.fromfile(ipath, dtype=_ROW).reshape(-1, 4).astype(np.int64)
        bad_file = rows[:, 0] >= len(self.manifest["files"])
        good = _chained(rows)
        if good < n_rec or bad_file.any():
            i = min(good, int(np.argmax(bad_file)) if bad_file.any() else n_rec)
            raise FileFormatError(f"{ipath}: record {i}: {dict(zip(INDEX_FIELDS, rows[i].tolist()))} does not follow "
                                  f"the records before it or names no file of {MANIFEST}; the folder is damaged")
        if int(rows[:, 2].sum()) != n:
            raise FileFormatError(f"{ipath}: the records hold {int(rows[:, 2].sum()):,} tokens, {MANIFEST} says "
                                  f"{n:,}; the folder is damaged")
        self.file_ids, self.offsets, self.lengths, self.nucleotides = (np.ascontiguousarray(c) for c in rows.T)
        self.levels = []
        for f in self.manifest["levels"]:
            fp = self.path / f
            if fp.stat().st_size != 2 * n:
                raise ValueError(f"{fp}: {fp.stat().st_size} bytes, manifest says {2 * n}")
            self.levels.append(np.memmap(fp, dtype=np.uint16, mode="r", shape=(n,)))
        names = self.path / NAMES  # checked now, not half-way through a run (read when first asked for)
        data = (np.memmap(names, dtype=np.uint8, mode="r") if names.exists() and names.stat().st_size
                else np.zeros(0, np.uint8))
        if np.count_nonzero(data == 10) != n_rec or (len(data) and data[-1] != 10):
            raise FileFormatError(f"{names}: not one name per line for the {n_rec:,} records; the folder is damaged")
        del data
        self.non_acgt  # noqa: B018 - read and checked now

    @cached_property
    def names(self) -> list[str]:
        """Every record's name, in store order (a str per record: read on first use)."""
        return (self.path / NAMES).read_bytes().decode("utf-8").split("\n")[:-1]

    @cached_property
    def non_acgt(self) -> dict[int, list]:
        """The runs of N / IUPAC letters of the records that have any: record -> [[start, length, letters], ...]."""
        out: dict[int, list] = {}
        path = self.path / NON_ACGT
        for line_no, line in enumerate(path.read_text().splitlines() if path.exists() else [], 1):
            try:
                obj = json.loads(line)
                i, runs = obj["record"], obj["runs"]
                ok = (isinstance(i, int) and 0 <= i < len(self.offsets) and isinstance(runs, list)
                      and all(isinstance(r, list) and len(r) == 3 and isinstance(r[0], int) and r[0] >= 0
                              and isinstance(r[1], int) and r[1] >= 0 and isinstance(r[2], str) for r in runs))
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                raise FileFormatError(f"{path}: line {line_no} is not {{\"record\": i, \"runs\": [[start, length, "
                                      f"letters], ...]}} of a record of the store; the file is damaged or hand-edited")
            out[i] = runs
        return out

    def record(self, i: int) -> dict:
        """Record ``i`` as a dict: file (its index in ``manifest["files"]``), name, offset, length,
        nucleotides, non_acgt."""
        return {"file": int(self.file_ids[i]), "name": self.names[i], "offset": int(self.offsets[i]),
                "length": int(self.lengths[i]), "nucleotides": int(self.nucleotides[i]),
                "non_acgt": self.non_acgt.get(i, [])}

    @cached_property
    def records(self) -> list[dict]:
        """Every :meth:`record` (a dict per record: for small stores; large ones read the arrays)."""
        return [self.record(i) for i in range(len(self.offsets))]

    @property
    def n_records(self) -> int:
        return len(self.offsets)

    @property
    def vocab_sizes(self) -> list[int]:
        return self.manifest["tokenizer"]["vocab_sizes"]

    def __len__(self) -> int:
        return self.manifest["total_tokens"]

    def record_file(self, i: int) -> str:
        """The FASTA file record ``i`` was read from."""
        return self.manifest["files"][int(self.file_ids[i])]

    def record_codes(self, i: int) -> np.ndarray:
        """(n_levels, length) int64 codes of record ``i``."""
        o, n = int(self.offsets[i]), int(self.lengths[i])
        return np.stack([lv[o:o + n] for lv in self.levels]).astype(np.int64)


def decode_codes(tokenizer: GenomeTokenizer, codes_dir, out_fasta, *, line_width: int = 80,
                 progress: bool = True) -> int:
    """Write the decoded sequences of a code folder as FASTA; returns the record count.

    The stored non-ACGT runs are put back, so N and IUPAC letters come out as they went in.
    """
    store = CodeStore(codes_dir)
    with atomic_file(out_fasta) as f:  # a failed run leaves no FASTA, not even half of one
        for i in tqdm(range(store.n_records), desc="decode", disable=not progress):
            rec = store.record(i)
            codes = store.record_codes(i)
            if getattr(tokenizer, "stride", 1) > 1:  # the last code may cover padding: cut it off
                seq = tokenizer.decode([codes], lengths=[rec["nucleotides"]])[0]
            else:
                seq = tokenizer.decode([codes])[0]
            seq = alphabet.restore_non_acgt(seq, rec["non_acgt"])
            f.write(f">{rec['name']}\n")
            for s in range(0, len(seq), line_width):
                f.write(seq[s:s + line_width] + "\n")
    return store.n_records
