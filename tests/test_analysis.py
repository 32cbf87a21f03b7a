"""``vqdna analyze``: Grad-CAM arithmetic, code-space statistics, tree distances, and the report."""
from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest

from vqdna.analysis.codespace import (class_centroids, group_separation, mantel, nearest_class_agreement,
                                      nn_purity, pairwise_distances)
from vqdna.analysis.gradcam import code_features, fit_probe, gradcam_attribution, level_slices, \
    merge_duplicates, support_class
from vqdna.analysis.treedist import clade_groups, clade_hamming_distances, clade_tree_distances, \
    kmer_class_distances, tip_differences


# ----------------------------------------------------------------------------- Grad-CAM
def test_code_features_two_levels():
    codes = [np.array([[0, 0, 1, 2], [3, 3, 3, 0]])]  # level 0: K=3, level 1: K=4, L=4
    X = code_features(codes, [3, 4])
    assert X.shape == (1, 7)
    np.testing.assert_allclose(X[0, :3], np.array([2, 1, 1]) * 3 / 4)
    np.testing.assert_allclose(X[0, 3:], np.array([1, 0, 0, 3]) * 4 / 4)
    assert [s.start for s in level_slices([3, 4])] == [0, 3]


def test_gradcam_hand_made_linear_model():
    # 3 classes, 4 codes; two rows per class
    W = np.array([[2.0, -1.0, 0.0, 0.5],
                  [-1.0, 3.0, 0.0, 0.5],
                  [-1.0, -2.0, 0.0, -1.0]])
    X = np.array([[1.0, 0.0, 1.0, 2.0],   # class 0
                  [3.0, 2.0, 1.0, 0.0],   # class 0 -> mean [2, 1, 1, 1]
                  [0.0, 1.0, 1.0, 1.0],   # class 1
                  [0.0, 3.0, 1.0, 3.0],   # class 1 -> mean [0, 2, 1, 2]
                  [4.0, 0.0, 1.0, 1.0],   # class 2
                  [2.0, 0.0, 1.0, 1.0]])  # class 2 -> mean [3, 0, 1, 1]
    y = np.array([0, 0, 1, 1, 2, 2])
    A, xbar = gradcam_attribution(W, X, y, 3)
    np.testing.assert_allclose(xbar, [[2, 1, 1, 1], [0, 2, 1, 2], [3, 0, 1, 1]])
    expected = np.array([[4.0, 0.0, 0.0, 0.5],    # ReLU(2*2), ReLU(-1*1), 0*1, 0.5*1
                         [0.0, 6.0, 0.0, 1.0],    # ReLU(-1*0)=0, 3*2, 0, 0.5*2
                         [0.0, 0.0, 0.0, 0.0]])   # ReLU(-3), ReLU(-2*0), 0, ReLU(-1)
    np.testing.assert_allclose(A, expected)
    np.testing.assert_array_equal(support_class(A), [0, 1, -1, 1])  # code 2: zero for all -> none


def test_gradcam_sample_weights_equal_duplicated_rows():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(2, 5))
    X = rng.random((4, 5))
    y = np.array([0, 1, 0, 1])
    w = np.array([1.0, 2.0, 3.0, 1.0])
    A_w, _ = gradcam_attribution(W, X, y, 2, sample_weight=w)
    rep = np.repeat(np.arange(4), w.astype(int))
    A_r, _ = gradcam_attribution(W, X[rep], y[rep], 2)
    np.testing.assert_allclose(A_w, A_r)
    idx, cnt = merge_duplicates(["a", "b", "a", "a", "b"], np.array([0, 1, 0, 1, 1]))
    assert idx.tolist() == [0, 1, 3] and cnt.tolist() == [2, 2, 1]


