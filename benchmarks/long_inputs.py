"""Long LM inputs (issue 12): wall time and peak memory of one forward pass, and of one forward +
backward pass, at 1k, 8k and 32k tokens, for each kind of positions.

Rows (``--kinds``):

* ``absolute``: BERT's learned table (the default); run up to ``--absolute-max`` tokens (512, the
  table of ``LMConfig``; a larger value builds a larger table, to compare the cost only: such a
  table never learns positions it is not trained on);
* ``rotary``, ``alibi``: positions inside attention (no table);
* ``rotary+ckpt``, ``alibi+ckpt``: the same with gradient checkpointing (only the forward +
  backward pass differs; its forward cell is left empty).

The model is a ``VQDNAForMaskedLM`` with ``--hidden/--layers/--heads`` (default: the ``small``
preset's body, 256 / 4 / 4), learned input tables over ``--vocab`` codes per level, one sequence
of ``L`` tokens + [CLS]; forward + backward computes the masked-LM loss on 25% of the positions.
A first check on this CPU (hidden 64, 2 layers, 2 heads, 1 thread, attention dropout 0.1): 32,768
tokens take 15 s and 640 MB per forward pass, 164 s and 2.1 GB per forward + backward pass (243 s
and 2.2 GB with checkpointing, which saves little in so small a body).
Each (kind, length, pass) runs in a **fresh subprocess**, so its peak RSS (``VmHWM``) is its own:
reported as the process peak and as the peak above the RSS once the model is built. Time is the
median of ``--repeats`` passes after one warm-up pass. A pass that fails (out of memory, a kill
by the OS, ``--timeout``) is reported as such and the others go on.

    # the full measurement (a quiet machine; hours on a 2-core CPU, most of it at 32k):
    python benchmarks/long_inputs.py --lengths 1024,8192,32768 --repeats 3 --threads 2 --json long_inputs.json
    # the same without attention dropout (SDPA's flash kernel on CPU in the backward pass too)
    python benchmarks/long_inputs.py --lengths 1024,8192,32768 --repeats 3 --threads 2 --attention-dropout 0
    # a check in a minute
    python benchmarks/long_inputs.py --lengths 1024 --repeats 1 --hidden 32 --layers 1 --heads 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

KINDS = ("absolute", "rotary", "rotary+ckpt", "alibi", "alibi+ckpt")


def status_mb(key: str) -> float:
    """VmRSS / VmHWM (the peak) of this process in MB; the other benchmarks' memory workers import it."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(spec: dict) -> dict:
    """One (kind, length, pass) measurement in this process: seconds per pass and peak memory."""
    import torch

    torch.set_num_threads(spec["threads"])
    from vqdna.lm.masking import mask_codes
    from vqdna.hub.modeling_vqdna import VQDNAConfig, VQDNAForMaskedLM

    kind, L, backward = spec["kind"], spec["length"], spec["backward"]
    positions = kind.split("+")[0]
    vocab = spec["vocab"]
    torch.manual_seed(0)
    cfg = VQDNAConfig(vocab_sizes=vocab, input_mode="learned", hidden_size=spec["hidden"],
                      num_hidden_layers=spec["layers"], num_attention_heads=spec["heads"],
                      intermediate_size=4 * spec["hidden"], max_position_embeddings=L + 1,
                      position_embedding=positions, attention_probs_dropout_prob=spec["attention_dropout"])
    model = VQDNAForMaskedLM(cfg)
    if kind.endswith("+ckpt"):
        model.activation_checkpointing_enable()
    g = torch.Generator().manual_seed(0)
    ids = torch.stack([torch.randint(0, v, (1, L + 1), generator=g) for v in vocab], 1)
    ids[:, :, 0] = torch.tensor([v + 2 for v in vocab]).view(1, -1)  # [CLS]
    x, y = mask_codes(ids, vocab, generator=g)
    base = status_mb("VmRSS")

    def one_pass() -> float:
        t0 = time.perf_counter()
        if backward:
            model.train()
            model(x, labels=y).loss.backward()
            model.zero_grad(set_to_none=True)
        else:
            model.eval()
            with torch.no_grad():
                model(x)
        return time.perf_counter() - t0

    for _ in range(spec["warmup"]):
        one_pass()
    times = [one_pass() for _ in range(spec["repeats"])]
    return {"seconds": statistics.median(times), "times": times, "peak_rss_mb": status_mb("VmHWM"),
            "peak_over_model_mb": status_mb("VmHWM") - base,
            "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6}


def measure(spec: dict, timeout: float) -> dict:
    """:func:`worker` in a fresh subprocess; a failure comes back as {"error": ...}."""
    try:
        out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                             text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
        return {"error": "killed (out of memory?)" if out.returncode < 0 else tail[:80]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cell(r: dict | None, key: str, fmt: str) -> str:
    if r is None:
        return "—"
    return r["error"] if "error" in r else format(r[key], fmt)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", default="1024,8192,32768", help="tokens per sequence ([CLS] aside), comma-separated")
    p.add_argument("--kinds", default="absolute,rotary,rotary+ckpt", help=f"comma-separated, of {', '.join(KINDS)}")
    p.add_argument("--absolute-max", type=int, default=512,
                   help="longest input for the absolute table (512 = LMConfig's; larger builds a larger table)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--attention-dropout", type=float, default=0.1,
                   help="LMConfig's 0.1; on CPU any dropout leaves SDPA's flash kernel (attention then runs in "
                        "checkpointed blocks of queries: same memory bound, several times slower); 0 keeps it")
    p.add_argument("--vocab", default="512,1024", help="codes per level (HRQ 512,1024; VQ 512)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes per cell (median), after the warm-up")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes before them")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per cell before it is given up")
    p.add_argument("--json", help="also write every measurement here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(json.loads(a.worker))))
        return 0
    kinds = a.kinds.split(",")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        p.error(f"unknown kinds {unknown}; known: {', '.join(KINDS)}")
    lengths = [int(v) for v in a.lengths.split(",")]
    common = dict(vocab=[int(v) for v in a.vocab.split(",")], hidden=a.hidden, layers=a.layers, heads=a.heads,
                  repeats=a.repeats, warmup=a.warmup, threads=a.threads, attention_dropout=a.attention_dropout)
    rows = []
    for L in lengths:
        for kind in kinds:
            row = dict(kind=kind, length=L, forward=None, backward=None)
            if kind == "absolute" and L > a.absolute_max:
                row["note"] = f"beyond its {a.absolute_max} positions"
            else:
                for backward in (False, True):
                    if backward or not kind.endswith("+ckpt"):  # checkpointing changes only the backward
                        r = measure(dict(common, kind=kind, length=L, backward=backward), a.timeout)
                        row["backward" if backward else "forward"] = r
                        print(f"{kind} {L:,} {'fwd+bwd' if backward else 'fwd'}: {r}", file=sys.stderr)
            rows.append(row)
    print(f"\nOne sequence of L tokens + [CLS]; body hidden {a.hidden}, {a.layers} layers, {a.heads} heads, vocab "
          f"{common['vocab']}, attention dropout {a.attention_dropout:g}; {a.threads} thread(s); median of {a.repeats} passes after {a.warmup} warm-up; peak RSS of a "
          f"fresh process per cell (above the built model in parentheses)\n")
    print("| positions | tokens | forward (s) | forward peak RSS (MB) | fwd+bwd (s) | fwd+bwd peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        if "note" in row:
            print(f"| {row['kind']} | {row['length']:,} | {row['note']} | | | |")
            continue
        cells = []
        for r in (row["forward"], row["backward"]):
            mem = _cell(r, "peak_rss_mb", ".0f")
            if r is not None and "error" not in r:
                mem += f" ({r['peak_over_model_mb']:.0f})"
            cells += [_cell(r, "seconds", ".2f"), mem]
        print(f"| {row['kind']} | {row['length']:,} | " + " | ".join(cells) + " |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(args={**vars(a), "json": Path(a.json).name}, rows=rows), f, indent=1)  # no path of this machine
    return 0


if __name__ == "__main__":
    sys.exit(main())
