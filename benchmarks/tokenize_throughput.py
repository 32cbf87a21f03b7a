"""Stage-1 tokenization throughput, peak memory and share of the fp32 matmul peak (CPU).

Usage (from the repository root)::

    python benchmarks/tokenize_throughput.py                     # paper + tiny, VQ + HRQ, 200k random nt
    python benchmarks/tokenize_throughput.py --configs paper --quantizers vq --repeats 5
    python benchmarks/tokenize_throughput.py --fasta genome.fa.gz --length 500000 --json out.json
    python benchmarks/tokenize_throughput.py --quick             # 50k nt, no plain/compile rows
    python benchmarks/tokenize_throughput.py --from-json out.json  # print an earlier run again

Rows per config (randomly initialised weights: speed does not depend on their values):

* ``tokenizer (default)``: ``VQDNATokenizer.encode_indices`` on the whole input, the path users
  take (halo'd chunks, batching, packed inference path: oneDNN GEMMs with fused GELU / residual).
* ``tokenizer, plain modules``: the same call with ``fast=False`` (the nn.Modules as trained,
  under inference mode): the reference, measured in the same run.
* ``tokenizer, plain + torch.compile``: ``fast=False, compile=True``; its first call compiles.
* ``model forward, packed`` / ``model forward, plain``: one forward (encoder + code search) on a
  batch shaped like the tokenizer's batches, no chunking; these rows count every token of the
  batch, halos included, while the tokenizer rows count input nucleotides only.

Every row runs in a fresh subprocess. Its first call (packing / compiling included) is timed
apart and also sets the memory figure; then ``--repeats`` timed calls alternate with
4096 x 4096 fp32 ``torch.mm`` calls (same threads) so that every repeat has its own peak
measured moments before and after it; ``% of FLOP limit`` is the median over repeats of
throughput x FLOPs/nt / (mean of those two peaks). On a shared machine this pairing keeps
contention out of the ratio far better than timing the peak once. The oneDNN column repeats
the ratio against a 4096 x 4096 fp32 GEMM through oneDNN (the library the packed path uses).

Memory: ``peak RSS +MB`` is the resident memory one warm call adds: after the first call,
freed heap memory is returned to the OS (glibc ``malloc_trim``), the RSS high-water mark is reset
(``/proc/self/clear_refs``), and VmHWM - VmRSS (/proc/self/status) is read after the first timed
call: activations of a batch, chunk buffers and outputs; weights, packed weights, the input and
library code are already resident. Falls back to a ``resource.getrusage`` max-RSS delta when the
reset is not allowed (then only growth beyond earlier peaks shows). FLOPs/nt is ``VQDNAAutoencoder.flops_per_nucleotide()``, checked against
``torch.utils.flop_counter`` on the plain encoder + ``squared_distances``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROW_KINDS = ("tok", "tok_plain", "tok_compile", "fwd", "fwd_plain")
ROW_NAMES = {
    "tok": "tokenizer (default)",
    "tok_plain": "tokenizer, plain modules",
    "tok_compile": "tokenizer, plain + torch.compile",
    "fwd": "model forward, packed",
    "fwd_plain": "model forward, plain",
}


# ------------------------------------------------------------ memory
def _status(key: str) -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    """Return freed heap memory to the OS (glibc malloc_trim) so that a warm call's memory shows in RSS."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------ worker
def _input(spec) -> "np.ndarray":
    import numpy as np

    if spec.get("fasta"):
        from vqdna.sequence import alphabet
        from vqdna.sequence.fasta import read_fasta

        parts, n = [], 0
        for rec in read_fasta(spec["fasta"]):
            parts.append(alphabet.encode(rec.sequence[:spec["length"] - n]))
            n += len(parts[-1])
            if n >= spec["length"]:
                break
        return np.concatenate(parts)
    return np.random.default_rng(0).integers(0, 4, spec["length"]).astype(np.uint8)


