"""``vqdna benchmark``: every tokenizer through the same pipeline at an equal budget (issue 4).

For each tokenizer (``hrq vq bpe kmer3 kmer6 nt6 char``):

1. **vocabulary**: VQ/HRQ are trained (``small`` preset, steps by budget) and BPE is trained
   (4096 tokens, ``tokenizers`` library) on the benchmark corpus; the others are fixed rules.
2. **tokenize** the corpus once (:func:`vqdna.codes.write_codes`).
3. **pre-train the same BERT preset on the same number of nucleotides.** Every tokenizer runs
   the same number of steps with the same batch of windows, and every window covers the same
   number of nucleotides ``window_nt``: its length in tokens is
   ``seq_length = round(window_nt / r)``, where ``r`` = nucleotides per token of *that*
   tokenizer on the corpus (total nucleotides / total tokens of its code store: 1.0 for
   char, VQ, HRQ and the overlapping k-mers, ~5.3 for BPE, ~5.9 for NT 6-mers). Nucleotides
   seen = ``steps x batch x seq_length x r`` (equal up to rounding ``seq_length`` to an integer;
   the actual value is reported). A compressing tokenizer thus reads fewer tokens per step
   and costs fewer FLOPs for the same DNA; the context in nucleotides is the same for all.
4. **fine-tune every task** with the same protocol and seeds: LoRA (r=8, alpha=16 on q/k/v),
   :class:`~vqdna.config.FinetuneConfig` with the budget's epochs and learning rate, training
   rows subsampled to ``max_train`` (stratified, seed 0: every tokenizer and seed sees the same
   rows), best dev epoch, test scored once (:func:`vqdna.lm.finetune.finetune`).
5. **linear probing** ("Lin."): mean-pooled frozen *token embeddings*, then a logistic
   regression (classification) or ridge (regression) with its strength chosen on dev, on the
   same training rows as fine-tuning. Learned tokenizers: the quantized embedding
   ``tok.embed`` (their codebook vectors, mean over levels). Hand-crafted tokenizers have no
   codebook, so their vectors are the rows of the pre-trained LM's input embedding table
   (``embeddings.tables.0``) for their tokens. Note: after a short pre-training these rows are
   still close to their random initialisation, so for a large vocabulary the probe is close
   to a *random projection of the bag of tokens* (which is itself a strong feature).

Plus reference rows with no deep learning: :func:`vqdna.kmer_baseline.run_kmer_baseline`
(bag of k-mers k=1..6) on the **same subsampled training rows** (``kmer-bag``) and, where the
budget says so, on all training rows (``kmer-bag-all``), same dev/test splits.

Budgets (:data:`BUDGETS`): ``quick`` (tiny LM, 300 steps, 1 seed, 1000 rows per task, 1.5 Mnt
corpus slice), ``standard`` (tiny LM, 600 steps of 256-nt windows, 4 epochs, 3 seeds, whole corpus) and a
hidden ``test`` for the tests; ``--seeds`` / ``--max-train`` override theirs.
Every number in them is written to ``results.md`` / ``results.json``.

Output folder::

    results.md  results.csv  results.json  results.png
    cells/      one JSON per (tokenizer, task, kind), kind = finetune | probe | reference,
                and (tokenizer, "corpus", "pretrain") for the per-tokenizer stage; written
                atomically. A killed benchmark, run again with the same --out, skips every
                cell that exists (and resumes the tokenizer / LM training from checkpoints).
    work/       corpus slice, tokenizers, code stores, language models, task folders built here
                (``--work DIR`` puts them elsewhere)

Cost columns per tokenizer: parameters (LM, and tokenizer network for VQ/HRQ), tokens per 512
nucleotides (measured on 512-nt windows of the corpus), FLOPs per sequence = forward pass of the
LM on the tokens of 512 nt, ``2 x N x T + 4 x layers x T^2 x hidden`` (``N`` = non-embedding
LM parameters, i.e. without lookup tables; ``T`` = tokens + [CLS]; the second term is
QK^T and AV), plus for VQ/HRQ the tokenizer's own encoder on 512 nt (reported separately and in
the total), and wall time of every stage.
"""
from __future__ import annotations

import csv
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .codes import write_codes
from .data.genomes import resolve_fasta
from .kmer_baseline import run_kmer_baseline
from .lm.finetune import finetune, subsample
from .lm.pretrain import pretrain
from .tokenizers.base import read_json, write_json_atomic
from .tokenizers.training import train_tokenizer

LEARNED = ("hrq", "vq")
ALL_TOKENIZERS = ("hrq", "vq", "bpe", "kmer3", "kmer6", "nt6", "char")
REFERENCE = ("kmer-bag", "kmer-bag-all")
COLORS = {"hrq": "#d62728", "vq": "#ff7f0e", "bpe": "#1f77b4", "kmer3": "#2ca02c", "kmer6": "#17becf",
          "nt6": "#9467bd", "char": "#7f7f7f", "kmer-bag": "#000000", "kmer-bag-all": "#555555"}


@dataclass
class Budget:
    name: str
    # corpus: nucleotides kept (evenly spaced blocks of every record, proportional to its length); None = all
    corpus_nt: int | None
    corpus_block: int
    # stage 1 (learned tokenizers) and BPE
    tok_config: str
    tok_steps: int
    tok_overrides: dict
    bpe_vocab: int
    # stage 2: same preset, same steps, same batch, windows of the same number of nucleotides
    lm_config: str
    lm_steps: int
    lm_batch: int
    window_nt: int
    lm_eval_windows: int
    # stage 3
    ft_epochs: int
    ft_lr: float
    max_train: int
    seeds: int
    kmer_all: bool  # also the k-mer reference on all training rows
    note: str = ""

    @property
    def pretrain_nucleotides(self) -> int:
        return self.lm_steps * self.lm_batch * self.window_nt