def test_support_ties_take_lowest_class():
    A = np.array([[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(support_class(A), [0, -1])


def test_probe_binary_is_symmetric_softmax_pair():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = (X[:, 0] > 0).astype(int)
    r = fit_probe(X, y, X, y, X, y, 2, Cs=(1.0,))
    W = r["W"]
    assert W.shape == (2, 3)
    np.testing.assert_allclose(W[0], -W[1])
    assert W[1, 0] > 0 and r["test"]["accuracy"] > 0.9


def test_probe_weights_fold_the_scaler_back_to_raw_features():
    rng = np.random.default_rng(1)
    X = rng.random((90, 6)) * np.array([1, 10, 0.1, 1, 1, 0])  # last feature constant
    y = np.repeat([0, 1, 2], 30)
    X[y == 1, 1] += 15
    X[y == 2, 2] += 0.2
    w = rng.integers(1, 4, size=90).astype(float)
    r = fit_probe(X, y, X, y, X, y, 3, sample_weight=w, Cs=(0.1, 1.0))
    assert r["W"].shape == (3, 6) and np.all(r["W"][:, 5] == 0)
    logits = X @ r["W"].T + r["b"]
    np.testing.assert_array_equal(logits.argmax(1), r["test_pred"])
    assert r["W"][1, 1] > 0 and r["W"][2, 2] > 0 and r["test"]["accuracy"] > 0.9


# ----------------------------------------------------------------------------- code space
def test_nn_purity_hand_made_codebook():
    # four tight clusters of three codes far apart, plus a code with no class (ignored)
    rng = np.random.default_rng(0)
    emb = np.vstack([np.repeat(np.eye(4), 3, axis=0) + 0.01 * rng.random((12, 4)), [[0.5, 0.5, 0.5, 0.5]]])
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, -1])
    r = nn_purity(emb, labels, n_perm=200)
    assert r["purity"] == 1.0 and r["n_codes"] == 12 and r["n_classes"] == 4
    assert r["chance_expected"] == pytest.approx(4 * 3 * 2 / (12 * 11))
    assert r["p_value"] == pytest.approx(1 / 201) and r["chance_perm_mean"] < 0.4
    r = nn_purity(emb, np.array([0, 1, 2, 1, 2, 3, 2, 3, 0, 3, 0, 1, -1]), n_perm=50)  # classes split
    assert r["purity"] == 0.0
    # pairs: nearest neighbour of each code is its pair partner
    emb2 = np.array([[1, 0, 0], [0.99, 0.05, 0], [0, 1, 0], [0.05, 0.99, 0], [0, 0, 1], [0, 0.05, 0.99]])
    r = nn_purity(emb2, np.array([0, 0, 1, 1, 1, 1]), metric="euclidean", n_perm=0)
    assert r["purity"] == 1.0 and r["chance_expected"] == pytest.approx((2 * 1 + 4 * 3) / 30)
    r = nn_purity(emb2, np.array([0, 1, 0, 1, 0, 1]), metric="euclidean", n_perm=0)
    assert r["purity"] == 0.0


def test_centroids_and_distances():
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    A = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 3.0, 1.0]])
    M = class_centroids(A, emb)
    np.testing.assert_allclose(M[0], [1.0, 0.5])
    assert np.isnan(M[1]).all()
    np.testing.assert_allclose(M[2], [0.25, 1.0])
    D = pairwise_distances(np.array([[1.0, 0.0], [0.0, 2.0]]), "cosine")
    np.testing.assert_allclose(D, [[0, 1], [1, 0]], atol=1e-12)
    D = pairwise_distances(np.array([[0.0, 0.0], [3.0, 4.0]]), "euclidean")
    np.testing.assert_allclose(D, [[0, 5], [5, 0]])


def test_mantel_group_separation_and_nearest():
    pts = np.array([0.0, 1.0, 2.0, 10.0, 11.0, 12.0])
    D1 = np.abs(pts[:, None] - pts[None, :])
    D2 = D1 ** 2  # monotone: Spearman 1
    m = mantel(D1, D2, n_perm=200)
    assert m["spearman"] == pytest.approx(1.0) and m["p_value"] < 0.05
    g = np.array([0, 0, 0, 1, 1, 1])
    s = group_separation(D1, g, n_perm=200)
    assert s["ratio"] < 0.2 and s["p_value"] < 0.1
    assert s["per_group"][0]["within"] == pytest.approx(4 / 3)  # pairs 1, 2, 1
    assert s["per_group"][0]["to_others"] == pytest.approx(10) and s["per_group"][0]["p_value"] < 0.1
    near = nearest_class_agreement(D1, D2, g)
    assert near["agree_with_ref"] == 1.0 and near["same_group"] == 1.0
    assert near["same_group_chance"] == pytest.approx(2 / 5)


