"""One tokenizer's pipeline: tokenizer, code store, pre-trained LM, and its cells.

* :func:`pretrain_cell` (task ``corpus``, kind ``pretrain``): build / train the tokenizer
  (VQ/HRQ: the budget's preset and steps; BPE: trained on the corpus; the others are fixed
  rules), tokenize the corpus once, pre-train the budget's LM preset on windows of
  ``window_nt`` nucleotides (``seq_length = round(window_nt / r)`` tokens, ``r`` = nucleotides
  per token of that tokenizer on the corpus), and measure the costs (:func:`lm_costs`).
* :func:`finetune_cell`: :func:`vqdna.lm.finetune.finetune` of the LM on one task with the
  budget's :meth:`~vqdna.benchmark.budgets.Budget.finetune_config` and the task's seeds; with
  ``random_init=True`` the same on a random-init LM that keeps only the frozen codebooks (the
  ``<tokenizer>-random`` rows).
* :func:`probe_cell`: the linear probe ("Lin.", :func:`vqdna.evaluate.linear_probe`) on
  mean-pooled frozen token embeddings (:func:`probe_features`), on the same training rows.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from ..codes import store_status, write_codes
from ..evaluate import linear_probe
from ..lm.artifacts import tokenizer_sha256
from ..lm.finetune import finetune
from ..lm.inference import CodeCache
from ..lm.pretrain import pretrain
from ..io import read_json, write_json_atomic
from ..sequence.subsample import stratified_subsample
from ..tokenizers.training import train_tokenizer
from .budgets import Budget
from .cells import log
from .inputs import sample_windows
from .rows import learned_row

__all__ = ["pretrain_cell", "finetune_cell", "probe_cell", "probe_features", "lm_costs", "PROBE_KEYS"]

#: what a probe cell keeps of :func:`vqdna.evaluate.linear_probe`'s result
PROBE_KEYS = ("metric", "score", "test", "dev", "param")


def lm_forward_flops(*, nonembedding: int, layers: int, hidden: int, tokens: float) -> float:
    """LM forward FLOPs on ``tokens`` tokens + [CLS]: 2 per multiply-add of the non-embedding weights
    and 4 x layers x T^2 x hidden for attention (scores and weighted sum)."""
    T = tokens + 1
    return 2.0 * nonembedding * T + 4.0 * layers * T * T * hidden


def train_flops_per_step(*, nonembedding: int, head: int, layers: int, hidden: int, seq: int, batch: int,
                         mask: float) -> float:
    """Training FLOPs of one pre-training step: 3 x forward (backward = 2 x forward) of ``batch``
    windows of ``seq`` tokens, the MLM head (``head`` parameters) run on the masked share only."""
    fwd = lm_forward_flops(nonembedding=nonembedding, layers=layers, hidden=hidden, tokens=seq)
    return 3.0 * (fwd + mask * (seq + 1) * 2 * head) * batch


def finetune_flops_per_sequence(lm_dir: Path, tokens: float, *, unfrozen_tokenizer: bool = False) -> float:
    """Training FLOPs (forward + backward = 3 x forward) of fine-tuning the LM of ``lm_dir`` on one
    sequence of ``tokens`` tokens: every LM weight trains (the ``full`` method), the classification
    head (~0.1 MFLOP) left out, as for the CNN (:func:`vqdna.references.cnn.forward_flops`). A
    frozen tokenizer's encoder is not counted: it runs once per sequence, before the first epoch;
    an ``unfrozen_tokenizer`` trains with the LM (one token per nucleotide, no code search)."""
    from ..lm.artifacts import load_backbone
    from ..tokenizers import load_tokenizer

    bb = load_backbone(lm_dir)
    cfg = bb.config
    flops = lm_forward_flops(nonembedding=bb.parameter_counts()["nonembedding"], layers=cfg.num_hidden_layers,
                             hidden=cfg.hidden_size, tokens=tokens)
    if unfrozen_tokenizer:
        flops += load_tokenizer(Path(lm_dir) / "tokenizer").model.flops_per_nucleotide(search=False) * tokens
    return 3.0 * flops


def lm_costs(lm_dir: Path, tokens_per_512: float) -> dict:
    """Parameters of the pre-trained LM and its forward FLOPs on 512 nt worth of tokens."""
    from ..lm.artifacts import load_backbone

    bb = load_backbone(lm_dir)
    cfg = bb.config
    n = bb.parameter_counts()
    total, nonemb, buffers = n["total"], n["nonembedding"], n["frozen_codebook_values"]
    L, H = cfg.num_hidden_layers, cfg.hidden_size
    flops = lm_forward_flops(nonembedding=nonemb, layers=L, hidden=H, tokens=tokens_per_512)
    return {"lm_parameters": int(total), "lm_nonembedding_parameters": int(nonemb),
            "frozen_codebook_values": int(buffers), "lm_flops_512nt": float(flops),
            "hidden_size": H, "num_layers": L}


def prepare_tokenizer(name: str, corpus_files, tdir: Path, budget: Budget, device) -> dict:
    """Build / train the tokenizer into ``tdir/tokenizer``; returns info (time, params, metrics).
    A strided learned row (``hrq-s4``) trains its quantizer with the budget's preset, steps and
    overrides plus ``stride`` (:func:`vqdna.benchmark.rows.learned_row`)."""
    from ..tokenizers.handcrafted import BPETokenizer, build_handcrafted

    tok_dir = tdir / "tokenizer"
    t0 = time.time()
    learned = learned_row(name)
    info: dict = {"trained": learned is not None or name == "bpe"}
    if learned is not None:
        quantizer, stride = learned
        overrides = dict(budget.tok_overrides, kmeans_version=budget.kmeans_version,
                         **({"stride": stride} if stride > 1 else {}))
        if not (tok_dir / "metrics.json").exists():
            log(f"{name}: training the tokenizer ({budget.tok_config} preset, {budget.tok_steps} steps"
                + (f", stride {stride}" if stride > 1 else "") + ")")
            train_tokenizer(corpus_files, out=tok_dir, quantizer=quantizer, config=budget.tok_config,
                            max_steps=budget.tok_steps, resume=True, device=device, overrides=overrides)
        m = read_json(tok_dir / "metrics.json")
        info.update({k: m[k] for k in m if k.startswith(("recon_accuracy", "usage_l", "perplexity_l"))},
                    tokenizer_steps=m["steps"], tokenizer_nucleotides_seen=m["nucleotides_seen"],
                    tokenizer_parameters=m["parameters"], tokenizer_train_time_s=m["wall_time_s"])
    elif name == "bpe":
        if not (tok_dir / "config.json").exists():
            log(f"bpe: training a {budget.bpe_vocab}-token BPE on the corpus")
            BPETokenizer.train_from_fasta(corpus_files, budget.bpe_vocab).save_pretrained(tok_dir)
            info["tokenizer_train_time_s"] = time.time() - t0
    else:
        build_handcrafted(name).save_pretrained(tok_dir)
    info.setdefault("tokenizer_train_time_s", time.time() - t0)
    return info


def pretrain_cell(name: str, corpus: dict, tdir: Path, budget: Budget, device) -> dict:
    from ..tokenizers import load_tokenizer

    t_all = time.time()
    info = prepare_tokenizer(name, corpus["files"], tdir, budget, device)
    tok_dir, codes_dir, lm_dir = tdir / "tokenizer", tdir / "codes", tdir / "lm"
    tok = load_tokenizer(tok_dir)
    man_path = codes_dir / "manifest.json"
    t0 = time.time()
    if (status := store_status(codes_dir)) != "complete":
        log(f"{name}: tokenizing the corpus ({corpus['nucleotides']:,} nt)")
        write_codes(tok, corpus["files"], codes_dir, tokenizer_path=tok_dir, resume=status == "partial",
                    progress=False)
    tokenize_s = time.time() - t0
    man = read_json(man_path)
    r = man["total_nucleotides"] / max(man["total_tokens"], 1)  # nucleotides per token on the corpus
    seq_len = max(int(round(budget.window_nt / r)), 4)
    windows = sample_windows(corpus["files"], 128, 512)
    tokens_512 = float(np.mean([c.shape[-1] for c in tok.encode(windows)])) if windows else 512 / r

    t0 = time.time()
    mpath = lm_dir / "metrics.json"
    if not (mpath.exists() and read_json(mpath).get("complete")):
        log(f"{name}: pre-training the {budget.lm_config} LM, {budget.lm_steps} steps x {budget.lm_batch} "
            f"windows of {seq_len} tokens (= {seq_len * r:.1f} nt)")
        pretrain([codes_dir], out=lm_dir, config=budget.lm_config, max_steps=budget.lm_steps, resume=True,
                 device=device, progress=False,
                 overrides=dict(seq_length=seq_len, batch_size=budget.lm_batch, eval_every=budget.lm_steps,
                                checkpoint_every=max(budget.lm_steps // 3, 1), eval_windows=budget.lm_eval_windows,
                                **budget.lm_overrides))
    pretrain_s = time.time() - t0
    lm = read_json(mpath)
    costs = lm_costs(lm_dir, tokens_512)
    tok_flops = float(tok.flops_per_nucleotide() * 512)
    cell = {
        "tokenizer": name, "task": "corpus", "kind": "pretrain", "budget": budget.name,
        "vocab_sizes": list(tok.vocab_sizes), "n_levels": tok.n_levels,
        "tokenizer_stride": getattr(tok, "stride", None),  # nucleotides per code of a VQ/HRQ tokenizer
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


def finetune_cell(name: str, task: str, task_dir: Path, tdir: Path, budget: Budget, *, seeds: int, device,
                  random_init: bool = False, code_cache: CodeCache | None = None) -> dict:
    """Fine-tune ``tdir/lm`` on ``task_dir`` (``random_init``: from random weights that keep only
    the frozen codebooks); the fine-tuned weights are not kept, the full result is
    ``tdir/ft[-random]/TASK.results.json``. ``code_cache``: the task's codes, shared with the
    row's other cells (:class:`~vqdna.lm.inference.CodeCache`)."""
    sub = "ft-random" if random_init else "ft"
    ft_dir = tdir / sub / task
    cfg = budget.finetune_config()
    t0 = time.time()
    r = finetune(tdir / "lm", task_dir, out=ft_dir, seeds=seeds, config=cfg, device=device, progress=False,
                 random_init=random_init, grid=budget.grid, code_cache=code_cache)
    metric = r["metric"]
    tokens = r["train_tokens_mean"]
    cell = {"tokenizer": name, "task": task, "kind": "finetune", "budget": budget.name, "metric": metric,
            "score": r["test"][metric]["mean"], "std": r["test"][metric]["std"],
            "values": r["test"][metric]["values"], "test": {k: v["mean"] for k, v in r["test"].items()},
            "dev": {k: v["mean"] for k, v in r["dev"].items()},
            "best_epochs": [s["best_epoch"] for s in r["per_seed"]],
            "epochs_run": [s.get("epochs_run") for s in r["per_seed"]], "seeds": r["seeds"],
            "train_flops_per_sequence": finetune_flops_per_sequence(
                tdir / "lm", tokens, unfrozen_tokenizer=cfg.unfreeze_tokenizer),
            "tokens_per_sequence": tokens,
            "train_rows": (r["subsample"] or {}).get("train_rows", r["task"]["sizes"]["train"]),
            "train_rows_of": r["task"]["sizes"]["train"], "config": r["config"],
            "wall_time_s": time.time() - t0}
    if r.get("grid"):
        cell["grid"] = r["grid"]
    if random_init:
        cell["random_init"] = True
        cell["lm_folder_of"] = tdir.name
    write_json_atomic(tdir / sub / f"{task}.results.json", r)
    shutil.rmtree(ft_dir, ignore_errors=True)  # fine-tuned weights are not kept
    return cell