BUDGETS: dict[str, Budget] = {
    # the tests: seconds
    "test": Budget("test", corpus_nt=40_000, corpus_block=10_000, tok_config="tiny", tok_steps=6,
                   tok_overrides=dict(warmup_steps=3, eval_every=6, checkpoint_every=6, kmeans_samples=1024,
                                      val_fraction=0.2, eval_windows=8),
                   bpe_vocab=256, lm_config="tiny", lm_steps=3, lm_batch=4, window_nt=60, lm_eval_windows=4,
                   ft_epochs=1, ft_lr=1e-3, max_train=40, seeds=1, kmer_all=False, note="test only"),
    # measured: 13.5 min for 5 tokenizers (hrq vq bpe kmer6 char) x 4 short-sequence tasks at a load
    # average of 8-11 on the 2 cores (one thread); +2.5 min for kmer3 and nt6
    "quick": Budget("quick", corpus_nt=1_500_000, corpus_block=20_000, tok_config="small", tok_steps=120,
                    tok_overrides=dict(warmup_steps=40, eval_every=120, checkpoint_every=40, kmeans_samples=8192,
                                       eval_windows=64),
                    bpe_vocab=4096, lm_config="tiny", lm_steps=300, lm_batch=16, window_nt=128, lm_eval_windows=32,
                    ft_epochs=3, ft_lr=1e-3, max_train=1000, seeds=1, kmer_all=True),
    # all 13 GUE tasks + gRNA in <= 90 min on the 2-core machine: the tiny LM (a small-LM LoRA run
    # takes ~120 s per seed on 1000 rows: 14 tasks x 7 tokenizers x 3 seeds would take ~10 h),
    # 2x quick's pre-training on 2x longer windows, 4 epochs, 3 seeds
    "standard": Budget("standard", corpus_nt=None, corpus_block=20_000, tok_config="small", tok_steps=400,
                       tok_overrides=dict(warmup_steps=100, eval_every=200, checkpoint_every=100),
                       bpe_vocab=4096, lm_config="tiny", lm_steps=600, lm_batch=16, window_nt=256,
                       lm_eval_windows=64, ft_epochs=4, ft_lr=1e-3, max_train=1000, seeds=3, kmer_all=True),
}


def get_budget(name: str, *, seeds: int | None = None, max_train: int | None = None) -> Budget:
    if name not in BUDGETS:
        raise ValueError(f"unknown budget {name!r}; known: quick, standard")
    b = BUDGETS[name]
    changes = {k: v for k, v in dict(seeds=seeds, max_train=max_train).items() if v is not None}
    return replace(b, **changes) if changes else b


# ---------------------------------------------------------------- small helpers


def _log(msg: str) -> None:
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cell_path(out: Path, tokenizer: str, task: str, kind: str) -> Path:
    return Path(out) / "cells" / f"{tokenizer}__{task}__{kind}.json"


def _read_cell(out: Path, tokenizer: str, task: str, kind: str, budget: Budget) -> dict | None:
    p = cell_path(out, tokenizer, task, kind)
    if not p.exists():
        return None
    c = read_json(p)
    if c.get("budget") != budget.name:
        raise ValueError(f"{p}: made with budget {c.get('budget')!r}, this run is {budget.name!r}; "
                         f"use another --out")
    return c


def _write_cell(out: Path, cell: dict) -> dict:
    write_json_atomic(cell_path(out, cell["tokenizer"], cell["task"], cell["kind"]), cell)
    return cell


def parse_tokenizers(spec) -> list[str]:
    names = [t.strip() for t in (spec.split(",") if isinstance(spec, str) else spec) if t.strip()]
    if names == ["all"]:
        return list(ALL_TOKENIZERS)
    bad = [t for t in names if t not in ALL_TOKENIZERS]
    if bad or not names:
        raise ValueError(f"unknown tokenizer(s) {bad}; choose from {','.join(ALL_TOKENIZERS)} (or 'all')")
    if len(set(names)) != len(names):
        raise ValueError(f"tokenizer listed twice in {names}")
    return names


def task_name(path: Path) -> str:
    """GUE/tf/0 -> tf0, GUE/prom/prom_core_tata -> prom_core_tata, grna/doench2016 -> doench2016."""
    path = Path(path)
    return f"{path.parent.name}{path.name}" if path.name.isdigit() else path.name


def resolve_tasks(specs, work: Path) -> list[tuple[str, Path]]:
    """Task folders, or ``coding:PACKAGE`` (the coding-vs-intergenic task of a PyPI genome
    package, built once with :func:`vqdna.data.genome_tasks.coding_task`, 100-nt windows)."""
    out, seen = [], set()
    for s in specs:
        s = str(s)
        if s.startswith("coding:"):
            from .data.genome_tasks import coding_task, package_annotation_pairs

            pkg = s.split(":", 1)[1]
            name = f"{pkg}_coding"
            d = work / "tasks" / name
            if not (d / "summary.json").exists():
                pairs = package_annotation_pairs(pkg)
                if not pairs:
                    raise FileNotFoundError(f"{s}: package {pkg} ships no genome with a GTF annotation")
                coding_task(pairs, d, window=100)
        else:
            d = Path(s)
            if not d.is_dir():
                raise FileNotFoundError(f"{s}: not a task folder (train.csv, dev.csv, test.csv)")
            name = task_name(d)
        base, i = name, 2
        while name in seen:
            name, i = f"{base}_{i}", i + 1
        seen.add(name)
        out.append((name, d))
    if not out:
        raise ValueError("no tasks given")
    return out


# ---------------------------------------------------------------- corpus


