"""benchmarks/sars_cov2_lengths.py (issue 22): the tasks at every length from one tree, the k-mer
references, the estimates, and the LM path end to end (a char row, tiny budgets) on a synthetic tree."""
import json

import numpy as np
import pytest
from conftest import auspice_node as node
from conftest import load_benchmark_script

sc = load_benchmark_script("sars_cov2_lengths")


def synthetic_tree(tmp_path, n_classes=3, tips=12, length=600):
    """Classes that differ by 12 substitutions spread over the genome; every tip has 3 of its own."""
    rng = np.random.default_rng(0)
    ref = "".join(rng.choice(list("ACGT"), length))
    other = {b: [x for x in "ACGT" if x != b] for b in "ACGT"}
    used, subtrees = set(), []

    def fresh(k):
        pos = []
        while len(pos) < k:
            p = int(rng.integers(1, length + 1))
            if p not in used:
                used.add(p)
                pos.append(p)
        return [f"{ref[p - 1]}{p}{other[ref[p - 1]][int(rng.integers(3))]}" for p in pos]

    for c in range(n_classes):
        leaves = [node(f"L{c}_{i}", fresh(3), Nextclade_pango=f"Q.{c}.{i % 2}", partiallyAliased=f"B.{c}.{i % 2}")
                  for i in range(tips)]
        subtrees.append(node(f"clade{c}", fresh(12), leaves))
    tree = tmp_path / "tree.json"
    tree.write_text(json.dumps({"version": "v2", "meta": {}, "tree": node("root", [], subtrees)}))
    fasta = tmp_path / "ref.fasta"
    fasta.write_text(">ref\n" + ref + "\n")
    return tree, fasta


def settings(tmp_path, **kw):
    tree, ref = synthetic_tree(tmp_path)
    base = dict(tree=str(tree), reference=str(ref), tasks_dir=str(tmp_path / "tasks"), lengths=(100, 300, "whole"),
                label_level=2, min_class_size=5, min_classes=3, max_train_per_class=4, whole_nt=600)
    return sc.Settings(**dict(base, **kw))


def read_csv(path):
    import csv

    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_tasks_share_tips_and_splits_and_the_references_run(tmp_path):
    s = settings(tmp_path)
    out = tmp_path / "out"
    sc.t6.check_settings(s, out)
    for L in s.lengths:
        for capped in (True, False):
            sc.build_task(s, L, capped=capped)
    splits = {}
    for L in s.lengths:
        for d in (f"{L}", f"{L}-all"):
            src = read_csv(tmp_path / "tasks" / d / "sources.csv")
            splits[d] = {x["tip"]: (x["label"], x["split"]) for x in src}
            assert {lab for lab, _ in splits[d].values()} == {"B.0", "B.1", "B.2"}  # the unaliased name, cut at 2
    assert all(v == splits["100"] for v in splits.values())  # the same tips and splits at every length
    genomes = {(tmp_path / "tasks" / str(L) / "train_genomes.fa").read_text() for L in s.lengths}
    assert len(genomes) == 1
    info = sc.task_info(s)
    assert info["100"]["n_classes"] == 3 and info["100"]["rows"]["train"] == 12
    assert info["whole"]["train_rows_all"] == info["whole"]["tips_per_split"]["train"] > 12
    assert info["whole"]["chance"]["uniform_accuracy"] == pytest.approx(1 / 3)
    whole = read_csv(tmp_path / "tasks" / "whole" / "test.csv")
    assert all(590 <= len(x["sequence"]) <= 600 for x in whole)
    # the dev and test rows do not depend on the cap
    for L in s.lengths:
        for sp in ("dev", "test"):
            a, b = (tmp_path / "tasks" / f"{L}{x}" / f"{sp}.csv" for x in ("", "-all"))
            assert a.read_text() == b.read_text()
    est = sc.estimate(s, info)
    assert set(est) == set(sc.LM_ROWS)
    assert est["hrq-s4"]["lengths"]["whole"]["tokens"] == 150 and est["char"]["lengths"]["whole"]["fits"]
    s2 = sc.dataclasses.replace(s, max_tokens=500)
    assert sc.estimate(s2, info)["char"]["lengths"]["whole"]["reason"] == "600 tokens per sequence > max 500"
    assert sc.pass_seconds(8000) == pytest.approx(5.9) and sc.pass_seconds(16000) == pytest.approx(4 * 5.9)
    assert sc.pass_seconds(1000) < sc.pass_seconds(1500) < sc.pass_seconds(1705)


