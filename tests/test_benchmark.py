"""`vqdna benchmark` on a micro budget: two tokenizers (one per nucleotide, one compressing) x one
tiny task; outputs, equal-nucleotide accounting, resume without recomputation."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from vqdna import benchmark as bm


@pytest.fixture(scope="module")
def bench(tmp_path_factory, yeast_genome):
    """Run the `test` budget once with char and nt6 on a TATA-box task cut from yeast chr I."""
    from vqdna.sequence.fasta import read_fasta

    root = tmp_path_factory.mktemp("bench")
    seq = next(read_fasta(yeast_genome)).sequence.upper()
    rng = np.random.default_rng(0)
    task = root / "tata_toy"
    task.mkdir()
    for split, n in (("train", 60), ("dev", 24), ("test", 24)):
        rows = []
        for _ in range(n):
            s = int(rng.integers(0, len(seq) - 40))
            w, y = seq[s:s + 40], int(rng.integers(0, 2))
            if y:
                w = w[:15] + "TATAAAA" + w[22:]
            rows.append(f"{w},{y}\n")
        (task / f"{split}.csv").write_text("sequence,label\n" + "".join(rows))
    out = root / "out"
    res = bm.run_benchmark("char,nt6", [str(yeast_genome)], [str(task)], budget="test", out=out)
    return {"out": out, "res": res, "task": task, "genome": yeast_genome}


def test_outputs_have_a_row_per_tokenizer_and_a_column_per_task(bench):
    out, res = bench["out"], bench["res"]
    for f in ("results.md", "results.csv", "results.json", "results.png"):
        assert (out / f).stat().st_size > 0, f
    with open(out / "results.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["kind", "tokenizer", "tata_toy", "mean", "mean_rank"]
    assert [(r[0], r[1]) for r in rows[1:]] == [("finetune", "char"), ("finetune", "nt6"), ("probe", "char"),
                                                ("probe", "nt6"), ("reference", "kmer-bag")]
    for r in rows[1:]:
        assert -1 <= float(r[2]) <= 1 and r[3] == r[2]  # one task: the mean is the score
    assert sorted(float(r[4]) for r in rows[1:3]) in ([1.0, 2.0], [1.5, 1.5])
    md = (out / "results.md").read_text()
    for text in ("## Fine-tuning", "## Linear probing", "## Cost per tokenizer", "## Budget", "| char |", "| nt6 |",
                 "*kmer-bag*", "mean rank", "tata_toy (mcc)"):
        assert text in md, text
    j = json.loads((out / "results.json").read_text())
    assert j["tokenizers"] == ["char", "nt6"] and j["tasks"] == ["tata_toy"]
    assert set(j["finetune"]) == set(j["probe"]) == {"char", "nt6"}
    for n in ("char", "nt6"):
        c = j["costs"][n]
        assert c["lm_parameters"] > 0 and c["lm_flops_512nt"] > 0 and c["wall_time_s"]["total"] > 0
    assert res["reference"]["kmer-bag"]["scores"]["tata_toy"] == j["reference"]["kmer-bag"]["scores"]["tata_toy"]


def test_equal_nucleotide_accounting(bench):
    j = json.loads((bench["out"] / "results.json").read_text())
    b = bm.BUDGETS["test"]
    char, nt6 = j["costs"]["char"], j["costs"]["nt6"]
    assert char["tokens_per_512nt"] == 512 and char["seq_length_tokens"] == b.window_nt
    assert 80 <= nt6["tokens_per_512nt"] <= 100  # 512 // 6 + 512 % 6 = 87 on N-free DNA
    assert nt6["seq_length_tokens"] == round(b.window_nt / nt6["nt_per_token"]) < char["seq_length_tokens"]
    target = b.lm_steps * b.lm_batch * b.window_nt
    for c in (char, nt6):
        assert c["nucleotides_target"] == target
        assert c["tokens_seen"] == b.lm_steps * b.lm_batch * c["seq_length_tokens"]
        assert abs(c["nucleotides_seen"] - target) / target < 0.06  # equal up to rounding tokens per window
    # fewer tokens for the same DNA: a cheaper forward pass
    assert nt6["lm_flops_512nt"] < char["lm_flops_512nt"]


def test_resume_skips_finished_cells(bench, monkeypatch):
    out = bench["out"]
    cells = sorted((out / "cells").glob("*.json"))
    # pretrain (x2), finetune (x2), probe (x2), reference (x1)
    assert len(cells) == 7
    before = {p.name: p.stat().st_mtime_ns for p in cells}

    def boom(*a, **k):
        raise AssertionError("a finished cell was recomputed")

    for fn in ("train_tokenizer", "write_codes", "pretrain", "finetune", "run_kmer_baseline", "linear_probe"):
        monkeypatch.setattr(bm, fn, boom)
    res = bm.run_benchmark("char,nt6", [str(bench["genome"])], [str(bench["task"])], budget="test", out=out)
    assert res["run"]["computed_cells"] == 0 and res["run"]["resumed_cells"] == 7
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")} == before
    assert res["finetune"] == bench["res"]["finetune"]


def test_rejects_another_budget_in_the_same_folder(bench):
    with pytest.raises(ValueError, match="another budget"):
        bm.run_benchmark("char", [str(bench["genome"])], [str(bench["task"])], budget="quick", out=bench["out"])


def test_task_names_and_tokenizer_parsing():
    from pathlib import Path

    assert bm.task_name(Path("GUE/tf/0")) == "tf0"
    assert bm.task_name(Path("GUE/prom/prom_core_tata")) == "prom_core_tata"
    assert bm.parse_tokenizers("all") == list(bm.ALL_TOKENIZERS)
    with pytest.raises(ValueError):
        bm.parse_tokenizers("char,wordpiece")


def test_shards_balance_cost_and_keep_every_tokenizer():
    groups = bm.shard_tokenizers(list(bm.ALL_TOKENIZERS), 2)
    assert sorted(sum(groups, [])) == sorted(bm.ALL_TOKENIZERS) and len(groups) == 2
    cost = [sum(bm._COST[n] for n in g) for g in groups]
    assert max(cost) - min(cost) <= max(bm._COST.values())
    assert bm.shard_tokenizers(["char"], 4) == [["char"]]


def test_jobs_run_tokenizers_in_parallel_processes(bench, tmp_path):
    out = tmp_path / "parallel"
    res = bm.run_benchmark("char,nt6", [str(bench["genome"])], [str(bench["task"])], budget="test", out=out,
                           jobs=2)
    assert len(list((out / "cells").glob("*.json"))) == 7
    # the parent computed the shared reference cell, every tokenizer cell came from a shard process
    assert res["run"]["computed_cells"] == 1 and res["run"]["resumed_cells"] == 6
    serial = bench["res"]
    for name in ("char", "nt6"):
        a, b = (json.loads((o / "cells" / f"{name}__corpus__pretrain.json").read_text()) for o in (out, bench["out"]))
        assert a["nucleotides_seen"] == b["nucleotides_seen"] and a["tokens_per_512nt"] == b["tokens_per_512nt"]
    assert set(res["finetune"]) == set(serial["finetune"])
