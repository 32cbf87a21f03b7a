"""Why does pre-training not pay at stride 4? (issue 22, item 3) Pre-training variants of one strided
benchmark row, each fine-tuned under the row's budget protocol beside its random-init control.

Reads a ``vqdna benchmark`` work folder of a strided row (``WORK/hrq-s4``: its code store and its
pre-trained LM, whose ``pretrain_config.yaml`` is the base recipe). Every variant pre-trains a new LM
on the same codes with the base recipe plus the variant's overrides (the masking, the learning rate,
the number of steps, ...), then fine-tunes it on every task with the budget's fine-tuning config
(``Budget.finetune_config()``: the `full` budget's 4 epochs, lr 1e-3, mean+max pooling) and
``--seeds`` seeds; ``random`` fine-tunes the base architecture from random weights (the frozen
codebooks kept), the benchmark's ``-random`` row. One JSON per (variant, task) in ``OUT/cells/``
(a killed run resumes); ``OUT/results.md`` is the table (test MCC / Spearman x 100, mean +- sd over
seeds; the last column is the variant's mean minus the random init's).

    OMP_NUM_THREADS=1 python benchmarks/stride_pretraining.py --row WORK/hrq-s4 --budget full \\
        --tasks ../shared/data/GUE/mouse/3 ../shared/data/GUE/mouse/2 ... \\
        --variants base,random,span2,lr5e-4,steps500 --out benchmarks/results/stride4-pretraining --work /tmp/s4v
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml

# name -> overrides of the base pre-training recipe (None: the random-init control)
VARIANTS = {
    "base": {},  # the benchmark row's own recipe, run again (same seed: the same LM)
    "random": None,
    "span2": dict(mask_mode="span", span_mean=2.0),  # spans of ~2 codes = 8 nt at stride 4
    "span4": dict(mask_mode="span", span_mean=4.0),
    "mask15": dict(mask_prob=0.15),
    "lr5e-4": dict(lr=5e-4),
    "warmup100": dict(warmup_steps=100),
    "steps500": dict(max_steps=500),
    "steps8000": dict(max_steps=8000),
}
# name -> (base, factor): the base LM with its absolute position embeddings scaled by ``factor``
# before fine-tuning, no new pre-training (a causal test: is the position signal what pre-training
# drowns under grown token vectors?)
SCALED_POSITIONS = {"base-pos4": ("base", 4.0)}
VARIANTS.update({k: dict(position_scale=f) for k, (_, f) in SCALED_POSITIONS.items()})
# name -> (LM variant, FinetuneConfig overrides): a fine-tuning change, run for a pre-trained LM and
# for the random-init control alike (one protocol for both rows)
FINETUNE_VARIANTS = {"base-poslr10": ("base", dict(position_lr_scale=10.0)),
                     "random-poslr10": ("random", dict(position_lr_scale=10.0)),
                     "lr5e-4-poslr10": ("lr5e-4", dict(position_lr_scale=10.0)),
                     "base-poslr3": ("base", dict(position_lr_scale=3.0)),
                     "random-poslr3": ("random", dict(position_lr_scale=3.0))}
VARIANTS.update({k: dict(finetune=ft) for k, (_, ft) in FINETUNE_VARIANTS.items()})
POSITIONS = "vqdna.encoder.embeddings.position_embeddings.weight"


def pretrain_variant(row: Path, name: str, work: Path) -> Path:
    from vqdna.lm.pretrain import pretrain

    if name == "base":
        return row / "lm"
    if name in SCALED_POSITIONS:
        from safetensors.torch import load_file, save_file

        base, factor = SCALED_POSITIONS[name]
        src, lm_dir = pretrain_variant(row, base, work), work / name
        if not (lm_dir / "model.safetensors").exists():
            shutil.copytree(src, lm_dir, ignore=lambda d, names: ["checkpoints", "model.safetensors"]
                            if Path(d) == src else [], dirs_exist_ok=True)
            w = load_file(src / "model.safetensors")
            w[POSITIONS] = w[POSITIONS] * factor
            save_file(w, lm_dir / "model.tmp.safetensors", metadata={"format": "pt"})
            os.replace(lm_dir / "model.tmp.safetensors", lm_dir / "model.safetensors")
        return lm_dir
    base = yaml.safe_load((row / "lm" / "pretrain_config.yaml").read_text())
    train = dict(base["train"], **VARIANTS[name])
    lm_dir = work / name
    if not (lm_dir / "metrics.json").exists() or not json.loads((lm_dir / "metrics.json").read_text()).get("complete"):
        overrides = {**base["model"], **{k: v for k, v in train.items() if k != "max_steps"}}
        pretrain([row / "codes"], out=lm_dir, config="tiny", max_steps=train["max_steps"], resume=True,
                 progress=False, overrides=overrides)
    return lm_dir


def run_cell(row: Path, name: str, task: str, work: Path, seeds: int, cfg) -> dict:
    from vqdna.benchmark import task_name
    from vqdna.lm.finetune import finetune

    lm_name, ft = FINETUNE_VARIANTS.get(name, (name, {}))
    random_init = lm_name == "random"
    lm_dir = pretrain_variant(row, "base" if random_init else lm_name, work)
    out = work / f"ft_{name}_{task_name(Path(task))}"
    t0 = time.time()
    r = finetune(lm_dir, task, out=out, seeds=seeds, config=replace(cfg, **ft), random_init=random_init,
                 progress=False)
    shutil.rmtree(out, ignore_errors=True)
    m = r["metric"]
    lm = {} if random_init else json.loads((lm_dir / "metrics.json").read_text())
    return dict(variant=name, overrides=VARIANTS[name], task=task_name(Path(task)), metric=m,
                test=r["test"][m]["values"], dev=r["dev"][m]["values"], seeds=seeds,
                best_epochs=[s["best_epoch"] for s in r["per_seed"]], wall_s=time.time() - t0,
                lm_val_loss=lm.get("val_loss"), lm_val_acc=lm.get("val_acc"),
                lm_val_ppl={k: v for k, v in lm.items() if k.startswith("val_ppl_l")})


def input_scales(lm_dir: Path, *, n: int = 4096) -> dict:
    """How far the LM's input vectors spread: the mean distance of a code's input vector (the
    projected mean of its levels' codebook vectors, random codes) from their mean, and of the
    absolute position embeddings of a 64-token window from theirs; their ratio is how loud the
    position signal is beside the code signal in the sum the embedding LayerNorm sees."""
    from safetensors.torch import load_file

    w = load_file(lm_dir / "model.safetensors")
    books = [w[k] for k in sorted(k for k in w if k.startswith("vqdna.embeddings.codebook"))]
    if not books or POSITIONS not in w:
        return {}
    g = torch.Generator().manual_seed(0)
    # the codebook buffers end with 3 zero rows for the special ids
    mean = sum(b[:-3][torch.randint(b.shape[0] - 3, (n,), generator=g)] for b in books) / len(books)
    tok = mean @ w["vqdna.embeddings.proj.weight"].t() + w["vqdna.embeddings.proj.bias"]
    pos = w[POSITIONS][:66]
    t, q = float((tok - tok.mean(0)).norm(dim=1).mean()), float((pos - pos.mean(0)).norm(dim=1).mean())
    return dict(code_spread=t, position_spread=q, position_over_code=q / t)


def render(cells: list[dict], variants: list[str], tasks: list[str]) -> str:
    by = {(c["variant"], c["task"]): c for c in cells}

    def mean(v):
        s = [by[(v, t)] for t in tasks if (v, t) in by]
        return sum(statistics.mean(c["test"]) for c in s) / len(s) if len(s) == len(tasks) else None

    def control(v):  # the random-init row fine-tuned the same way as v
        ft = FINETUNE_VARIANTS.get(v, (None, {}))[1]
        return next((k for k, (lm, f) in FINETUNE_VARIANTS.items() if lm == "random" and f == ft), "random") \
            if ft else "random"
    lines = ["| variant | overrides | LM val masked acc | " + " | ".join(tasks) + " | mean | − its random init |",
             "|---" * (len(tasks) + 5) + "|"]
    for v in variants:
        cols = []
        for t in tasks:
            c = by.get((v, t))
            if c is None:
                cols.append("–")
                continue
            sd = f" ± {100 * statistics.stdev(c['test']):.1f}" if len(c["test"]) > 1 else ""
            cols.append(f"{100 * statistics.mean(c['test']):.1f}{sd}")
        acc = next((c["lm_val_acc"] for c in cells if c["variant"] == v and c.get("lm_val_acc") is not None), None)
        m = mean(v)
        lines.append(f"| {v} | {json.dumps(VARIANTS[v]) if VARIANTS[v] is not None else 'random init'} | "
                     f"{'–' if acc is None else f'{100 * acc:.1f}%'} | " + " | ".join(cols) +
                     f" | {'–' if m is None else f'{100 * m:.1f}'} | "
                     f"{'–' if m is None or (ref := mean(control(v))) is None or v == control(v) else f'{100 * (m - ref):+.1f}'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    from vqdna.benchmark import task_name
    from vqdna.benchmark.budgets import BUDGETS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--row", required=True, help="the strided row's folder in a benchmark work folder (codes/, lm/)")
    ap.add_argument("--budget", default="full", help="whose fine-tuning config every cell uses")
    ap.add_argument("--tasks", nargs="+", required=True)
    ap.add_argument("--variants", default="base,random,span2,lr5e-4,steps500", help=f"of {','.join(VARIANTS)}")
    ap.add_argument("--seeds", default="budget",
                    help="fine-tuning seeds per task: a number, or 'budget' (the budget's rule: 3 seeds on the "
                         "tasks with at most 4,904 training rows in `full`, 1 on the others)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True, help="scratch folder for the variants' LMs")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    variants = a.variants.split(",")
    if unknown := [v for v in variants if v not in VARIANTS]:
        ap.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    row, out, work = Path(a.row), Path(a.out), Path(a.work)
    budget = BUDGETS[a.budget]
    cfg = budget.finetune_config()

    def seeds(task: str) -> int:
        if a.seeds != "budget":
            return int(a.seeds)
        from vqdna.sequence.tasks import load_task
        return budget.seeds_for(len(load_task(task).train))

    (out / "cells").mkdir(parents=True, exist_ok=True)
    for v in variants:
        for task in a.tasks:
            f = out / "cells" / f"{v}__{task_name(Path(task))}.json"
            if f.exists():
                continue
            print(f"[stride-pretraining {time.strftime('%H:%M:%S')}] {v} / {task_name(Path(task))}", flush=True)
            cell = run_cell(row, v, task, work, seeds(task), cfg)
            tmp = f.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(cell, indent=1))
            os.replace(tmp, f)
    cells = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    done = [v for v in VARIANTS if any(c["variant"] == v for c in cells)]
    table = render(cells, done, [task_name(Path(t)) for t in a.tasks])
    rows = ["| variant | code-vector spread | position spread | position / code |", "|---|---|---|---|"]
    for v in done:
        lm_dir = {"random": None, "base": row / "lm"}.get(v, work / v)
        if v == "random":  # the random-init control's LM: the architecture's own initialisation
            from vqdna.hub.configuration_vqdna import VQDNAConfig
            from vqdna.hub.modeling_vqdna import VQDNAForMaskedLM
            from safetensors.torch import load_file, save_file

            lm_dir = work / "random-init"
            if not (lm_dir / "model.safetensors").exists():
                lm_dir.mkdir(parents=True, exist_ok=True)
                torch.manual_seed(0)
                m = VQDNAForMaskedLM(VQDNAConfig.from_pretrained(row / "lm"))
                w = load_file(row / "lm" / "model.safetensors")
                m.vqdna.embeddings.set_codebooks([w[f"vqdna.embeddings.codebook{i}"][:-3]
                                                  for i in range(len(m.config.vocab_sizes))])
                save_file({k: t.contiguous() for k, t in m.state_dict().items()}, lm_dir / "model.safetensors")
        if lm_dir is None or not (lm_dir / "model.safetensors").exists():
            continue
        sc = input_scales(lm_dir)
        if sc:
            rows.append(f"| {v} | {sc['code_spread']:.3f} | {sc['position_spread']:.3f} | {sc['position_over_code']:.3f} |")
    table += "\nInput vectors of each variant's LM (before fine-tuning):\n\n" + "\n".join(rows) + "\n"
    (out / "results.md").write_text(table)
    print(table)


if __name__ == "__main__":
    sys.exit(main())