def probe_features(name: str, tdir: Path, codes: list[np.ndarray]) -> np.ndarray:
    """(N, dim) mean-pooled frozen token embeddings of the sequences whose codes (from
    ``tdir/tokenizer``) are ``codes``. Learned tokenizers: the quantized embedding
    (``tok.embed_codes``: their codebook vectors, mean over levels). Hand-crafted tokenizers
    have no codebook, so their vectors are the rows of the pre-trained LM's input embedding
    table (:meth:`~vqdna.hub.modeling_vqdna.VQDNAModel.token_embedding_table`) for their tokens. After a
    short pre-training these rows are still close to their random initialisation, so for a large
    vocabulary the probe is close to a *random projection of the bag of tokens* (itself a strong feature)."""
    import torch

    from ..lm.artifacts import load_backbone
    from ..tokenizers import load_tokenizer

    if learned_row(name) is not None:
        tok = load_tokenizer(tdir / "tokenizer")
        return np.stack([tok.embed_codes(torch.from_numpy(np.asarray(c))).mean(0).numpy()
                         for c in codes]).astype(np.float32)
    table = load_backbone(tdir / "lm").token_embedding_table(0).float().numpy()
    return np.stack([table[c[0]].mean(0) for c in codes]).astype(np.float32)


def probe_cell(name: str, task_name_: str, task, tdir: Path, budget: Budget, *,
               code_cache: CodeCache | None = None) -> dict:
    """The linear probe of row ``name`` on ``task``; ``code_cache``: as for :func:`finetune_cell`."""
    from ..tokenizers import load_tokenizer

    t0 = time.time()
    idx = stratified_subsample(task.train.labels, budget.max_train, task.kind, seed=0)
    rows = {"train": idx, "dev": None, "test": None}
    cache, tok_id = code_cache if code_cache is not None else CodeCache(), tokenizer_sha256(tdir / "tokenizer")
    tok = load_tokenizer(tdir / "tokenizer")
    y = {"train": task.train.labels[idx], "dev": task.dev.labels, "test": task.test.labels}
    X = {k: probe_features(name, tdir, cache.tokenize(tok, tok_id, task.splits[k], r)) for k, r in rows.items()}
    r = {k: v for k, v in linear_probe(X, y, task.kind).items() if k in PROBE_KEYS}
    source = ("tokenizer quantized embedding (tok.embed)" if learned_row(name) is not None
              else "pre-trained LM input embedding table")
    return {"tokenizer": name, "task": task_name_, "kind": "probe", "budget": budget.name, **r,
            "features": source, "dim": int(X["train"].shape[1]), "train_rows": int(len(idx)),
            "train_rows_of": len(task.train), "wall_time_s": time.time() - t0}
