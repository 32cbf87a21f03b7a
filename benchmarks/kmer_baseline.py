"""k-mer bag + linear model reference row on the 13 GUE tasks and the gRNA regression task.

Usage (from the repository root)::

    python benchmarks/kmer_baseline.py                      # data in ../shared/data
    python benchmarks/kmer_baseline.py --data /path/to/data --tasks GUE/tf/0 grna/doench2016
    python benchmarks/kmer_baseline.py --json results.json  # also write every result

Prints a markdown table (task, metric, value, chosen hyper-parameter, seconds), the mean MCC
over the GUE tasks (x100, as GUE papers print it) and the total wall time. Single process.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from vqdna.references.kmer import run_kmer_baseline
from vqdna.sequence.tasks import load_task

GUE_TASKS = (
    [f"GUE/prom/prom_core_{x}" for x in ("all", "notata", "tata")]
    + ["GUE/prom/prom_300_tata"]
    + [f"GUE/tf/{i}" for i in range(5)]
    + [f"GUE/mouse/{i}" for i in (0, 2, 3, 4)]
)
OTHER_TASKS = ["grna/doench2016"]
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"data root (default {DEFAULT_DATA})")
    ap.add_argument("--tasks", nargs="*", default=None,
                    help="task folders relative to --data (default: the 13 GUE tasks and grna/doench2016)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write all results to this JSON file")
    args = ap.parse_args(argv)

    tasks = args.tasks or GUE_TASKS + OTHER_TASKS
    t_all = time.perf_counter()
    results = []
    print("| task | metric | value | chosen | seconds |")
    print("|---|---|---:|---|---:|")
    for rel in tasks:
        folder = args.data / rel
        if not folder.is_dir():
            print(f"skipping {rel}: {folder} not found", file=sys.stderr)
            continue
        t0 = time.perf_counter()
        task = load_task(folder, name=rel)
        r = run_kmer_baseline(task, seed=args.seed)
        r["seconds"] = time.perf_counter() - t0  # loading included
        results.append(r)
        m = r["primary_metric"]
        v = r["test"][m]
        shown = f"{100 * v:.1f}" if m == "mcc" else f"{v:.3f}"
        label = "MCC x100" if m == "mcc" else m
        print(f"| {rel} | {label} | {shown} | {r['scaling']} {r['param_name']}={r['param']:g} | "
              f"{r['seconds']:.1f} |", flush=True)
    total = time.perf_counter() - t_all
    gue = [r for r in results if r["task"].startswith("GUE/") and r["primary_metric"] == "mcc"]
    print()
    if gue:
        mean = 100 * sum(r["test"]["mcc"] for r in gue) / len(gue)
        print(f"mean MCC x100 over {len(gue)} GUE tasks: {mean:.1f}")
    print(f"total wall time: {total:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
