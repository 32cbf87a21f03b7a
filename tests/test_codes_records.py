"""The code store with many records (issue 19, item 1): the manifest is written twice per run, the
finished records go to the binary index in fsynced commits, short records are encoded in batches
with codes identical to encoding each alone (every tokenizer type), a kill at any moment then
``resume=True`` gives a folder byte-identical to an uninterrupted run, and a store another vqdna
version wrote is refused by --resume and written again without it."""
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
from vqdna.codes import INDEX, NAMES, NON_ACGT, CodeStore, store_status, write_codes
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
    real = type(tok).encode_packed

    def spy(self, idx, lengths):
        sizes.append(len(lengths))
        return real(self, idx, lengths)

    monkeypatch.setattr(type(tok), "encode_packed", spy)
    monkeypatch.setattr(codes, "BATCH_RECORDS", 16)  # several batches, cut by count and by chunk_length
    man = write_codes(tok, fa, tmp_path / "batched", tokenizer_path=tok_dir, chunk_length=1200, progress=False)
    assert max(sizes) > 1  # batches happened
    monkeypatch.setattr(type(tok), "encode_packed", real)
    store = CodeStore(tmp_path / "batched")
    assert man["n_records"] == store.n_records == len(store.records) == len(recs)
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
    assert sorted(_folder_bytes(tmp_path / "batched")) == sorted(["manifest.json", INDEX, NAMES, NON_ACGT]
                                                                 + man["levels"])


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
    assert not man["complete"] and store_status(tmp_path / "c") == "partial"
    # the records before it are finished (index rows, names): --resume keeps them
    assert (tmp_path / "c" / NAMES).read_text().split() == ["r0", "r1", "r2"]
    assert (tmp_path / "c" / INDEX).stat().st_size == 3 * 4 * 8


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
    monkeypatch.setattr(codes, "_write_manifest", lambda out, head: writes.append(dict(head))
                        or real_write(out, head))
    monkeypatch.setattr(codes.os, "fsync", lambda fd: syncs.append(fd) or real_fsync(fd))
    seen = []
    real_enc = type(build_handcrafted("char")).encode_packed

    def check_unfinished(self, idx, lengths):  # in the middle of the run: readers see an unfinished store
        with pytest.raises(ValueError, match="did not finish"):
            CodeStore(tmp_path / "c")
        seen.append(len(lengths))
        return real_enc(self, idx, lengths)

    tok = build_handcrafted("char")
    monkeypatch.setattr(type(tok), "encode_packed", check_unfinished)
    monkeypatch.setattr(codes, "BATCH_RECORDS", 100)
    man = write_codes(tok, fa, tmp_path / "c", progress=False)
    assert len(seen) == 30 and man["n_records"] == 3000
    assert [w["complete"] for w in writes] == [False, True]  # at the start and at the end only
    assert len(syncs) <= 10  # a commit or two (4 files each), the two manifests: not one per record
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
    real_packed, real_chunks = cls.encode_packed, cls.encode_chunks
    def tick():
        calls["n"] += 1
        if calls["n"] == at:
            os._exit(9)
    def encode_packed(self, idx, lengths):
        tick()
        return real_packed(self, idx, lengths)
    def encode_chunks(self, idx, chunk_length=1 << 20):
        for piece in real_chunks(self, idx, chunk_length):
            tick()
            yield piece
    cls.encode_packed, cls.encode_chunks = encode_packed, encode_chunks
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
    assert (out / INDEX).stat().st_size >= 32 * (at > 1)  # the commits before the kill
    # torn last rows and lines (killed while writing them), codes of an unfinished record: all dropped
    for name, torn in [(INDEX, b"\x01" * 13), (NAMES, b"r9\nr1"), (NON_ACGT, b'{"record": 999, "ru'),
                       ("level0.u16", b"\x07\x00" * 33)]:
        with open(out / name, "ab") as f:
            f.write(torn)
    assert _resume(fa, tok_dir, out) == ref


