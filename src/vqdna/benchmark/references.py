"""Reference rows: no pre-training at all, the same splits and the same training rows.

* ``kmer-bag``: bag of k-mers (k = 1..6) + logistic / ridge regression
  (:func:`vqdna.references.kmer.run_kmer_baseline`) on the subsampled training rows every
  pipeline uses (:func:`vqdna.sequence.subsample.stratified_subsample`, seed 0);
* ``kmer-bag-all``: the same on every training row;
* ``cnn``: a 1D CNN trained from scratch on one-hot DNA
  (:func:`vqdna.references.cnn.run_cnn_baseline`) on the same subsampled rows (it subsamples
  with the same function and seed), the task's seeds (:meth:`Budget.seeds_for`) and the
  budget's ``cnn`` keyword arguments; mean and seed std like a fine-tuning cell.

All are ``reference`` cells (not ranked against the tokenizers).
"""
from __future__ import annotations

from ..sequence.subsample import stratified_subsample
from ..references.kmer import run_kmer_baseline
from .budgets import Budget

__all__ = ["kmer_cell", "cnn_cell", "reference_cell"]


def kmer_cell(ref: str, task_name_: str, task, budget: Budget) -> dict:
    """Bag of k-mers on the same subsampled training rows (``kmer-bag``) or on all (``kmer-bag-all``)."""
    n_all = len(task.train)
    if ref == "kmer-bag":
        task = task.with_train_rows(stratified_subsample(task.train.labels, budget.max_train, task.kind, seed=0))
    r = run_kmer_baseline(task)
    m = r["primary_metric"]
    return {"tokenizer": ref, "task": task_name_, "kind": "reference", "budget": budget.name, "metric": m,
            "score": r["test"][m], "test": r["test"], "dev": r["dev"], "scaling": r["scaling"],
            "param": {r["param_name"]: r["param"]}, "train_rows": r["n_train"],
            "train_rows_of": n_all, "wall_time_s": r["wall_time"]}


def cnn_cell(task_name_: str, task, budget: Budget, *, seeds: int, device) -> dict:
    """The CNN reference on the budget's training rows with ``seeds`` seeds."""
    from ..references.cnn import CNNConfig, forward_flops, run_cnn_baseline  # torch model code: only when the row runs

    r = run_cnn_baseline(task, seeds=seeds, max_train=budget.max_train, device=device, progress=False,
                         grid=budget.grid_points() or None, **budget.cnn)
    m = r["primary_metric"]
    std = r["test_std"]
    per_seed = [{k: s.get(k) for k in ("seed", "test", "dev", "best_epoch", "epochs_run", "wall_time")}
                for s in r.get("per_seed", [])]
    return {"tokenizer": "cnn", "task": task_name_, "kind": "reference", "budget": budget.name, "metric": m,
            "score": r["test"][m], "std": float(std[m] if isinstance(std, dict) else std),
            "values": list(r["values"]), "test": r["test"], "dev": r["dev"], "seeds": list(range(seeds)),
            "per_seed": per_seed, "n_parameters": r.get("n_parameters"), "config": r.get("config"),
            "train_rows": r["n_train"], "train_rows_of": len(task.train), "wall_time_s": r["wall_time"],
            "train_flops_per_sequence": 3.0 * forward_flops(CNNConfig(**budget.cnn), _mean_length(task)),
            **({"grid": r["grid"]} if r.get("grid") else {})}


def _mean_length(task) -> float:
    """Mean training-sequence length (nt) of a task."""
    return float(sum(map(len, task.train.sequences)) / max(len(task.train), 1))


def reference_cell(ref: str, task_name_: str, task, budget: Budget, *, seeds: int = 1, device=None) -> dict:
    if ref == "cnn":
        return cnn_cell(task_name_, task, budget, seeds=seeds, device=device)
    return kmer_cell(ref, task_name_, task, budget)
