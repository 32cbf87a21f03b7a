"""Issue 23: every stage's end-of-run line gives its reference and verdict, as the demo's table
does, from the same functions (vqdna.verdicts)."""
from __future__ import annotations

import json

from vqdna import demo, verdicts
from vqdna.cli import main


def test_the_demo_and_the_commands_share_one_set_of_references():
    for name in ("unigram_reference", "kmer_references", "tokenizer_rows", "lm_rows", "finetune_rows"):
        assert getattr(demo, name) is getattr(verdicts, name)


def test_lm_verdict_against_the_unigram():
    uni = {"acc_l0": 0.01, "acc_l1": 0.01, "ppl_l0": 400.0, "ppl_l1": 800.0, "codebook_l0": 512,
           "codebook_l1": 1024, "tokens_per_level": 1000}
    learned = {"val_acc_l0": 0.05, "val_acc_l1": 0.02, "val_ppl_l0": 250.0, "val_ppl_l1": 700.0, "steps": 10}
    acc, ppl = verdicts.lm_rows(learned, uni, 2)
    assert acc["verdict"] == "yes: 5.0x / 2.0x unigram" and acc["reference"] == "unigram 1.00% / 1.00%"
    assert ppl["verdict"] == "yes: -37.5% / -12.5% vs unigram" and "codebooks 512 / 1024" in ppl["reference"]
    flat = dict(learned, val_acc_l1=0.012, val_ppl_l1=790.0)
    acc, ppl = verdicts.lm_rows(flat, uni, 2)
    assert acc["verdict"].startswith("no: ") and ppl["verdict"].startswith("no: ")
    line = verdicts.verdict_line([acc, ppl])
    assert "\n" not in line and line.count("unigram") >= 3


def test_tokenizer_verdict_against_the_paper_and_the_usage_floor():
    rec, use = verdicts.tokenizer_rows({"recon_accuracy": 1.0, "usage_l0": 0.99, "usage_l1": 0.90}, 2, "here")
    assert rec["verdict"] == "yes" and rec["reference"] == "paper 99.6%"
    assert use["verdict"] == "no (level 2)" and use["value"] == "99.0% / 90.0%"


def test_pretrain_prints_its_unigram_reference_and_verdict(lm_data, tmp_path, capsys):
    assert main(["pretrain", "--codes", str(lm_data["codes"]), "--config", "tiny", "--out", str(tmp_path / "lm"),
                 "--max-steps", "2", "--threads", "1"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("against the unigram (learned?): validation masked accuracy per level")
    assert line.count("unigram ") >= 2 and ("yes: " in line or "no: " in line), line


def test_finetune_prints_the_k_mer_reference_and_verdict(tiny_lm, lm_tasks, tmp_path, capsys):
    args = ["finetune", "--model", str(tiny_lm), "--task", str(lm_tasks["classification"]), "--seeds", "1",
            "--epochs", "1", "--threads", "1"]
    assert main(args + ["--out", str(tmp_path / "ft")]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("against the reference: test MCC, classification (64 training rows, full)"), line
    assert "bag-of-k-mers LR" in line and " the k-mers (" in line


def test_finetune_json_holds_the_reference_and_no_reference_skips_it(tiny_lm, lm_tasks, tmp_path, capsys):
    args = ["finetune", "--model", str(tiny_lm), "--task", str(lm_tasks["classification"]), "--seeds", "1",
            "--epochs", "1", "--threads", "1"]
    assert main(args + ["--out", str(tmp_path / "a"), "--json"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.rindex("\n{") + 1:])
    assert summary["kmer_reference"]["n_train"] == 64 and "mcc" in summary["kmer_reference"]["test"]
    assert main(args + ["--out", str(tmp_path / "b"), "--no-reference"]) == 0
    assert "against the reference" not in capsys.readouterr().out


def test_train_tokenizer_prints_its_references(yeast_genome, tmp_path, capsys):
    assert main(["train-tokenizer", "--fasta", str(yeast_genome), "--config", "tiny", "--max-steps", "4",
                 "--out", str(tmp_path / "tok"), "--threads", "1"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("against the references: reconstruction, validation windows") and "paper 99.6%" in line
    assert "code usage per level, validation windows" in line and ">= 95%" in line
