"""k-mer features (hand-checked counts) and the linear baseline on small synthetic tasks."""
from collections import Counter
from itertools import product
from pathlib import Path

import numpy as np
import pytest

from vqdna.references.kmer import kmer_counts, kmer_feature_names, kmer_features, run_kmer_baseline
from vqdna.sequence.tasks import load_task

SHARED = Path(__file__).resolve().parents[2] / "shared"


def as_dict(mat, row, k):
    names = kmer_feature_names([k])
    r = mat.getrow(row)
    return {names[j]: float(v) for j, v in zip(r.indices, r.data) if v}


def test_hand_example_k2():
    m = kmer_counts(["ACGTA"], 2)
    assert m.shape == (1, 16)
    assert as_dict(m, 0, 2) == {"AC": 1, "CG": 1, "GT": 1, "TA": 1}
    assert as_dict(kmer_counts(["ACGTA"], 1), 0, 1) == {"A": 2, "C": 1, "G": 1, "T": 1}
    assert as_dict(kmer_counts(["AAAA"], 3), 0, 3) == {"AAA": 2}


def test_n_and_sequence_boundaries_are_not_counted():
    m = kmer_counts(["ACNGT", "AC", "GT", "NNN", "A"], 2)
    assert as_dict(m, 0, 2) == {"AC": 1, "GT": 1}
    assert as_dict(m, 1, 2) == {"AC": 1}  # no "CG" across the boundary to the next sequence
    assert as_dict(m, 2, 2) == {"GT": 1}
    assert as_dict(m, 3, 2) == {} and as_dict(m, 4, 2) == {}
    assert as_dict(kmer_counts(["acgRt"], 2), 0, 2) == {"AC": 1, "CG": 1}


def test_matches_naive_counter():
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list("ACGTN"), p=[0.24, 0.24, 0.24, 0.24, 0.04], size=n))
            for n in rng.integers(0, 40, 30)]
    for k in (1, 3, 6):
        m = kmer_counts(seqs, k).toarray()
        index = {"".join(t): i for i, t in enumerate(product("ACGT", repeat=k))}
        for i, s in enumerate(seqs):
            want = np.zeros(4 ** k)
            for kmer, c in Counter(s[j:j + k] for j in range(len(s) - k + 1)).items():
                if "N" not in kmer:
                    want[index[kmer]] = c
            np.testing.assert_array_equal(m[i], want)


def test_features_are_per_k_frequencies():
    X = kmer_features(["ACGTACGTAA", "NNNN"])
    assert X.shape == (2, 5460)
    offs = np.cumsum([0] + [4 ** k for k in range(1, 7)])
    dense = X.toarray()
    for k in range(6):
        assert dense[0, offs[k]:offs[k + 1]].sum() == pytest.approx(1.0)
    assert dense[1].sum() == 0
    names = kmer_feature_names()
    assert len(names) == 5460 and names[:5] == ["A", "C", "G", "T", "AA"] and names[-1] == "TTTTTT"


def _random_seqs(rng, n, length):
    return ["".join(s) for s in np.array(list("ACGT"))[rng.integers(0, 4, size=(n, length))]]


def _write_task(root: Path, splits: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, (seqs, labels) in splits.items():
        body = "".join(f"{s},{y}\n" for s, y in zip(seqs, labels))
        (root / f"{name}.csv").write_text("sequence,label\n" + body)
    return root


def test_baseline_beats_chance_on_motif_task(tmp_path):
    rng = np.random.default_rng(0)
    splits = {}
    for name, n in (("train", 300), ("dev", 100), ("test", 100)):
        seqs = _random_seqs(rng, n, 60)
        labels = rng.integers(0, 2, n)
        for i in np.flatnonzero(labels):
            p = rng.integers(0, 54)
            seqs[i] = seqs[i][:p] + "TATAAA" + seqs[i][p + 6:]
        splits[name] = (seqs, labels)
    task = load_task(_write_task(tmp_path / "motif", splits))
    r = run_kmer_baseline(task, seed=0)
    assert r["kind"] == "classification" and r["primary_metric"] == "mcc"
    assert r["test"]["mcc"] > 0.5, r
    assert r["param_name"] == "C" and r["scaling"] == "standard"
    assert r["n_features"] == 5460 and r["wall_time"] > 0
    assert len(r["dev_grid"]) == 4


def test_baseline_multiclass(tmp_path):
    rng = np.random.default_rng(2)
    motifs = ["", "TATAAA", "GGGCCC"]
    splits = {}
    for name, n in (("train", 300), ("dev", 100), ("test", 100)):
        seqs = _random_seqs(rng, n, 60)
        labels = rng.integers(0, 3, n)
        for i in np.flatnonzero(labels):
            p = rng.integers(0, 54)
            seqs[i] = seqs[i][:p] + motifs[labels[i]] + seqs[i][p + 6:]
        splits[name] = (seqs, labels)
    task = load_task(_write_task(tmp_path / "three", splits))
    assert task.n_classes == 3
    r = run_kmer_baseline(task)
    assert r["test"]["mcc"] > 0.5, r


def test_baseline_regression_on_gc_content(tmp_path):
    rng = np.random.default_rng(1)
    splits = {}
    for name, n in (("train", 300), ("dev", 100), ("test", 100)):
        gc = rng.random(n)
        seqs = ["".join(rng.choice(list("ACGT"), p=[(1 - g) / 2, g / 2, g / 2, (1 - g) / 2], size=40)) for g in gc]
        y = [f"{v:.4f}" for v in gc + rng.normal(0, 0.05, n)]
        splits[name] = (seqs, y)
    task = load_task(_write_task(tmp_path / "gc", splits))
    r = run_kmer_baseline(task)
    assert r["kind"] == "regression" and r["param_name"] == "alpha"
    assert r["scaling"] in ("standard", "none")
    assert r["test"]["spearman"] > 0.7, r


@pytest.mark.skipif(not (SHARED / "data/GUE/prom/prom_core_tata").is_dir(), reason="shared data absent")
def test_real_prom_core_tata():
    task = load_task(SHARED / "data/GUE/prom/prom_core_tata")
    assert (len(task.train), len(task.dev), len(task.test)) == (4904, 613, 613)
    r = run_kmer_baseline(task)
    assert r["test"]["mcc"] > 0.4, r  # 0.498 measured
