"""Tests of vqdna.data.nextstrain on a small hand-made Auspice tree (and, if present, real data)."""
from __future__ import annotations

import argparse
import csv
import json

import pytest
from conftest import SHARED
from conftest import auspice_node as node

from vqdna.cli import add_data_nextstrain_arguments as add_arguments
from vqdna.cli import cmd_data_nextstrain as run
from vqdna.data.nextstrain import (
    TreeError,
    import_nextstrain,
    parse_mutation,
    rebuild_genomes,
)
from vqdna.sequence.tasks import load_task

REF = "ACGTACGTAC"  # positions 1..10


def genomes(tree, ref=REF, **kw):
    return {name: (g, lab) for name, g, lab in rebuild_genomes(tree, ref, **kw)}


def test_parse_mutation():
    assert parse_mutation("C241T") == ("C", 241, "T")
    assert parse_mutation("a12-") == ("A", 12, "-")
    assert parse_mutation("-12A") == ("-", 12, "A")
    assert parse_mutation("12:ACG") == ("", 12, "ACG")
    with pytest.raises(TreeError):
        parse_mutation("C2X4T")
    with pytest.raises(TreeError, match="not a nucleotide"):
        parse_mutation("C24Z")


def test_order_parent_then_child_and_child_overrides():
    tree = {"version": "v2", "tree": node("root", [], [
        node("inner", ["A1G", "C2T"], [
            node("t1", ["G1C"]),            # child overrides the parent's G at 1
            node("t2", ["T2A", "A5N"]),     # ambiguous base kept as its letter
        ]),
        node("t3", []),
    ])}
    g = genomes(tree)
    assert list(g) == ["t1", "t2", "t3"]  # tree order
    assert g["t1"][0] == "CTGTACGTAC"
    assert g["t2"][0] == "GAGTNCGTAC"
    assert g["t3"][0] == REF
    # mutations of one branch apply in list order too
    g = genomes(node("r", ["A1G", "G1T"], []))
    assert g["r"][0] == "TCGTACGTAC"


def test_deletion_removes_base_and_reversions():
    tree = node("root", ["C2-", "G3-"], [
        node("del", []),
        node("revert_del", ["-2C"]),                       # deletion reverted
        node("sub", ["T4A"], [node("sub_tip", []), node("revert_sub", ["A4T"])]),  # substitution reverted
    ])
    g = genomes(tree)
    assert g["del"][0] == "ATACGTAC"          # 2 bases removed, no '-'
    assert g["revert_del"][0] == "ACTACGTAC"  # position 2 back, 3 still deleted
    assert list(g) == ["del", "revert_del", "sub_tip", "revert_sub"]
    assert g["sub_tip"][0] == "AAACGTAC"
    assert g["revert_sub"][0] == "ATACGTAC"
    assert all("-" not in s for s, _ in g.values())


def test_insertion():
    g = genomes(node("r", ["4:GG", "0:T"], []))
    assert g["r"][0] == "TACGTGGACGTAC"


def test_labels_extracted():
    tree = node("root", [], [node("t1", ["A1G"], clade_nextstrain="21L", clade_who="Omicron",
                                  Nextclade_pango="BA.2"),
                             {"name": "t2", "node_attrs": {"clade_nextstrain": "20A", "div": 3}}])
    g = genomes(tree)
    assert g["t1"][1]["clade_nextstrain"] == "21L"
    assert g["t1"][1]["clade_who"] == "Omicron"
    assert g["t1"][1]["Nextclade_pango"] == "BA.2"
    assert g["t2"][1] == {"clade_nextstrain": "20A", "div": 3}  # plain values work too
    assert g["t2"][0] == REF  # no branch_attrs at all


def test_mismatched_from_base_strict_and_lenient():
    tree = node("root", ["A1G"], [node("bad", ["A1T"])])  # position 1 is G by now
    with pytest.raises(TreeError, match=r"node 'bad'.*'A1T'"):
        genomes(tree)
    mism = []
    g = genomes(tree, strict=False, mismatches=mism)
    assert len(mism) == 1 and "A1T" in mism[0]
    assert g["bad"][0] == "TCGTACGTAC"  # applied anyway
    with pytest.raises(TreeError, match="outside the reference"):
        genomes(node("r", ["A11G"], []))