def test_killed_with_sigkill_at_random_moments_then_resumed_is_byte_identical(kill_setup, tmp_path):
    fa, tok_dir, ref = kill_setup
    rnd = random.Random(0)
    for trial in range(3):
        out = tmp_path / f"c{trial}"
        p = _child([fa, out, tok_dir, "run", 0], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        threshold = rnd.randint(32, 2500)  # bytes of index (32 a record): somewhere inside the run
        deadline = time.time() + 60
        while p.poll() is None and time.time() < deadline:
            j = out / INDEX
            if j.exists() and j.stat().st_size > threshold:
                break
            time.sleep(0.001)
        p.send_signal(signal.SIGKILL)
        p.wait()
        if (out / "manifest.json").exists():
            assert _resume(fa, tok_dir, out) == ref
        assert _resume(fa, tok_dir, out) == ref  # resuming a finished store changes nothing


def test_a_store_of_another_format_is_refused_by_resume_and_written_again_without(kill_setup, tmp_path):
    fa, tok_dir, ref = kill_setup
    out = tmp_path / "c"
    out.mkdir()
    old = {**json.loads(ref["manifest.json"]), "format": "vqdna-codes/1", "records": []}
    (out / "manifest.json").write_text(json.dumps(old))
    (out / "records.jsonl").write_text("{}\n")  # the journal of a format-1 run
    assert store_status(out) == "none"
    with pytest.raises(ValueError, match="format 'vqdna-codes/1'.*another vqdna version.*tokenize again"):
        CodeStore(out)
    with pytest.raises(ValueError, match="cannot resume into it: start again without --resume"):
        _resume(fa, tok_dir, out)
    write_codes(load_tokenizer(tok_dir), fa, out, tokenizer_path=tok_dir, chunk_length=500, progress=False)
    assert _folder_bytes(out) == ref


def test_resume_refuses_other_input_files(kill_setup, tmp_path):
    fa, tok_dir, ref = kill_setup
    out = tmp_path / "c"
    out.mkdir()
    for name, data in ref.items():
        (out / name).write_bytes(data)
    with pytest.raises(ValueError, match="cannot resume: the store reads .*give the same FASTA files"):
        write_codes(load_tokenizer(tok_dir), [fa, fa], out, tokenizer_path=tok_dir, resume=True, progress=False)


def test_resume_refuses_code_files_shorter_than_the_finished_records(kill_setup, tmp_path):
    fa, tok_dir, ref = kill_setup
    out = tmp_path / "c"
    out.mkdir()
    for name, data in ref.items():
        (out / name).write_bytes(data)
    man = json.loads(ref["manifest.json"])
    man["complete"] = False
    (out / "manifest.json").write_text(json.dumps(man))
    (out / "level0.u16").write_bytes(ref["level0.u16"][:100])
    with pytest.raises(ValueError, match="the folder is damaged: start again without --resume"):
        _resume(fa, tok_dir, out)


@pytest.mark.parametrize("damage", ["a name missing", "a torn index row", "runs of no record"])
def test_a_damaged_index_file_is_named_when_the_store_opens(kill_setup, tmp_path, damage):
    fa, tok_dir, ref = kill_setup
    out = tmp_path / "c"
    out.mkdir()
    for name, data in ref.items():
        (out / name).write_bytes(data)
    file, match = {"a name missing": (NAMES, "not one name per line"),
                   "a torn index row": (INDEX, "bytes, but manifest.json says"),
                   "runs of no record": (NON_ACGT, "line 1 is not")}[damage]
    data = (out / file).read_bytes()
    (out / file).write_bytes({NAMES: data[:data.rindex(b"\n", 0, -1) + 1], INDEX: data[:-3],
                              NON_ACGT: b'{"record": 100000, "runs": []}\n' + data}[file])
    with pytest.raises(ValueError, match=f"{file}: .*{match}"):
        CodeStore(out)
