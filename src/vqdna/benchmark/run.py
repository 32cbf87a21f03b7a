"""Run (or resume) a benchmark: :func:`run_benchmark`, and ``--jobs N`` processes that share a queue of rows."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.genomes import resolve_fasta
from ..io import portable_path, read_json, write_json_atomic
from ..lm.inference import CodeCache
from .budgets import budget_dict, get_budget, same_budget
from .cells import Ledger, log, read_cell
from .inputs import prepare_corpus, resolve_tasks
from .pipeline import finetune_cell, pretrain_cell, probe_cell
from .references import reference_cell
from .report import aggregate
from .rows import RowPlan, learned_row, parse_rows, random_base

__all__ = ["row_queue", "work_queue", "run_benchmark"]


def run_benchmark(tokenizers, corpus, tasks, *, budget: str = "quick", out, seeds: int | None = None,
                  max_train: int | None = None, small_task_rows: int | None = None,
                  large_task_seeds: int | None = None, device: str | None = "cpu", work=None, jobs: int = 1,
                  report: bool = True, only_tasks: Sequence[str] | None = None,
                  settings: dict | None = None) -> dict | None:
    """Run (or resume) the benchmark; returns the aggregated results (also written to ``out``).

    ``tokenizers``: the rows (:mod:`vqdna.benchmark.rows`), comma-separated or a list; ``None``
    or empty = the budget's ``rows``. ``seeds``, ``max_train``, ``small_task_rows`` and
    ``large_task_seeds`` override the budget's fields (a folder holds one budget: overriding a
    number needs another ``out``). ``work``: where the corpus slice, tokenizers, code stores and
    language models go (default ``out/work``; put it elsewhere to keep ``out`` small, and give
    the same one to resume). ``jobs``: rows run in that many processes at once (each with its
    share of the torch threads), each taking the next unit of :func:`work_queue` when its last is
    done; the cells are independent files, so the parent only prepares the shared inputs first
    and assembles the tables after.
    ``settings``: budget fields to change (``vqdna benchmark --set``; :func:`~vqdna.benchmark.budgets.with_settings`:
    a dict field is merged into the budget's), checked before any work; ``benchmark.json`` records the result.
    ``report=False``: write the cells only (the shards). ``only_tasks``: compute only the cells of
    these task names (as the cells name them; how the queue splits the CNN row), with ``report=False``."""
    from ..sequence.tasks import load_task

    t_start = time.time()
    b = get_budget(budget, settings, seeds=seeds, max_train=max_train, small_task_rows=small_task_rows,
                   large_task_seeds=large_task_seeds)
    plan = parse_rows(tokenizers, b)
    out = Path(out)
    work = Path(work) if work is not None else out / "work"
    (out / "cells").mkdir(parents=True, exist_ok=True)
    if not (out / ".gitignore").exists():  # models and code stores must never be committed with the results
        (out / ".gitignore").write_text("work/\n*.tmp*\n.vqdna.lock\n")
    spec_path = out / "benchmark.json"
    if spec_path.exists() and not same_budget(read_json(spec_path)["budget"], b):
        raise ValueError(f"{spec_path}: this folder holds a benchmark with another budget; use another --out")
    write_json_atomic(spec_path, {"budget": budget_dict(b)})
    corpus_files = resolve_fasta([str(c) for c in ([corpus] if isinstance(corpus, (str, Path)) else corpus)])
    corpus_info = prepare_corpus(corpus_files, work, b)
    task_list = resolve_tasks(tasks, work)
    if only_tasks is not None:
        if report:
            raise ValueError("only_tasks computes part of a table: call it with report=False")
        unknown = set(only_tasks) - {t for t, _ in task_list}
        if unknown:
            raise ValueError(f"only_tasks {sorted(unknown)} are not among the tasks {[t for t, _ in task_list]}")
        task_list = [(t, d) for t, d in task_list if t in set(only_tasks)]
    loaded: dict = {}

    def task_obj(tn, td):
        if tn not in loaded:
            loaded[tn] = load_task(td)
        return loaded[tn]

    def task_seeds(tn, td) -> int:
        return b.seeds_for(len(task_obj(tn, td).train))

    log(f"budget {b.name}: {len(plan.pipelines)} tokenizers, {len(plan.random)} random-init controls, "
        f"{len(plan.references)} references x {len(task_list)} tasks; corpus {corpus_info['nucleotides']:,} nt; "
        f"pre-training {b.pretrain_nucleotides:,} nt per tokenizer")
    ledger = Ledger(out, b)

    # the k-mer references first (seconds), in this process
    for tn, td in task_list:
        for ref in plan.references:
            if ref != "cnn":
                ledger.ensure(ref, tn, "reference", lambda: reference_cell(ref, tn, task_obj(tn, td), b),
                              f"reference: {ref} on {tn}")
    units = plan.units()
    if jobs > 1 and len(units) > 1:
        work_of = {tn: task_work(task_obj(tn, td), b) for tn, td in task_list}
        _run_shards(work_queue(plan, work_of), jobs, corpus=corpus, tasks=tasks, budget=budget, out=out,
                    seeds=seeds, max_train=max_train, small_task_rows=small_task_rows,
                    large_task_seeds=large_task_seeds, device=device, work=work, settings=settings)
    for unit in units:
        cache = CodeCache()  # a pipeline's rows (fine-tune, probe, random init) encode each task row once
        for name in unit:
            _run_row(name, ledger, corpus_info, task_list, task_obj, task_seeds, work, b, device, cache)
    if not report:
        return None
    results = aggregate(out, plan, [t for t, _ in task_list], b, corpus_info,
                        run={"resumed_cells": ledger.resumed, "computed_cells": ledger.computed,
                             "this_call_wall_time_s": time.time() - t_start,
                             "tasks": {t: portable_path(d) for t, d in task_list}})
    log(f"done: {out / 'results.md'}")
    return results


def _rebuild_if_lost(name, pre: dict | None, ledger: Ledger, corpus_info, task_list, tdir: Path, b, device, *,
                     row: str | None = None, kinds=("finetune", "probe")) -> None:
    """A resumed run in a new work folder (a fresh machine keeps only the committed cells) still
    has cells of ``row`` (default: ``name`` itself; or its random-init control, which reads this
    LM's architecture and vocabulary) to compute but no tokenizer / LM of ``name``: rebuild them.
    Every stage is seeded, so the rebuilt LM is the one the cells were made with; its validation
    loss is compared with the pretrain cell's and a difference is reported, not hidden."""
    row = row or name
    need = any(read_cell(ledger.out, row, tn, kind, b) is None for tn, _ in task_list for kind in kinds)
    if not need or (tdir / "lm" / "model.safetensors").exists():
        return
    if pre is None:
        raise FileNotFoundError(f"{row}: no pre-trained {name} LM in {tdir / 'lm'} (its architecture and frozen "
                                f"vocabulary) and no {name} pretrain cell to rebuild it from; run {name} first")
    log(f"{name}: no tokenizer / LM in {tdir} but {row} cells to compute: rebuilding them (seeded, deterministic)")
    again = pretrain_cell(name, corpus_info, tdir, b, device)
    old, new = pre.get("lm_val_loss"), again.get("lm_val_loss")
    if old is not None and new is not None and abs(old - new) > 1e-4:
        log(f"{name}: WARNING the rebuilt LM's validation loss {new:.5f} differs from the pretrain cell's {old:.5f}")


def _run_row(name, ledger: Ledger, corpus_info, task_list, task_obj, task_seeds, work: Path, b, device,
             cache: CodeCache) -> None:
    """Every cell of one row (a pipeline, a random-init control or the cnn reference); ``cache``
    holds the task codes of the row's tokenizer for the unit's other rows."""
    if name == "cnn":
        for tn, td in task_list:
            c = ledger.ensure("cnn", tn, "reference",
                              lambda: reference_cell("cnn", tn, task_obj(tn, td), b, seeds=task_seeds(tn, td),
                                                     device=device),
                              lambda: f"cnn: training on {tn} ({task_seeds(tn, td)} seed(s))")
            log(f"cnn / {tn}: test {c['metric']} = {c['score']:.4f}")
        return
    base = random_base(name)
    if base is not None:
        tdir = work / base
        _rebuild_if_lost(base, read_cell(ledger.out, base, "corpus", "pretrain", b), ledger, corpus_info, task_list,
                         tdir, b, device, row=name, kinds=("finetune",))
        for tn, td in task_list:
            c = ledger.ensure(name, tn, "finetune",
                              lambda: finetune_cell(name, tn, td, tdir, b, seeds=task_seeds(tn, td), device=device,
                                                    random_init=True, code_cache=cache),
                              lambda: f"{name}: fine-tuning {tn} from a random-init LM ({task_seeds(tn, td)} seed(s))")
            log(f"{name} / {tn}: fine-tune test {c['metric']} = {c['score']:.4f}")
        return
    tdir = work / name
    pre = ledger.ensure(name, "corpus", "pretrain", lambda: pretrain_cell(name, corpus_info, tdir, b, device))
    _rebuild_if_lost(name, pre, ledger, corpus_info, task_list, tdir, b, device)
    for tn, td in task_list:
        c = ledger.ensure(name, tn, "finetune",
                          lambda: finetune_cell(name, tn, td, tdir, b, seeds=task_seeds(tn, td), device=device,
                                                code_cache=cache),
                          lambda: f"{name}: fine-tuning {tn} ({task_seeds(tn, td)} seed(s))")
        log(f"{name} / {tn}: fine-tune test {c['metric']} = {c['score']:.4f}")
        c = ledger.ensure(name, tn, "probe", lambda: probe_cell(name, tn, task_obj(tn, td), tdir, b, code_cache=cache))
        log(f"{name} / {tn}: linear probe test {c['metric']} = {c['score']:.4f}")


# relative cost of one row (training + stride-1 sequences cost most); only for ordering the queue.
# A random-init control costs about its pipeline's fine-tuning share; a strided learned row is
# counted as its stride-1 row (tokenizer training dominates; its LM reads fewer tokens). From the
# `full` table's row times (benchmarks/results/full/, "Wall time"): the CNN's 15 epochs with early
# stopping cost more than an LM row's fine-tuning, and fine-tuning is ~2/3 of an LM row.
_COST = {"hrq": 3.0, "vq": 3.0, "char": 2.0, "kmer3": 2.2, "kmer6": 1.5, "bpe": 0.4, "nt6": 0.4, "cnn": 3.5}
_RANDOM_SHARE = 0.65


def _row_cost(name: str) -> float:
    base = random_base(name)
    if base:
        return _RANDOM_SHARE * _row_cost(base)
    learned = learned_row(name)
    return _COST.get(learned[0] if learned else name, 1.0)


def task_work(task, b) -> float:
    """A task's share of a row's fine-tuning work: seeds x training rows used x mean length."""
    n = min(len(task.train), b.max_train)
    return b.seeds_for(len(task.train)) * n * float(np.mean([len(s) for s in task.train.sequences]))


def row_queue(plan: RowPlan) -> list[list[str]]:
    """The plan's units of work (:meth:`RowPlan.units`: a pipeline with its random-init controls,
    or the CNN) for ``--jobs`` processes, most expensive first. Each process takes the next unit
    when its last one is done, so the processes stay busy to the end whatever the cost estimates
    miss (fixed groups, the rule before, can leave a core idle for the end of the run)."""
    return sorted(plan.units(), key=lambda u: -sum(_row_cost(n) for n in u))


def work_queue(plan: RowPlan, work_per_task: dict[str, float]) -> list[tuple[list[str], list[str] | None]]:
    """The ``--jobs`` queue: (rows, task names or None for all) per unit, most expensive first.
    A pipeline unit takes every task (its LM is pre-trained once); the CNN row, which needs no
    pre-training, is one unit per task (its cost shared by ``work_per_task``, :func:`task_work`), so the last units
    are small and fill whichever process is free: with whole rows the last row could leave a
    core idle for most of an hour (the `full-fast` table's 2 h 16 min against a 124 min split)."""
    total = sum(work_per_task.values()) or 1.0
    out = []
    for unit in row_queue(plan):
        if unit == ["cnn"]:
            out += [(["cnn"], [t], _row_cost("cnn") * w / total) for t, w in work_per_task.items()]
        else:
            out.append((unit, None, sum(_row_cost(n) for n in unit)))
    return [(rows, tasks) for rows, tasks, _ in sorted(out, key=lambda u: -u[2])]


def exit_with_parent(parent: int, *, every: float = 5.0) -> None:
    """Stop this process when ``parent`` is gone. A shard whose parent was killed (Ctrl-C,
    ``kill``) would otherwise go on writing cells and models into the same folders as the next
    run: seen here, an orphaned shard of a killed run overwrote a restarted run's LM."""
    import os
    import threading
    import time as _time

    def watch():
        while True:
            _time.sleep(every)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _worker_start(threads: int, parent: int) -> None:
    """Once in each queue process: its share of the threads, and stop when the parent is gone."""
    import torch

    exit_with_parent(parent)
    torch.set_num_threads(threads)


def _run_shards(units: list[tuple[list[str], list[str] | None]], jobs: int, **kwargs) -> None:
    """Run the units of :func:`work_queue` in ``jobs`` (spawned) processes, each taking the next
    unit when it is free (units start in the queue's order); raise if one fails."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    import torch

    jobs = min(jobs, len(units))
    threads = max(1, torch.get_num_threads() // jobs)
    names = [",".join(rows) + (f" on {','.join(tasks)}" if tasks else "") for rows, tasks in units]
    log(f"{jobs} processes x {threads} thread(s); units in this order: " + " | ".join(names))
    errors = {}
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_worker_start,
                             initargs=(threads, os.getpid())) as pool:
        futures = {pool.submit(run_benchmark, **kwargs, tokenizers=rows, jobs=1, report=False, only_tasks=tasks):
                   names[i] for i, (rows, tasks) in enumerate(units)}
        for f in as_completed(futures):  # a failed unit is said when it fails, not when the last one ends
            if f.exception() is not None:
                errors[futures[f]] = f.exception()
                log(f"rows {futures[f]} FAILED: {f.exception()!r} (the other rows go on)")
    if errors:
        raise RuntimeError("benchmark shard(s) failed: " + "; ".join(f"{g}: {e!r}" for g, e in errors.items())
                           + " (the finished cells are kept; run again with the same --out to resume)")

