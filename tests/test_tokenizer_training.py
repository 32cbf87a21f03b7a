"""Stage 1 end to end: training, resume, save/load, chunking, code files, the CLI."""
import gzip
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vqdna.cli import main
from vqdna.codes import CodeStore, decode_codes, write_codes
from vqdna.sequence.fasta import read_fasta
from vqdna.tokenizers import load_tokenizer
from vqdna.tokenizers.learned import VQDNATokenizer
from vqdna.tokenizers.training import train_tokenizer


def test_save_load_gives_identical_codes(tiny_hrq_tokenizer, yeast_genome, tmp_path):
    tok = VQDNATokenizer.from_pretrained(tiny_hrq_tokenizer)
    seq = next(read_fasta(yeast_genome)).sequence[:5000]
    codes = tok.encode([seq])[0]
    assert codes.shape == (2, 5000)
    tok.save_pretrained(tmp_path / "copy")
    again = load_tokenizer(tmp_path / "copy").encode([seq])[0]
    assert np.array_equal(codes, again)


def test_chunked_encoding_equals_whole_sequence(tiny_hrq_tokenizer, yeast_genome):
    seq = next(read_fasta(yeast_genome)).sequence[:3000]
    whole = VQDNATokenizer.from_pretrained(tiny_hrq_tokenizer, chunk_length=100_000).encode([seq])[0]
    chunked = VQDNATokenizer.from_pretrained(tiny_hrq_tokenizer, chunk_length=257).encode([seq, seq[:999]])
    assert np.array_equal(whole, chunked[0])
    assert np.array_equal(whole[:, :999 - 40], chunked[1][:, :999 - 40])  # away from the shorter end


def test_encode_embed_decode_api(tiny_hrq_tokenizer):
    tok = VQDNATokenizer.from_pretrained(tiny_hrq_tokenizer)
    codes = tok.encode(["ACGTNACGTTTGACCA", "acgtRYacgt"])
    assert [c.shape for c in codes] == [(2, 16), (2, 10)]
    emb = tok.embed(["ACGTACGT"])[0]
    assert emb.shape == (8, tok.dim)
    books = tok.codebooks()
    c = tok.encode(["ACGTACGT"])[0]
    assert torch.allclose(emb, (books[0][c[0]] + books[1][c[1]]) / 2, atol=1e-6)
    assert all(len(s) == n for s, n in zip(tok.decode(codes), (16, 10)))


