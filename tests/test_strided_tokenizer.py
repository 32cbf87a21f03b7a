"""The strided VQ/HRQ tokenizer (issue 12, must-have 2): one code per ``stride`` nucleotides.

Stride 1 is the paper's tokenizer and stays as it was (the other tokenizer tests pin it); here:
shapes per stride, the packed inference path, exact chunking (halo in whole codes), the
pad-on-encode / cut-on-decode policy, the code store, the CLI and a tiny LM on strided codes.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vqdna.config import TokenizerConfig, tokenizer_configs
from vqdna.sequence import alphabet
from vqdna.tokenizers.learned import VQDNATokenizer
from vqdna.tokenizers.vqvae import VQDNAAutoencoder

from conftest import _write_fasta, _yeast_sequence


def _untrained(stride: int, quantizer: str = "hrq", **kw) -> VQDNATokenizer:
    mc, _ = tokenizer_configs("tiny", quantizer, dict(stride=stride))
    torch.manual_seed(0)
    return VQDNATokenizer(VQDNAAutoencoder(mc), mc, device="cpu", **kw)


def _random_dna(n: int, rng, letters="ACGT") -> str:
    return "".join(rng.choice(list(letters), size=n))


@pytest.mark.parametrize("stride", [1, 2, 4, 8])
@pytest.mark.parametrize("quantizer", ["vq", "hrq"])
def test_codes_per_stride(stride, quantizer):
    tok = _untrained(stride, quantizer)
    rng = np.random.default_rng(stride)
    seqs = [_random_dna(n, rng, "ACGTN") for n in (1, 5, 8, 37, 256, 301)]
    codes = tok.encode(seqs)
    assert [c.shape for c in codes] == [(tok.n_levels, -(-len(s) // stride)) for s in seqs]
    assert all(c.min() >= 0 and (c.max(1) < np.asarray(tok.vocab_sizes)).all() for c in codes)
    # the packed inference path (used: it passes its self-check) gives the plain modules' codes
    assert tok._engine() is not None
    plain = VQDNATokenizer(tok.model, tok.config, device="cpu", fast=False).encode(seqs)
    assert np.mean(np.concatenate([(a == b).ravel() for a, b in zip(codes, plain)])) > 0.99
    # decoding gives each sequence its own length back, N where it was N
    decoded = tok.decode(codes)
    assert [len(d) for d in decoded] == [len(s) for s in seqs]
    assert all([i for i, x in enumerate(d) if x == "N"] == [i for i, x in enumerate(s) if x == "N"]
               for d, s in zip(decoded, seqs))
    # codes without a remembered length decode to `stride` letters per code; lengths= cuts them
    assert len(tok.decode([codes[-1]])[0]) == codes[-1].shape[1] * stride
    assert len(tok.decode([codes[-1]], lengths=[301])[0]) == 301
    assert tok.nucleotides_per_token() == stride
    assert tok.halo % stride == 0
    with pytest.raises(ValueError, match="cannot give"):
        tok.decode([codes[-1]], lengths=[301 + stride])


def test_stride_one_keeps_its_parameters_and_draws():
    """A stride-1 model has no resampling layer; a strided one adds only its own layers, after the
    encoder's, so the encoder's random draws are those of stride 1."""
    one, four = _untrained(1).model.state_dict(), _untrained(4).model.state_dict()
    assert not any("sample" in k for k in one)
    assert set(four) - set(one) == {"encoder.downsample.proj.weight", "encoder.downsample.proj.bias",
                                    "decoder.upsample.proj.weight", "decoder.upsample.proj.bias"}
    assert all(torch.equal(v, four[k]) for k, v in one.items() if k.startswith("encoder."))
    assert TokenizerConfig().stride == 1


@pytest.mark.parametrize("stride", [2, 4, 8])
def test_chunked_encoding_and_decoding_are_exact(stride):
    """Chunks start at multiples of the stride and carry a halo of whole codes: chunked encoding
    (and decoding) equals the whole sequence's, wherever the cuts fall."""
    whole = _untrained(stride, chunk_length=1 << 20)
    small = _untrained(stride, chunk_length=50)  # rounded down to a multiple of the stride
    assert small.chunk_length % stride == 0
    rng = np.random.default_rng(0)
    seq = _random_dna(1003, rng)
    idx = alphabet.encode(seq)
    ref = whole.encode_indices([idx])[0]
    assert np.array_equal(small.encode_indices([idx])[0], ref)
    for chunk in (stride, 61, 200, 1000):
        pieces = list(whole.encode_chunks(idx, chunk))
        assert sum(n for n, _ in pieces) == len(idx)
        assert np.array_equal(np.concatenate([c for _, c in pieces], axis=1), ref)
    assert whole.decode([ref], lengths=[1003]) == small.decode([ref], lengths=[1003])