# ---------------------------------------------------------------- the importer


def _tree_with_classes(sizes: dict[str, int]) -> dict:
    """A tree with one subtree per class; every tip distinct (a unique pair of substitutions)."""
    ref = "ACGT" * 30  # 120 nt
    subtrees, k = [], 0
    for c, (cls, n) in enumerate(sizes.items()):
        tips = []
        for i in range(n):
            p1, p2 = 5 + i % 50, 60 + i // 50 + 2 * c
            tips.append(node(f"{cls}_{i}", [f"{ref[p1 - 1]}{p1}N", f"{ref[p2 - 1]}{p2}-"], clade_nextstrain=cls))
            k += 1
        subtrees.append(node(f"clade_{cls}", [f"{ref[99 + c]}{100 + c}-"], tips))
    subtrees.append(node("nolabel", ["A1G"], clade_nextstrain="?"))
    subtrees.append(node("nolabel2", ["A1T"]))
    return {"version": "v2", "meta": {}, "tree": node("root", [], subtrees)}, ref


def _write(tmp_path, tree, ref):
    t = tmp_path / "tree.json"
    t.write_text(json.dumps(tree))
    r = tmp_path / "ref.fasta"
    r.write_text(">ref\n" + ref + "\n")
    return t, r


def _read_csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_import_split_by_tip_filter_and_outputs(tmp_path):
    tree, ref = _tree_with_classes({"A": 20, "B": 12, "C": 3})
    t, r = _write(tmp_path, tree, ref)
    out = tmp_path / "task"
    s = import_nextstrain(t, r, out, window=20, min_class_size=5, seed=1, progress=False, dedupe="none")
    # min class size: C dropped and reported; unlabelled tips counted
    assert s["dropped_classes"] == {"C": 3}
    assert s["skipped_tips"]["unlabelled"] == 2
    assert s["skipped_tips"]["small_class"] == 3
    assert json.loads((out / "labels.json").read_text()) == {"A": 0, "B": 1}
    # genome length 120 - 2 deletions = 118 -> 5 windows of 20 (partial tail dropped)
    assert s["genome_length"] == {"min": 118, "max": 118, "mean": 118.0}
    assert s["tips_used"] == 32 and sum(s["rows"].values()) == 32 * 5
    # split by tip: each genome's windows in one split only; stratified
    fa = (out / "genomes.fa").read_text().split(">")[1:]
    split_of = {}
    for rec in fa:
        head, *_ = rec.split("\n")
        name, lab, sp = head.split()
        split_of[name] = sp.split("=")[1]
    assert len(split_of) == 32
    for cls, n in (("A", 20), ("B", 12)):
        per = s["classes"][cls]["tips"]
        assert sum(per.values()) == n and all(per[x] >= 1 for x in ("train", "dev", "test"))
    assert s["classes"]["A"]["tips"] == {"train": 16, "dev": 2, "test": 2}
    seen = {}
    for sp in ("train", "dev", "test"):
        rows = _read_csv(out / f"{sp}.csv")
        assert len(rows) == s["rows"][sp]
        assert all(len(x["sequence"]) == 20 and x["label"] in {"0", "1"} for x in rows)
        seen[sp] = {x["sequence"] for x in rows}
    # the summary counts dev/test rows whose exact sequence is also a train row
    for sp in ("dev", "test"):
        n_copy = sum(x["sequence"] in seen["train"] for x in _read_csv(out / f"{sp}.csv"))
        assert s["window_duplicates"][f"{sp}_rows_with_copy_in_train"] == n_copy
    # deterministic with the seed; another seed moves tips
    s2 = import_nextstrain(t, r, tmp_path / "task2", window=20, min_class_size=5, seed=1, progress=False,
                           dedupe="none")
    assert (tmp_path / "task2" / "genomes.fa").read_text() == (out / "genomes.fa").read_text()
    assert s2["rows"] == s["rows"]
    # the folder is a valid classification task for the project's loader
    task = load_task(out)
    assert task.kind == "classification" and task.n_classes == 2
    # dedupe="cross_split" (the default): no dev/test window is also a train window (or a test window a dev one)
    s3 = import_nextstrain(t, r, tmp_path / "task3", window=20, min_class_size=5, seed=1, progress=False)
    assert s3["window_duplicates"]["dedupe"] == "cross_split"
    dd = s["window_duplicates"]
    assert s3["window_duplicates"]["rows_dropped"] == (dd["dev_rows_with_copy_in_train"]
                                                       + dd["test_rows_with_copy_in_train"]) > 0
    got = {sp: [x["sequence"] for x in _read_csv(tmp_path / "task3" / f"{sp}.csv")] for sp in ("train", "dev", "test")}
    assert not (set(got["train"]) & set(got["dev"] + got["test"])) and not (set(got["dev"]) & set(got["test"]))
    assert s3["rows"]["train"] == s["rows"]["train"]