def worker(spec: dict) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    from vqdna.config import tokenizer_configs
    from vqdna.tokenizers.learned import VQDNATokenizer
    from vqdna.tokenizers.vqvae import InferenceModel, VQDNAAutoencoder

    cfg, _ = tokenizer_configs(spec["config"], spec["quantizer"])
    model = VQDNAAutoencoder(cfg).eval()
    kind = spec["kind"]
    kw = dict(fast=kind not in ("tok_plain", "tok_compile"), compile=kind == "tok_compile")
    if spec.get("chunk_length"):
        kw["chunk_length"] = spec["chunk_length"]
    if spec.get("batch_tokens"):
        kw["batch_tokens"] = spec["batch_tokens"]
    tok = VQDNATokenizer(model, cfg, device="cpu", **kw)
    seq = _input(spec)
    if kind.startswith("tok"):
        n_nt = len(seq)

        def call():
            return tok.encode_indices([seq])
    else:  # one batch shaped like the tokenizer's: as many halo'd chunks as batch_tokens allows
        length = min(tok.chunk_length + 2 * tok.halo, len(seq))
        per = max(tok.batch_tokens // length, 1)
        per = min(per, max(len(seq) // length, 1))
        batch = torch.from_numpy(np.ascontiguousarray(
            np.stack([seq[i * length % (len(seq) - length + 1):][:length] for i in range(per)])))
        n_nt = batch.numel()
        if kind == "fwd":
            engine = None

            def call():
                nonlocal engine
                if engine is None:
                    engine = InferenceModel(model)
                return engine.encode(batch)
        else:
            def call():
                with torch.inference_mode():
                    return model.encode(batch)

    # fp32 matmul peak: torch.mm into a preallocated output (no allocation to disturb memory)
    N = spec["peak_n"]
    g = torch.Generator().manual_seed(1)
    A, B, C = torch.randn(N, N, generator=g), torch.randn(N, N, generator=g), torch.empty(N, N)
    torch.mm(A, B, out=C)

    def mm_peak() -> float:
        t = time.perf_counter()
        torch.mm(A, B, out=C)
        return 2 * N ** 3 / (time.perf_counter() - t) / 1e9

    t = time.perf_counter()
    call()  # first call: packs weights / compiles, pages in library code
    first_s = time.perf_counter() - t

    onednn = None
    try:
        if torch.backends.mkldnn.is_available():
            packed_b = torch.ops.mkldnn._reorder_linear_weight(B, None)
            onednn = lambda: torch.ops.mkldnn._linear_pointwise(A, packed_b, None, "none", [], "")  # noqa: E731
            onednn()
    except Exception:  # noqa: BLE001
        onednn = None

    flops = model.flops_per_nucleotide()
    rows = []
    mem = peak_rss = float("nan")
    reset = False
    for i in range(spec["repeats"]):
        if i == 0:  # memory of one warm call, from a trimmed heap
            _trim_heap()
            reset = _reset_hwm()
            base_rss, base_max = _status("VmRSS"), _maxrss_mb()
        p1 = mm_peak()
        t = time.perf_counter()
        call()
        dt = time.perf_counter() - t
        if i == 0:
            mem = _status("VmHWM") - base_rss if reset else _maxrss_mb() - base_max
            peak_rss = _status("VmHWM") if reset else _maxrss_mb()
        p2 = mm_peak()
        od = float("nan")
        if onednn is not None:
            t = time.perf_counter()
            onednn()
            od = 2 * N ** 3 / (time.perf_counter() - t) / 1e9
        rate = n_nt / dt
        rows.append(dict(nt_per_s=rate, seconds=dt, peak=(p1 + p2) / 2, peaks=[p1, p2], onednn_peak=od,
                         frac=rate * flops / 1e9 / ((p1 + p2) / 2), frac_onednn=rate * flops / 1e9 / od))
    med = {k: statistics.median(r[k] for r in rows) for k in ("nt_per_s", "peak", "onednn_peak", "frac",
                                                               "frac_onednn")}
    engine = tok._engine_cache if kind == "tok" else None
    return dict(spec=spec, nucleotides=n_nt, first_call_s=first_s, mem_mb=mem, mem_method="VmHWM reset"
                if reset else "ru_maxrss delta", peak_rss_mb=peak_rss, flops_per_nt=flops,
                repeats=rows, median=med, onednn_used=bool(engine is not None and engine.onednn),
                chunk_length=tok.chunk_length, batch_tokens=tok.batch_tokens)


# ------------------------------------------------------------ parent
def check_flops(config: str, quantizer: str) -> tuple[int, int]:
    """(flops_per_nucleotide(), FLOPs counted by torch.utils.flop_counter per nucleotide)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vqdna.config import tokenizer_configs
    from vqdna.tokenizers.vqvae import VQDNAAutoencoder

    cfg, _ = tokenizer_configs(config, quantizer)
    model = VQDNAAutoencoder(cfg).eval()
    L = 64
    idx = torch.randint(0, 4, (1, L))
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model.encode(idx)
    return model.flops_per_nucleotide(), fc.get_total_flops() // L


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_worker(spec: dict) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"worker {spec['config']}/{spec['quantizer']}/{spec['kind']} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def render(meta: dict, results: list[dict]) -> None:
    """Print the markdown report."""
    peaks = [x for r in results for rep in r["repeats"] for x in rep["peaks"]]
    onednn_peaks = [rep["onednn_peak"] for r in results for rep in r["repeats"]]
    med_peak = statistics.median(peaks)
    n = meta["peak_n"]
    load = meta["load"]
    print(f"\n### Stage-1 tokenization throughput ({meta['time']})\n")
    print(f"- torch {meta['torch']}, {meta['threads']} thread(s), CPU: {meta['cpu']} "
          f"({meta['cpus']} logical CPUs), python {meta['python']}")
    print(f"- fp32 matmul peak ({n}x{n} torch.mm, same threads, measured around every repeat): median "
          f"**{med_peak:.0f} GFLOP/s** (range {min(peaks):.0f}-{max(peaks):.0f}); oneDNN GEMM of the same size: "
          f"median {statistics.median(onednn_peaks):.0f} GFLOP/s")
    print(f"- load average at the end: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)")
    print(f"- input: {meta['length']:,} nt ({meta['input']}); median of {meta['repeats']} timed calls after one "
          f"untimed first call; memory: {results[0]['mem_method']} over the first timed call\n")
    plain = {(r["spec"]["config"], r["spec"]["quantizer"]): r["median"]["nt_per_s"] for r in results
             if r["spec"]["kind"] == "tok_plain"}
    print("| config | quantizer | path | chunk / batch tokens | nt/s | vs plain | FLOPs/nt | FLOP limit (nt/s) | "
          "% of FLOP limit (mm) | % of oneDNN GEMM | first-call extra (s) | peak RSS +MB |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        s, m = r["spec"], r["median"]
        limit = m["peak"] * 1e9 / r["flops_per_nt"]
        ref = plain.get((s["config"], s["quantizer"])) if s["kind"].startswith("tok") else None
        speed = f"{m['nt_per_s'] / ref:.2f}x" if ref else ""
        extra = r["first_call_s"] - statistics.median(x["seconds"] for x in r["repeats"])
        print(f"| {s['config']} | {s['quantizer'].upper()} | {ROW_NAMES[s['kind']]} | "
              f"{r['chunk_length']} / {r['batch_tokens']} | {m['nt_per_s']:,.0f} | {speed} | "
              f"{r['flops_per_nt'] / 1e6:.3f} M | {limit:,.0f} | **{100 * m['frac']:.1f}%** | "
              f"{100 * m['frac_onednn']:.1f}% | {extra:.2f} | {r['mem_mb']:.0f} |")
    print("\nFLOPs/nt: 2 x multiply-adds of the encoder's convolutions and linears + code distances "
          "(VQDNAAutoencoder.flops_per_nucleotide()); torch.utils.flop_counter agrees: "
          + ", ".join(sorted({f"{r['spec']['config']}/{r['spec']['quantizer']} "
                              f"{'yes' if r['flops_counted'] == r['flops_per_nt'] else 'NO'}" for r in results})))
    print("% of FLOP limit = nt/s x FLOPs/nt / matmul peak: median over repeats of the ratio to the peak "
          "measured around each repeat. 'model forward' rows count halo tokens too. First-call extra = first "
          "call - median timed call (packing, oneDNN kernel generation, compilation).")
    for r in results:
        s = r["spec"]
        if s["config"] == "paper" and s["kind"] == "tok":
            f = r["median"]["frac"]
            print(f"Requirement (paper tokenizer >= 75% of the FLOP limit): {s['quantizer'].upper()} "
                  f"{100 * f:.1f}% {'PASS' if f >= 0.75 else 'FAIL'}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="paper,tiny", help="stage-1 presets, comma-separated")
    p.add_argument("--quantizers", default="vq,hrq")
    p.add_argument("--rows", default=",".join(ROW_KINDS), help=f"row kinds among {','.join(ROW_KINDS)}")
    p.add_argument("--length", type=int, default=200_000, help="nucleotides tokenized per call")
    p.add_argument("--fasta", default=None, help="take the input from this FASTA (default: random A/C/G/T)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per row (median reported)")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--chunk-length", type=int, default=0, help="override VQDNATokenizer(chunk_length=)")
    p.add_argument("--batch-tokens", type=int, default=0, help="override VQDNATokenizer(batch_tokens=)")
    p.add_argument("--peak-n", type=int, default=4096, help="size of the square fp32 matmul for the peak")
    p.add_argument("--quick", action="store_true", help="50k nt; default and packed-forward rows only")
    p.add_argument("--json", default=None, help="also write all measurements to this file")
    p.add_argument("--from-json", default=None, help="only print the report of an earlier --json file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(json.loads(a.worker))))
        return 0
    if a.from_json:
        with open(a.from_json) as f:
            saved = json.load(f)
        render(saved["meta"], saved["results"])
        return 0
    if a.quick:
        a.length, a.rows = min(a.length, 50_000), "tok,fwd"
    import torch

    kinds = [k for k in a.rows.split(",") if k]
    bad = set(kinds) - set(ROW_KINDS)
    if bad:
        p.error(f"unknown rows {sorted(bad)}")
    results = []
    for config in a.configs.split(","):
        for quantizer in a.quantizers.split(","):
            declared, counted = check_flops(config, quantizer)
            for kind in kinds:
                spec = dict(config=config, quantizer=quantizer, kind=kind, length=a.length, fasta=a.fasta,
                            repeats=a.repeats, threads=a.threads, peak_n=a.peak_n,
                            chunk_length=a.chunk_length, batch_tokens=a.batch_tokens)
                r = run_worker(spec)
                r["flops_counted"] = counted
                results.append(r)
                m = r["median"]
                print(f"{config}/{quantizer} {ROW_NAMES[kind]}: {m['nt_per_s']:.0f} nt/s, "
                      f"{100 * m['frac']:.1f}% of the mm limit (peak {m['peak']:.0f} GFLOP/s), "
                      f"first call {r['first_call_s']:.1f} s, +{r['mem_mb']:.0f} MB", file=sys.stderr, flush=True)
            if declared != counted:
                print(f"WARNING {config}/{quantizer}: flops_per_nucleotide() = {declared} but the flop counter "
                      f"finds {counted}", file=sys.stderr)

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    meta = dict(torch=torch.__version__, threads=a.threads, cpu=cpu_model(), cpus=os.cpu_count(),
                python=platform.python_version(), time=time.strftime("%Y-%m-%d %H:%M"), load=list(load),
                length=a.length, input=a.fasta or "random A/C/G/T", repeats=a.repeats, peak_n=a.peak_n)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(meta=meta, results=results), f, indent=1)
    render(meta, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
