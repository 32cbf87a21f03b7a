"""`vqdna benchmark` on a micro budget: two tokenizers (one per nucleotide, one compressing) x one
tiny task; outputs, equal-nucleotide accounting, resume without recomputation."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from vqdna import benchmark as bm


@pytest.fixture(scope="module")
def bench(tmp_path_factory, yeast_genome):
    """Run the `test` budget once with char and nt6 on a TATA-box task cut from yeast chr I."""
    root = tmp_path_factory.mktemp("bench")
    task = _toy_task(root / "tata_toy", yeast_genome, 60, seed=0)
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


def _forbid_computing(monkeypatch):
    """Make every function that computes a cell fail (a resumed run must call none of them)."""
    import vqdna.references.cnn as cnn
    from vqdna.benchmark import pipeline, references

    def boom(*a, **k):
        raise AssertionError("a finished cell was recomputed")

    for fn in ("train_tokenizer", "write_codes", "pretrain", "finetune", "linear_probe"):
        monkeypatch.setattr(pipeline, fn, boom)
    monkeypatch.setattr(references, "run_kmer_baseline", boom)
    monkeypatch.setattr(cnn, "run_cnn_baseline", boom)


def test_resume_skips_finished_cells(bench, monkeypatch):
    out = bench["out"]
    cells = sorted((out / "cells").glob("*.json"))
    # pretrain (x2), finetune (x2), probe (x2), reference (x1)
    assert len(cells) == 7
    before = {p.name: p.stat().st_mtime_ns for p in cells}
    _forbid_computing(monkeypatch)
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


def test_row_queue_holds_every_row_once_most_expensive_first():
    units = bm.row_queue(bm.parse_rows(list(bm.ALL_TOKENIZERS), bm.BUDGETS["quick"]))
    assert sorted(sum(units, [])) == sorted(bm.ALL_TOKENIZERS) and all(len(u) == 1 for u in units)
    cost = [bm._COST[u[0]] for u in units]
    assert cost == sorted(cost, reverse=True)
    assert bm.row_queue(bm.parse_rows("char", bm.BUDGETS["quick"])) == [["char"]]


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


# ---------------------------------------------------------------- issue 9 rows: cnn, <tokenizer>-random, paper


def _toy_task(folder, genome, n_train, seed):
    """A TATA-box task cut from yeast chr I (as in `bench`), ``n_train`` training rows."""
    from vqdna.sequence.fasta import read_fasta

    seq = next(read_fasta(genome)).sequence.upper()
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for split, n in (("train", n_train), ("dev", 24), ("test", 24)):
        rows = []
        for _ in range(n):
            s = int(rng.integers(0, len(seq) - 40))
            w, y = seq[s:s + 40], int(rng.integers(0, 2))
            if y:
                w = w[:15] + "TATAAAA" + w[22:]
            rows.append(f"{w},{y}\n")
        (folder / f"{split}.csv").write_text("sequence,label\n" + "".join(rows))
    return folder


ROWS9 = "char,hrq,char-random,hrq-random,cnn"


@pytest.fixture(scope="module")
def bench9(bench, tmp_path_factory):
    """The new rows on two tasks: tata_toy (60 training rows) and a GUE-named one (`tf/0` -> tf0,
    80 rows); 2 seeds on tasks of at most 60 rows, 1 on the others. Shares `bench`'s work folder
    (char's LM is reused)."""
    root = tmp_path_factory.mktemp("bench9")
    tf0 = _toy_task(root / "GUE" / "tf" / "0", bench["genome"], 80, seed=1)
    kw = dict(budget="test", seeds=2, small_task_rows=60, large_task_seeds=1, work=bench["out"] / "work")
    out = root / "out"
    res = bm.run_benchmark(ROWS9, [str(bench["genome"])], [str(bench["task"]), str(tf0)], out=out, **kw)
    return {"out": out, "res": res, "tasks": [str(bench["task"]), str(tf0)], "kw": kw, "genome": bench["genome"]}


def test_new_rows_have_their_cells_and_seeds(bench9):
    out, res = bench9["out"], bench9["res"]
    names = {p.name for p in (out / "cells").glob("*.json")}
    for t in ("tata_toy", "tf0"):
        for n in ("char-random", "hrq-random"):
            assert f"{n}__{t}__finetune.json" in names
            assert f"{n}__{t}__probe.json" not in names  # controls: fine-tuning only
        assert f"cnn__{t}__reference.json" in names
    # the seed rule: tata_toy has 60 training rows (<= 60: 2 seeds), tf0 80 (1 seed)
    seeds = {"tata_toy": 2, "tf0": 1}
    for t, n in seeds.items():
        for row, kind in (("char", "finetune"), ("hrq-random", "finetune"), ("cnn", "reference")):
            c = json.loads((out / "cells" / f"{row}__{t}__{kind}.json").read_text())
            assert len(c["values"]) == n, (row, t)
            assert c["train_rows"] == min(40, c["train_rows_of"])  # the same rows (max_train 40) for every row
    assert res["seeds_per_task"] == seeds
    rnd = json.loads((out / "cells" / "hrq-random__tata_toy__finetune.json").read_text())
    assert rnd["random_init"] is True and rnd["config"]["method"] == "lora" and rnd["config"]["lr"] == 1e-3
    cnn = json.loads((out / "cells" / "cnn__tata_toy__reference.json").read_text())
    assert cnn["std"] >= 0 and cnn["score"] == pytest.approx(np.mean(cnn["values"]))
    assert cnn["config"]["epochs"] == 2 and cnn["config"]["max_train"] == 40


def test_new_rows_in_the_tables(bench9):
    out, res = bench9["out"], bench9["res"]
    assert res["tokenizers"] == ["char", "hrq"] and res["random_rows"] == ["char-random", "hrq-random"]
    assert list(res["reference"]) == ["kmer-bag", "cnn"]
    assert set(res["finetune"]) == set(res["probe"]) == {"char", "hrq"}  # controls are not ranked
    g = res["pretraining_gain"]["hrq"]
    ft, rnd = res["finetune"]["hrq"], res["random_init"]["hrq-random"]
    assert g["random_row"] == "hrq-random"
    assert g["tasks"]["tata_toy"]["diff"] == pytest.approx(ft["scores"]["tata_toy"] - rnd["scores"]["tata_toy"])
    assert g["mean"]["diff"] == pytest.approx(ft["mean"] - rnd["mean"])
    sd = [ft["std"][t] for t in ("tata_toy", "tf0")]
    assert g["mean"]["pretrained_std"] == pytest.approx(np.sqrt(sum(s * s for s in sd)) / 2)
    with open(out / "results.csv") as fh:
        rows = [(r[0], r[1]) for r in csv.reader(fh)][1:]
    assert rows == [("finetune", "char"), ("finetune", "hrq"), ("probe", "char"), ("probe", "hrq"),
                    ("random_init", "char-random"), ("random_init", "hrq-random"), ("reference", "kmer-bag"),
                    ("reference", "cnn")]
    md = (out / "results.md").read_text()
    for text in ("| hrq-random (no pre-training) |", "| *cnn* |", "## What pre-training adds", "hrq − hrq-random",
                 "2 seed(s) (0..1): tata_toy", "1 seed(s) (0..0): tf0", "at most 60 training rows"):
        assert text in md, text


def test_report_prints_the_papers_gue_numbers(bench9):
    res, md = bench9["res"], (bench9["out"] / "results.md").read_text()
    # tf0 = TFP (Human) 0 of the paper's Table 3: DNABERT-2 71.99, VQDNA (HRQ) 72.48
    assert res["paper"]["tasks"] == {"tf0": {"DNABERT-2": 0.7199, "VQDNA-HRQ": 0.7248}}
    assert res["means"]["gue_tasks"] == ["tf0"]
    line = next(x for x in md.splitlines() if x.startswith("| *paper: DNABERT-2* |"))
    assert line.split(" | ")[1:5] == ["–", "72.0", "–", "72.0"]  # tata_toy, tf0, mean of all, GUE mean
    assert "| *paper: VQDNA-HRQ* | – | 72.5 |" in md
    assert "GUE mean (1)" in md and "fine-tuned, mean of the 1 GUE tasks" in md
    # every budget field is printed
    from dataclasses import fields

    for f in fields(bm.Budget):
        assert f"| `{f.name}` |" in md, f.name


def test_new_rows_resume(bench9, monkeypatch):
    out = bench9["out"]
    before = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    _forbid_computing(monkeypatch)
    res = bm.run_benchmark(ROWS9, [str(bench9["genome"])], bench9["tasks"], out=out, **bench9["kw"])
    assert res["run"]["computed_cells"] == 0 and res["run"]["resumed_cells"] == len(before)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")} == before
    assert res["random_init"] == bench9["res"]["random_init"] and res["reference"] == bench9["res"]["reference"]


def test_resume_in_a_new_work_folder_rebuilds_the_lm(tmp_path, yeast_genome):
    """A fresh machine has the committed cells but not the work folder: missing cells are computed
    after the tokenizer and LM are rebuilt (seeded, so the same validation loss)."""
    from vqdna.benchmark.cells import cell_path

    a = _toy_task(tmp_path / "taskA", yeast_genome, 40, seed=3)
    b = _toy_task(tmp_path / "taskB", yeast_genome, 40, seed=4)
    out = tmp_path / "out"
    bm.run_benchmark("char", [str(yeast_genome)], [str(a)], budget="test", out=out, work=tmp_path / "w1")
    bm.run_benchmark("char", [str(yeast_genome)], [str(a), str(b)], budget="test", out=out, work=tmp_path / "w2")
    assert (tmp_path / "w2" / "char" / "lm" / "model.safetensors").exists()
    for t in ("taskA", "taskB"):
        assert cell_path(out, "char", t, "finetune").exists()
    pre = json.loads(cell_path(out, "char", "corpus", "pretrain").read_text())
    again = json.loads((tmp_path / "w2" / "char" / "lm" / "metrics.json").read_text())
    assert abs(pre["lm_val_loss"] - again["val_loss"]) < 1e-4


def test_a_shard_stops_when_its_parent_is_killed(tmp_path):
    """--jobs N shards must not outlive a killed benchmark (they would keep writing its folders)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "child.pid"
    child = ("import os, time; from vqdna.benchmark.run import exit_with_parent; "
             f"exit_with_parent(os.getppid(), every=0.1); open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
             "time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); "
                               "time.sleep(60)"])
    deadline = time.time() + 180  # importing torch takes 20 s and more on a loaded machine
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.time() < deadline, "the child never started"
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    for _ in range(400):  # it checks every 0.1 s; 20 s allows for a loaded machine
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("the child outlived its killed parent")


# ---------------------------------------------------------------- issue 12: strided learned rows


def test_strided_hrq_row_end_to_end(tmp_path, yeast_genome):
    """`hrq-s4` (and its random-init control) through the `test` budget: one code per 4 nt, so the
    LM window of 60 nt holds 15 tokens; every cell exists and the report shows the stride. The run
    changes the budget by ``settings`` (``vqdna benchmark --set``): each stage is built with them."""
    task = _toy_task(tmp_path / "tata_toy", yeast_genome, 40, seed=5)
    out = tmp_path / "out"
    settings = {"tok_overrides": {"codebook_sizes": [64, 32]}, "lm_overrides": {"lr": 5e-4},
                "ft_overrides": {"position_lr_scale": 3}}
    res = bm.run_benchmark("hrq-s4,hrq-s4-random", [str(yeast_genome)], [str(task)], budget="test", out=out,
                           settings=settings)
    budget = json.loads((out / "benchmark.json").read_text())["budget"]
    assert budget["tok_overrides"]["codebook_sizes"] == [64, 32] and budget["tok_overrides"]["warmup_steps"] == 3
    lm = yaml.safe_load((out / "work" / "hrq-s4" / "lm" / "pretrain_config.yaml").read_text())
    assert lm["train"]["lr"] == 5e-4
    for row in ("hrq-s4", "hrq-s4-random"):
        cell = json.loads((out / "cells" / f"{row}__tata_toy__finetune.json").read_text())
        assert cell["config"]["position_lr_scale"] == 3, row
    with pytest.raises(ValueError, match="another budget"):  # the folder holds the changed budget
        bm.run_benchmark("hrq-s4", [str(yeast_genome)], [str(task)], budget="test", out=out)
    names = {p.name for p in (out / "cells").glob("*.json")}
    for n in ("hrq-s4__corpus__pretrain", "hrq-s4__tata_toy__finetune", "hrq-s4__tata_toy__probe",
              "hrq-s4-random__tata_toy__finetune", "kmer-bag__tata_toy__reference"):
        assert f"{n}.json" in names, n
    c = res["costs"]["hrq-s4"]
    assert c["nt_per_token"] == pytest.approx(4, rel=0.02) and c["tokenizer_stride"] == 4
    assert c["tokens_per_512nt"] == 128 and c["seq_length_tokens"] == round(bm.BUDGETS["test"].window_nt / 4)
    tok = json.loads((out / "work" / "hrq-s4" / "tokenizer" / "config.json").read_text())
    assert tok["model"]["stride"] == 4 and tok["model"]["codebook_sizes"] == [64, 32]  # HRQ: two levels, as set
    assert res["pretraining_gain"]["hrq-s4"]["random_row"] == "hrq-s4-random"
    md = (out / "results.md").read_text()
    for text in ("| hrq-s4 |", "| hrq-s4-random (no pre-training) |", "(stride 4)", "`hrq-s4` = hrq with stride 4",
                 "position_lr_scale=3"):  # the report names a fine-tuning field the settings changed
        assert text in md, text


def test_strided_row_names():
    b = bm.BUDGETS["test"]
    plan = bm.parse_rows("hrq-s4-random,char,hrq-s4,vq-s2,hrq-s8", b)
    assert (plan.pipelines, plan.random) == (["char", "hrq-s4", "vq-s2", "hrq-s8"], ["hrq-s4-random"])
    assert bm.learned_row("hrq-s4") == ("hrq", 4) and bm.learned_row("vq") == ("vq", 1)
    assert bm.learned_row("char") is None and bm.random_base("vq-s8-random") == "vq-s8"
    assert "all" not in bm.parse_tokenizers("all") and "hrq-s4" not in bm.parse_tokenizers("all")
    for bad, why in (("hrq-s3", "stride 3 is not one of 2, 4, 8"), ("hrq-s1", "stride 1 is the row hrq"),
                     ("hrq-s16", "stride 16"), ("kmer3-s4", "only the learned tokenizers"),
                     ("char-s2", "only the learned tokenizers"), ("hrq-s3-random", "stride 3"),
                     ("hrq-s4-random", "needs hrq-s4 in the same run"), ("bert-s4", "unknown row name")):
        with pytest.raises(ValueError, match=why):
            bm.parse_tokenizers(f"char,{bad}")
    # a budget that unfreezes the tokenizer cannot take a strided row (it needs one code per nucleotide)
    from dataclasses import replace

    unfreeze = replace(b, ft_overrides={"unfreeze_tokenizer": True})
    assert bm.parse_rows("hrq", unfreeze).pipelines == ["hrq"]
    with pytest.raises(ValueError, match="stride-1 tokenizer"):
        bm.parse_rows("hrq,hrq-s4", unfreeze)


# ---------------------------------------------------------------- issue 19 item 6: the queue and the code cache


def test_work_queue_splits_the_cnn_row_by_task_and_keeps_pipelines_whole():
    plan = bm.parse_rows(None, bm.BUDGETS["full"])
    work = {"big": 6.0, "mid": 3.0, "small": 1.0}
    queue = bm.work_queue(plan, work)
    cnn = [tasks for rows, tasks in queue if rows == ["cnn"]]
    assert sorted(cnn) == [["big"], ["mid"], ["small"]]  # every task once, one task per unit
    assert all(tasks is None for rows, tasks in queue if rows != ["cnn"])
    rows_once = [r for rows, tasks in queue if rows != ["cnn"] for r in rows]
    assert sorted(rows_once) == sorted(n for n in plan.names if not n.startswith("kmer-bag") and n != "cnn")
    # most expensive first: the whole hrq unit leads, the CNN's tasks come by size
    assert queue[0][0] == ["hrq", "hrq-random"]
    assert cnn == [["big"], ["mid"], ["small"]]


def test_only_tasks_is_checked(bench):
    kw = dict(budget="test", out=bench["out"])
    with pytest.raises(ValueError, match="report=False"):
        bm.run_benchmark("char", [str(bench["genome"])], [str(bench["task"])], only_tasks=["tata_toy"], **kw)
    with pytest.raises(ValueError, match="nosuch"):
        bm.run_benchmark("char", [str(bench["genome"])], [str(bench["task"])], only_tasks=["nosuch"],
                         report=False, **kw)


def test_jobs_queue_runs_the_cnn_row_task_by_task(bench9, tmp_path):
    out = tmp_path / "q"
    res = bm.run_benchmark("char,cnn", [str(bench9["genome"])], bench9["tasks"], out=out, jobs=2,
                           **{**bench9["kw"], "work": tmp_path / "w"})
    # the parent computed only the k-mer references; the CNN's two tasks came from queue processes
    assert res["run"]["computed_cells"] == 2
    for t in ("tata_toy", "tf0"):
        a, b = (json.loads((o / "cells" / f"cnn__{t}__reference.json").read_text()) for o in (out, bench9["out"]))
        assert a["seeds"] == b["seeds"] and a["train_rows"] == b["train_rows"]
    assert set(res["reference"]) == {"kmer-bag", "cnn"} and set(res["finetune"]) == {"char"}


def test_code_cache_encodes_each_row_once_per_tokenizer(bench9):
    """The benchmark's cells of one row share a CodeCache: the codes it serves are the ones a fresh
    encode gives (so the probe and the random-init cells are unchanged), for a learned tokenizer."""
    from vqdna.benchmark.pipeline import probe_features
    from vqdna.lm.artifacts import tokenizer_sha256
    from vqdna.lm.inference import CodeCache, tokenize
    from vqdna.sequence.tasks import Split, load_task
    from vqdna.tokenizers import load_tokenizer

    tdir = bench9["kw"]["work"] / "hrq"
    tok, tid = load_tokenizer(tdir / "tokenizer"), tokenizer_sha256(tdir / "tokenizer")
    task = load_task(bench9["tasks"][0])
    cache = CodeCache()
    rows = [5, 1, 7]
    first = cache.tokenize(tok, tid, task.train, rows)
    assert cache.encoded == 3 and cache.reused == 0
    whole = cache.tokenize(tok, tid, task.train)  # 3 rows served, the others encoded (in other batches)
    assert cache.encoded == len(task.train) and cache.reused == 3
    fresh = tokenize(tok, task.train.sequences)
    assert all(np.array_equal(a, b) for a, b in zip(whole, fresh))
    assert all(np.array_equal(a, fresh[i]) for a, i in zip(first, rows))
    cache.tokenize(tok, "another tokenizer", task.train, [1])  # another id: encoded again
    assert cache.encoded == len(task.train) + 1
    unsaved = Split(sequences=task.train.sequences[:2], labels=task.train.labels[:2])
    cache.tokenize(tok, tid, unsaved)
    cache.tokenize(tok, tid, unsaved)  # no file, no key: encoded both times
    assert cache.encoded == len(task.train) + 5
    # the probe's features from cached codes equal the embedding of the sequences
    seqs = task.dev.sequences
    a = np.stack([e.mean(0).numpy() for e in tok.embed(seqs)]).astype(np.float32)
    b = probe_features("hrq", tdir, cache.tokenize(tok, tid, task.dev))
    assert np.array_equal(a, b)
    from vqdna.lm.artifacts import load_backbone

    cdir = bench9["kw"]["work"] / "char"
    table = load_backbone(cdir / "lm").token_embedding_table(0).float().numpy()
    c = np.stack([table[x[0]].mean(0) for x in load_tokenizer(cdir / "tokenizer").encode(seqs)]).astype(np.float32)
    d = probe_features("char", cdir, tokenize(load_tokenizer(cdir / "tokenizer"), seqs))
    assert np.array_equal(c, d)
