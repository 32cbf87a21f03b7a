"""Choosing the CPU fine-tuning recipe on dev sets (issue 9 item 1).

One run = one fine-tuning of a pre-trained LM on one task (``vqdna.lm.finetune.finetune``, 1
seed, up to ``--max-train`` rows) with a given method / learning rate / pooling / epochs; it
appends one JSON line (dev and test of the primary metric, the per-epoch dev curve, wall time)
to ``--log``. ``--render`` prints the table of a log, sorted by task. Choose on **dev**; test is
recorded to report, never to choose.

    python benchmarks/finetune_recipe.py --lm LM_DIR --task ../shared/data/GUE/mouse/0 \
        --method lora+embed --lr 1e-3 --pooling meanmax --epochs 4 --log runs.jsonl
    python benchmarks/finetune_recipe.py --render runs.jsonl
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def run(a) -> dict:
    import torch

    from vqdna.config import FinetuneConfig
    from vqdna.lm.finetune import finetune

    torch.set_num_threads(a.threads)
    cfg = FinetuneConfig(method=a.method, lr=a.lr, epochs=a.epochs, max_train=a.max_train, batch_size=a.batch,
                         pooling=a.pooling, unfreeze_tokenizer=a.unfreeze)
    t = time.time()
    with tempfile.TemporaryDirectory() as out:
        r = finetune(a.lm, a.task, out=out, seeds=a.seeds, config=cfg, random_init=a.random_init, progress=False)
    m = r["metric"]
    return dict(tag=a.tag, lm=Path(a.lm).name, task=Path(a.task).name, method=a.method, lr=a.lr, epochs=a.epochs,
                pooling=a.pooling or "mean", unfreeze=a.unfreeze, random_init=a.random_init, batch=a.batch,
                rows=r["per_seed"][0]["train_rows"], metric=m, dev=r["dev"][m]["mean"], test=r["test"][m]["mean"],
                test_std=r["test"][m]["std"], seeds=a.seeds,
                dev_curve=[h[f"dev_{m}"] for h in r["per_seed"][0]["history"]], wall_s=time.time() - t)


def render(log: Path) -> str:
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    rows.sort(key=lambda r: (r["task"], -r["dev"]))
    out = ["| task | rows | method | lr | pooling | epochs | init | dev | test | dev per epoch | wall (s) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        init = "random" if r.get("random_init") else ("+encoder" if r.get("unfreeze") else "pre-trained")
        curve = " ".join(f"{100 * x:.1f}" for x in r["dev_curve"])
        out.append(f"| {r['task']} | {r['rows']:,} | {r['method']} | {r['lr']:g} | {r['pooling']} | {r['epochs']} | "
                   f"{init} | {100 * r['dev']:.1f} | {100 * r['test']:.1f} | {curve} | {r['wall_s']:.0f} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--render", type=Path, help="print the table of a log and exit")
    ap.add_argument("--lm")
    ap.add_argument("--task")
    ap.add_argument("--method", default="lora")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--pooling", default="")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-train", type=int, default=10000)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--random-init", action="store_true")
    ap.add_argument("--unfreeze", action="store_true", help="also fine-tune the tokenizer's encoder")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tag", default="")
    ap.add_argument("--log", type=Path, default=Path("finetune_recipe.jsonl"))
    a = ap.parse_args(argv)
    if a.render:
        print(render(a.render), end="")
        return
    if not (a.lm and a.task):
        ap.error("--lm and --task are required (or --render LOG)")
    row = run(a)
    print(json.dumps(row))
    with open(a.log, "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
