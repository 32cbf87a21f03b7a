"""The code store with many records (issue 19, item 1): the manifest is written twice per run, the
finished records go to an append-only journal in fsynced commits, short records are encoded in
batches with codes identical to encoding each alone (every tokenizer type), a kill at any moment
then ``resume=True`` gives a folder byte-identical to an uninterrupted run, and stores written
before the file table still resume."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vqdna import codes
from vqdna.codes import JOURNAL, CodeStore, write_codes
from vqdna.sequence import alphabet
from vqdna.sequence.fasta import read_fasta
from vqdna.tokenizers import load_tokenizer
from vqdna.tokenizers.handcrafted import build_handcrafted

from conftest import _write_fasta


KEYS = ["hrq", "vq", "char", "kmer3", "kmer6", "nt6", "bpe"]


def _fasta(path, records) -> str:
    return str(_write_fasta(path, records))


def _records(genome: Path, *, min_length: int = 1, seed: int = 0) -> list[tuple[str, str]]:
    """Real yeast DNA cut into records of mixed lengths: 1-nt ones, runs of equal lengths (one
    batch shape), N / IUPAC runs at starts, ends and inside, soft-masked letters, and records
    longer than the test's chunk length (streamed, between batches)."""
    dna = next(read_fasta(genome)).sequence[:60_000]
    rng = np.random.default_rng(seed)
    lengths = [1, 2, 3, 5, 6, 7, 9, 50, 100, 100, 100, 100, 101, 128, 257, 400, 1000, 1500]
    recs, pos = [], 0
    for i in range(90):
        n = max(int(rng.choice(lengths)), min_length)
        s = dna[pos:pos + n]
        pos += n + 13
        if i % 5 == 1 and n > 8:
            s = "N" * 3 + s[3:n // 2] + "RY" + s[n // 2 + 2:-2] + "NN"  # runs at both ends and inside
        elif i % 5 == 3:
            s = s.lower()
        elif i % 11 == 4:
            s = "N" * n  # all N
        recs.append((f"r{i}" if i % 9 else "dup", s))  # names may repeat
    return recs


@pytest.fixture(scope="module")
def tiny_vq_tokenizer(tmp_path_factory, yeast_genome):
    from vqdna.tokenizers.training import train_tokenizer

    out = tmp_path_factory.mktemp("tiny_vq")
    train_tokenizer(yeast_genome, out=out, quantizer="vq", config="tiny", max_steps=3, device="cpu")
    return out


def _tokenizer(key: str, tmp_path: Path, request):
    if key in ("hrq", "vq"):
        d = request.getfixturevalue(f"tiny_{key}_tokenizer")
        return load_tokenizer(d), d
    rng = np.random.default_rng(5)
    seqs = ["".join(rng.choice(list("ACGT"), 3000)) for _ in range(3)]
    tok = build_handcrafted(key, seqs, vocab_size=64) if key == "bpe" else build_handcrafted(key)
    d = tmp_path / f"tok_{key}"
    tok.save_pretrained(d)
    return load_tokenizer(d), d


def _folder_bytes(path: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


# ---------------------------------------------------------------- the record line


def test_record_line_is_json_dumps_of_the_record():
    for name in ["chr1", 'a"b\\c', "tab\there", "ünï", "x" * 300]:
        for runs in ([], [[0, 3, "N"], [10, 1, "R"]]):
            rec = {"file": 3, "name": name, "offset": 10 ** 12, "length": 7, "nucleotides": 9, "non_acgt": runs}
            line = codes._record_line(**rec)
            assert line == json.dumps(rec) and json.loads(line) == rec


# ---------------------------------------------------------------- batches: codes as alone, every tokenizer


@pytest.mark.parametrize("key", KEYS)
def test_batched_records_equal_each_record_encoded_alone(key, tmp_path, yeast_genome, request, monkeypatch):
    tok, tok_dir = _tokenizer(key, tmp_path, request)
    if key in ("hrq", "vq") and not tok.batch_invariant:
        pytest.skip("no oneDNN packed path in this torch build: VQ/HRQ records are encoded one at a time")
    assert tok.batch_invariant
    k = getattr(tok, "k", 1)  # k-mers: a record shorter than k cannot be encoded (tested below)
    recs = _records(yeast_genome, min_length=k)
    fa = _fasta(tmp_path / "g.fa", recs)
    sizes = []
    real = type(tok).encode_indices

    def spy(self, idx):
        idx = list(idx)
        sizes.append(len(idx))
        return real(self, idx)

    monkeypatch.setattr(type(tok), "encode_indices", spy)
    monkeypatch.setattr(codes, "BATCH_RECORDS", 16)  # several batches, cut by count and by chunk_length
    man = write_codes(tok, fa, tmp_path / "batched", tokenizer_path=tok_dir, chunk_length=1200, progress=False)
    assert max(sizes) > 1  # batches happened
    monkeypatch.setattr(type(tok), "encode_indices", real)
    store = CodeStore(tmp_path / "batched")
    assert man["records"] == store.records and len(store.records) == len(recs)
    for i, (name, seq) in enumerate(recs):
        alone = tok.encode([seq])
        assert np.array_equal(store.record_codes(i), alone[0]), (key, i, len(seq))
        r = store.records[i]
        assert (r["name"], r["nucleotides"], r["non_acgt"]) == (name, len(seq), alone.non_acgt[0])
        assert store.record_file(i) == fa and r["file"] == 0
    assert store.manifest["files"] == [fa]
    # one record at a time gives the same folder, byte for byte
    monkeypatch.setattr(codes, "BATCH_RECORDS", 1)
    write_codes(tok, fa, tmp_path / "alone", tokenizer_path=tok_dir, chunk_length=1200, progress=False)
    assert _folder_bytes(tmp_path / "alone") == _folder_bytes(tmp_path / "batched")
    assert not (tmp_path / "batched" / JOURNAL).exists()


def test_packed_encoder_outputs_are_bit_identical_in_a_batch_and_alone(tiny_hrq_tokenizer):
    """What makes batching VQ/HRQ records exact: every row of a (B, L) forward equals its (1, L)
    forward bit for bit, encoder outputs and codes, at the lengths and batch sizes writing meets."""
    import torch

    tok = load_tokenizer(tiny_hrq_tokenizer)
    if not tok.batch_invariant:
        pytest.skip("no oneDNN packed path in this torch build")
    engine = tok._engine()
    g = torch.Generator().manual_seed(0)
    for length in (1, 2, 7, 100, 333, 4112):
        for batch in (2, 9, 120):
            x = torch.randint(0, 5, (batch, length), generator=g, dtype=torch.uint8)
            outs, codes_ = engine.encoder_outputs(x), engine.encode(x)
            for i in range(0, batch, max(batch // 6, 1)):
                alone = engine.encoder_outputs(x[i:i + 1])
                assert all(torch.equal(a[i:i + 1], b) for a, b in zip(outs, alone)), (length, batch, i)
                assert torch.equal(codes_[:, i:i + 1], engine.encode(x[i:i + 1])), (length, batch, i)


def test_learned_tokenizer_batches_only_on_the_exact_path(tiny_hrq_tokenizer, tmp_path, monkeypatch):
    """The plain modules (fast=False) give floats that depend on the batch: no batching there."""
    tok = load_tokenizer(tiny_hrq_tokenizer)
    tok.fast = False
    assert not tok.batch_invariant
    sizes = []
    real = type(tok).encode_indices
    monkeypatch.setattr(type(tok), "encode_indices", lambda self, idx: sizes.append(len(idx)) or real(self, idx))
    rng = np.random.default_rng(1)
    recs = [(f"r{i}", "".join(rng.choice(list("ACGT"), 60))) for i in range(20)]
    write_codes(tok, _fasta(tmp_path / "g.fa", recs), tmp_path / "c", progress=False)
    assert sizes and max(sizes) == 1


def test_a_record_shorter_than_k_in_a_batch_is_named_after_the_records_before_it(tmp_path):
    tok = build_handcrafted("kmer6")
    rng = np.random.default_rng(2)
    recs = [(f"r{i}", "".join(rng.choice(list("ACGT"), 50))) for i in range(5)]
    recs.insert(3, ("short", "ACG"))
    with pytest.raises(alphabet.SequenceError, match=r"g\.fa: record 'short': .*3 nt is shorter than k=6"):
        write_codes(tok, _fasta(tmp_path / "g.fa", recs), tmp_path / "c", progress=False)
    man = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert [r["name"] for r in man["records"]] == ["r0", "r1", "r2"] and not man["complete"]
    assert not (tmp_path / "c" / JOURNAL).exists()  # an exception folds the journal into the manifest


def test_an_invalid_letter_in_a_batch_is_named(tmp_path):
    recs = [("a", "ACGT" * 10), ("bad", "ACGT-ACGT"), ("c", "ACGT")]
    with pytest.raises(alphabet.SequenceError, match=r"record 'bad'.*invalid character '-' at position 5"):
        write_codes(build_handcrafted("char"), _fasta(tmp_path / "g.fa", recs), tmp_path / "c", progress=False)


# ---------------------------------------------------------------- linear: two manifest writes, batched syncs


def test_the_manifest_is_written_twice_and_syncs_are_batched(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    recs = [(f"r{i}", "".join(rng.choice(list("ACGTN"), int(rng.integers(1, 60))))) for i in range(3000)]
    fa = _fasta(tmp_path / "g.fa", recs)
    writes, syncs = [], []
    real_write, real_fsync = codes._write_manifest, os.fsync
    monkeypatch.setattr(codes, "_write_manifest", lambda p, head, lines: writes.append(dict(head))
                        or real_write(p, head, lines))
    monkeypatch.setattr(codes.os, "fsync", lambda fd: syncs.append(fd) or real_fsync(fd))
    seen = []
    real_enc = type(build_handcrafted("char")).encode_indices

    def check_unfinished(self, idx):  # in the middle of the run: readers see an unfinished store
        with pytest.raises(ValueError, match="did not finish"):
            CodeStore(tmp_path / "c")
        seen.append(len(idx))
        return real_enc(self, idx)

    tok = build_handcrafted("char")
    monkeypatch.setattr(type(tok), "encode_indices", check_unfinished)
    monkeypatch.setattr(codes, "BATCH_RECORDS", 100)
    man = write_codes(tok, fa, tmp_path / "c", progress=False)
    assert len(seen) == 30 and len(man["records"]) == 3000
    assert [w["complete"] for w in writes] == [False, True]  # at the start and at the end only
    assert len(syncs) <= 8  # the journal header, a commit or two, the two manifests: not one per record
    assert CodeStore(tmp_path / "c").records[2999]["name"] == "r2999"


# ---------------------------------------------------------------- kill -9 at any moment, then resume

CHILD = r"""
import os, sys
from vqdna import codes
from vqdna.tokenizers import load_tokenizer
fasta, out, tok_dir, mode, at = sys.argv[1:6]
at = int(at)
codes.COMMIT_SECONDS = 0  # a commit after every batch / long record: many states to be killed in
codes.BATCH_RECORDS = 7
tok = load_tokenizer(tok_dir)
calls = {"n": 0}
if mode == "exit":  # die (as kill -9: no handler, unflushed buffers lost) at the at-th encoder call
    cls = type(tok)
    real_idx, real_chunks = cls.encode_indices, cls.encode_chunks
    def tick():
        calls["n"] += 1
        if calls["n"] == at:
            os._exit(9)
    def encode_indices(self, idx):
        tick()
        return real_idx(self, idx)
    def encode_chunks(self, idx, chunk_length=1 << 20):
        for piece in real_chunks(self, idx, chunk_length):
            tick()
            yield piece
    cls.encode_indices, cls.encode_chunks = encode_indices, encode_chunks
codes.write_codes(tok, fasta, out, tokenizer_path=tok_dir, chunk_length=500, progress=False)
"""


def _child(args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", CHILD, *map(str, args)], env=env, **kw)


@pytest.fixture(scope="module")
def kill_setup(tmp_path_factory, yeast_genome):
    root = tmp_path_factory.mktemp("kill")
    tok_dir = root / "kmer3"
    build_handcrafted("kmer3").save_pretrained(tok_dir)
    recs = _records(yeast_genome, min_length=3, seed=7)
    fa = _fasta(root / "g.fa", recs)
    write_codes(load_tokenizer(tok_dir), fa, root / "ref", tokenizer_path=tok_dir, chunk_length=500, progress=False)
    return fa, tok_dir, _folder_bytes(root / "ref")


def _resume(fa, tok_dir, out):
    write_codes(load_tokenizer(tok_dir), fa, out, tokenizer_path=tok_dir, chunk_length=500, resume=True,
                progress=False)
    return _folder_bytes(out)


@pytest.mark.parametrize("at", [1, 4, 9, 17])
def test_killed_at_an_encoder_call_then_resumed_is_byte_identical(kill_setup, tmp_path, at):
    fa, tok_dir, ref = kill_setup
    out = tmp_path / "c"
    assert _child([fa, out, tok_dir, "exit", at]).wait() == 9
    assert not json.loads((out / "manifest.json").read_text())["complete"]
    with pytest.raises(ValueError, match="did not finish"):
        CodeStore(out)
    journal = (out / JOURNAL).read_text().splitlines()
    assert len(journal) >= min(at, 2)  # the header, then the commits before the kill
    # a torn last line (killed while writing it) and bytes of an unfinished record: both dropped
    with open(out / JOURNAL, "a") as f:
        f.write('{"file": 0, "name": "r9", "offse')
    with open(out / "level0.u16", "ab") as f:
        f.write(b"\x07\x00" * 33)
    assert _resume(fa, tok_dir, out) == ref


def test_killed_with_sigkill_at_random_moments_then_resumed_is_byte_identical(kill_setup, tmp_path):
    fa, tok_dir, ref = kill_setup
    rnd = random.Random(0)
    for trial in range(3):
        out = tmp_path / f"c{trial}"
        p = _child([fa, out, tok_dir, "run", 0], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        threshold = rnd.randint(200, 6000)  # bytes of journal: somewhere inside the run
        deadline = time.time() + 60
        while p.poll() is None and time.time() < deadline:
            j = out / JOURNAL
            if j.exists() and j.stat().st_size > threshold:
                break
            time.sleep(0.001)
        p.send_signal(signal.SIGKILL)
        p.wait()
        if (out / "manifest.json").exists():
            assert _resume(fa, tok_dir, out) == ref
        assert _resume(fa, tok_dir, out) == ref  # resuming a finished store changes nothing


def test_a_stale_journal_beside_a_finished_manifest_is_ignored(kill_setup, tmp_path):
    """Killed between writing the final manifest and deleting the journal."""
    fa, tok_dir, ref = kill_setup
    out = tmp_path / "c"
    out.mkdir()
    for name, data in ref.items():
        (out / name).write_bytes(data)
    (out / JOURNAL).write_text(codes._journal_header(0, 0) + "\n" + '{"path": "elsewhere.fa"}\n')
    assert _resume(fa, tok_dir, out) == ref


def test_a_store_written_before_the_file_table_resumes(kill_setup, tmp_path):
    """Records naming their file by path (no "files" table), unfinished: resumed into the new layout."""
    fa, tok_dir, ref = kill_setup
    out = tmp_path / "c"
    out.mkdir()
    man = json.loads(ref["manifest.json"])
    keep = man["records"][:20]
    old = {"format": man["format"], "tokenizer": man["tokenizer"], "dtype": "uint16", "levels": man["levels"],
           "records": [{**r, "file": man["files"][r["file"]]} for r in keep],
           "total_tokens": keep[-1]["offset"] + keep[-1]["length"],
           "total_nucleotides": sum(r["nucleotides"] for r in keep), "complete": False}
    (out / "manifest.json").write_text(json.dumps(old, indent=2))
    (out / "level0.u16").write_bytes(ref["level0.u16"][:2 * old["total_tokens"] + 10])
    assert _resume(fa, tok_dir, out) == ref


def test_resume_refuses_code_files_shorter_than_the_finished_records(kill_setup, tmp_path):
    fa, tok_dir, ref = kill_setup
    out = tmp_path / "c"
    out.mkdir()
    man = json.loads(ref["manifest.json"])
    man["complete"] = False
    (out / "manifest.json").write_text(json.dumps(man))
    (out / "level0.u16").write_bytes(ref["level0.u16"][:100])
    with pytest.raises(ValueError, match="the folder is damaged: start again without --resume"):
        _resume(fa, tok_dir, out)