def prepare_corpus(fasta, work: Path, budget: Budget) -> dict:
    """The pre-training corpus of the benchmark: all records, or (``budget.corpus_nt``) evenly
    spaced blocks of ``corpus_block`` nt from every record, each record contributing in
    proportion to its length. Written once to ``work/corpus.fa``; returns its description."""
    from .sequence.fasta import read_fasta

    info_path = work / "corpus.json"
    files = [str(Path(f).resolve()) for f in fasta]
    if info_path.exists():
        info = read_json(info_path)
        if info["sources"] != files or info["corpus_nt"] != budget.corpus_nt:
            raise ValueError(f"{info_path}: another corpus was used in this --out; use another --out")
        if info.get("sliced"):
            info["files"] = [str(work / "corpus.fa")]  # the work folder may have moved
        return info
    recs = list(read_fasta(files))
    total = sum(len(r.sequence) for r in recs)
    info = {"sources": files, "corpus_nt": budget.corpus_nt, "source_nucleotides": total,
            "source_records": len(recs)}
    if budget.corpus_nt is None or budget.corpus_nt >= total:
        info.update(files=files, nucleotides=total, records=len(recs), sliced=False)
    else:
        work.mkdir(parents=True, exist_ok=True)
        fa = work / "corpus.fa"
        tmp = work / f"corpus.fa.tmp{os.getpid()}"
        kept, n_rec = 0, 0
        with open(tmp, "w") as f:
            for r in recs:
                L = len(r.sequence)
                blen = min(budget.corpus_block, L)
                n = int(min(max(round(L * budget.corpus_nt / total / blen), 1), L // blen))
                starts = np.linspace(0, L - blen, n).astype(np.int64) if n > 1 else np.array([(L - blen) // 2])
                src = Path(r.file).name.split("_GCF_")[0]
                for s in starts:
                    seq = r.sequence[s:s + blen]
                    f.write(f">{src}|{r.name}:{s}-{s + blen}\n")
                    for i in range(0, len(seq), 80):
                        f.write(seq[i:i + 80] + "\n")
                    kept += blen
                    n_rec += 1
        os.replace(tmp, fa)
        info.update(files=[str(fa)], nucleotides=kept, records=n_rec, sliced=True, block=budget.corpus_block)
    write_json_atomic(info_path, info)
    return info


def _sample_windows(files, n: int, length: int, seed: int = 0) -> list[str]:
    from .sequence.fasta import read_fasta

    seqs = [r.sequence.upper() for r in read_fasta(files) if len(r.sequence) >= length]
    if not seqs:
        return []
    rng = np.random.default_rng(seed)
    lens = np.array([len(s) for s in seqs], dtype=float)
    out = []
    for i in rng.choice(len(seqs), size=n, p=lens / lens.sum()):
        s = int(rng.integers(0, len(seqs[i]) - length + 1))
        out.append(seqs[i][s:s + length])
    return out


# ---------------------------------------------------------------- costs


def lm_costs(lm_dir: Path, tokens_per_512: float) -> dict:
    """Parameters of the pre-trained LM and its forward FLOPs on 512 nt worth of tokens."""
    from .lm.inference import load_backbone

    bb = load_backbone(lm_dir)
    cfg = bb.config
    total = nonemb = 0
    for name, p in bb.named_parameters():
        if name.startswith("encoder.embeddings.word_embeddings"):
            continue  # BERT's own token table: never read (inputs_embeds)
        total += p.numel()
        lookup = name.startswith(("embeddings.tables", "embeddings.special", "encoder.embeddings.position_embeddings",
                                  "encoder.embeddings.token_type_embeddings"))
        if not lookup:
            nonemb += p.numel()
    buffers = sum(b.numel() for n, b in bb.named_buffers() if n.startswith("embeddings.codebook"))
    T = tokens_per_512 + 1
    L, H = cfg.num_hidden_layers, cfg.hidden_size
    flops = 2 * nonemb * T + 4 * L * T * T * H
    return {"lm_parameters": int(total), "lm_nonembedding_parameters": int(nonemb),
            "frozen_codebook_values": int(buffers), "lm_flops_512nt": float(flops),
            "hidden_size": H, "num_layers": L}


# ---------------------------------------------------------------- one tokenizer's pipeline


def _prepare_tokenizer(name: str, corpus_files, tdir: Path, budget: Budget, device) -> dict:
    """Build / train the tokenizer into ``tdir/tokenizer``; returns info (time, params, metrics)."""
    from .tokenizers.handcrafted import BPETokenizer, build_handcrafted

    tok_dir = tdir / "tokenizer"
    t0 = time.time()
    info: dict = {"trained": name in LEARNED or name == "bpe"}
    if name in LEARNED:
        if not (tok_dir / "metrics.json").exists():
            _log(f"{name}: training the tokenizer ({budget.tok_config} preset, {budget.tok_steps} steps)")
            train_tokenizer(corpus_files, out=tok_dir, quantizer=name, config=budget.tok_config,
                            max_steps=budget.tok_steps, resume=True, device=device,
                            overrides=dict(budget.tok_overrides))
        m = read_json(tok_dir / "metrics.json")
        info.update({k: m[k] for k in m if k.startswith(("recon_accuracy", "usage_l", "perplexity_l"))},
                    tokenizer_steps=m["steps"], tokenizer_nucleotides_seen=m["nucleotides_seen"],
                    tokenizer_parameters=m["parameters"], tokenizer_train_time_s=m["wall_time_s"])
    elif name == "bpe":
        if not (tok_dir / "config.json").exists():
            _log(f"bpe: training a {budget.bpe_vocab}-token BPE on the corpus")
            BPETokenizer.train_from_fasta(corpus_files, budget.bpe_vocab).save_pretrained(tok_dir)
            info["tokenizer_train_time_s"] = time.time() - t0
    else:
        build_handcrafted(name).save_pretrained(tok_dir)
    info.setdefault("tokenizer_train_time_s", time.time() - t0)
    return info


def _pretrain_cell(name: str, corpus: dict, tdir: Path, budget: Budget, device) -> dict:
    from .tokenizers import load_tokenizer

    t_all = time.time()
    info = _prepare_tokenizer(name, corpus["files"], tdir, budget, device)
    tok_dir, codes_dir, lm_dir = tdir / "tokenizer", tdir / "codes", tdir / "lm"
    tok = load_tokenizer(tok_dir)
    man_path = codes_dir / "manifest.json"
    t0 = time.time()
    if not (man_path.exists() and read_json(man_path).get("complete")):
        _log(f"{name}: tokenizing the corpus ({corpus['nucleotides']:,} nt)")
        write_codes(tok, corpus["files"], codes_dir, tokenizer_path=tok_dir, resume=man_path.exists(),
                    progress=False)
    tokenize_s = time.time() - t0
    man = read_json(man_path)
    r = man["total_nucleotides"] / max(man["total_tokens"], 1)  # nucleotides per token on the corpus
    seq_len = max(int(round(budget.window_nt / r)), 4)
    windows = _sample_windows(corpus["files"], 128, 512)
    tokens_512 = float(np.mean([c.shape[-1] for c in tok.encode(windows)])) if windows else 512 / r

    t0 = time.time()
    mpath = lm_dir / "metrics.json"
    if not (mpath.exists() and read_json(mpath).get("complete")):
        _log(f"{name}: pre-training the {budget.lm_config} LM, {budget.lm_steps} steps x {budget.lm_batch} "
             f"windows of {seq_len} tokens (= {seq_len * r:.1f} nt)")
        pretrain([codes_dir], out=lm_dir, config=budget.lm_config, max_steps=budget.lm_steps, resume=True,
                 device=device, progress=False,
                 overrides=dict(seq_length=seq_len, batch_size=budget.lm_batch, eval_every=budget.lm_steps,
                                checkpoint_every=max(budget.lm_steps // 3, 1), eval_windows=budget.lm_eval_windows))
    pretrain_s = time.time() - t0
    lm = read_json(mpath)
    costs = lm_costs(lm_dir, tokens_512)
    tok_flops = 0.0
    if name in LEARNED:
        tok_flops = float(tok.model.flops_per_nucleotide() * 512)
    cell = {
        "tokenizer": name, "task": "corpus", "kind": "pretrain", "budget": budget.name,
        "vocab_sizes": list(tok.vocab_sizes), "n_levels": tok.n_levels,
        "corpus_nucleotides": man["total_nucleotides"], "corpus_tokens": man["total_tokens"],
        "nt_per_token": r, "tokens_per_512nt": tokens_512,
        "window_nt_target": budget.window_nt, "seq_length_tokens": seq_len, "window_nt_actual": seq_len * r,
        "lm_steps": lm["steps"], "lm_batch": budget.lm_batch, "tokens_seen": lm["tokens_seen"],
        "nucleotides_seen": lm["tokens_seen"] * r, "nucleotides_target": budget.pretrain_nucleotides,
        "lm_val_acc": lm.get("val_acc"), "lm_val_loss": lm.get("val_loss"),
        "lm_val_ppl": {k: v for k, v in lm.items() if k.startswith("val_ppl_l")},
        "lm_input_mode": _input_mode(lm_dir),
        **costs, **info,
        "tokenizer_flops_512nt": tok_flops, "total_flops_512nt": costs["lm_flops_512nt"] + tok_flops,
        "tokenize_time_s": tokenize_s, "pretrain_time_s": lm.get("wall_time_s", pretrain_s),
        "stage_wall_time_s": time.time() - t_all,
    }
    return cell


def _input_mode(lm_dir: Path) -> str:
    return read_json(lm_dir / "config.json").get("input_mode", "?")


def _finetune_cell(name: str, task: str, task_dir: Path, tdir: Path, budget: Budget, device) -> dict:
    from .config import FinetuneConfig

    ft_dir = tdir / "ft" / task
    cfg = FinetuneConfig(epochs=budget.ft_epochs, lr=budget.ft_lr, max_train=budget.max_train)
    t0 = time.time()
    r = finetune(tdir / "lm", task_dir, out=ft_dir, seeds=budget.seeds, config=cfg, device=device, progress=False)
    metric = r["metric"]
    cell = {"tokenizer": name, "task": task, "kind": "finetune", "budget": budget.name, "metric": metric,
            "score": r["test"][metric]["mean"], "std": r["test"][metric]["std"],
            "values": r["test"][metric]["values"], "test": {k: v["mean"] for k, v in r["test"].items()},
            "dev": {k: v["mean"] for k, v in r["dev"].items()},
            "best_epochs": [s["best_epoch"] for s in r["per_seed"]], "seeds": r["seeds"],
            "train_rows": (r["subsample"] or {}).get("train_rows", r["task"]["sizes"]["train"]),
            "train_rows_of": r["task"]["sizes"]["train"], "config": r["config"],
            "wall_time_s": time.time() - t0}
    write_json_atomic(tdir / "ft" / f"{task}.results.json", r)
    shutil.rmtree(ft_dir, ignore_errors=True)  # fine-tuned weights are not kept
    return cell


# ---------------------------------------------------------------- linear probing


def probe_features(name: str, tdir: Path, seqs: list[str]) -> np.ndarray:
    """(N, dim) mean-pooled frozen token embeddings (see the module docstring)."""
    from safetensors.torch import load_file

    from .tokenizers import load_tokenizer

    tok = load_tokenizer(tdir / "tokenizer")
    if name in LEARNED:
        out = []
        for i in range(0, len(seqs), 512):
            out.extend(e.mean(0).numpy() for e in tok.embed(seqs[i:i + 512]))
        return np.stack(out).astype(np.float32)
    state = load_file(tdir / "lm" / "model.safetensors")
    table = state["vqdna.embeddings.tables.0.weight"].float().numpy()[: tok.vocab_sizes[0]]
    codes = tok.encode(seqs)
    return np.stack([table[c[0]].mean(0) for c in codes]).astype(np.float32)


def linear_probe(X: dict, y: dict, kind: str) -> dict:
    """Standardised features; logistic regression (C) or ridge (alpha) chosen on dev, test once."""
    import warnings

    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    from .metrics import classification_metrics, primary_metric, regression_metrics

    metric = primary_metric(kind)
    sc = StandardScaler().fit(X["train"])
    Z = {k: sc.transform(v) for k, v in X.items()}
    best = None
    grid = (1e-3, 1e-2, 1e-1, 1.0, 10.0) if kind == "classification" else (1e3, 1e2, 10.0, 1.0, 0.1)
    for v in grid:
        if kind == "classification":
            model = LogisticRegression(C=v, max_iter=2000)
        else:
            model = Ridge(alpha=v)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(Z["train"], y["train"])
        score = classification_metrics if kind == "classification" else regression_metrics
        dev = score(y["dev"], model.predict(Z["dev"]))
        if best is None or dev[metric] > best[0]:
            best = (dev[metric], v, dev, model)
    _, v, dev, model = best
    score = classification_metrics if kind == "classification" else regression_metrics
    test = score(y["test"], model.predict(Z["test"]))
    return {"metric": metric, "score": test[metric], "test": test, "dev": dev,
            "param": {"C" if kind == "classification" else "alpha": v}}


def _probe_cell(name: str, task_name_: str, task, tdir: Path, budget: Budget) -> dict:
    t0 = time.time()
    idx = subsample(task.train.labels, budget.max_train, task.kind, seed=0)
    seqs = {"train": [task.train.sequences[i] for i in idx], "dev": task.dev.sequences, "test": task.test.sequences}
    y = {"train": task.train.labels[idx], "dev": task.dev.labels, "test": task.test.labels}
    X = {k: probe_features(name, tdir, v) for k, v in seqs.items()}
    r = linear_probe(X, y, task.kind)
    source = "tokenizer quantized embedding (tok.embed)" if name in LEARNED else "pre-trained LM input embedding table"
    return {"tokenizer": name, "task": task_name_, "kind": "probe", "budget": budget.name, **r,
            "features": source, "dim": int(X["train"].shape[1]), "train_rows": int(len(idx)),
            "train_rows_of": len(task.train), "wall_time_s": time.time() - t0}


def _reference_cell(ref: str, task_name_: str, task, budget: Budget) -> dict:
    """Bag of k-mers on the same subsampled training rows (``kmer-bag``) or on all (``kmer-bag-all``)."""
    from .sequence.tasks import Split

    n_all = len(task.train)
    if ref == "kmer-bag":
        idx = subsample(task.train.labels, budget.max_train, task.kind, seed=0)
        task = replace(task, splits={**task.splits, "train": Split([task.train.sequences[i] for i in idx],
                                                                   task.train.labels[idx], task.train.path)})
    r = run_kmer_baseline(task)
    m = r["primary_metric"]
    return {"tokenizer": ref, "task": task_name_, "kind": "reference", "budget": budget.name, "metric": m,
            "score": r["test"][m], "test": r["test"], "dev": r["dev"], "scaling": r["scaling"],
            "param": {r["param_name"]: r["param"]}, "train_rows": r["n_train"],
            "train_rows_of": n_all, "wall_time_s": r["wall_time"]}


# ---------------------------------------------------------------- the benchmark


def run_benchmark(tokenizers, corpus, tasks, *, budget: str = "quick", out, seeds: int | None = None,
                  max_train: int | None = None, device: str | None = "cpu", work=None, jobs: int = 1) -> dict:
    """Run (or resume) the benchmark; returns the aggregated results (also written to ``out``).

    ``work``: where the corpus slice, tokenizers, code stores and language models go (default
    ``out/work``; put it elsewhere to keep ``out`` small, and give the same one to resume).
    ``jobs``: tokenizers run in that many processes at once (each with its share of the torch
    threads; see :func:`shard_tokenizers`); the cells are independent files, so the parent
    only prepares the shared inputs first and assembles the tables after."""
    from .sequence.tasks import load_task

    t_start = time.time()
    b = get_budget(budget, seeds=seeds, max_train=max_train)
    names = parse_tokenizers(tokenizers)
    out = Path(out)
    work = Path(work) if work is not None else out / "work"
    (out / "cells").mkdir(parents=True, exist_ok=True)
    if not (out / ".gitignore").exists():  # models and code stores must never be committed with the results
        (out / ".gitignore").write_text("work/\n*.tmp*\n")
    spec_path = out / "benchmark.json"
    spec = {"budget": asdict(b)}
    if spec_path.exists() and read_json(spec_path)["budget"] != spec["budget"]:
        raise ValueError(f"{spec_path}: this folder holds a benchmark with another budget; use another --out")
    write_json_atomic(spec_path, spec)
    corpus_files = resolve_fasta([str(c) for c in ([corpus] if isinstance(corpus, (str, Path)) else corpus)])
    corpus_info = prepare_corpus(corpus_files, work, b)
    task_list = resolve_tasks(tasks, work)
    loaded: dict = {}

    def task_obj(tn, td):
        if tn not in loaded:
            loaded[tn] = load_task(td)
        return loaded[tn]

    _log(f"budget {b.name}: {len(names)} tokenizers x {len(task_list)} tasks; "
         f"corpus {corpus_info['nucleotides']:,} nt; "
         f"pre-training {b.pretrain_nucleotides:,} nt per tokenizer")
    run_log = {"resumed_cells": 0, "computed_cells": 0}

    def ensure(tok, task, kind, compute, message=None):
        """The cell if it exists (resume), else compute and write it atomically."""
        c = _read_cell(out, tok, task, kind, b)
        if c is not None:
            run_log["resumed_cells"] += 1
            return c
        if message:
            _log(message)
        run_log["computed_cells"] += 1
        return _write_cell(out, compute())

    for tn, td in task_list:
        for ref in REFERENCE[: 2 if b.kmer_all else 1]:
            ensure(ref, tn, "reference", lambda: _reference_cell(ref, tn, task_obj(tn, td), b),
                   f"reference: {ref} on {tn}")
    if jobs > 1 and len(names) > 1:
        _run_shards(shard_tokenizers(names, jobs), corpus=corpus, tasks=tasks, budget=budget, out=out,
                    seeds=seeds, max_train=max_train, device=device, work=work)
    for name in names:
        tdir = work / name
        ensure(name, "corpus", "pretrain", lambda: _pretrain_cell(name, corpus_info, tdir, b, device))
        for tn, td in task_list:
            c = ensure(name, tn, "finetune", lambda: _finetune_cell(name, tn, td, tdir, b, device),
                       f"{name}: fine-tuning {tn} ({b.seeds} seed(s))")
            _log(f"{name} / {tn}: fine-tune test {c['metric']} = {c['score']:.4f}")
            c = ensure(name, tn, "probe", lambda: _probe_cell(name, tn, task_obj(tn, td), tdir, b))
            _log(f"{name} / {tn}: linear probe test {c['metric']} = {c['score']:.4f}")
    results = aggregate(out, names, [t for t, _ in task_list], b, corpus_info,
                        run={**run_log, "this_call_wall_time_s": time.time() - t_start,
                             "tasks": {t: str(Path(d).resolve()) for t, d in task_list}})
    _log(f"done: {out / 'results.md'}")
    return results


# relative cost of one tokenizer's column (training + stride-1 sequences cost most); only for balancing shards
_COST = {"hrq": 3.0, "vq": 2.5, "char": 2.0, "kmer3": 2.0, "kmer6": 1.5, "bpe": 0.4, "nt6": 0.4}


def shard_tokenizers(names: list[str], jobs: int) -> list[list[str]]:
    """Split tokenizers into ``jobs`` groups of about equal cost (greedy, most expensive first)."""
    groups: list[list[str]] = [[] for _ in range(min(jobs, len(names)))]
    load = [0.0] * len(groups)
    for n in sorted(names, key=lambda n: -_COST.get(n, 1.0)):
        i = load.index(min(load))
        groups[i].append(n)
        load[i] += _COST.get(n, 1.0)
    return [g for g in groups if g]


def _shard_main(threads: int, kwargs: dict) -> None:
    import torch

    torch.set_num_threads(threads)
    run_benchmark(**kwargs)


def _run_shards(groups: list[list[str]], **kwargs) -> None:
    """Run each group of tokenizers in its own (spawned) process; raise if one fails."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    import torch

    threads = max(1, torch.get_num_threads() // len(groups))
    _log(f"{len(groups)} processes x {threads} thread(s): " + " | ".join(",".join(g) for g in groups))
    with ProcessPoolExecutor(len(groups), mp_context=mp.get_context("spawn")) as pool:
        futures = {",".join(g): pool.submit(_shard_main, threads, dict(kwargs, tokenizers=g, jobs=1))
                   for g in groups}
        errors = {g: f.exception() for g, f in futures.items() if f.exception() is not None}
    if errors:
        raise RuntimeError("benchmark shard(s) failed: " + "; ".join(f"{g}: {e!r}" for g, e in errors.items())
                           + " (the finished cells are kept; run again with the same --out to resume)")


# ---------------------------------------------------------------- aggregation and reports


def _ranks(scores: dict[str, float]) -> dict[str, float]:
    """Rank 1 = best; ties share the mean rank."""
    from scipy.stats import rankdata

    keys = list(scores)
    r = rankdata([-scores[k] for k in keys], method="average")
    return dict(zip(keys, (float(x) for x in r)))


def _table(out: Path, names, tasks, kind: str, budget: Budget) -> dict:
    rows = {}
    for n in names:
        cells = {t: _read_cell(out, n, t, kind, budget) for t in tasks}
        rows[n] = {t: c for t, c in cells.items() if c is not None}
    ranks = {n: [] for n in names}
    for t in tasks:
        sc = {n: rows[n][t]["score"] for n in names if t in rows[n]}
        if len(sc) == len(names):
            for n, r in _ranks(sc).items():
                ranks[n].append(r)
    table = {}
    for n in names:
        s = [rows[n][t]["score"] for t in tasks if t in rows[n]]
        table[n] = {"scores": {t: rows[n][t]["score"] for t in tasks if t in rows[n]},
                    "std": {t: rows[n][t].get("std", 0.0) for t in tasks if t in rows[n]},
                    "mean": float(np.mean(s)) if len(s) == len(tasks) else None,
                    "mean_rank": float(np.mean(ranks[n])) if ranks[n] and len(ranks[n]) == len(tasks) else None}
    return table


def aggregate(out: Path, names, tasks, budget: Budget, corpus_info: dict, run: dict | None = None) -> dict:
    out = Path(out)
    metrics = {}
    for t in tasks:
        c = _read_cell(out, "kmer-bag", t, "reference", budget)
        metrics[t] = c["metric"] if c else "?"
    ft = _table(out, names, tasks, "finetune", budget)
    probe = _table(out, names, tasks, "probe", budget)
    refs = [r for r in REFERENCE if r == "kmer-bag" or budget.kmer_all]
    ref = {}
    for r in refs:
        sc = {t: c["score"] for t in tasks if (c := _read_cell(out, r, t, "reference", budget))}
        ref[r] = {"scores": sc, "mean": float(np.mean(list(sc.values()))) if len(sc) == len(tasks) else None}
    costs = {}
    for n in names:
        c = _read_cell(out, n, "corpus", "pretrain", budget)
        if c is None:
            continue
        cells = [_read_cell(out, n, t, k, budget) for t in tasks for k in ("finetune", "probe")]
        ft_s = sum(x["wall_time_s"] for x in cells if x and x["kind"] == "finetune")
        pr_s = sum(x["wall_time_s"] for x in cells if x and x["kind"] == "probe")
        tok_s = c.get("tokenizer_train_time_s", 0.0) if c.get("trained") else 0.0
        costs[n] = {k: c.get(k) for k in (
            "vocab_sizes", "lm_input_mode", "lm_parameters", "lm_nonembedding_parameters", "tokenizer_parameters",
            "frozen_codebook_values", "tokens_per_512nt", "nt_per_token", "seq_length_tokens", "window_nt_actual",
            "lm_steps", "lm_batch", "tokens_seen", "nucleotides_seen", "nucleotides_target", "lm_flops_512nt",
            "tokenizer_flops_512nt", "total_flops_512nt", "lm_val_acc", "lm_val_loss", "recon_accuracy",
            "usage_l0", "usage_l1", "tokenizer_steps", "tokenizer_nucleotides_seen")}
        costs[n]["wall_time_s"] = {"tokenizer": tok_s, "tokenize": c.get("tokenize_time_s", 0.0),
                                   "pretrain": c.get("pretrain_time_s", 0.0), "finetune": ft_s, "probe": pr_s}
        costs[n]["wall_time_s"]["total"] = float(sum(costs[n]["wall_time_s"].values()))
    train_rows = {}
    for t in tasks:
        c = _read_cell(out, "kmer-bag", t, "reference", budget)
        if c:
            train_rows[t] = {"used": c["train_rows"], "of": c["train_rows_of"]}
    results = {"budget": asdict(budget), "corpus": corpus_info, "tasks": tasks, "metrics": metrics,
               "train_rows": train_rows,
               "tokenizers": list(names), "finetune": ft, "probe": probe, "reference": ref, "costs": costs,
               "machine": machine_info(), "run": run or {}}
    write_json_atomic(out / "results.json", results)
    _write_csv(out / "results.csv", results)
    (out / "results.md").write_text(render_markdown(results))
    try:
        plot_results(results, out / "results.png")
    except Exception as e:  # noqa: BLE001 - a figure failure must not lose the tables
        _log(f"figure not drawn: {e}")
    return results


def machine_info() -> dict:
    import platform

    import torch

    info = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    return info


def _write_csv(path: Path, res: dict) -> None:
    tasks = res["tasks"]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "tokenizer"] + tasks + ["mean", "mean_rank"])
        for kind in ("finetune", "probe"):
            for n, row in res[kind].items():
                w.writerow([kind, n] + [_fmt(row["scores"].get(t)) for t in tasks]
                           + [_fmt(row["mean"]), _fmt(row["mean_rank"], 2)])
        for n, row in res["reference"].items():
            w.writerow(["reference", n] + [_fmt(row["scores"].get(t)) for t in tasks] + [_fmt(row["mean"]), ""])
    os.replace(tmp, path)


def _fmt(v, nd: int = 4) -> str:
    return "" if v is None else f"{v:.{nd}f}"


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _si(v) -> str:
    if v is None:
        return "–"
    for unit, s in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= unit:
            return f"{v / unit:.2f}{s}"
    return f"{v:.0f}"


def render_markdown(res: dict) -> str:
    b = res["budget"]
    tasks = res["tasks"]
    seeds = b["seeds"]
    L = [f"# Tokenizer benchmark (budget `{b['name']}`)", ""]
    L.append("Every tokenizer: same corpus, same BERT preset, same number of pre-training **nucleotides**, "
             "same fine-tuning protocol and seeds. Scores are test MCC x 100 (classification) or Spearman x 100 "
             "(regression); mean rank over tokenizers only (1 = best); reference rows are not ranked.")
    L.append("")
    L.append("## Fine-tuning (LoRA)")
    L.append("")
    L += _score_table(res["finetune"], tasks, res["metrics"], seeds, res["reference"])
    L.append("")
    L.append("## Linear probing (Lin.): frozen mean-pooled token embeddings + logistic / ridge regression")
    L.append("")
    L += _score_table(res["probe"], tasks, res["metrics"], 1, res["reference"])
    L.append("")
    L.append("Probe features: VQ/HRQ = the tokenizer's quantized embedding (`tok.embed`, codebook vectors); "
             "hand-crafted = rows of the pre-trained LM's input embedding table for the sequence's tokens "
             "(they have no codebook). Same training rows as fine-tuning; C / alpha chosen on dev.")
    L.append("")
    L.append("## Cost per tokenizer")
    L.append("")
    L.append("| tokenizer | vocab | LM params | tokenizer params | tokens / 512 nt | LM window (tokens = nt) "
             "| nucleotides seen | GFLOPs / 512 nt (LM + tok.) | LM val masked acc | wall time (min) |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for n, c in res["costs"].items():
        w = c["wall_time_s"]
        L.append(f"| {n} | {'+'.join(str(v) for v in c['vocab_sizes'])} | {_si(c['lm_parameters'])} | "
                 f"{_si(c['tokenizer_parameters']) if c.get('tokenizer_parameters') else '–'} | "
                 f"{c['tokens_per_512nt']:.1f} | {c['seq_length_tokens']} = {c['window_nt_actual']:.1f} | "
                 f"{_si(c['nucleotides_seen'])} | {c['lm_flops_512nt'] / 1e9:.3f} + "
                 f"{c['tokenizer_flops_512nt'] / 1e9:.3f} | "
                 f"{'–' if c['lm_val_acc'] is None else format(c['lm_val_acc'], '.3f')} | "
                 f"{w['total'] / 60:.1f} ({w['tokenizer'] / 60:.1f} + {w['tokenize'] / 60:.1f} + "
                 f"{w['pretrain'] / 60:.1f} + {w['finetune'] / 60:.1f} + {w['probe'] / 60:.1f}) |")
    L.append("")
    L.append("Wall time = train tokenizer + tokenize corpus + pre-train + fine-tune all tasks + probe all tasks. "
             "FLOPs: LM forward on the tokens of 512 nt, 2 x non-embedding params x T + 4 x layers x T^2 x hidden "
             "(T = tokens + [CLS]); tokenizer = VQ/HRQ encoder + code search on 512 nt. Masked accuracy is over "
             "each tokenizer's own vocabulary (not comparable across tokenizers).")
    L.append("")
    L.append("## Budget")
    L.append("")
    c = res["corpus"]
    src = ", ".join(Path(s).name for s in c["sources"])
    if c.get("sliced"):
        L.append(f"- corpus: {c['nucleotides']:,} nt = {c['records']} evenly spaced blocks of {c['block']:,} nt "
                 f"taken from every record in proportion to its length, out of {c['source_nucleotides']:,} nt in "
                 f"{c['source_records']} records ({src})")
    else:
        L.append(f"- corpus: all {c['nucleotides']:,} nt in {c['records']} records ({src})")
    L.append(f"- VQ/HRQ tokenizers: `{b['tok_config']}` preset, {b['tok_steps']} steps "
             f"(overrides {b['tok_overrides']}); BPE: {b['bpe_vocab']} tokens, trained on the corpus above")
    L.append(f"- pre-training: `{b['lm_config']}` LM preset for every tokenizer, {b['lm_steps']} steps x "
             f"{b['lm_batch']} windows of {b['window_nt']} nt = {b['lm_steps'] * b['lm_batch'] * b['window_nt']:,} "
             f"nucleotides per tokenizer; window length in tokens = round({b['window_nt']} / nucleotides per token "
             f"on the corpus), so the window covers the same DNA for every tokenizer and nucleotides seen differ "
             f"only by that rounding (column above)")
    rows = ", ".join(f"{t} {x['used']:,} of {x['of']:,}" for t, x in res.get("train_rows", {}).items())
    L.append(f"- fine-tuning: LoRA r=8 alpha=16 on q/k/v + new head, {b['ft_epochs']} epochs, lr {b['ft_lr']:g}, "
             f"batch 32, best dev epoch, test once; {seeds} seed(s) (0..{seeds - 1}); training rows subsampled "
             f"(stratified, seed 0) to at most {b['max_train']}: {rows}; dev and test complete")
    L.append(f"- reference: bag of k-mers (k = 1..6) logistic / ridge regression on the same subsampled rows "
             f"(`kmer-bag`)" + ("; `kmer-bag-all` on all training rows" if b["kmer_all"] else ""))
    m = res["machine"]
    L.append(f"- machine: {m.get('cpu', '?')}, {m.get('cpu_count')} cores, torch threads {m.get('torch_threads')}, "
             f"OMP_NUM_THREADS={m.get('OMP_NUM_THREADS')}, load average at the end {m.get('load_average')}")
    L.append("")
    return "\n".join(L)


def _score_table(table: dict, tasks, metrics, seeds: int, reference: dict) -> list[str]:
    head = "| tokenizer | " + " | ".join(f"{t} ({metrics.get(t, '?')})" for t in tasks) + " | mean | mean rank |"
    L = [head, "|---|" + "---|" * (len(tasks) + 2)]
    for n, row in table.items():
        cells = []
        for t in tasks:
            v = row["scores"].get(t)
            s = _pct(v)
            if v is not None and seeds > 1:
                s += f" ± {100 * row['std'][t]:.1f}"
            cells.append(s)
        rank = "–" if row["mean_rank"] is None else f"{row['mean_rank']:.2f}"
        L.append(f"| {n} | " + " | ".join(cells) + f" | {_pct(row['mean'])} | {rank} |")
    for n, row in reference.items():
        L.append(f"| *{n}* | " + " | ".join(_pct(row["scores"].get(t)) for t in tasks)
                 + f" | {_pct(row['mean'])} | – |")
    return L


def plot_results(res: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = res["tasks"]
    names = list(res["finetune"])
    fig, axes = plt.subplots(2, 1, figsize=(max(7, 1.6 * len(tasks) + 2), 7.5), sharex=True)
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(tasks))
    for ax, kind, title in ((axes[0], "finetune", "LoRA fine-tuning"), (axes[1], "probe", "linear probe (Lin.)")):
        for i, n in enumerate(names):
            vals = [100 * res[kind][n]["scores"].get(t, np.nan) for t in tasks]
            ax.bar(x - 0.4 + width * (i + 0.5), vals, width, label=n, color=COLORS.get(n))
        for r, row in res["reference"].items():
            vals = [100 * row["scores"].get(t, np.nan) for t in tasks]
            ax.hlines(vals, x - 0.42, x + 0.42, colors=COLORS.get(r), linestyles="--" if r == "kmer-bag" else ":",
                      label=f"{r} (reference)")
        ax.axhline(0, color="black", lw=0.5)
        ax.set_ylabel("test MCC / Spearman x 100")
        ax.set_title(f"{title} — budget {res['budget']['name']}")
    axes[1].set_xticks(x)
    axes[1].set_xticklabels([f"{t}\n({res['metrics'].get(t, '?')})" for t in tasks], fontsize=8)
    axes[0].legend(fontsize=7, ncol=3, loc="best")
    fig.tight_layout()
    tmp = png.with_name(png.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, png)