def test_lm_path_end_to_end_with_a_char_row(tmp_path, monkeypatch, capsys):
    """The k-mer references and one LM row (pre-trained on train_genomes.fa only) on a tiny tree;
    the whole genome does not fit the char row's 400 tokens."""
    s = settings(tmp_path, rows=("char",), pretrain_tflop=0.001, pretrain_window_nt=128, pretrain_batch=4,
                 min_pretrain_steps=4, epochs=(1,), batch_rows=(8, 4, 2), seeds=2, checkpointing_from_nt=10 ** 6,
                 max_tokens=400, max_step_s=120.0, cost_window_nt=256, cost_repeats=1, cost_timeout_s=120.0)
    out = tmp_path / "out"
    from vqdna.lm import finetune as ft
    real, inits = ft.train_one, []

    def spy(*a, **kw):
        inits.append(kw.get("random_init", False))
        return real(*a, **kw)

    monkeypatch.setattr(ft, "train_one", spy)
    r = sc.run(s, out)
    assert r["lengths"] == [100, 300, "whole"]
    for row in ("kmer-bag", "kmer-bag-all", "char", "char-probe", "char-random", "char-random-probe"):
        assert set(r["rows"][row]) == ({"100", "300", "whole"} if row.startswith("kmer") else {"100", "300"})
    # the random-init controls: the same recipe and rows from random weights (their own cells)
    rnd = r["details"]["seeds"]["char-random_300"]
    assert len(rnd) == 2 and all(c["random_init"] and c["row"] == "char-random" for c in rnd)
    assert sorted(inits) == [False] * 4 + [True] * 4  # 2 lengths x 2 seeds, each from its own weights
    assert r["details"]["probe"]["char-random_300"]["random_init"] is True
    assert r["rows"]["char"]["300"]["seeds"] == 2 and 0 <= r["rows"]["char"]["300"]["macro_f1"] <= 1
    # the table's long-input recipe: the LM at 0.1x the head's lr in every fine-tuned cell
    assert {c["config"]["backbone_lr_scale"] for v in r["details"]["seeds"].values() for c in v} == {0.1}
    # and LP-FT: the warmed head is epoch 0 of every cell's history, a candidate for the best epoch
    assert {c["config"]["head_warmup_epochs"] for v in r["details"]["seeds"].values() for c in v} == {100}
    assert all(c["history"][0]["epoch"] == 0 and c["best_epoch"] in (0, 1)
               for v in r["details"]["seeds"].values() for c in v)
    assert r["rows"]["kmer-bag"]["whole"]["train_rows"] == 12
    assert r["rows"]["kmer-bag-all"]["whole"]["train_rows"] == r["task"]["whole"]["train_rows_all"]
    fit = r["details"]["fit"]["char_whole"]
    assert not fit["fits"] and "> max 400" in fit["reason"]
    # the feature diagnostics read the same OUT: one probe row per LM and pooling, every layer and all
    fd = load_benchmark_script("sars_cov2_feature_diagnostics")
    capsys.readouterr()
    fd.layer_probes(out, "char", 300)
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("| pre-trained", "| random"))]
    assert len(table) == 4 and all(line.count("/") == 4 for line in table)  # embeddings, 2 layers, all
    assert sc.Settings.training_genomes(s)[0].endswith("train_genomes.fa")
    assert r["details"]["pretrain"]["char"]["corpus_nucleotides"] == 600 * r["task"]["whole"]["tips_per_split"]["train"]
    sc.publish(r, tmp_path / "results")
    md = (tmp_path / "results" / "results.md").read_text()
    assert "| char | " in md and "does not fit [1]" in md and "Chance: 33.3% accuracy" in md
    assert "the LM's weights at 0.1 the head's lr" in md
    assert "| char-random | " in md and "| char-random-probe | " in md
    saved = json.loads((tmp_path / "results" / "results.json").read_text())
    assert saved["rows"]["char"]["100"]["seeds"] == 2
    assert json.loads((tmp_path / "results" / "settings.json").read_text())["rows"] == ["char"]
    # a run of another row (here: none) still tables every row that has cells in OUT, and --collect
    # rebuilds the same table from the cells without training anything
    again = sc.collect(sc.dataclasses.replace(s, rows=()), out)
    assert again["rows"] == r["rows"] and list(again["details"]["settings"]["rows"]) == ["char"]
    assert sc.main(["--collect", "--out", str(out), "--results", str(tmp_path / "re"), "--tree", s.tree,
                    "--reference", s.reference, "--tasks-dir", s.tasks_dir, "--lengths", "100,300,whole",
                    "--label-level", "2", "--min-class-size", "5", "--min-classes", "3",
                    "--max-train-per-class", "4"]) == 0
    assert json.loads((tmp_path / "re" / "results.json").read_text())["rows"] == r["rows"]
    # a fine-tuning variant outside the table: the same rows, the LM frozen
    variants = load_benchmark_script("sars_cov2_finetune_variants")
    log = tmp_path / "variants.jsonl"
    assert variants.main(["--row", "char", "--length", "300", "--tag", "head", "--set", '{"method": "head"}',
                          "--out", str(out), "--log", str(log)]) == 0
    v = json.loads(log.read_text())
    assert v["extra"] == {"method": "head"} and v["bs"] == 4 and 0 <= v["test_acc"] <= 1
    assert variants.main(["--row", "char", "--length", "300", "--tag", "lpft", "--random-init", "--set",
                          '{"head_warmup_epochs": 3}', "--out", str(out), "--log", str(log)]) == 0
    v = json.loads(log.read_text().splitlines()[-1])
    assert v["row"] == "char-random" and v["extra"] == {"head_warmup_epochs": 3} and 0 <= v["test_acc"] <= 1