def test_flops_and_validation():
    flops = [_untrained(s).flops_per_nucleotide() for s in (1, 2, 4, 8)]
    assert flops == sorted(flops, reverse=True) and isinstance(flops[0], int)
    with pytest.raises(ValueError, match="stride must be 1, 2, 4 or 8"):
        tokenizer_configs("tiny", "hrq", dict(stride=3))
    with pytest.raises(ValueError, match="multiples of stride=8"):
        tokenizer_configs("tiny", "hrq", dict(stride=8, short_length=60))


# ---------------------------------------------------------------- a trained stride-4 tokenizer
@pytest.fixture(scope="module")
def stride4(tmp_path_factory):
    """A tiny stride-4 HRQ tokenizer trained for a few steps on 40 kb of yeast, its FASTA (two
    records whose lengths are not multiples of 4, one with an N run and IUPAC letters) and codes."""
    from vqdna.codes import write_codes
    from vqdna.tokenizers.training import train_tokenizer

    root = tmp_path_factory.mktemp("stride4")
    seq = _yeast_sequence(40_000)
    gap = seq[30_000:35_001] + "N" * 150 + "RY" + seq[35_001:40_000]
    fasta = _write_fasta(root / "genome.fa", {"chrA": seq[:30_003], "chrB": gap})
    tok_dir = root / "tok"
    m = train_tokenizer(fasta, out=tok_dir, quantizer="hrq", config="tiny", max_steps=12, device="cpu",
                        overrides=dict(stride=4, warmup_steps=6, eval_every=12, checkpoint_every=12,
                                       kmeans_samples=1024, eval_windows=8))
    tok = VQDNATokenizer.from_pretrained(tok_dir, device="cpu", chunk_length=1000)
    man = write_codes(tok, fasta, root / "codes", tokenizer_path=tok_dir, chunk_length=998, progress=False)
    return dict(root=root, fasta=fasta, tok_dir=tok_dir, tok=tok, metrics=m, manifest=man,
                records={"chrA": seq[:30_003], "chrB": gap})


def test_trained_round_trip_keeps_length_and_n(stride4):
    tok = stride4["tok"]
    assert tok.config.stride == 4 and stride4["metrics"]["steps"] == 12
    seqs = [stride4["records"]["chrB"][4990:5170], "ACGTA" * 7, "A"]
    codes = tok.encode(seqs)
    assert [c.shape[1] for c in codes] == [45, 9, 1]
    out = tok.decode(codes)
    assert [len(o) for o in out] == [len(s) for s in seqs]
    assert [i for i, x in enumerate(out[0]) if x not in "ACGT"] == [i for i, x in enumerate(seqs[0]) if x not in "ACGT"]
    assert out[0][11:161] == "N" * 150  # the run is written back over the decoded letters