# ----------------------------------------------------------------------------- tree distances
def _tree():
    # root -(1)- X -(2)- a1 [A], X -(0)- a2 [A], X -(3)- Y -(1)- b1 [B], Y -(1)- c1 [C, group G2]
    def tip(name, n, clade, who=None):
        attrs = {"clade_nextstrain": {"value": clade}}
        if who:
            attrs["clade_who"] = {"value": who}
        return {"name": name, "branch_attrs": {"mutations": {"nuc": [f"A{i + 1}T" for i in range(n)]}},
                "node_attrs": attrs}

    Y = {"name": "Y", "branch_attrs": {"mutations": {"nuc": ["C1T", "C2T", "C3T"]}},
         "node_attrs": {"clade_who": {"value": "G1"}},
         "children": [tip("b1", 1, "B"), tip("c 1", 1, "C", who="G2")]}
    X = {"name": "X", "branch_attrs": {"mutations": {"nuc": ["G5A"]}}, "node_attrs": {},
         "children": [tip("a1", 2, "A", who="G1"), tip("a2", 0, "A", who="G1"), Y]}
    return {"version": "v2", "tree": {"name": "root", "node_attrs": {}, "children": [X]}}


def _brute(tree, label):
    tips, stack = [], [(tree["tree"], 0, ())]
    while stack:
        n, d, path = stack.pop()
        d += len(((n.get("branch_attrs") or {}).get("mutations") or {}).get("nuc") or [])
        path = path + ((id(n), d),)
        if n.get("children"):
            stack += [(c, d, path) for c in n["children"]]
        else:
            tips.append((n["node_attrs"][label]["value"], path))

    def dist(p, q):
        common = [a for a, b in zip(p, q) if a[0] == b[0]]
        return p[-1][1] + q[-1][1] - 2 * common[-1][1]

    return tips, dist


def test_tree_distances_match_brute_force():
    t = _tree()
    r = clade_tree_distances(t, "clade_nextstrain", ["A", "B", "C", "D"])
    tips, dist = _brute(t, "clade_nextstrain")
    for (i, a), (j, b) in itertools.product(enumerate("ABC"), repeat=2):
        pairs = [dist(p, q) for (x, p), (y, q) in itertools.product(tips, tips)
                 if x == a and y == b and p is not q]
        if pairs:
            assert r["D"][i, j] == pytest.approx(np.mean(pairs)), (a, b)
        else:  # a clade of one tip has no within-clade distance
            assert np.isnan(r["D"][i, j])
    assert r["D"][0, 1] == pytest.approx((6 + 4) / 2)  # a1-b1 = 2+3+1, a2-b1 = 0+3+1
    assert r["n_tips"] == [2, 1, 1, 0] and np.isnan(r["D"][3]).all()
    # restricting to the task's tips (names with whitespace written as "_")
    r2 = clade_tree_distances(t, "clade_nextstrain", ["A", "C"], tips={"a2", "c_1"})
    assert r2["D"][0, 1] == pytest.approx(0 + 3 + 1)
    # groups: b1 has no clade_who and inherits G1 from Y; C's own value wins
    assert clade_groups(t, "clade_nextstrain", "clade_who", ["A", "B", "C", "D"]) == ["G1", "G1", "G2", None]