def test_import_split_disjoint_by_genome(tmp_path):
    tree, ref = _tree_with_classes({"A": 30, "B": 30})
    t, r = _write(tmp_path, tree, ref)
    out = tmp_path / "task"
    import_nextstrain(t, r, out, window=10, min_class_size=2, progress=False, dedupe="none")
    names = {}
    for rec in (out / "genomes.fa").read_text().split(">")[1:]:
        head = rec.split("\n")[0].split()
        seq = "".join(rec.split("\n")[1:])
        names.setdefault(seq, set()).add(head[2])
    assert all(len(v) == 1 for v in names.values())  # no genome in two splits


def test_identical_genomes_same_split(tmp_path):
    muts = ([], ["A1G"], ["C2T"])
    tips = [node(f"t{i}", muts[i % 3], clade_nextstrain="X" if i < 15 else "Y") for i in range(30)]
    tree = node("root", [], tips)
    t, r = _write(tmp_path, tree, REF)
    out = tmp_path / "task"
    s = import_nextstrain(t, r, out, window=5, min_class_size=2, progress=False)
    # 3 distinct genomes (each with X and Y tips) -> 3 units, all tips of a genome share the split
    splits_by_seq = {}
    for rec in (out / "genomes.fa").read_text().split(">")[1:]:
        head = rec.split("\n")[0].split()
        splits_by_seq.setdefault("".join(rec.split("\n")[1:]), set()).add(head[2])
    assert len(splits_by_seq) == 3 and all(len(v) == 1 for v in splits_by_seq.values())
    assert {next(iter(v)) for v in splits_by_seq.values()} == {"split=train", "split=dev", "split=test"}
    assert s["identical_genome_groups"] == 3


def test_import_errors(tmp_path):
    tree, ref = _tree_with_classes({"A": 6, "B": 6})
    t, r = _write(tmp_path, tree, ref)
    with pytest.raises(TreeError, match="needs 2"):
        import_nextstrain(t, r, tmp_path / "o", window=20, min_class_size=7, progress=False)
    singletons = node("root", [], [node(f"t{i}", [], Nextclade_pango=f"B.{i}") for i in range(5)])
    t4, _ = _write(tmp_path, singletons, ref)
    with pytest.raises(TreeError, match="every tip has its own value"):
        import_nextstrain(t4, r, tmp_path / "o", label="Nextclade_pango", window=20, min_class_size=1,
                          progress=False)
    r2 = tmp_path / "two.fasta"
    r2.write_text(">a\nACGT\n>b\nACGT\n")
    with pytest.raises(TreeError, match="exactly one record"):
        import_nextstrain(t, r2, tmp_path / "o", window=20, progress=False)
    bad = node("root", [], [node("x", ["C1T"], clade_nextstrain="A")])
    t3, _ = _write(tmp_path, bad, ref)
    with pytest.raises(TreeError, match="node 'x'"):
        import_nextstrain(t3, r, tmp_path / "o", window=20, progress=False)


