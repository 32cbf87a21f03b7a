"""Pre-training throughput and peak memory: VQDNAForMaskedLM vs transformers' BertForMaskedLM.

Both models have the same body (hidden, layers, heads, intermediate size, 513 positions, SDPA
attention), the same batch (``--batch`` windows of ``--length`` tokens + [CLS]) and the same
masking (25% of positions carry labels); BERT's vocabulary is the sum of the level vocabularies
plus the 3 special ids. One training step = forward + backward + AdamW step. Each measurement
runs in a fresh subprocess (so peak RSS, read from /proc/self/status VmHWM, belongs to one
model); the models alternate, ``--repeats`` times, and the table shows medians.

    python benchmarks/pretrain_throughput.py --config small --batch 8 --length 256 --repeats 3

Differences that are ours by design: the input embedding is a lookup in frozen codebooks + a
projection (VQDNA) instead of one trainable table, and the MLM heads score only the masked
positions (BERT's head scores every position, then ignores 75% of them in the loss).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    from vqdna.config import lm_configs
    from vqdna.lm.masking import mask_codes

    mc, _ = lm_configs(spec["config"])
    vocab = spec["vocab"]
    B, L = spec["batch"], spec["length"] + 1
    base_rss = current_rss_mb()
    g = torch.Generator().manual_seed(0)
    codes = torch.stack([torch.randint(0, v, (B, L), generator=g) for v in vocab], 1)
    codes[:, :, 0] = torch.tensor([v + 2 for v in vocab]).view(1, -1)  # [CLS]
    x, y = mask_codes(codes, vocab, generator=g)
    if spec["model"] == "vqdna":
        from vqdna.lm.modeling import VQDNAConfig, VQDNAForMaskedLM

        cfg = VQDNAConfig(vocab_sizes=vocab, codebook_dim=spec["codebook_dim"], hidden_size=mc.hidden_size,
                          num_hidden_layers=mc.num_layers, num_attention_heads=mc.num_heads,
                          intermediate_size=mc.intermediate_size, max_position_embeddings=513)
        model = VQDNAForMaskedLM(cfg)
        model.vqdna.embeddings.set_codebooks([torch.randn(v, spec["codebook_dim"]) for v in vocab])

        def step():
            return model(x, labels=y).loss
    else:
        from transformers import BertConfig, BertForMaskedLM

        V = sum(vocab) + 3
        cfg = BertConfig(vocab_size=V, hidden_size=mc.hidden_size, num_hidden_layers=mc.num_layers,
                         num_attention_heads=mc.num_heads, intermediate_size=mc.intermediate_size,
                         max_position_embeddings=513, type_vocab_size=1, attn_implementation="sdpa")
        model = BertForMaskedLM(cfg)
        # one id per position: level 0's code (or special), labels level 0's
        bx = torch.where(x[:, 0] < vocab[0], x[:, 0], x[:, 0] - vocab[0] + sum(vocab))
        by = y[:, 0]

        def step():
            return model(input_ids=bx, labels=by).loss
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    attn = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if spec["model"] == "vqdna":
        attn = model.vqdna.encoder.config._attn_implementation
    for i in range(spec["warmup"] + spec["steps"]):
        if i == spec["warmup"]:
            t0 = time.perf_counter()
        loss = step()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    dt = time.perf_counter() - t0
    return {"model": spec["model"], "tokens_per_s": spec["steps"] * B * L / dt, "step_s": dt / spec["steps"],
            "peak_rss_mb": peak_rss_mb(), "peak_over_import_mb": peak_rss_mb() - base_rss,
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "attn": attn}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="small", help="LM preset for the body sizes (tiny | small | base)")
    p.add_argument("--vocab", default="512", help="code vocabulary per level, e.g. 512 (VQ) or 512,1024 (HRQ)")
    p.add_argument("--codebook-dim", type=int, default=64, help="tokenizer code dimension (small tokenizer: 64)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(json.loads(a.worker))))
        return 0
    vocab = [int(v) for v in a.vocab.split(",")]
    results = {"vqdna": [], "bert": []}
    for r in range(a.repeats):
        for model in ("vqdna", "bert"):
            spec = dict(model=model, config=a.config, vocab=vocab, codebook_dim=a.codebook_dim, batch=a.batch,
                        length=a.length, steps=a.steps, warmup=a.warmup, threads=a.threads)
            out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                                 text=True, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            results[model].append(res)
            print(f"repeat {r + 1}/{a.repeats} {model}: {res['tokens_per_s']:.0f} tokens/s, "
                  f"peak RSS {res['peak_rss_mb']:.0f} MB", file=sys.stderr)
    med = {m: {k: statistics.median(x[k] for x in rs) for k in ("tokens_per_s", "peak_rss_mb",
                                                                 "peak_over_import_mb", "params_m")}
           for m, rs in results.items()}
    ours, bert = med["vqdna"], med["bert"]
    print(f"\nPre-training step (fwd+bwd+AdamW), preset `{a.config}`, vocab {vocab}, batch {a.batch} x "
          f"{a.length + 1} tokens, {a.threads} thread(s), median of {a.repeats} (attention: "
          f"{results['vqdna'][0]['attn']} / {results['bert'][0]['attn']})\n")
    print("| model | params (M) | tokens/s | peak RSS (MB) | peak - baseline (MB) |")
    print("|---|---:|---:|---:|---:|")
    for name, m in (("VQDNAForMaskedLM (ours)", ours), ("transformers BertForMaskedLM", bert)):
        print(f"| {name} | {m['params_m']:.2f} | {m['tokens_per_s']:.0f} | {m['peak_rss_mb']:.0f} | "
              f"{m['peak_over_import_mb']:.0f} |")
    print(f"| ratio ours / BERT | | **{ours['tokens_per_s'] / bert['tokens_per_s']:.2f}x** | "
          f"{ours['peak_rss_mb'] / bert['peak_rss_mb']:.2f}x | "
          f"{ours['peak_over_import_mb'] / max(bert['peak_over_import_mb'], 1e-9):.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