def test_hamming_distances_with_reversion_and_deletion():
    def node(name, muts, clade=None, children=None):
        n = {"name": name, "branch_attrs": {"mutations": {"nuc": muts}},
             "node_attrs": {"clade_nextstrain": {"value": clade}} if clade else {}}
        if children:
            n["children"] = children
        return n

    t = {"tree": node("root", [], children=[
        node("X", ["A10T"], children=[node("a1", ["C20G"], "A"), node("a2", ["T10A"], "A"),  # a2 reverts
                                      node("Y", ["G30-"], children=[node("b1", ["C20T"], "B"),
                                                                    node("b2", [], "B")])]),
        node("c0", [], "C")])}
    diffs = {n: d for n, _, d in tip_differences(t, "clade_nextstrain")}
    assert diffs == {"a1": {10: "T", 20: "G"}, "a2": {}, "b1": {10: "T", 30: "-", 20: "T"}, "b2": {10: "T", 30: "-"},
                     "c0": {}}

    def ham(p, q):
        return sum(p.get(k, "ref") != q.get(k, "ref") for k in set(p) | set(q))

    r = clade_hamming_distances(t, "clade_nextstrain", ["A", "B"])
    assert ham(diffs["a1"], diffs["b1"]) == 2
    assert r["D"][0, 1] == pytest.approx(np.mean([ham(diffs[a], diffs[b]) for a in ("a1", "a2")
                                                  for b in ("b1", "b2")])) == pytest.approx(2.25)
    assert r["D"][0, 0] == pytest.approx(2) and r["D"][1, 1] == pytest.approx(1)
    # a mutation and its reversion: 2 mutations on the path from a2 to c0, identical genomes
    assert clade_tree_distances(t, "clade_nextstrain", ["A", "C"], tips={"a2", "c0"})["D"][0, 1] == 2
    assert clade_hamming_distances(t, "clade_nextstrain", ["A", "C"], tips={"a2", "c0"})["D"][0, 1] == 0


