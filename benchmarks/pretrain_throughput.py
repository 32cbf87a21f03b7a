"""Pre-training throughput and peak memory: VQDNAForMaskedLM vs transformers' BertForMaskedLM.

Both models have the same body (hidden, layers, heads, intermediate size, 513 positions, SDPA
attention), the same batch (``--batch`` windows of ``--length`` tokens + [CLS]) and the same
masking (25% of positions carry labels); BERT's vocabulary is the sum of the level vocabularies
plus the 3 special ids, and it reads level 0's ids. One training step = forward + backward +
AdamW step.

* Throughput: both models live in one process and **alternate** (``--repeats`` rounds of
  ``--steps`` timed steps each, after a warm-up step), so a busy shared CPU slows both alike;
  the table shows the median tokens/s per model.
* Peak memory: one fresh subprocess per model (VmHWM from /proc/self/status after a few steps),
  reported as the process peak and as the peak above the RSS after imports.

    python benchmarks/pretrain_throughput.py --config small --batch 8 --length 256 --repeats 5

Differences that are ours by design: the input embedding is a lookup in frozen codebooks + a
projection (computed on the projected tables, so it costs a (V x D x H) product per step instead
of one per token) instead of one trainable table, and the MLM heads score only the masked
positions (BERT's head scores every position, then ignores 75% of them in the loss).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def build(kind: str, spec: dict):
    """(model, step function returning the loss) for ``kind`` in {"vqdna", "bert"}."""
    import torch

    from vqdna.config import lm_configs
    from vqdna.lm.masking import mask_codes

    mc, _ = lm_configs(spec["config"])
    vocab = spec["vocab"]
    B, L = spec["batch"], spec["length"] + 1
    g = torch.Generator().manual_seed(0)
    codes = torch.stack([torch.randint(0, v, (B, L), generator=g) for v in vocab], 1)
    codes[:, :, 0] = torch.tensor([v + 2 for v in vocab]).view(1, -1)  # [CLS]
    x, y = mask_codes(codes, vocab, generator=g)
    torch.manual_seed(0)
    if kind == "vqdna":
        from vqdna.hub.modeling_vqdna import VQDNAConfig, VQDNAForMaskedLM

        cfg = VQDNAConfig(vocab_sizes=vocab, codebook_dim=spec["codebook_dim"], hidden_size=mc.hidden_size,
                          num_hidden_layers=mc.num_layers, num_attention_heads=mc.num_heads,
                          intermediate_size=mc.intermediate_size, max_position_embeddings=513)
        model = VQDNAForMaskedLM(cfg)
        model.vqdna.embeddings.set_codebooks([torch.randn(v, spec["codebook_dim"]) for v in vocab])
        attn = model.vqdna.encoder.config._attn_implementation
        return model, (lambda: model(x, labels=y).loss), attn
    from transformers import BertConfig, BertForMaskedLM

    cfg = BertConfig(vocab_size=sum(vocab) + 3, hidden_size=mc.hidden_size, num_hidden_layers=mc.num_layers,
                     num_attention_heads=mc.num_heads, intermediate_size=mc.intermediate_size,
                     max_position_embeddings=513, type_vocab_size=1, attn_implementation="sdpa")
    model = BertForMaskedLM(cfg)
    bx = torch.where(x[:, 0] < vocab[0], x[:, 0], x[:, 0] - vocab[0] + sum(vocab))
    by = y[:, 0].contiguous()
    return model, (lambda: model(input_ids=bx, labels=by).loss), model.config._attn_implementation


def trainer(model, step):
    import torch

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            step().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    return run


def memory_worker(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    import transformers  # noqa: F401  (imports count in the baseline, not in the model's memory)

    import vqdna.hub.modeling_vqdna  # noqa: F401
    from long_inputs import status_mb  # run as a script (--memory-worker): benchmarks/ is on sys.path

    base = status_mb("VmRSS")
    model, step, _ = build(spec["model"], spec)
    trainer(model, step)(2)
    return {"peak_rss_mb": status_mb("VmHWM"), "peak_over_import_mb": status_mb("VmHWM") - base}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="small", help="LM preset for the body sizes (tiny | small | base)")
    p.add_argument("--vocab", default="512", help="code vocabulary per level, e.g. 512 (VQ) or 512,1024 (HRQ)")
    p.add_argument("--codebook-dim", type=int, default=64, help="tokenizer code dimension (small tokenizer: 64)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--steps", type=int, default=4, help="timed steps per model per round")
    p.add_argument("--repeats", type=int, default=5, help="rounds (ours, BERT alternating); median reported")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--memory-worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.memory_worker:
        print(json.dumps(memory_worker(json.loads(a.memory_worker))))
        return 0
    import torch

    torch.set_num_threads(a.threads)
    vocab = [int(v) for v in a.vocab.split(",")]
    spec = dict(config=a.config, vocab=vocab, codebook_dim=a.codebook_dim, batch=a.batch, length=a.length,
                threads=a.threads)
    tokens = a.batch * (a.length + 1) * a.steps
    runs, info = {}, {}
    for kind in ("vqdna", "bert"):
        model, step, attn = build(kind, spec)
        runs[kind] = trainer(model, step)
        runs[kind](1)  # warm-up
        info[kind] = dict(params_m=sum(q.numel() for q in model.parameters()) / 1e6, attn=attn, tps=[])
    for r in range(a.repeats):
        for kind in ("vqdna", "bert"):
            info[kind]["tps"].append(tokens / runs[kind](a.steps))
        print(f"round {r + 1}/{a.repeats}: ours {info['vqdna']['tps'][-1]:.0f}, BERT {info['bert']['tps'][-1]:.0f} "
              f"tokens/s", file=sys.stderr)
    for kind in ("vqdna", "bert"):
        out = subprocess.run([sys.executable, __file__, "--memory-worker", json.dumps(dict(spec, model=kind))],
                             capture_output=True, text=True, check=True)
        info[kind].update(json.loads(out.stdout.strip().splitlines()[-1]))
        info[kind]["median"] = statistics.median(info[kind]["tps"])
    ours, bert = info["vqdna"], info["bert"]
    print(f"\nPre-training step (fwd+bwd+AdamW), preset `{a.config}`, vocab {vocab}, batch {a.batch} x "
          f"{a.length + 1} tokens, {a.threads} thread(s), median of {a.repeats} alternating rounds of {a.steps} steps "
          f"(attention: {ours['attn']} / {bert['attn']})\n")
    print("| model | params (M) | tokens/s (median) | peak RSS (MB) | peak - after imports (MB) |")
    print("|---|---:|---:|---:|---:|")
    for name, m in (("VQDNAForMaskedLM (ours)", ours), ("transformers BertForMaskedLM", bert)):
        print(f"| {name} | {m['params_m']:.2f} | {m['median']:.0f} | {m['peak_rss_mb']:.0f} | "
              f"{m['peak_over_import_mb']:.0f} |")
    print(f"| ratio ours / BERT | | **{ours['median'] / bert['median']:.2f}x** | "
          f"{ours['peak_rss_mb'] / bert['peak_rss_mb']:.2f}x | "
          f"{ours['peak_over_import_mb'] / max(bert['peak_over_import_mb'], 1e-9):.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
