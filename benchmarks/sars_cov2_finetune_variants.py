"""One fine-tuning variant on a row of benchmarks/sars_cov2_lengths.py (its LM and task codes in OUT),
outside the table: how batch size, the head's normalisation, the learning rate, a frozen LM or
the LM's share of the learning rate change a cell. Appends a JSON line per run to --log.

    python benchmarks/sars_cov2_finetune_variants.py --row bpe --length whole --batch 2 --seed 0 \\
        --tag backbone0.1 --set '{"backbone_lr_scale": 0.1}'
    python benchmarks/sars_cov2_finetune_variants.py --row bpe --length whole --batch 2 --tag head --set '{"method": "head"}'
    # the head before the small-batch fix: batch statistics at any batch size
    python benchmarks/sars_cov2_finetune_variants.py --row bpe --length 8000 --batch 2 --small-batch 1 --tag batch-stats
    # LP-FT: the head first on the frozen LM (100 epochs on cached vectors), then the table's recipe;
    # --random-init: the same on the row's random-init control
    python benchmarks/sars_cov2_finetune_variants.py --row hrq-s8 --length whole --tag lpft100 --set '{"head_warmup_epochs": 100}'

The table's recipe (``finetune_recipe`` of OUT/settings.json: cpu, the LM at 0.1x lr, 3 epochs, the
table's batch per length) with the fields of ``--set`` replaced; the same training rows, dev and test as its cells.
"""
import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sars_cov2_lengths as sc  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--row", required=True, choices=sc.LM_ROWS)
    ap.add_argument("--length", required=True, help="1000, 8000 or whole")
    ap.add_argument("--batch", type=int, help="rows per step (default: the table's for that length)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", required=True, help="the variant's name in the log")
    ap.add_argument("--random-init", action="store_true",
                    help="fine-tune the row's random-init control (its vocabulary, random LM weights) instead")
    ap.add_argument("--set", default="{}", help="JSON object of FinetuneConfig fields to replace")
    ap.add_argument("--small-batch", type=int, help="override SMALL_BATCH (1 = batch statistics at any batch size)")
    ap.add_argument("--out", default="runs/sars-cov-2-lengths", help="the table's OUT (default %(default)s)")
    ap.add_argument("--log", default="runs/sars-cov-2-lengths/variants.jsonl")
    a = ap.parse_args(argv)
    import torch

    import vqdna.hub.modeling_vqdna as modeling
    import vqdna.lm.finetune as finetune

    torch.set_num_threads(1)
    if a.small_batch:
        finetune.SMALL_BATCH = modeling.SMALL_BATCH = a.small_batch
    L = a.length if a.length == "whole" else int(a.length)
    out = Path(a.out)
    s = sc.saved_settings(out)  # the table's settings, as its run wrote them
    task, codes = sc.t6.task_codes(a.row, L, s, out)
    extra = json.loads(a.set)
    cfg = dataclasses.replace(sc.t6.finetune_recipe(L, s), **extra, **({"batch_size": a.batch} if a.batch else {}))
    idx = sc.t6.train_rows(task, L, s)
    t0 = time.time()
    r = finetune.train_one(out / "rows" / a.row / "lm", task, codes, idx, cfg, seed=a.seed, random_init=a.random_init)
    res = dict(tag=a.tag, row=f"{a.row}-random" if a.random_init else a.row, L=str(L), bs=cfg.batch_size, seed=a.seed, extra=extra, small_batch=a.small_batch,
               test_acc=r["test"]["accuracy"], test_f1=r["test"]["f1_macro"], dev_acc=r["dev"]["accuracy"],
               best_epoch=r["best_epoch"], history=r["history"], wall=time.time() - t0)
    print(json.dumps(res))
    Path(a.log).parent.mkdir(parents=True, exist_ok=True)
    with open(a.log, "a") as fh:
        fh.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