def test_kmer_distances_order():
    rng = np.random.default_rng(0)
    base = "".join(rng.choice(list("ACGT"), 3000))
    mut = lambda s, n: "".join(c if i % (len(s) // n) else "ACGT"[("ACGT".index(c) + 1) % 4]  # noqa: E731
                               for i, c in enumerate(s))
    near, far = mut(base, 5), mut(base, 60)
    r = kmer_class_distances([[base, base], [near], [far]])
    assert 0 < r["D"][0, 1] < r["D"][0, 2]
    assert r["D"][0, 0] == 0


# ----------------------------------------------------------------------------- the whole analysis
def _motif_task(root, rng):
    motifs = ["TATATATATATA", "GCGCGCGCGCGC", "AACCGGTTAACC"]
    d = root / "task"
    d.mkdir()
    for split, n in (("train", 40), ("dev", 12), ("test", 12)):
        lines = ["sequence,label"]
        for i in range(n):
            c = i % 3
            s = list(rng.choice(list("ACGT"), 120))
            for _ in range(3):
                p = int(rng.integers(0, 120 - 12))
                s[p:p + 12] = motifs[c]
            lines.append(f"{''.join(s)},{c}")
        (d / f"{split}.csv").write_text("\n".join(lines) + "\n")
    (d / "labels.json").write_text(json.dumps({"TA-repeat": 0, "GC-repeat": 1, "ACGT-block": 2}))
    return d


def test_analyze_writes_report_with_figures(tiny_hrq_tokenizer, tmp_path):
    from vqdna.cli import main

    task = _motif_task(tmp_path, np.random.default_rng(0))
    out = tmp_path / "report"
    rc = main(["analyze", "--tokenizer", str(tiny_hrq_tokenizer), "--task", str(task), "--out", str(out),
               "--max-per-class", "10", "--n-perm", "50", "--projection", "pca", "--C", "0.1", "1", "--quiet"])
    assert rc == 0
    md = (out / "report.md").read_text()
    pngs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert {"codes_L0.png", "codes_L1.png", "codes_all.png"} <= set(pngs)
    for p in pngs:
        assert (out / p).is_file() and (out / p).stat().st_size > 1000, p
        assert (out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = json.loads((out / "analysis.json").read_text())
    assert r["data"]["rows"] == {"train": 30, "dev": 12, "test": 12}  # max 10 per class in train
    assert r["data"]["classes"] == ["TA-repeat", "GC-repeat", "ACGT-block"]
    assert r["probe"]["test"]["accuracy"] > 0.6  # motifs are easy for a bag of codes
    assert set(r["levels"]) == {"L0", "L1", "all"}
    L0 = r["levels"]["L0"]
    assert len(L0["support"]) == 64 and L0["codes_with_class"] > 0
    assert 0 <= L0["nn_purity"]["purity"] <= 1
    assert r["reference"]["primary"] == "kmer" and r["reference"]["kmer"]["source"] == "train windows"
    assert "TA-repeat" in md and "Linear probe" in md


def _clade_tree(tmp_path, rng):
    """A reference of 600 nt and a tree of 4 clades in 2 WHO-like groups (A, B: G1; C, D: G2)."""
    ref = "".join(rng.choice(list("ACGT"), 600))
    used: set = set()

    def muts(n):
        out = []
        while len(out) < n:
            p = int(rng.integers(1, 601))
            if p in used:
                continue
            used.add(p)
            b = ref[p - 1]
            out.append(f"{b}{p}{'ACGT'[('ACGT'.index(b) + 1) % 4]}")
        return out

    def node(name, m, children=None, **attrs):
        n = {"name": name, "branch_attrs": {"mutations": {"nuc": m}},
             "node_attrs": {k: {"value": v} for k, v in attrs.items()}}
        if children:
            n["children"] = children
        return n

    def clade(c, who, n_muts):
        tips = [node(f"{c}/tip {i}", muts(1), clade_nextstrain=c) for i in range(8)]
        return node(f"node_{c}", muts(n_muts), tips, clade_nextstrain=c, clade_who=who)

    g1 = node("G1", muts(6), [clade("A", "G1", 3), clade("B", "G1", 3)], clade_who="G1")
    g2 = node("G2", muts(6), [clade("C", "G2", 3), clade("D", "G2", 3)], clade_who="G2")
    tree = {"version": "v2", "meta": {}, "tree": node("root", [], [g1, g2])}
    (tmp_path / "tree.json").write_text(json.dumps(tree))
    (tmp_path / "ref.fa").write_text(">ref\n" + ref + "\n")
    return tmp_path / "tree.json", tmp_path / "ref.fa"


def test_analyze_nextstrain_task_uses_tree_and_groups(tiny_hrq_tokenizer, tmp_path):
    from vqdna.analysis.lineage import analyze
    from vqdna.data.nextstrain import import_nextstrain

    tree, ref = _clade_tree(tmp_path, np.random.default_rng(3))
    task = tmp_path / "task"
    import_nextstrain(tree, ref, task, window=100, min_class_size=4, progress=False)
    r = analyze(tiny_hrq_tokenizer, task, tmp_path / "rep", n_perm=20, projection="pca", Cs=(0.1,),
                cache_dir=tmp_path / "cache", progress=False)
    # a rerun reads the code features and the probe from the cache and gives the same numbers
    r2 = analyze(tiny_hrq_tokenizer, task, tmp_path / "rep2", n_perm=20, projection="pca", Cs=(0.1,),
                 cache_dir=tmp_path / "cache", progress=False)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    assert r2["probe"] == r["probe"] and r2["levels"] == r["levels"]
    assert r["parameters"]["tree"] == str(tree)  # found through the task's summary.json
    assert r["reference"]["primary"] == "hamming" and set(r["reference"]) == {"primary", "hamming", "patristic"}
    D = np.array(r["reference"]["hamming"]["D"], dtype=float)
    # within a group: 3 + 3 clade mutations + 2 private = 8; across groups: + 6 + 6 = 20
    assert D[0, 1] == pytest.approx(8) and D[0, 2] == pytest.approx(20)
    assert r["data"]["groups"] == ["G1", "G1", "G2", "G2"]
    lv = r["levels"]["all"]
    assert lv["mantel_vs_reference"]["n"] == 4 and lv["group_separation"]["n_groups"] == 2
    assert set(lv["mantel_vs_each_reference"]) == {"hamming", "patristic"}
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "patristic" in md and "G1" in md
    for p in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (tmp_path / "rep" / p).is_file()


def test_analyze_rejects_regression_task_and_bad_options(tiny_hrq_tokenizer, tmp_path, capsys):
    from vqdna.cli import main

    d = tmp_path / "reg"
    d.mkdir()
    for split in ("train", "dev", "test"):
        (d / f"{split}.csv").write_text("sequence,label\nACGTACGT,0.5\nTTTTACGT,0.25\n")
    assert main(["analyze", "--tokenizer", str(tiny_hrq_tokenizer), "--task", str(d), "--out",
                 str(tmp_path / "o"), "--quiet"]) == 2
    assert "classification" in capsys.readouterr().err
    assert main(["analyze", "--tokenizer", str(tiny_hrq_tokenizer), "--task", str(d), "--out",
                 str(tmp_path / "o"), "--max-per-class", "0"]) == 2