def test_ambiguous_windows_dropped_and_cli(tmp_path, capsys):
    ref = "ACGT" * 10  # 40 nt, windows of 10
    tips = []
    for i in range(8):
        muts = [f"{ref[p - 1]}{p}N" for p in range(1, 6)] if i % 2 else []  # 50% N in first window
        muts.append(f"{ref[20 + i - 1]}{20 + i}A" if ref[20 + i - 1] != "A" else f"A{20 + i}C")
        tips.append(node(f"t{i}", muts, clade_who="W" if i < 4 else "V"))
    t, r = _write(tmp_path, {"tree": node("root", [], tips)}, ref)
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--tree", str(t), "--reference", str(r), "--label", "clade_who", "--window", "10",
                         "--min-class-size", "2", "--max-n-fraction", "0.3", "--out", str(tmp_path / "o"),
                         "--quiet", "--dedupe", "none"])
    assert run(args) == 0
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["windows_dropped_ambiguous"] == 4
    assert sum(s["rows"].values()) == 8 * 4 - 4
    wd = s["window_duplicates"]
    assert f"--dedupe none kept {wd['dev_rows_with_copy_in_train']} of {s['rows']['dev']} dev" in capsys.readouterr().err


SARS = SHARED / "data" / "sars-cov-2"


@pytest.mark.skipif(not all((SARS / f).is_file() for f in ("tree_mature.json", "reference.fasta")),
                    reason="real data in ../shared absent")
def test_real_tree_small_sample(tmp_path):
    g = next(rebuild_genomes(json.loads((SARS / "tree_mature.json").read_text()),
                             "".join(open(SARS / "reference.fasta").read().split("\n")[1:])))
    assert 29000 <= len(g[1]) <= 30000 and g[2]["clade_nextstrain"]
    s = import_nextstrain(SARS / "tree_mature.json", SARS / "reference.fasta", tmp_path / "t",
                          window=1000, max_tips=200, min_class_size=3, progress=False)
    assert s["tips_in_tree"] == 2682 and s["from_base_mismatches"] == 0
    assert 29000 <= s["genome_length"]["min"] and s["genome_length"]["max"] <= 30000
    assert s["n_classes"] >= 5 and s["skipped_tips"]["max_tips"] == 2682 - 200
    labels = json.loads((tmp_path / "t" / "labels.json").read_text())
    rows = _read_csv(tmp_path / "t" / "train.csv")
    assert rows and {int(x["label"]) for x in rows} <= set(labels.values())
    assert all(len(x["sequence"]) == 1000 for x in rows[:50])


# ---------------------------------------------------------------- rows per tip, label levels, caps (issue 22)


def _pango_tree(lineages: dict[str, tuple[str, int]]) -> tuple[dict, str]:
    """One subtree per raw Pango name ``{raw: (unaliased, n_tips)}``; every tip a distinct genome
    (three substitutions at its own positions, one deletion per lineage)."""
    import numpy as np

    ref = "".join(np.random.default_rng(0).choice(list("ACGT"), 200))  # not periodic: windows differ
    subtrees, pos = [], 1
    for c, (raw, (full, n)) in enumerate(lineages.items()):
        tips = []
        for i in range(n):
            b = ref[pos - 1]
            muts = [f"{ref[q - 1]}{q}{'A' if ref[q - 1] != 'A' else 'C'}" for q in (pos, pos + 60, pos + 120)]
            tips.append(node(f"{raw}_{i}", muts, Nextclade_pango=raw, partiallyAliased=full))
            pos += 1
        subtrees.append(node(f"clade_{raw}", [f"{ref[180 + c]}{181 + c}-"], tips))
    return {"version": "v2", "meta": {}, "tree": node("root", [], subtrees)}, ref


PANGO = {"BA.2.86.1": ("BA.2.86.1", 12), "JN.1": ("BA.2.86.1.1", 10), "BA.5.2": ("BA.5.2", 14),
         "BF.7": ("BA.5.2.1.7", 9), "XBB.1.5": ("XBB.1.5", 11)}


