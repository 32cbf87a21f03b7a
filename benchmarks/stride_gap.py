"""Stride 4 against stride 1 on the benchmark's tasks, each row at its best recipe chosen on dev
(issue 22, item 4): the gap the issue asks to bring within 3 points (goal 1).

Every option is a set of fine-tuning cells of one row: a ``vqdna benchmark`` --out folder (its
``ROW__TASK__finetune.json`` cells; e.g. the `full` budget, or the same with ``--set
'ft_overrides={"position_lr_scale": 3}'``) or a ``benchmarks/stride_phases.py`` cells folder (one
option per phase variant). Each row chooses among its own options on dev only, in two ways:

* **one recipe**: the option with the best mean dev score over the tasks, then its test mean;
* **per task**: for each task the option with the best dev score (a per-task hyperparameter,
  e.g. reading all four phases on ChIP-seq peaks but one on TSS-aligned promoters).

An option missing a task takes no part in the per-task choice of that task (said in the table).

    python benchmarks/stride_gap.py --tasks $T14 \\
        --stride1 benchmarks/results/full benchmarks/results/stride4-recipes/stride1-poslr3 \\
        --stride4 benchmarks/results/full-strided benchmarks/results/stride4-recipes/poslr3 \\
        --phases benchmarks/results/stride-phases/cells benchmarks/results/stride4-recipes/phases-poslr3/cells
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stride_phases  # noqa: E402  (reads a benchmark folder's and a phases run's cells)


def benchmark_option(folder: Path, row: str, tasks: list[str]) -> dict:
    """task -> (test, dev) of ``row``'s fine-tuning cells in a benchmark --out folder."""
    return {t: (c["score"], c["dev"]) for t, c in stride_phases.cells_of(str(folder), row, tasks).items()}


def phase_options(folder: Path, tasks: list[str]) -> dict[str, dict]:
    """variant -> task -> (test, dev) of a stride_phases.py cells folder, these tasks only."""
    options = {v: {t: c for t, c in cells.items() if t in tasks} for v, cells in stride_phases.phase_cells(folder).items()}
    return {v: cells for v, cells in options.items() if cells}


def label(folder: Path) -> str:
    """A folder's name in the table: its last two parts (``results/full``, ``phases-poslr3/cells``)."""
    return "/".join(folder.parts[-2:])


def choose(options: dict[str, dict], tasks: list[str]) -> tuple[dict, dict]:
    """(one recipe, per task): each {"test": mean, "dev": mean, "picked": ...} chosen on dev."""
    complete = {k: v for k, v in options.items() if all(t in v for t in tasks)}
    best = max(complete, key=lambda k: statistics.mean(complete[k][t][1] for t in tasks))
    one = dict(picked=best, test=statistics.mean(complete[best][t][0] for t in tasks),
               dev=statistics.mean(complete[best][t][1] for t in tasks))
    picks = {t: max((k for k in options if t in options[k]), key=lambda k: options[k][t][1]) for t in tasks}
    per = dict(picked=picks, test=statistics.mean(options[picks[t]][t][0] for t in tasks),
               dev=statistics.mean(options[picks[t]][t][1] for t in tasks))
    return one, per


def mean(values: list) -> str:
    """A mean x 100 as table text; "—" when a task is missing."""
    return "—" if None in values else f"{100 * statistics.mean(values):.1f}"


def table(rows: dict[str, dict], tasks: list[str]) -> str:
    L = ["| row | option | test mean | dev mean | " + " | ".join(tasks) + " |",
         "|---|---|---:|---:|" + "---:|" * len(tasks)]
    chosen = {}
    for row, options in rows.items():
        for name, cells in options.items():
            test = [cells.get(t, (None,))[0] for t in tasks]
            dev = [cells.get(t, (None, None))[1] for t in tasks]
            L.append(f"| {row} | {name} | {mean(test)} | {mean(dev)} | "
                     + " | ".join("—" if v is None else f"{100 * v:.1f}" for v in test) + " |")
        one, per = choose(options, tasks)
        chosen[row] = (one, per)
        L.append(f"| **{row}** | **one recipe, best dev mean: {one['picked']}** | **{100 * one['test']:.1f}** | "
                 f"{100 * one['dev']:.1f} | " + " | ".join(f"{100 * options[one['picked']][t][0]:.1f}" for t in tasks) + " |")
        L.append(f"| **{row}** | **per task, best dev** | **{100 * per['test']:.1f}** | {100 * per['dev']:.1f} | "
                 + " | ".join(f"{100 * options[per['picked'][t]][t][0]:.1f}" for t in tasks) + " |")
    if len(chosen) == 2:
        (r1, (o1, p1)), (r4, (o4, p4)) = chosen.items()
        L += ["", f"Gap ({r4} − {r1}), test: one recipe each {100 * (o4['test'] - o1['test']):+.1f}; "
                  f"per task each {100 * (p4['test'] - p1['test']):+.1f}; {r4} per task against {r1}'s one recipe "
                  f"{100 * (p4['test'] - o1['test']):+.1f}."]
        for row, (_, per) in chosen.items():
            L.append(f"\n{row}, per-task picks: " + ", ".join(f"{t}: {k}" for t, k in per["picked"].items()))
    return "\n".join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", required=True, help="task folders (their names key the cells)")
    ap.add_argument("--stride1", nargs="+", type=Path, required=True, help="benchmark --out folders with `hrq` cells")
    ap.add_argument("--stride4", nargs="+", type=Path, required=True, help="benchmark --out folders with `hrq-s4` cells")
    ap.add_argument("--phases", nargs="*", type=Path, default=[], help="stride_phases.py cells folders (stride 4)")
    a = ap.parse_args(argv)
    from vqdna.benchmark.inputs import task_name

    tasks = [task_name(Path(t)) for t in a.tasks]
    rows = {"hrq (stride 1)": {label(f): benchmark_option(f, "hrq", tasks) for f in a.stride1},
            "hrq-s4": {label(f): benchmark_option(f, "hrq-s4", tasks) for f in a.stride4}}
    for f in a.phases:
        for variant, cells in phase_options(f, tasks).items():
            rows["hrq-s4"][f"{label(f)}: {variant}"] = cells
    for row, options in rows.items():
        empty = [k for k, v in options.items() if not v]
        if empty:
            raise SystemExit(f"{row}: no fine-tuning cells of these tasks in {empty}")
    print(table(rows, tasks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
