"""CPU pre-training recipe sweep (issue 9 item 3): LM size x compute, per tokenizer.

For every (tokenizer, size, budget) point: pre-train a masked LM on the tokenizer's code store
for the number of steps that the budget's training FLOPs buy at that size (each point is its
own run with its own warm-up and cosine schedule), record the held-out masked loss / accuracy
and the wall time, then fine-tune it on a few tasks with the benchmark's fine-tuning recipe
(1 seed, dev and test). Optional extra points compare span masking with single-position
masking at one size and budget. Every point is a JSON file in ``OUT/cells/`` (a killed sweep
resumes); ``OUT/sweep.md`` is the table.

Compute = training FLOPs, 3 x forward, forward per token = 2 x (non-embedding body parameters)
+ 4 x layers x T x hidden (attention) + mask_prob x 2 x (MLM head parameters). Budgets are given
in TFLOP; the wall time each point really took on this machine is reported beside it.

    python benchmarks/pretrain_sweep.py --codes hrq=WORK/hrq/codes char=WORK/char/codes \
        --sizes tiny,wide,mini --budgets 8,24 --tasks GUE/prom/prom_core_tata GUE/mouse/2 grna/doench2016 \
        --out benchmarks/results/pretrain-sweep --work /tmp/sweep
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from vqdna.benchmark import task_name
from vqdna.benchmark.pipeline import train_flops_per_step
from vqdna.config import FinetuneConfig

# model shapes of the sweep (the chosen one becomes an LM preset in vqdna.config)
SIZES = {
    "tiny": dict(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128),
    "wide": dict(hidden_size=128, num_layers=2, num_heads=4, intermediate_size=256),
    "mini": dict(hidden_size=128, num_layers=4, num_heads=4, intermediate_size=512),
    "small": dict(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024),
}
SEQ, BATCH, MASK = 256, 16, 0.25


def flops_per_step(size: dict, vocab_sizes, *, seq: int = SEQ, batch: int = BATCH, mask: float = MASK) -> float:
    """Training FLOPs of one step (see the module docstring)."""
    H, L, F = size["hidden_size"], size["num_layers"], size["intermediate_size"]
    body = L * (4 * H * H + 2 * H * F)
    head = H * H + H * sum(vocab_sizes)
    return train_flops_per_step(nonembedding=body, head=head, layers=L, hidden=H, seq=seq, batch=batch, mask=mask)


def run_point(tok: str, codes: Path, size: str, tflop: float, mask_mode: str, tasks, work: Path, ft: FinetuneConfig,
              pretrain_only: bool = False):
    from vqdna.codes import CodeStore
    from vqdna.lm.finetune import finetune
    from vqdna.lm.pretrain import pretrain

    vocab = CodeStore(codes).manifest["tokenizer"]["vocab_sizes"]
    t0 = time.time()
    name = f"{tok}_{size}_{tflop:g}T_{mask_mode}"
    if tflop == 0:  # the random-init control: any pre-trained LM of this size gives the architecture
        return name, random_point(tok, size, tasks, work, ft, t0)
    steps = max(int(round(tflop * 1e12 / flops_per_step(SIZES[size], vocab))), 20)
    lm_dir = work / name
    pretrain([codes], out=lm_dir, config="tiny", max_steps=steps, resume=True, progress=False,
             overrides=dict(**SIZES[size], seq_length=SEQ, batch_size=BATCH, warmup_steps=max(steps // 20, 10),
                            eval_every=max(steps // 6, 1), checkpoint_every=max(steps // 6, 1), eval_windows=128,
                            mask_mode=mask_mode, lr=2e-3 if SIZES[size]["hidden_size"] <= 64 else 1e-3))
    m = json.loads((lm_dir / "metrics.json").read_text())
    cell = dict(tokenizer=tok, size=size, model=SIZES[size], tflop=tflop, mask_mode=mask_mode, steps=steps,
                tokens=m["tokens_seen"], pretrain_wall_s=m.get("wall_time_s"), parameters=m.get("parameters"),
                val_loss=m.get("val_loss"), val_acc=m.get("val_acc"),
                curve=[dict(step=h["step"], val_loss=h.get("val_loss"), val_acc=h.get("val_acc"),
                            wall=h.get("wall_time")) for h in m.get("history", []) if "val_loss" in h],
                tasks={})
    if pretrain_only:
        return name, None
    for task in tasks:
        r = finetune(lm_dir, task, out=work / f"ft_{name}_{Path(task).name}", seeds=1, config=ft, progress=False)
        metric = r["metric"]
        cell["tasks"][task_name(Path(task))] = dict(metric=metric, dev=r["dev"][metric]["mean"],
                                             test=r["test"][metric]["mean"], wall_s=r["wall_time_s"])
        shutil.rmtree(work / f"ft_{name}_{Path(task).name}", ignore_errors=True)
    cell["wall_s"] = time.time() - t0
    return name, cell


def random_point(tok: str, size: str, tasks, work: Path, ft: FinetuneConfig, t0: float) -> dict:
    from vqdna.lm.finetune import finetune

    lms = sorted(p for p in work.glob(f"{tok}_{size}_*T_token") if (p / "model.safetensors").exists())
    if not lms:
        raise FileNotFoundError(f"no pre-trained {tok} {size} LM in {work} to take the architecture from")
    cell = dict(tokenizer=tok, size=size, model=SIZES[size], tflop=0.0, mask_mode="random-init", steps=0, tokens=0,
                pretrain_wall_s=0.0, parameters=None, val_loss=None, val_acc=None, curve=[], tasks={},
                architecture_from=lms[0].name)
    for task in tasks:
        r = finetune(lms[0], task, out=work / f"ft_random_{tok}_{size}", seeds=1, config=ft, random_init=True,
                     progress=False)
        m = r["metric"]
        cell["tasks"][task_name(Path(task))] = dict(metric=m, dev=r["dev"][m]["mean"], test=r["test"][m]["mean"],
                                             wall_s=r["wall_time_s"])
        shutil.rmtree(work / f"ft_random_{tok}_{size}", ignore_errors=True)
    cell["wall_s"] = time.time() - t0
    return cell


def render(cells: list[dict], tasks) -> str:
    names = [task_name(Path(t)) for t in tasks]
    lines = ["| tokenizer | size | masking | TFLOP | steps | tokens | pre-train wall (min) | val masked loss | "
             "val masked acc | " + " | ".join(f"{n} dev / test" for n in names) + " | mean test |",
             "|---" * (10 + len(names)) + "|"]
    for c in sorted(cells, key=lambda c: (c["tokenizer"], list(SIZES).index(c["size"]), c["mask_mode"], c["tflop"])):
        scores = [c["tasks"].get(n) for n in names]
        cols = [f"{100 * s['dev']:.1f} / {100 * s['test']:.1f}" if s else "–" for s in scores]
        mean = sum(s["test"] for s in scores if s) / max(sum(1 for s in scores if s), 1)
        loss = "–" if c["val_loss"] is None else f"{c['val_loss']:.3f}"
        acc = "–" if c["val_acc"] is None else f"{100 * c['val_acc']:.1f}%"
        lines.append(f"| {c['tokenizer']} | {c['size']} | {c['mask_mode']} | {c['tflop']:g} | {c['steps']} | "
                     f"{c['tokens'] / 1e6:.1f}M | {c['pretrain_wall_s'] / 60:.1f} | {loss} | "
                     f"{acc} | " + " | ".join(cols) + f" | {100 * mean:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--codes", nargs="+", required=True, help="TOKENIZER=CODE_DIR")
    ap.add_argument("--sizes", default="tiny,wide,mini")
    ap.add_argument("--budgets", default="8,24", help="training TFLOP per point, comma-separated")
    ap.add_argument("--span", default="", help="TOKENIZER:SIZE:TFLOP points also run with span masking")
    ap.add_argument("--only", default="", help="TOKENIZER:SIZE:TFLOP:MASK points to run (default: the grid)")
    ap.add_argument("--tasks", nargs="+", required=True)
    ap.add_argument("--method", default="full")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--pooling", default="")
    ap.add_argument("--max-train", type=int, default=10000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pretrain-only", action="store_true", help="pre-train the points (resumable), no cells")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    out, work = Path(a.out), Path(a.work)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    codes = dict(c.split("=", 1) for c in a.codes)
    ft = FinetuneConfig(method=a.method, lr=a.lr, epochs=a.epochs, max_train=a.max_train, pooling=a.pooling)
    points = [(t, s, float(b), "token") for t in codes for s in a.sizes.split(",") for b in a.budgets.split(",")]
    points += [(t, s, float(b), "span") for t, s, b in (p.split(":") for p in a.span.split(",") if p)]
    if a.only:
        points = [(t, s, float(b), m) for t, s, b, m in (p.split(":") for p in a.only.split(","))]
    for tok, size, tflop, mode in points:
        name = f"{tok}_{size}_{tflop:g}T_{mode}"
        f = out / "cells" / f"{name}.json"
        if f.exists():
            continue
        print(f"[sweep {time.strftime('%H:%M:%S')}] {name}", flush=True)
        _, cell = run_point(tok, Path(codes[tok]), size, tflop, mode, a.tasks, work, ft, a.pretrain_only)
        if cell is None:
            continue
        cell["finetune"] = dict(method=a.method, lr=a.lr, epochs=a.epochs, pooling=a.pooling or "mean",
                                max_train=a.max_train, seeds=1)
        tmp = f.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(cell, indent=1))
        os.replace(tmp, f)
        print(json.dumps({k: v for k, v in cell.items() if k != "curve"}), flush=True)
    cells = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    (out / "sweep.md").write_text(render(cells, a.tasks))
    print(render(cells, a.tasks))


if __name__ == "__main__":
    sys.exit(main())
