"""Issue 10, items 5, 7 and 8: non-ACGT letters through the Python API, code stores equal to
whole-record tokenization for every tokenizer, resume by record position, small tokenizer corpora,
cross-split window deduplication, dev/test labels that train lacks, all-N evaluation input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vqdna import codes
from vqdna.cli import main
from vqdna.codes import CodeStore, decode_codes, write_codes
from vqdna.sequence import alphabet
from vqdna.tokenizers import load_tokenizer
from vqdna.tokenizers.handcrafted import HANDCRAFTED, BPETokenizer, CharTokenizer, build_handcrafted

from conftest import _write_fasta

HANDCRAFTED_KEYS = sorted(HANDCRAFTED)  # bpe, char, kmer3, kmer6, nt6


def _dna(rng, n: int, n_frac: float = 0.0) -> str:
    s = rng.choice(list("ACGT"), size=n)
    if n_frac:
        m = rng.random(n) < n_frac
        s[m] = rng.choice(list("NNRYK"), size=int(m.sum()))
    return "".join(s)


def _fasta(path, records) -> str:
    return str(_write_fasta(path, records))


def _handcrafted(key: str, tmp_path):
    rng = np.random.default_rng(5)
    tok = build_handcrafted(key, [_dna(rng, 3000, 0.01) for _ in range(3)], vocab_size=48) if key == "bpe" \
        else build_handcrafted(key)
    d = tmp_path / f"tok_{key}"
    tok.save_pretrained(d)
    return load_tokenizer(d), d


# ------------------------------------------------------------------ item 5: the Python API gives N back
def test_learned_round_trip_never_turns_n_into_a_base(tiny_hrq_tokenizer, tmp_path):
    tok = load_tokenizer(tiny_hrq_tokenizer)
    seqs = ["ACGTNACGTTGCA", "acgtRYNNNacgtK"]
    enc = tok.encode(seqs)
    assert enc.non_acgt == [[[4, 1, "N"]], [[4, 1, "R"], [5, 1, "Y"], [6, 3, "N"], [13, 1, "K"]]]
    assert tok.decode(enc) == [s.upper() for s in seqs]              # the case: N stays N
    assert tok.decode(enc[1:]) == ["ACGTRYNNNACGTK"]                 # slices keep their runs
    # plain arrays carry no runs; the manifest's runs can be given explicitly
    plain = [np.asarray(c) for c in enc]
    assert tok.decode(plain, non_acgt=enc.non_acgt) == [s.upper() for s in seqs]
    assert set(tok.decode(plain)[0]) <= set("ACGT")  # the model alone says bases (hence the runs)
    with pytest.raises(ValueError, match="reach position 14"):
        tok.decode([c[:, :5] for c in plain], non_acgt=enc.non_acgt)
    # the code store keeps the same runs as encode returns
    fa = _fasta(tmp_path / "g.fa", [("a", seqs[1] * 20)])
    write_codes(tok, fa, tmp_path / "codes", tokenizer_path=tiny_hrq_tokenizer, progress=False)
    rec = CodeStore(tmp_path / "codes").records[0]
    assert rec["non_acgt"] == tok.encode([seqs[1] * 20]).non_acgt[0]


@pytest.mark.parametrize("key", HANDCRAFTED_KEYS)
def test_handcrafted_round_trip_never_turns_n_into_a_base(key, tmp_path):
    tok, _ = _handcrafted(key, tmp_path)
    rng = np.random.default_rng(1)
    seqs = ["ACGTNACGTTGCA", _dna(rng, 400, 0.05), "ACGTRRACGTACGTYACGT"]
    out = tok.decode(tok.encode(seqs))
    for s, o in zip(seqs, out):
        assert len(o) == len(s)
        for a, b in zip(s, o):
            # every non-ACGT letter comes back exactly; a base comes back as itself, or as N where
            # no k-mer free of N covers it (kmer6 next to an N): never an N turned into a base
            assert b == a if a not in "ACGT" else b in (a, "N")
    if key != "kmer6":
        assert out[0] == "ACGTNACGTTGCA"


# ------------------------------------------------------------------ item 5: code store == whole-record encode
@pytest.mark.parametrize("key", HANDCRAFTED_KEYS + ["hrq"])
def test_code_store_equals_whole_record_tokenization_across_chunk_edges(key, tmp_path, tiny_hrq_tokenizer,
                                                                         monkeypatch):
    if key == "hrq":
        tok, tok_dir = load_tokenizer(tiny_hrq_tokenizer), tiny_hrq_tokenizer
    else:
        tok, tok_dir = _handcrafted(key, tmp_path)
    if key == "bpe":  # BPE's words are part of its definition: make them short enough to cross here
        monkeypatch.setattr(BPETokenizer, "WORD_LENGTH", 97)
    rng = np.random.default_rng(2)
    recs = [("r1", _dna(rng, 1000, 0.02)), ("r2", "ACGTTTGAC" + "N" * 30 + _dna(rng, 301)), ("r3", _dna(rng, 64))]
    fa = _fasta(tmp_path / "g.fa", recs)
    # 7 / 50 nt chunks: many edges, inside k-mers, 6-mers, BPE words, N runs (the learned one: halos, slower)
    for chunk in ((97, 1 << 20) if key == "hrq" else (7, 50, 1 << 20)):
        out = tmp_path / f"codes{chunk}"
        write_codes(tok, fa, out, tokenizer_path=tok_dir, chunk_length=chunk, progress=False)
        store = CodeStore(out)
        for i, (name, seq) in enumerate(recs):
            whole = tok.encode([seq])[0]
            assert np.array_equal(store.record_codes(i), whole), (key, chunk, name)
        # and back to FASTA: the N runs restored
        decode_codes(tok, out, tmp_path / "back.fa", progress=False)
        back = (tmp_path / "back.fa").read_text().split(">")[1:]
        for (name, seq), rec in zip(recs, back):
            got = "".join(rec.split("\n")[1:])
            # the tokenizer's own round trip of the whole record (exact for the hand-crafted ones;
            # a few-step learned one may miss a nucleotide, wherever the record is chunked)
            recon = tok.decode([tok.encode([seq])[0]])[0]
            assert len(got) == len(seq)
            assert all(b == a if a not in "ACGT" else b in (r, "N") for a, b, r in zip(seq, got, recon)), (key, name)
    if key in ("kmer3", "kmer6"):  # the old store lost k-1 tokens at every chunk edge
        k = tok.k
        assert CodeStore(tmp_path / "codes7").records[0]["length"] == 1000 - k + 1


# ------------------------------------------------------------------ item 5: resume keys records by position
def test_tokenize_resume_keys_records_by_position(tmp_path, monkeypatch, capsys):
    tok_dir = tmp_path / "char"
    CharTokenizer().save_pretrained(tok_dir)
    rng = np.random.default_rng(3)
    recs = [("chr4", _dna(rng, 500)), ("other", _dna(rng, 300)), ("chr4", _dna(rng, 200, 0.05))]
    fa = _fasta(tmp_path / "g.fa", recs)
    args = ["tokenize", "--tokenizer", str(tok_dir), "--fasta", fa, "--out"]
    assert main(args + [str(tmp_path / "full")]) == 0

    # killed after record 1: the second record's encoding is interrupted (records encoded one at a
    # time, not in a batch of short records, so that the interruption falls inside record 2)
    monkeypatch.setattr(codes, "BATCH_RECORDS", 1)
    real = CharTokenizer.encode_chunks
    calls = {"n": 0}

    def killed(self, idx, chunk_length=1 << 20):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        yield from real(self, idx, chunk_length)

    monkeypatch.setattr(CharTokenizer, "encode_chunks", killed)
    assert main(args + [str(tmp_path / "part")]) == 130
    man = json.loads((tmp_path / "part" / "manifest.json").read_text())
    assert (tmp_path / "part" / "names.txt").read_text() == "chr4\n" and not man["complete"]
    monkeypatch.setattr(CharTokenizer, "encode_chunks", real)
    assert main(args + [str(tmp_path / "part"), "--resume"]) == 0
    full, part = CodeStore(tmp_path / "full"), CodeStore(tmp_path / "part")
    assert [r["name"] for r in part.records] == ["chr4", "other", "chr4"]
    assert part.manifest["total_nucleotides"] == 1000
    for i in range(3):
        assert np.array_equal(part.record_codes(i), full.record_codes(i))
    capsys.readouterr()
    # resuming with other input than the store was written from: exit 2 naming the file, or the record
    fa2 = _fasta(tmp_path / "g2.fa", recs)
    assert main(["tokenize", "--tokenizer", str(tok_dir), "--fasta", fa2, "--out", str(tmp_path / "part"),
                 "--resume"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume: the store reads" in err and "g2.fa" in err
    _fasta(tmp_path / "g.fa", [recs[1], recs[0], recs[2]])  # the same file, its records reordered
    assert main(args + [str(tmp_path / "part"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume: record 1 of the input is" in err and "g.fa: 'other'" in err and "'chr4'" in err


# ------------------------------------------------------------------ item 7: small tokenizer corpora
def test_tokenizer_trains_on_a_10kb_corpus_and_names_the_minimum(tmp_path, capsys):
    rng = np.random.default_rng(4)
    fa = _fasta(tmp_path / "small.fa", [("a", _dna(rng, 6000)), ("b", _dna(rng, 4000))])
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text("preset: tiny\ntrain: {max_steps: 2, warmup_steps: 1, eval_every: 2, checkpoint_every: 2, "
                    "kmeans_samples: 512, batch_size: 4}\n")
    assert main(["train-tokenizer", "--fasta", fa, "--config", str(tiny), "--out", str(tmp_path / "tok"),
                 "--device", "cpu"]) == 0
    m = json.loads((tmp_path / "tok" / "metrics.json").read_text())
    assert m["steps"] == 2 and m["nucleotides"] >= 128  # validation windows exist
    capsys.readouterr()
    fa2 = _fasta(tmp_path / "tiny.fa", [("a", _dna(rng, 200))])
    assert main(["train-tokenizer", "--fasta", fa2, "--config", str(tiny), "--out", str(tmp_path / "tok2"),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "tiny.fa" in err and "at least 256 nt" in err and "long_length = 128" in err


def test_small_corpus_holds_out_a_whole_validation_window():
    from vqdna.sequence.fasta import Corpus

    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 4, n).astype(np.uint8) for n in (6000, 4000)]
    c = Corpus(arrays, ["a", "b"], val_fraction=0.02, val_block=2000, min_val_length=256)
    va, tr = c.windows("val", 256, 256), c.windows("train", 256, 128)
    assert len(va) >= 1 and len(tr) > 10
    held = {(r, s) for r, s, e in c.val_regions}
    for r, s in tr:  # training windows never touch the held-out tail
        assert all(not (s < e0 and s + 256 > s0) for r0, s0, e0 in c.val_regions if r0 == r)
    assert held and sum(e - s for _, s, e in c.val_regions) == 256


# ------------------------------------------------------------------ item 8: nextstrain deduplication
def _near_identical_tree(tmp_path):
    ref = "ACGT" * 50  # 200 nt, windows of 20: the first 5 windows of every genome are its own, the last 5 shared
    tips = []
    for i in range(40):
        muts = []
        for w in range(5):
            p = 20 * w + 1 + i % 20
            alt = [b for b in "ACGT" if b != ref[p - 1]][i // 20]
            muts.append(f"{ref[p - 1]}{p}{alt}")
        node = {"name": f"t{i}", "branch_attrs": {"mutations": {"nuc": muts}},
                "node_attrs": {"clade_who": {"value": "X" if i % 2 else "Y"}}}
        tips.append(node)
    tree = {"version": "v2", "meta": {}, "tree": {"name": "root", "children": tips}}
    (tmp_path / "tree.json").write_text(json.dumps(tree))
    (tmp_path / "ref.fa").write_text(">ref\n" + ref + "\n")
    return ["--tree", str(tmp_path / "tree.json"), "--reference", str(tmp_path / "ref.fa"), "--label", "clade_who",
            "--window", "20", "--min-class-size", "5", "--quiet"]


def _rows(folder):
    return {s: [line.split(",")[0] for line in (folder / f"{s}.csv").read_text().splitlines()[1:]]
            for s in ("train", "dev", "test")}


def test_nextstrain_drops_windows_shared_across_splits_by_default(tmp_path, capsys):
    args = _near_identical_tree(tmp_path)
    assert main(["data", "nextstrain", *args, "--out", str(tmp_path / "dd")]) == 0
    rows = _rows(tmp_path / "dd")
    assert rows["dev"] and rows["test"]
    assert not set(rows["train"]) & set(rows["dev"] + rows["test"]) and not set(rows["dev"]) & set(rows["test"])
    s = json.loads((tmp_path / "dd" / "summary.json").read_text())
    assert s["window_duplicates"]["dedupe"] == "cross_split" and s["window_duplicates"]["rows_dropped"] > 0
    assert "dropped" in capsys.readouterr().out
    # --dedupe none keeps them, with a warning that says how many
    assert main(["data", "nextstrain", *args, "--out", str(tmp_path / "kept"), "--dedupe", "none"]) == 0
    err = capsys.readouterr().err
    rows = _rows(tmp_path / "kept")
    n_dev = sum(r in set(rows["train"]) for r in rows["dev"])
    n_test = sum(r in set(rows["train"]) for r in rows["test"])
    assert n_dev + n_test > 0
    assert f"warning: --dedupe none kept {n_dev} of {len(rows['dev'])} dev and {n_test} of {len(rows['test'])} test" \
        in err


# ------------------------------------------------------------------ item 8: labels train lacks
@pytest.mark.parametrize("split", ["dev", "test"])
def test_label_missing_from_train_is_an_error_naming_label_split_and_line(split, tmp_path, capsys):
    d = tmp_path / "task"
    d.mkdir()
    rows = {"train": "ACGTACGT,0\nTTTTACGT,1\nACGTAAAA,0\n", "dev": "ACGTACGT,1\nACGTTTTT,0\n",
            "test": "ACGTACGT,0\nTTTTACGT,1\n"}
    rows[split] += "GGGGACGT,2\n"  # line 4 of the split's file (header = line 1)
    for s, body in rows.items():
        (d / f"{s}.csv").write_text("sequence,label\n" + body)
    (d / "labels.json").write_text(json.dumps({"A": 0, "B": 1, "C": 2}))
    assert main(["baseline", "cnn", "--task", str(d), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{split}.csv:4: class label 2 ('C') of the {split} split never occurs in train.csv" in err


# ------------------------------------------------------------------ item 8: evaluate-tokenizer without A/C/G/T
def test_evaluate_tokenizer_on_all_n_input_is_an_error(tiny_hrq_tokenizer, tmp_path, capsys):
    fa = _fasta(tmp_path / "alln.fa", [("gap", "N" * 500), ("amb", "RYKMNN")])
    assert main(["evaluate-tokenizer", "--tokenizer", str(tiny_hrq_tokenizer), "--fasta", fa, "--json"]) == 2
    err = capsys.readouterr().err
    assert "alln.fa: no A/C/G/T nucleotide to score (506 nt read" in err


def test_restore_non_acgt_refuses_runs_beyond_the_sequence():
    runs = alphabet.non_acgt_runs("ACNNT")
    assert alphabet.restore_non_acgt("ACGGT", runs) == "ACNNT"
    with pytest.raises(ValueError, match="reach position 4"):
        alphabet.restore_non_acgt("ACG", runs)