def test_code_store_equals_whole_record_encoding(stride4):
    """write_codes cuts records into 998-nt chunks (rounded to 996 = a multiple of 4): the stored
    codes equal encoding each whole record; lengths in codes and nucleotides are both recorded."""
    from vqdna.codes import CodeStore, decode_codes

    tok, man = stride4["tok"], stride4["manifest"]
    assert man["tokenizer"]["stride"] == 4
    store = CodeStore(stride4["root"] / "codes")
    whole = VQDNATokenizer.from_pretrained(stride4["tok_dir"], device="cpu", chunk_length=1 << 20)
    for i, (name, seq) in enumerate(stride4["records"].items()):
        rec = store.records[i]
        assert rec["nucleotides"] == len(seq) and rec["length"] == -(-len(seq) // 4)
        assert np.array_equal(store.record_codes(i), whole.encode([seq])[0])
    assert man["total_tokens"] == sum(-(-len(s) // 4) for s in stride4["records"].values())
    out = stride4["root"] / "decoded.fa"
    assert decode_codes(tok, stride4["root"] / "codes", out, progress=False) == 2
    from vqdna.sequence.fasta import read_fasta

    back = {r.name: r.sequence for r in read_fasta([out])}
    for name, seq in stride4["records"].items():
        assert len(back[name]) == len(seq)
        assert [i for i, x in enumerate(back[name]) if x not in "ACGT"] == [i for i, x in enumerate(seq) if x not in "ACGT"]


def test_evaluate_tokenizer_counts_codes_per_stride(stride4, tmp_path):
    from vqdna.tokenizers.training import evaluate_tokenizer

    r = evaluate_tokenizer(stride4["tok"], stride4["fasta"], chunk_length=4094, progress=False)
    assert r["tokens_per_nucleotide"] == pytest.approx(0.25, abs=0.001)
    assert r["unencoded_nucleotides"] == 0 and 0.25 < r["recon_accuracy"] <= 1
    assert 0 < r["usage_l0"] <= 1 and 0 < r["usage_l1"] <= 1


def test_pretrain_a_tiny_lm_on_strided_codes(stride4, tmp_path, monkeypatch):
    from vqdna.lm.finetune import _encoder_mode
    from vqdna.hub.modeling_vqdna import VQDNAConfig
    from vqdna.lm.pretrain import WindowSampler, pretrain
    from vqdna.codes import CodeStore

    m = pretrain(stride4["root"] / "codes", out=tmp_path / "lm", config="tiny", max_steps=2, progress=False,
                 overrides=dict(seq_length=32, batch_size=4, eval_every=2, checkpoint_every=2, eval_windows=4,
                                val_block=256, skip_n_runs=64))
    assert m["steps"] == 2 and np.isfinite(m["val_loss"])
    # the 150-N run of chrB (nucleotides 5001..5150) holds codes 1251..1286 wholly: no window touches them
    store = CodeStore(stride4["root"] / "codes")
    sampler = WindowSampler([store], 32, val_block=256, skip_n_runs=64)
    off = store.records[1]["offset"]
    starts = sampler.sample(np.random.default_rng(0), 4000)[:, 1]
    assert not np.any((starts < off + 1287) & (starts + 32 > off + 1251))
    # the nucleotide-reading fine-tuning mode needs one code per nucleotide: a clear refusal
    cfg = VQDNAConfig.from_pretrained(tmp_path / "lm")
    with pytest.raises(ValueError, match="stride-1 tokenizer"):
        _encoder_mode(cfg, stride4["tok_dir"])
    # fine-tuning reads task sequences of any length (41 nt: 11 codes) through the same tokenizer
    from vqdna.config import FinetuneConfig
    from vqdna.lm.finetune import finetune

    seq, rng = stride4["records"]["chrA"], np.random.default_rng(0)
    task = tmp_path / "task"
    task.mkdir()
    for split, n in (("train", 32), ("dev", 12), ("test", 12)):
        rows = []
        for i in range(n):
            st = int(rng.integers(0, len(seq) - 41))
            w = seq[st:st + 41]
            rows.append(f"{w[:17] + 'TATAAAA' + w[24:] if i % 2 else w},{i % 2}\n")
        (task / f"{split}.csv").write_text("sequence,label\n" + "".join(rows))
    r = finetune(tmp_path / "lm", task, out=tmp_path / "ft", seeds=1, progress=False,
                 config=FinetuneConfig(epochs=1, batch_size=16, lr=3e-3, eval_batch_size=64))
    assert np.isfinite(r["test"][r["metric"]]["mean"])

    # the 4 phases: training rows read from a random phase, dev/test average over the 4 readings
    import vqdna.lm.finetune as ft
    from vqdna.lm.finetune import phase_codes

    tok = stride4["tok"]
    seqs = [seq[100:141], seq[500:541]]
    ph = phase_codes(tok, seqs, 4, where="t")
    assert len(ph) == 3 and all(np.array_equal(ph[k - 1][i], tok.encode([s[k:]])[0]) for k in (1, 2, 3)
                                for i, s in enumerate(seqs))
    assert not np.array_equal(ph[0][0], tok.encode([seqs[0]])[0][:, :10])  # other codes, not a shifted copy
    seen, calls = [], []
    real_collate, real_predict = ft.collate, ft.predict_codes
    monkeypatch.setattr(ft, "collate", lambda parts, vocab: seen.extend(parts) or real_collate(parts, vocab))
    monkeypatch.setattr(ft, "predict_codes", lambda m, c, **k: calls.append(len(c)) or real_predict(m, c, **k))
    r2 = finetune(tmp_path / "lm", task, out=tmp_path / "ft2", seeds=1, progress=False,
                  config=FinetuneConfig(epochs=2, batch_size=16, lr=3e-3, eval_batch_size=64,
                                        shift_augment=True, shift_average=True))
    assert np.isfinite(r2["test"][r2["metric"]]["mean"]) and r2["config"]["shift_augment"]
    assert calls == [12] * 12  # dev after each of 2 epochs, then test: 4 phases each
    train = [l.strip().split(",")[0] for l in (task / "train.csv").read_text().splitlines()[1:]]
    by_phase = {k: {tok.encode([s[k:]])[0].tobytes() for s in train} for k in range(4)}
    used = {k for c in seen for k in range(4) if c.tobytes() in by_phase[k]}
    assert len(seen) == 64 and used == {0, 1, 2, 3}  # 2 epochs x 32 rows drew every phase


def test_cli_trains_a_strided_tokenizer_from_yaml(yeast_genome, tmp_path, capsys):
    from vqdna.cli import main

    cfg = tmp_path / "s4.yaml"
    cfg.write_text("preset: tiny\nmodel: {quantizer: hrq, stride: 4}\n"
                   "train: {max_steps: 5, warmup_steps: 2, eval_every: 5, checkpoint_every: 5, "
                   "kmeans_samples: 512, eval_windows: 4}\n")
    out = tmp_path / "tok"
    assert main(["train-tokenizer", "--fasta", str(yeast_genome), "--config", str(cfg), "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["stride"] == 4 and saved["train"]["max_steps"] == 5
    tok = VQDNATokenizer.from_pretrained(out, device="cpu")
    assert tok.encode(["ACGTACGTA"])[0].shape == (2, 3)