def test_label_level_cuts_the_unaliased_name(tmp_path):
    from vqdna.data.nextstrain import cut_label

    assert cut_label("BA.2.86.1.1", 3) == "BA.2.86" and cut_label("B.1", 3) == "B.1" and cut_label("X", None) == "X"
    tree, ref = _pango_tree(PANGO)
    t, r = _write(tmp_path, tree, ref)
    kw = dict(label="Nextclade_pango", per_tip="whole", min_class_size=5, progress=False)
    s = import_nextstrain(t, r, tmp_path / "u", label_level=3, **kw)
    # JN.1 is BA.2.86.1.1 and BF.7 is BA.5.2.1.7: they join their parents' class
    assert json.loads((tmp_path / "u" / "labels.json").read_text()) == {"BA.2.86": 0, "BA.5.2": 1, "XBB.1.5": 2}
    assert {c: sum(v["tips"].values()) for c, v in s["classes"].items()} == {"BA.2.86": 22, "BA.5.2": 23,
                                                                              "XBB.1.5": 11}
    assert s["parameters"]["tree_label"] == "partiallyAliased" and s["parameters"]["label_level"] == 3
    assert s["labels_not_unaliased"] == 0
    # --no-unalias: the raw name is cut, so JN.1 and BF.7 stay classes of their own
    s = import_nextstrain(t, r, tmp_path / "raw", label_level=3, unalias=False, **kw)
    assert s["parameters"]["tree_label"] == "Nextclade_pango"
    assert sorted(s["classes"]) == ["BA.2.86", "BA.5.2", "BF.7", "JN.1", "XBB.1.5"]
    # level 2 on the unaliased names: BA.2, BA.5, XBB.1
    s = import_nextstrain(t, r, tmp_path / "l2", label_level=2, **kw)
    assert sorted(s["classes"]) == ["BA.2", "BA.5", "XBB.1"]
    # a tip without the unaliased attribute is cut on its raw name, and counted
    del tree["tree"]["children"][1]["children"][0]["node_attrs"]["partiallyAliased"]
    t2, _ = _write(tmp_path, tree, ref)
    s = import_nextstrain(t2, r, tmp_path / "miss", label_level=3, min_class_size=1, **{
        k: v for k, v in kw.items() if k != "min_class_size"})
    assert s["labels_not_unaliased"] == 1 and s["classes"]["JN.1"]["tips"]["train"] == 1


def test_min_classes_error(tmp_path):
    tree, ref = _pango_tree(PANGO)
    t, r = _write(tmp_path, tree, ref)
    kw = dict(label="Nextclade_pango", per_tip="whole", min_class_size=5, label_level=3, progress=False)
    assert import_nextstrain(t, r, tmp_path / "ok", min_classes=3, **kw)["n_classes"] == 3
    with pytest.raises(TreeError, match=r"leaves 3 class\(es\) with >= 5 tips, fewer than the 4 asked for"):
        import_nextstrain(t, r, tmp_path / "o", min_classes=4, **kw)
    with pytest.raises(ValueError, match="min_classes must be >= 2"):
        import_nextstrain(t, r, tmp_path / "o", min_classes=1, **kw)


def _fasta(path):
    recs = {}
    for rec in path.read_text().split(">")[1:]:
        head, *seq = rec.split("\n")
        recs[head.split()[0]] = (head, "".join(seq))
    return recs


