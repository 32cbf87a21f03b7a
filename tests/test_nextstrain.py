"""Tests of vqdna.data.nextstrain on a small hand-made Auspice tree (and, if present, real data)."""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import pytest

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


def node(name, muts=(), children=None, **attrs):
    n = {"name": name, "branch_attrs": {"mutations": {"nuc": list(muts)}},
         "node_attrs": {k: {"value": v} for k, v in attrs.items()}}
    if children is not None:
        n["children"] = children
    return n


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


SARS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sars-cov-2"


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