def test_resume_equals_an_unbroken_run(yeast_genome, tmp_path):
    kw = dict(quantizer="hrq", config="tiny", device="cpu",
              overrides=dict(checkpoint_every=10, eval_every=20, kmeans_samples=2048))
    train_tokenizer(yeast_genome, out=tmp_path / "full", max_steps=40, **kw)
    # the same run killed between its step-30 and step-40 checkpoints: copy the run,
    # drop what came after step 30, and resume it
    shutil.copytree(tmp_path / "full", tmp_path / "part")
    (tmp_path / "part" / "model.safetensors").unlink()
    shutil.rmtree(tmp_path / "part" / "checkpoints" / "step-00000040")
    (tmp_path / "part" / "checkpoints" / "latest.json").write_text('{"step": 30, "dir": "step-00000030"}')
    m = train_tokenizer(yeast_genome, out=tmp_path / "part", max_steps=40, resume=True, **kw)
    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(tmp_path / "part" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert full["recon_accuracy"] == m["recon_accuracy"] and m["steps"] == 40
    assert full["nucleotides_seen"] == m["nucleotides_seen"]


def test_resume_inside_the_spread_kmeans_equals_an_unbroken_run(yeast_genome, tmp_path):
    """kmeans_version 4 runs the end-of-warm-up k-means over steps 20-23 (tiny: warm-up 20, two
    levels); a run resumed from the step-22 checkpoint (level 1 done, level 2 not) ends equal to an
    unbroken one: the codebooks are all the state the stages share."""
    kw = dict(quantizer="hrq", config="tiny", device="cpu",
              overrides=dict(checkpoint_every=11, eval_every=33, kmeans_samples=2048, kmeans_version=4))
    train_tokenizer(yeast_genome, out=tmp_path / "full", max_steps=33, **kw)
    shutil.copytree(tmp_path / "full", tmp_path / "part")
    (tmp_path / "part" / "model.safetensors").unlink()
    shutil.rmtree(tmp_path / "part" / "checkpoints" / "step-00000033")
    (tmp_path / "part" / "checkpoints" / "latest.json").write_text('{"step": 22, "dir": "step-00000022"}')
    train_tokenizer(yeast_genome, out=tmp_path / "part", max_steps=33, resume=True, **kw)
    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(tmp_path / "part" / "model.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_code_files_round_trip_with_n_and_iupac(tiny_hrq_tokenizer, yeast_genome, tmp_path):
    seq = next(read_fasta(yeast_genome)).sequence[10_000:14_000]
    seq = seq[:100] + "NNNNNRY" + seq[107:2000] + "nnnn" + seq[2004:]
    fa = tmp_path / "in.fa.gz"
    with gzip.open(fa, "wt") as f:
        f.write(f">r1\n{seq}\n>r2\n{seq[:777]}\n")
    tok = load_tokenizer(tiny_hrq_tokenizer)
    man = write_codes(tok, fa, tmp_path / "codes", tokenizer_path=tiny_hrq_tokenizer, chunk_length=1000,
                      progress=False)
    assert man["complete"] and man["total_tokens"] == len(seq) + 777
    store = CodeStore(tmp_path / "codes")
    assert store.levels[0].dtype == np.uint16 and len(store.levels) == 2
    assert np.array_equal(store.record_codes(0), tok.encode([seq])[0])  # chunking is exact
    assert store.records[1]["offset"] == len(seq)
    decode_codes(tok, tmp_path / "codes", tmp_path / "out.fa", progress=False)
    back = [r.sequence for r in read_fasta(tmp_path / "out.fa")]
    assert back[0][100:107] == "NNNNNRY" and back[0][2000:2004] == "NNNN"
    acgt = np.array([c in "ACGT" for c in seq.upper()])
    same = np.array([a == b for a, b in zip(back[0], seq.upper())])
    assert same[~acgt].all() and same[acgt].mean() > 0.9


def test_tokenize_resumes_after_the_last_finished_record(tiny_hrq_tokenizer, yeast_genome, tmp_path):
    seq = next(read_fasta(yeast_genome)).sequence[:3000]
    fa = tmp_path / "in.fa"
    fa.write_text(f">a\n{seq}\n>b\n{seq[:1000]}\n>c\n{seq[:500]}\n")
    tok = load_tokenizer(tiny_hrq_tokenizer)
    full = write_codes(tok, fa, tmp_path / "full", tokenizer_path=tiny_hrq_tokenizer, progress=False)
    # simulate a kill after record "a": the index holds one record, the files a partial record b
    write_codes(tok, fa, tmp_path / "part", tokenizer_path=tiny_hrq_tokenizer, progress=False)
    man = json.loads((tmp_path / "part" / "manifest.json").read_text())
    man["complete"] = False
    (tmp_path / "part" / "manifest.json").write_text(json.dumps(man))
    with open(tmp_path / "part" / "records.i64", "r+b") as f:
        f.truncate(32)
    (tmp_path / "part" / "names.txt").write_text("a\n")
    with open(tmp_path / "part" / "level0.u16", "ab") as f:
        f.write(b"\x00\x00" * 123)  # garbage from the killed record
    with pytest.raises(ValueError, match="did not finish"):
        CodeStore(tmp_path / "part")
    again = write_codes(tok, fa, tmp_path / "part", tokenizer_path=tiny_hrq_tokenizer, resume=True,
                        progress=False)
    assert again == full
    for lvl in ("level0.u16", "level1.u16", "records.i64", "names.txt"):
        assert (tmp_path / "part" / lvl).read_bytes() == (tmp_path / "full" / lvl).read_bytes()


def test_cli_end_to_end_on_a_real_genome(yeast_genome, other_yeast_genome, tmp_path, capsys):
    tok = tmp_path / "tok"
    assert main(["train-tokenizer", "--fasta", str(yeast_genome), "--quantizer", "vq", "--config", "tiny",
                 "--out", str(tok), "--max-steps", "40"]) == 0
    metrics = json.loads((tok / "metrics.json").read_text())
    for key in ("recon_accuracy", "usage_l0", "perplexity_l0", "steps", "nucleotides_seen"):
        assert key in metrics
    assert main(["evaluate-tokenizer", "--tokenizer", str(tok), "--fasta", str(other_yeast_genome),
                 "--json", "--max-nucleotides", "50000"]) == 0
    out = capsys.readouterr().out
    r = json.loads(out[out.index("{"):])
    assert r["recon_accuracy"] > 0.9  # an unseen species, after 40 tiny steps
    assert main(["tokenize", "--tokenizer", str(tok), "--fasta", str(yeast_genome), "--out",
                 str(tmp_path / "codes")]) == 0
    assert main(["decode", "--tokenizer", str(tok), "--codes", str(tmp_path / "codes"), "--out",
                 str(tmp_path / "back.fa")]) == 0
    orig, back = next(read_fasta(yeast_genome)).sequence.upper(), next(read_fasta(tmp_path / "back.fa")).sequence
    assert len(orig) == len(back)
    assert np.mean(np.frombuffer(orig.encode(), np.uint8) == np.frombuffer(back.encode(), np.uint8)) > 0.9


def test_cli_bad_input_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.fa"
    bad.write_text(">x\nACGT!!\n")
    assert main(["train-tokenizer", "--fasta", str(bad), "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "bad.fa" in err and "'x'" in err and "'!'" in err



def test_declared_interface_of_the_learned_tokenizer(tiny_hrq_tokenizer, other_yeast_genome):
    """What callers use is declared on GenomeTokenizer (issue 11 item 4): halo, codebook_combine,
    flops_per_nucleotide, encode_indices, embed; evaluate_tokenizer reports one token per nucleotide."""
    from vqdna.sequence import alphabet
    from vqdna.tokenizers.training import evaluate_tokenizer

    tok = load_tokenizer(tiny_hrq_tokenizer)
    c = tok.config
    assert tok.halo == 2 + c.depth * (c.kernel_size // 2)
    assert tok.codebook_combine == ("sum" if c.hrq_residual == "plain" else "mean")
    assert tok.flops_per_nucleotide() == tok.model.flops_per_nucleotide() > 0
    seq = next(read_fasta(other_yeast_genome)).sequence[:700]
    np.testing.assert_array_equal(tok.encode_indices([alphabet.encode(seq)])[0], tok.encode([seq])[0])
    assert tok.embed([seq])[0].shape == (700, c.dim)
    r = evaluate_tokenizer(tok, other_yeast_genome, max_nucleotides=1000, chunk_length=1000, progress=False)
    assert r["tokens_per_nucleotide"] == 1.0 and r["unencoded_nucleotides"] == 0
