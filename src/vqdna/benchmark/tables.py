"""From cells to the result tables (``results.json``); :mod:`.report` renders them.

* ``finetune`` / ``probe``: the pipelines, per task the score (mean over the task's seeds) and
  the seed std; ``mean`` over all tasks and ``mean_rank`` among the pipelines (rank 1 = best,
  ties share the mean rank), only when every task has a cell.
* ``random_init``: the ``<tokenizer>-random`` rows (fine-tuning), not ranked.
* ``reference``: ``kmer-bag``, ``kmer-bag-all``, ``cnn`` (with its seed std), not ranked.
* ``pretraining_gain``: per pipeline with a random-init control, pre-trained minus random per
  task, with both seed stds, and the same over the mean of the tasks; the spread of a mean of
  per-task means is ``sqrt(sum of the squared per-task stds) / number of tasks`` (seeds are
  independent between tasks).
* ``means``: every row's mean over all tasks and over the GUE tasks the paper reports
  (:mod:`.paper`), beside the paper's means over the same tasks.
* ``paper``: the paper's per-task numbers. Every score is on its natural scale (MCC in -1..1;
  the markdown prints x 100, as the paper does).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .budgets import Budget, budget_dict
from .cells import read_cell
from .paper import PAPER_GUE, PAPER_ROWS, paper_mean
from .rows import RowPlan, random_base

__all__ = ["collect"]

_COST_KEYS = (
    "vocab_sizes", "lm_input_mode", "lm_parameters", "lm_nonembedding_parameters", "tokenizer_parameters",
    "frozen_codebook_values", "tokens_per_512nt", "nt_per_token", "seq_length_tokens", "window_nt_actual",
    "lm_steps", "lm_batch", "tokens_seen", "nucleotides_seen", "nucleotides_target", "lm_flops_512nt",
    "tokenizer_flops_512nt", "total_flops_512nt", "lm_val_acc", "lm_val_loss", "recon_accuracy",
    "usage_l0", "usage_l1", "tokenizer_steps", "tokenizer_nucleotides_seen", "tokenizer_stride")


def _ranks(scores: dict[str, float]) -> dict[str, float]:
    """Rank 1 = best; ties share the mean rank."""
    from scipy.stats import rankdata

    keys = list(scores)
    r = rankdata([-scores[k] for k in keys], method="average")
    return dict(zip(keys, (float(x) for x in r)))


def _row(cells: dict, tasks) -> dict:
    s = [cells[t]["score"] for t in tasks if t in cells]
    return {"scores": {t: cells[t]["score"] for t in tasks if t in cells},
            "std": {t: cells[t].get("std", 0.0) for t in tasks if t in cells},
            "seeds": {t: len(cells[t]["values"]) for t in tasks if t in cells and "values" in cells[t]},
            "mean": float(np.mean(s)) if s and len(s) == len(tasks) else None}


def _table(out: Path, names, tasks, kind: str, budget: Budget, *, rank: bool) -> dict:
    cells = {n: {t: c for t in tasks if (c := read_cell(out, n, t, kind, budget)) is not None} for n in names}
    table = {n: _row(cells[n], tasks) for n in names}
    ranks = {n: [] for n in names}
    if rank:
        for t in tasks:
            sc = {n: cells[n][t]["score"] for n in names if t in cells[n]}
            if len(sc) == len(names):
                for n, r in _ranks(sc).items():
                    ranks[n].append(r)
    for n in names:
        table[n]["mean_rank"] = float(np.mean(ranks[n])) if rank and len(ranks[n]) == len(tasks) else None
    return table


def _mean_sd(scores: dict, stds: dict, tasks) -> tuple[float | None, float | None]:
    if not tasks or any(t not in scores for t in tasks):
        return None, None
    return (float(np.mean([scores[t] for t in tasks])),
            float(math.sqrt(sum(stds.get(t, 0.0) ** 2 for t in tasks)) / len(tasks)))


def _gains(ft: dict, rnd: dict, tasks) -> dict:
    out = {}
    for r, row in rnd.items():
        base = random_base(r)
        if base not in ft:
            continue
        p = ft[base]
        per = {}
        for t in tasks:
            if t in p["scores"] and t in row["scores"]:
                per[t] = {"pretrained": p["scores"][t], "pretrained_std": p["std"][t],
                          "pretrained_seeds": p["seeds"].get(t), "random": row["scores"][t],
                          "random_std": row["std"][t], "random_seeds": row["seeds"].get(t),
                          "diff": p["scores"][t] - row["scores"][t]}
        pm, ps = _mean_sd(p["scores"], p["std"], tasks)
        rm, rs = _mean_sd(row["scores"], row["std"], tasks)
        out[base] = {"random_row": r, "tasks": per,
                     "mean": None if pm is None or rm is None else
                     {"pretrained": pm, "pretrained_std": ps, "random": rm, "random_std": rs, "diff": pm - rm}}
    return out


def _means(tables: dict, tasks) -> dict:
    gue = [t for t in tasks if t in PAPER_GUE]
    out = {}
    for kind, table in tables.items():
        for n, row in table.items():
            m_gue, _ = _mean_sd(row["scores"], row.get("std", {}), gue)
            out.setdefault(n, {})[kind] = {"all": row["mean"], "gue": m_gue}
    return {"gue_tasks": gue, "rows": out,
            "paper": {p: paper_mean(gue, p) / 100 for p in PAPER_ROWS} if gue else {}}


def collect(out: Path, plan: RowPlan, tasks: list[str], budget: Budget) -> dict:
    """Every table of the results (see the module docstring), from the cells in ``out``."""
    out = Path(out)
    metrics, train_rows, seeds = {}, {}, {}
    for t in tasks:
        for n, kind in ([("kmer-bag", "reference")] + [(p, "finetune") for p in plan.pipelines]
                        + [(r, "finetune") for r in plan.random] + [("cnn", "reference")]):
            c = read_cell(out, n, t, kind, budget)
            if c is None:
                continue
            metrics.setdefault(t, c["metric"])
            if n == "kmer-bag":
                train_rows[t] = {"used": c["train_rows"], "of": c["train_rows_of"]}
            if "values" in c:
                seeds.setdefault(t, len(c["values"]))
        metrics.setdefault(t, "?")
    ft = _table(out, plan.pipelines, tasks, "finetune", budget, rank=True)
    probe = _table(out, plan.pipelines, tasks, "probe", budget, rank=True)
    rnd = _table(out, plan.random, tasks, "finetune", budget, rank=False)
    ref = _table(out, plan.references, tasks, "reference", budget, rank=False)
    for row in ref.values():
        row.pop("mean_rank", None)
    for row in rnd.values():
        row.pop("mean_rank", None)

    costs = {}
    for n in plan.pipelines:
        c = read_cell(out, n, "corpus", "pretrain", budget)
        if c is None:
            continue
        cells = [read_cell(out, n, t, k, budget) for t in tasks for k in ("finetune", "probe")]
        ft_s = sum(x["wall_time_s"] for x in cells if x and x["kind"] == "finetune")
        pr_s = sum(x["wall_time_s"] for x in cells if x and x["kind"] == "probe")
        tok_s = c.get("tokenizer_train_time_s", 0.0) if c.get("trained") else 0.0
        costs[n] = {k: c.get(k) for k in _COST_KEYS}
        costs[n]["wall_time_s"] = {"tokenizer": tok_s, "tokenize": c.get("tokenize_time_s", 0.0),
                                   "pretrain": c.get("pretrain_time_s", 0.0), "finetune": ft_s, "probe": pr_s}
        costs[n]["wall_time_s"]["total"] = float(sum(costs[n]["wall_time_s"].values()))
    other_costs = {}
    for n, kind in [(r, "finetune") for r in plan.random] + [(r, "reference") for r in plan.references]:
        cells = [c for t in tasks if (c := read_cell(out, n, t, kind, budget)) is not None]
        other_costs[n] = {"wall_time_s": float(sum(c["wall_time_s"] for c in cells)),
                          "n_parameters": next((c["n_parameters"] for c in cells if c.get("n_parameters")), None)}
    ft_config = next((c["config"] for t in tasks for p in plan.pipelines + plan.random
                      if (c := read_cell(out, p, t, "finetune", budget)) is not None), None)
    return {"budget": budget_dict(budget), "tasks": tasks, "metrics": metrics, "train_rows": train_rows,
            "seeds_per_task": seeds, "tokenizers": list(plan.pipelines), "random_rows": list(plan.random),
            "reference_rows": list(plan.references), "finetune": ft, "probe": probe, "random_init": rnd,
            "reference": ref, "pretraining_gain": _gains(ft, rnd, tasks),
            "means": _means({"finetune": {**ft, **rnd, **ref}, "probe": probe}, tasks),
            "paper": {"tasks": {t: {r: v / 100 for r, v in zip(PAPER_ROWS, PAPER_GUE[t])} for t in tasks
                                if t in PAPER_GUE},
                      "source": "Li et al., ICML 2024 (VQDNA), Tables 3 and 4, rows DNABERT-2 (BPE) and VQDNA (HRQ); "
                                "test MCC, natural scale like every score here (the paper prints x 100)"},
            "finetune_config": ft_config, "costs": costs, "other_costs": other_costs,
            "vs_cnn": _vs_cnn(out, plan, tasks, budget)}


def _vs_cnn(out: Path, plan: RowPlan, tasks: list[str], budget: Budget) -> dict:
    """Per fine-tuned row: its test score minus the CNN's per task, and its fine-tuning FLOPs per
    training sequence against the CNN's (cells that record them); {} without a cnn row."""
    if "cnn" not in plan.references:
        return {}
    cnn = {t: c for t in tasks if (c := read_cell(out, "cnn", t, "reference", budget)) is not None}
    res = {}
    for n in plan.pipelines + plan.random:
        cells = {t: c for t in cnn if (c := read_cell(out, n, t, "finetune", budget)) is not None}
        if not cells:
            continue
        diff = {t: c["score"] - cnn[t]["score"] for t, c in cells.items()}
        ratio = [c["train_flops_per_sequence"] / cnn[t]["train_flops_per_sequence"] for t, c in cells.items()
                 if c.get("train_flops_per_sequence") and cnn[t].get("train_flops_per_sequence")]
        res[n] = {"diff": diff, "mean_diff": float(np.mean(list(diff.values()))), "tasks": len(diff),
                  "ahead": sum(v > 0 for v in diff.values()),
                  "flops_ratio_to_cnn": {"min": float(min(ratio)), "max": float(max(ratio)),
                                         "mean": float(np.mean(ratio))} if ratio else None,
                  "epochs_run": {t: c.get("epochs_run") for t, c in cells.items()},
                  "best_epochs": {t: c.get("best_epochs") for t, c in cells.items()}}
    return res