def test_per_tip_random_window_and_whole(tmp_path):
    tree, ref = _pango_tree(PANGO)
    t, r = _write(tmp_path, tree, ref)
    kw = dict(label="Nextclade_pango", min_class_size=5, label_level=3, progress=False)
    s = import_nextstrain(t, r, tmp_path / "rw", per_tip="random-window", window=50, seed=3, **kw)
    genomes = _fasta(tmp_path / "rw" / "genomes.fa")
    sources = _read_csv(tmp_path / "rw" / "sources.csv")
    assert len(sources) == len(genomes) == 56 and s["parameters"]["per_tip"] == "random-window"
    assert sum(s["rows"].values()) + s["window_duplicates"]["rows_dropped"] == 56  # one row per tip
    rows = {sp: _read_csv(tmp_path / "rw" / f"{sp}.csv") for sp in ("train", "dev", "test")}
    by_split = {sp: [x for x in sources if x["split"] == sp and x["rows"] == "1"] for sp in rows}
    starts = set()
    for sp in rows:  # each row is the window of its tip at the recorded start, in file order
        assert len(rows[sp]) == len(by_split[sp])
        for row, src in zip(rows[sp], sorted(by_split[sp], key=lambda x: ("train", "dev", "test").index(x["split"]))):
            st, en = int(src["start"]), int(src["end"])
            assert en - st == 50 and row["sequence"] == genomes[src["tip"]][1][st:en]
            starts.add(st)
    assert len(starts) > 10  # random positions, not one
    # the same tip gets the same start with other options (here a cap)
    import_nextstrain(t, r, tmp_path / "rw2", per_tip="random-window", window=50, seed=3, max_train_per_class=2, **kw)
    spans = lambda d: {x["tip"]: (x["start"], x["end"]) for x in _read_csv(d / "sources.csv")}  # noqa: E731
    assert spans(tmp_path / "rw2") == spans(tmp_path / "rw")
    # whole genomes: one row per tip, the genome itself
    s = import_nextstrain(t, r, tmp_path / "wh", per_tip="whole", window=1000, **kw)  # window not used
    genomes = _fasta(tmp_path / "wh" / "genomes.fa")
    assert s["parameters"]["window"] is None and sum(s["rows"].values()) == 56
    seqs = {x["sequence"] for sp in ("train", "dev", "test") for x in _read_csv(tmp_path / "wh" / f"{sp}.csv")}
    assert seqs == {g for _, g in genomes.values()}
    assert load_task(tmp_path / "wh").n_classes == 3
    with pytest.raises(ValueError, match="per_tip must be one of"):
        import_nextstrain(t, r, tmp_path / "o", per_tip="all", window=50, **kw)


def test_max_train_per_class_and_train_genomes(tmp_path):
    tree, ref = _pango_tree(PANGO)
    t, r = _write(tmp_path, tree, ref)
    kw = dict(label="Nextclade_pango", min_class_size=5, label_level=3, per_tip="random-window", window=40,
              seed=1, progress=False)
    full = import_nextstrain(t, r, tmp_path / "all", **kw)
    s = import_nextstrain(t, r, tmp_path / "cap", max_train_per_class=4, **kw)
    labels = [x["label"] for x in _read_csv(tmp_path / "cap" / "train.csv")]
    assert sorted(labels) == sorted(["0", "1", "2"] * 4) and s["rows"]["train"] == 12
    assert s["train_rows_before_cap"] == full["rows"]["train"] > 12
    assert all(v["windows"]["train"] == 4 for v in s["classes"].values())
    # the capped rows are a subset of the uncapped ones; dev and test do not change
    all_train = {x["sequence"] for x in _read_csv(tmp_path / "all" / "train.csv")}
    assert {x["sequence"] for x in _read_csv(tmp_path / "cap" / "train.csv")} <= all_train
    for sp in ("dev", "test"):
        assert (tmp_path / "cap" / f"{sp}.csv").read_text() == (tmp_path / "all" / f"{sp}.csv").read_text()
    # train_genomes.fa: every training tip, and only those
    sources = _read_csv(tmp_path / "cap" / "sources.csv")
    train_tips = {x["tip"] for x in sources if x["split"] == "train"}
    tg = _fasta(tmp_path / "cap" / "train_genomes.fa")
    assert set(tg) == train_tips and len(tg) == s["train_tips"] == full["rows"]["train"]
    assert all(h.endswith("split=train") for h, _ in tg.values())
    held_out = {g for n, (h, g) in _fasta(tmp_path / "cap" / "genomes.fa").items() if n not in train_tips}
    assert held_out and not held_out & {g for _, g in tg.values()}
    # sources.csv: the capped-out training tips gave no row
    assert sum(int(x["rows"]) for x in sources if x["split"] == "train") == 12
    # deterministic; the same with windows per tip (the cap counts rows, not tips)
    s2 = import_nextstrain(t, r, tmp_path / "cap2", max_train_per_class=4, **kw)
    assert (tmp_path / "cap2" / "train.csv").read_text() == (tmp_path / "cap" / "train.csv").read_text()
    s3 = import_nextstrain(t, r, tmp_path / "win", **dict(kw, per_tip="windows"), max_train_per_class=7)
    assert s3["rows"]["train"] == 21 and s3["train_rows_before_cap"] > 21 and s2["rows"] == s["rows"]


