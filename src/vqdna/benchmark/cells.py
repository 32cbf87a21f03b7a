"""Cell files and resume: one JSON per (row, task, kind) under ``OUT/cells/``.

``kind`` is ``finetune`` | ``probe`` | ``reference``, or ``pretrain`` with task ``corpus`` for
a pipeline's per-tokenizer stage. A cell is written atomically when it is complete, so a killed
benchmark run again with the same ``--out`` skips every cell that exists (:class:`Ledger`) and
resumes the tokenizer / LM training from their checkpoints. A cell records the budget's name; a
cell of another budget in the folder is an error, never silently mixed in.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from ..io import read_json, write_json_atomic
from .budgets import Budget

__all__ = ["cell_path", "read_cell", "write_cell", "Ledger", "log"]


def log(msg: str) -> None:
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cell_path(out: Path, tokenizer: str, task: str, kind: str) -> Path:
    return Path(out) / "cells" / f"{tokenizer}__{task}__{kind}.json"


def read_cell(out: Path, tokenizer: str, task: str, kind: str, budget: Budget) -> dict | None:
    p = cell_path(out, tokenizer, task, kind)
    if not p.exists():
        return None
    c = read_json(p)
    if c.get("budget") != budget.name:
        raise ValueError(f"{p}: made with budget {c.get('budget')!r}, this run is {budget.name!r}; "
                         f"use another --out")
    return c


def write_cell(out: Path, cell: dict) -> dict:
    write_json_atomic(cell_path(out, cell["tokenizer"], cell["task"], cell["kind"]), cell)
    return cell


class Ledger:
    """Resume bookkeeping of one call: :meth:`ensure` returns a cell that exists, or computes,
    writes and returns it; ``resumed`` / ``computed`` count both."""

    def __init__(self, out: Path, budget: Budget):
        self.out, self.budget = Path(out), budget
        self.resumed = self.computed = 0

    def ensure(self, row: str, task: str, kind: str, compute: Callable[[], dict],
               message: str | Callable[[], str] | None = None) -> dict:
        """The cell if it exists (resume), else ``compute()`` written atomically; ``message``
        (a string or a function giving one) is logged before computing."""
        c = read_cell(self.out, row, task, kind, self.budget)
        if c is not None:
            self.resumed += 1
            return c
        if message:
            log(message() if callable(message) else message)
        self.computed += 1
        return write_cell(self.out, compute())
