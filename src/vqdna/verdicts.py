"""Every stage against its reference, with a verdict: what the demo's table and each command's
end-of-run line print (one set of functions for both).

* Stage 1: reconstruction against the paper's HRQ (99.6%), code usage per level against the
  README's 95% floor (:func:`tokenizer_rows`).
* Stage 2: validation masked accuracy and perplexity per level against a **unigram** model of
  the codes (:func:`unigram_reference`): an LM that learned nothing has the unigram's perplexity
  and a masked accuracy near the share of the most frequent code (:func:`lm_rows`).
* Stage 3: the test score against the bag-of-k-mers logistic regression on the same training
  rows (:func:`kmer_references`, :func:`finetune_rows`).

A row is a dict with ``measure``, ``value``, ``reference`` and ``verdict`` (strings);
:func:`verdict_line` writes rows as one line.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

USAGE_PROMISE = 0.95  # the README's code usage floor per level on unseen species
PAPER_RECON = 0.996  # the paper's HRQ reconstruction accuracy (Sec. 4, Table 2)
UNIGRAM_SAMPLE_TOKENS = 1 << 20  # tokens per level counted for the unigram frequencies


def _row(measure: str, value: str, reference: str, verdict: str) -> dict:
    return dict(measure=measure, value=value, reference=reference, verdict=verdict)


def verdict_line(rows: list[dict]) -> str:
    """Rows as one line: ``measure value against reference: verdict; ...``."""
    return "; ".join(f"{r['measure']} {r['value']} against {r['reference']}: {r['verdict']}" for r in rows)


# ---------------------------------------------------------------- stage 1


def tokenizer_rows(r: dict, n_levels: int, where: str) -> list[dict]:
    """Reconstruction and code usage per level (``r``: :func:`vqdna.tokenizers.training.evaluate_tokenizer`'s
    result or a training run's final validation metrics) against the paper and the usage floor."""
    recon = r["recon_accuracy"]
    usage = [r[f"usage_l{i}"] for i in range(n_levels)]
    return [
        _row(f"reconstruction, {where}", f"{recon:.2%}", f"paper {PAPER_RECON:.1%}",
             "yes" if recon >= PAPER_RECON - 0.005 else f"no ({recon - PAPER_RECON:+.1%})"),
        _row(f"code usage per level, {where}", " / ".join(f"{u:.1%}" for u in usage),
             f">= {USAGE_PROMISE:.0%} (paper 100%)",
             "yes" if min(usage) >= USAGE_PROMISE else f"no (level {int(np.argmin(usage)) + 1})"),
    ]


# ---------------------------------------------------------------- stage 2


def unigram_reference(codes, train_config: dict, sample_tokens: int = UNIGRAM_SAMPLE_TOKENS) -> dict:
    """What an LM that learned nothing scores: per level, the perplexity of a unigram model of
    the codes on the validation windows pre-training scores, and its masked accuracy (always
    guessing the most frequent code). The unigram frequencies (add-one smoothed) are counted on
    ``sample_tokens // seq_length`` training windows drawn as pre-training draws them (so assembly
    gaps, one code repeated over thousands of positions, weigh what they weigh for the LM: nothing).
    ``codes``: the code folder(s) pre-training read; ``train_config``: its ``metrics.json``'s."""
    from .lm.pretrain import WindowSampler, open_code_stores

    stores, _ = open_code_stores([codes] if isinstance(codes, (str, Path)) else list(codes))
    tc = train_config
    sampler = WindowSampler(stores, tc["seq_length"], val_block=tc["val_block"], val_every=tc["val_every"],
                            skip_n_runs=tc["skip_n_runs"], pack_short_records=tc.get("pack_short_records", True))
    vw = sampler.val_windows
    scored = vw[np.linspace(0, len(vw) - 1, min(tc["eval_windows"], len(vw))).astype(int)]
    val_scored = sampler.gather(scored)
    n_windows = max(sample_tokens // tc["seq_length"], 1)
    train = sampler.gather(sampler.sample(np.random.default_rng([tc.get("seed", 0), 7]), n_windows))
    out = {"windows": int(len(scored)), "tokens_per_level": int(val_scored[:, 0].size),
           "counted_tokens_per_level": int(train[:, 0].size)}
    for level, k in enumerate(stores[0].vocab_sizes):
        counts = np.bincount(train[:, level].ravel(), minlength=k)[:k].astype(np.float64)
        prob = (counts + 1) / (counts.sum() + k)
        x = val_scored[:, level].ravel()
        out[f"ppl_l{level}"] = float(math.exp(-np.log(prob[x]).mean()))
        out[f"acc_l{level}"] = float((x == int(np.argmax(counts))).mean())
        out[f"codebook_l{level}"] = int(k)
    return out


def lm_rows(lm: dict, unigram: dict, n_levels: int) -> list[dict]:
    """Validation masked accuracy and perplexity per level (``lm``: pre-training's metrics) against
    the unigram, each with a "learned?" verdict: accuracy at least 1.5x the unigram's, perplexity
    at least 5% below it, on every level."""
    acc = [lm[f"val_acc_l{i}"] for i in range(n_levels)]
    uacc = [unigram[f"acc_l{i}"] for i in range(n_levels)]
    ppl = [lm[f"val_ppl_l{i}"] for i in range(n_levels)]
    uppl = [unigram[f"ppl_l{i}"] for i in range(n_levels)]
    ratio = [a / max(u, 1 / max(unigram.get("tokens_per_level", 1), 1)) for a, u in zip(acc, uacc)]
    gain = [p / u - 1 for p, u in zip(ppl, uppl)]
    steps = f"{lm.get('steps', '?')} steps, {lm.get('tokens_seen', 0) / 1e6:.2f}M tokens"
    codebooks = " / ".join(str(unigram[f"codebook_l{i}"]) for i in range(n_levels))
    return [
        _row(f"validation masked accuracy per level ({steps})", " / ".join(f"{a:.2%}" for a in acc),
             "unigram " + " / ".join(f"{u:.2%}" for u in uacc),
             ("yes: " if min(ratio) >= 1.5 else "no: ") + " / ".join(f"{x:.1f}x" for x in ratio) + " unigram"),
        _row("validation perplexity per level", " / ".join(f"{x:.0f}" for x in ppl),
             "unigram " + " / ".join(f"{u:.0f}" for u in uppl) + f" (codebooks {codebooks})",
             ("yes: " if max(gain) <= -0.05 else "no: ") + " / ".join(f"{g:+.1%}" for g in gain) + " vs unigram"),
    ]


# ---------------------------------------------------------------- stage 3


def kmer_references(task, max_train: int, *, all_rows: bool = True) -> dict:
    """Bag-of-k-mers logistic regression on the fine-tuning's training rows (``same_rows``) and,
    with ``all_rows``, on every training row (``all_rows``; the same as ``same_rows`` when the
    fine-tuning used every row)."""
    from .lm.finetune import subsample
    from .references.kmer import run_kmer_baseline

    out = {}
    idx = subsample(task.train.labels, max_train, task.kind, seed=0)
    if len(idx) < len(task.train):
        out["same_rows"] = _kmer_summary(run_kmer_baseline(task.with_train_rows(idx)))
    if all_rows or "same_rows" not in out:
        out["all_rows"] = _kmer_summary(run_kmer_baseline(task))
    out.setdefault("same_rows", out.get("all_rows"))
    return out


def _kmer_summary(r: dict) -> dict:
    return {"metric": r["primary_metric"], "test": r["test"], "dev": r["dev"], "n_train": r["n_train"],
            "param": {r["param_name"]: r["param"]}, "scaling": r["scaling"]}


def seeds_text(s: dict) -> str:
    """A score over seeds: ``0.481 (1 seed)`` or ``0.485 ± 0.027 (3 seeds)``."""
    n = len(s.get("values", [])) or 1
    if n == 1:
        return f"{s['mean']:.3f} (1 seed)"
    return f"{s['mean']:.3f} ± {s['std']:.3f} ({n} seeds)"


def finetune_rows(ft: dict, kmer: dict, what: str) -> list[dict]:
    """The test score (``ft``: :func:`vqdna.lm.finetune.finetune`'s results) against the k-mers on
    the same training rows (and on all rows, if ``kmer`` has them and they differ); the test
    accuracy too for a classification task."""
    metric = ft.get("metric", "mcc")
    test = ft["test"][metric]
    same, every = kmer["same_rows"], kmer.get("all_rows")
    ref_same = same["test"][metric]
    rows_used = (ft.get("subsample") or {}).get("train_rows", same["n_train"])
    ref = f"bag-of-k-mers LR {ref_same:.3f} (same {same['n_train']:,} rows)"
    if every and every["n_train"] != same["n_train"]:
        ref += f"; {every['test'][metric]:.3f} (all {every['n_train']:,})"
    diff = test["mean"] - ref_same
    method = (ft.get("config") or {}).get("method", "")
    rows = [_row(f"test {metric.upper() if metric == 'mcc' else metric}, {what} "
                 f"({rows_used:,} training rows{', ' + method if method else ''})", seeds_text(test), ref,
                 f"{'above' if diff > 0 else 'below'} the k-mers ({diff:+.3f})")]
    if "accuracy" in ft["test"]:
        a, ra = ft["test"]["accuracy"], same["test"]["accuracy"]
        rows.append(_row("test accuracy", seeds_text(a), f"bag-of-k-mers LR {ra:.3f}", f"{a['mean'] - ra:+.3f}"))
    return rows
