"""One table over the cells of several benchmark folders: a row per (folder, row), a column per task.

Issue 18 reads the in-domain runs against the out-of-domain `full` table and the CNN: the same
tasks, rows and seeds, another corpus, protocol or LM size per folder. Scores are test x 100
(mean over seeds, ± sample std where a cell has more than one seed); a task without a cell is –;
"mean (n)" is over the tasks that every printed row has, so rows are compared on the same tasks.
With --vs ROW (a "folder:row" spec) a second table gives every row minus that row per task.

    python benchmarks/compare_cells.py full:hrq full:hrq-random indomain:hrq indomain:hrq-random \\
        indomain-wide:hrq full:cnn --vs full:cnn
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
TASKS = ["mouse0", "mouse2", "mouse3", "mouse4", "prom_300_tata", "prom_core_all", "prom_core_notata",
         "prom_core_tata", "tf0", "tf1", "tf2", "tf3", "tf4", "doench2016"]
GAP = ["mouse0", "mouse3", "mouse4", "tf2", "tf3"]  # the CNN's lead in the `full` table


def cell(folder: str, row: str, task: str) -> dict | None:
    cells = RESULTS / folder / "cells"
    for kind in ("finetune", "reference"):
        p = cells / f"{row}__{task}__{kind}.json"
        if p.exists():
            return json.loads(p.read_text())
    return None


def fmt(c: dict | None) -> str:
    if c is None:
        return "–"
    vals = c.get("values") or [c["score"]]
    return f"{100 * np.mean(vals):.1f}" + (f" ± {100 * np.std(vals, ddof=1):.1f}" if len(vals) > 1 else "")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", nargs="+", help="FOLDER:ROW, e.g. indomain:hrq (folder under benchmarks/results)")
    ap.add_argument("--tasks", nargs="+", default=TASKS)
    ap.add_argument("--vs", help="FOLDER:ROW every row is also compared with, per task")
    a = ap.parse_args(argv)
    grid = {r: {t: cell(*r.split(":", 1), t) for t in a.tasks} for r in a.rows}
    common = [t for t in a.tasks if all(grid[r][t] is not None for r in a.rows)]
    gap = [t for t in common if t in GAP]
    print("| row | " + " | ".join(a.tasks) + f" | mean ({len(common)}) | CNN-gap mean ({len(gap)}) |")
    print("|---|" + "---|" * (len(a.tasks) + 2))
    for r in a.rows:
        m = np.mean([grid[r][t]["score"] for t in common]) if common else float("nan")
        g = np.mean([grid[r][t]["score"] for t in gap]) if gap else float("nan")
        print(f"| {r} | " + " | ".join(fmt(grid[r][t]) for t in a.tasks) + f" | {100 * m:.1f} | {100 * g:.1f} |")
    if a.vs:
        ref = {t: cell(*a.vs.split(":", 1), t) for t in a.tasks}
        print(f"\nminus {a.vs}:\n")
        print("| row | " + " | ".join(a.tasks) + " | ahead |")
        print("|---|" + "---|" * (len(a.tasks) + 1))
        for r in a.rows:
            d = {t: grid[r][t]["score"] - ref[t]["score"] for t in a.tasks if grid[r][t] and ref[t]}
            print(f"| {r} | " + " | ".join(f"{100 * d[t]:+.1f}" if t in d else "–" for t in a.tasks)
                  + f" | {sum(v > 0 for v in d.values())} of {len(d)} |")


if __name__ == "__main__":
    main()