def test_dedupe_across_splits_per_tip(tmp_path):
    """Identical windows of different genomes: a dev/test row identical to any training row
    (capped out or not) is dropped."""
    ref = "ACGT" * 50
    tips = []
    for i in range(30):  # all tips differ only at position 200 - i: their first 100 nt are the same
        p = 200 - i
        tips.append(node(f"t{i}", [f"{ref[p - 1]}{p}{'A' if ref[p - 1] != 'A' else 'C'}"],
                         clade_who="X" if i % 2 else "Y"))
    t, r = _write(tmp_path, {"tree": node("root", [], tips)}, ref)
    kw = dict(label="clade_who", min_class_size=2, window=100, progress=False)
    s = import_nextstrain(t, r, tmp_path / "a", per_tip="windows", max_train_per_class=1, **kw)
    # every tip's first window is the same 100 nt: none survives in dev or test
    dev = [x["sequence"] for x in _read_csv(tmp_path / "a" / "dev.csv")]
    assert ref[:100] not in dev and s["window_duplicates"]["rows_dropped"] >= 6
    s = import_nextstrain(t, r, tmp_path / "w", per_tip="whole", **kw)
    assert s["window_duplicates"]["rows_dropped"] == 0  # whole genomes differ (split by genome)


def test_cli_new_options(tmp_path, capsys):
    tree, ref = _pango_tree(PANGO)
    t, r = _write(tmp_path, tree, ref)
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--tree", str(t), "--reference", str(r), "--label", "Nextclade_pango", "--label-level", "3",
                         "--per-tip", "whole", "--min-class-size", "5", "--min-classes", "3",
                         "--max-train-per-class", "5", "--out", str(tmp_path / "o"), "--quiet"])
    assert run(args) == 0
    out = capsys.readouterr().out
    assert "3 classes of 'Nextclade_pango' at level 3 (cut on 'partiallyAliased')" in out
    assert "rows (whole) train/dev/test = 15/" in out and "at 5 per class" in out
    args = p.parse_args(["--tree", str(t), "--label", "Nextclade_pango", "--label-level", "3", "--no-unalias",
                         "--reference", str(r), "--min-classes", "6", "--min-class-size", "5", "--window", "50",
                         "--out", str(tmp_path / "o2"), "--quiet"])
    with pytest.raises(TreeError, match="fewer than the 6 asked for"):
        run(args)


@pytest.mark.skipif(not all((SARS / f).is_file() for f in ("tree_2025-09-09.json", "tree_mature.json",
                                                            "reference.fasta")),
                    reason="real data in ../shared absent")
def test_real_trees_pango_level3(tmp_path):
    """The lineage task of the length table (benchmarks/sars_cov2_lengths.py): Pango at level 3 on the
    unaliased names keeps >= 5 classes of >= 50 tips on both trees (clade_who keeps 3)."""
    kw = dict(label="Nextclade_pango", label_level=3, min_class_size=50, min_classes=5, per_tip="random-window",
              window=1000, max_train_per_class=20, progress=False)
    s = import_nextstrain(SARS / "tree_2025-09-09.json", SARS / "reference.fasta", tmp_path / "a", **kw)
    sizes = {c: sum(v["tips"].values()) for c, v in s["classes"].items()}
    assert s["n_classes"] == 12 and sizes["BA.2.86"] == 703 and min(sizes.values()) == sizes["BA.2.3"] == 53
    assert s["rows"]["train"] == 240 and s["train_tips"] == 2101 and s["labels_not_unaliased"] == 0
    assert s["parameters"]["tree_label"] == "partiallyAliased"
    s = import_nextstrain(SARS / "tree_mature.json", SARS / "reference.fasta", tmp_path / "b", **kw)
    assert s["n_classes"] == 11 and s["rows"]["train"] == 220
    with pytest.raises(TreeError, match="fewer than the 5 asked for"):
        import_nextstrain(SARS / "tree_mature.json", SARS / "reference.fasta", tmp_path / "c",
                          **dict(kw, label="clade_who", label_level=None))
