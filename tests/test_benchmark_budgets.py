"""Benchmark budgets, row names and the paper's numbers: no run, milliseconds."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from vqdna import benchmark as bm
from vqdna.benchmark.budgets import budget_dict, same_budget

ROOT = Path(__file__).resolve().parents[1]


def test_committed_budgets_keep_their_numbers():
    s = bm.BUDGETS["standard"]
    assert (s.lm_config, s.lm_steps, s.lm_batch, s.window_nt, s.tok_steps) == ("tiny", 600, 16, 256, 400)
    assert (s.ft_method, s.ft_lr, s.ft_epochs, s.ft_batch, s.max_train, s.seeds) == ("lora", 1e-3, 4, 32, 1000, 3)
    q = bm.BUDGETS["quick"]
    assert (q.lm_steps, q.window_nt, q.ft_epochs, q.max_train, q.seeds) == (300, 128, 3, 1000, 1)
    assert q.corpus_nt == 1_500_000
    for b in (s, q, bm.BUDGETS["test"]):
        assert b.small_task_rows == 0 and b.seeds_for(10 ** 6) == b.seeds == b.seeds_for(1)
        cfg = b.finetune_config()
        assert (cfg.method, cfg.lr, cfg.epochs, cfg.batch_size, cfg.max_train) == ("lora", b.ft_lr, b.ft_epochs, 32,
                                                                                    b.max_train)
    # the committed results folders (written before the new fields existed) still resume
    for name in ("standard", "quick"):
        old = json.loads((ROOT / "benchmarks" / "results" / name / "benchmark.json").read_text())["budget"]
        assert same_budget(old, bm.BUDGETS[name])
        assert not same_budget(old, bm.get_budget(name, seeds=5))
        assert not same_budget(old, bm.BUDGETS["full"])


def test_full_budget():
    f = bm.BUDGETS["full"]
    assert f.max_train == 10_000 and f.seeds == 3 and f.kmer_all and f.corpus_nt is None
    for k, v in bm.FULL_RECIPE.items():
        assert getattr(f, k) == v, k
    cfg = f.finetune_config()
    assert (cfg.method, cfg.lr, cfg.epochs, cfg.batch_size, cfg.max_train) == (
        f.ft_method, f.ft_lr, f.ft_epochs, f.ft_batch, 10_000)
    plan = bm.parse_rows(None, f)  # its default rows
    assert plan.pipelines == ["hrq", "vq", "kmer3", "bpe", "char"]
    assert plan.random == ["hrq-random", "char-random"]
    assert plan.references == ["kmer-bag", "kmer-bag-all", "cnn"]
    assert plan.names == bm.parse_rows("hrq,vq,kmer3,bpe,char,hrq-random,char-random,cnn,kmer-bag,kmer-bag-all",
                                       f).names


def test_full_fast_budget_changes_only_attention_dropout_and_kmeans():
    """issue 19: `full` made to fit 2 hours; every other number (rows, tasks, training rows, seeds,
    epochs, lr) is full's, and the committed full folder still resumes with `full` only."""
    from dataclasses import asdict

    f, ff = bm.BUDGETS["full"], bm.BUDGETS["full-fast"]
    changed = {k for k, v in asdict(ff).items() if asdict(f)[k] != v}
    assert changed == {"name", "kmeans_version", "lm_overrides", "ft_overrides"}
    assert ff.kmeans_version == 4 and ff.lm_overrides == {"attention_dropout": 0.0}
    assert ff.finetune_config().attention_dropout == 0.0 and f.finetune_config().attention_dropout is None
    assert ff.finetune_config().pooling == f.finetune_config().pooling
    old = json.loads((ROOT / "benchmarks" / "results" / "full" / "benchmark.json").read_text())["budget"]
    assert same_budget(old, f) and not same_budget(old, ff)


def test_full_budget_seed_rule():
    f = bm.BUDGETS["full"]
    # the budget's own rule: 3 seeds on the 5 tasks of <= 4,904 training rows (mouse3, mouse2,
    # doench2016, prom_300_tata, prom_core_tata), 1 on the larger ones
    assert [f.seeds_for(n) for n in (1904, 4904, 6478, 47_356)] == [3, 3, 1, 1]
    assert all(bm.get_budget("full", small_task_rows=0).seeds_for(n) == 3 for n in (1904, 47_356))
    # 3 seeds on the small tasks only: mouse3 1,904, mouse2 2,620, doench2016 4,392 rows; 1 elsewhere
    g = bm.get_budget("full", small_task_rows=4392)
    rows = {"mouse3": 1904, "mouse2": 2620, "doench2016": 4392, "prom_core_tata": 4904, "mouse0": 6478,
            "prom_core_all": 47_356}
    assert {t: g.seeds_for(n) for t, n in rows.items()} == {"mouse3": 3, "mouse2": 3, "doench2016": 3,
                                                            "prom_core_tata": 1, "mouse0": 1, "prom_core_all": 1}
    assert bm.get_budget("full", small_task_rows=4904, large_task_seeds=2).seeds_for(6478) == 2
    with pytest.raises(ValueError, match="unknown budget"):
        bm.get_budget("huge")
    with pytest.raises(ValueError, match="no budget field"):
        bm.get_budget("full", epochs=3)


def test_row_names():
    b = bm.BUDGETS["standard"]
    plan = bm.parse_rows("cnn,char-random,char,hrq", b)
    assert (plan.pipelines, plan.random) == (["char", "hrq"], ["char-random"])
    assert plan.references == ["kmer-bag", "kmer-bag-all", "cnn"]  # kmer-bag always; -all from kmer_all
    assert bm.parse_rows("char", bm.BUDGETS["test"]).references == ["kmer-bag"]
    assert bm.parse_rows("char,kmer-bag-all", bm.BUDGETS["test"]).references == ["kmer-bag", "kmer-bag-all"]
    assert bm.parse_rows("all,nt6-random", b).random == ["nt6-random"]
    assert bm.parse_rows(None, b).names == list(bm.ALL_TOKENIZERS) + ["kmer-bag", "kmer-bag-all"]
    with pytest.raises(ValueError, match="needs hrq in the same run"):
        bm.parse_tokenizers("char,hrq-random")
    for bad in ("wordpiece-random", "cnn-random", "hrq,hrq", "", "kmer9"):
        with pytest.raises(ValueError):
            bm.parse_tokenizers(bad)


def test_shards_keep_a_pipeline_with_its_random_control():
    plan = bm.parse_rows(None, bm.BUDGETS["full"])
    names = plan.names
    groups = bm.row_queue(plan)
    assert len(groups) == 6 and groups[0] == ["hrq", "hrq-random"]
    assert sorted(sum(groups, [])) == sorted(n for n in names if not n.startswith("kmer-bag"))
    for g in groups:
        for base in ("hrq", "char"):
            assert (base in g) == (f"{base}-random" in g)
            if base in g:
                assert g.index(base) < g.index(f"{base}-random")


def test_paper_numbers():
    from vqdna.benchmark.paper import PAPER_GUE, paper_mean

    assert len(PAPER_GUE) == 13
    assert round(paper_mean(PAPER_GUE, "DNABERT-2"), 1) == 68.4 and round(paper_mean(PAPER_GUE, "VQDNA-HRQ"), 1) == 70.0
    assert PAPER_GUE["prom_core_tata"] == (74.17, 78.50) and PAPER_GUE["mouse4"] == (52.66, 54.73)
    assert paper_mean(["doench2016"], "DNABERT-2") is None


def test_cli_benchmark_options():
    from vqdna.cli import build_parser

    a = build_parser().parse_args(["benchmark", "--corpus", "c.fa", "--tasks", "t", "--out", "o", "--budget", "full",
                                   "--small-task-rows", "4392"])
    assert a.tokenizers is None and a.budget == "full" and a.small_task_rows == 4392 and a.large_task_seeds is None


def test_settings_merge_objects_and_refuse_bad_fields_before_work():
    """``--set``: an object merges into the budget's own, a scalar replaces (an int stands for a
    float); an unknown budget or stage field, a bad value or a wrong kind is refused by name."""
    from vqdna.cli import budget_settings, build_parser

    pairs = ['tok_overrides={"codebook_sizes": [512, 256], "dead_code_threshold": 0.5}', "ft_lr=1",
             'ft_overrides={"position_lr_scale": 3}', "lm_config=small"]
    a = build_parser().parse_args(["benchmark", "--corpus", "c.fa", "--tasks", "t", "--out", "o"]
                                  + [x for p in pairs for x in ("--set", p)])
    settings = budget_settings(a.set)
    assert settings["lm_config"] == "small" and settings["ft_lr"] == 1
    b = bm.get_budget("full", settings, seeds=1)
    full = bm.BUDGETS["full"]
    assert b.tok_overrides == dict(full.tok_overrides, codebook_sizes=[512, 256], dead_code_threshold=0.5)
    assert b.ft_overrides == {"pooling": "meanmax", "position_lr_scale": 3} and b.finetune_config().position_lr_scale == 3
    assert b.ft_lr == 1.0 and isinstance(b.ft_lr, float) and b.lm_config == "small" and b.seeds == 1
    assert full.tok_overrides.get("codebook_sizes") is None  # the registered budget is untouched
    assert not same_budget(budget_dict(full), b) and same_budget(budget_dict(b), b)  # a changed budget: its own folder
    for bad, why in [({"tok_overrides": {"codebok_sizes": [8]}}, "tok_overrides: unknown tokenizer config field"),
                     ({"lm_overrides": {"lr": -1}}, "lm_overrides: .*lr"),
                     ({"ft_overrides": {"pooling": "median"}}, "ft_overrides"),
                     ({"seeds": "three"}, "seeds: expected int"), ({"tok_steps": 1.5}, "tok_steps: expected int"),
                     ({"kmer_all": 1}, "kmer_all: expected bool"), ({"ft_overrides": 3}, "JSON object"),
                     ({"name": "mine"}, "no budget field.*name"), ({"epochs": 3}, "no budget field.*epochs")]:
        with pytest.raises(ValueError, match=why):
            bm.get_budget("full", bad)
    for pairs, why in [(["ft_lr"], "FIELD=VALUE"), (['ft_overrides={"lr": }'], "not valid JSON"),
                       (["seeds=1", "seeds=2"], "twice")]:
        with pytest.raises(SystemExit, match=why):
            budget_settings(pairs)


def test_indomain_budgets_give_every_row_one_protocol():
    """Issue 18: the LM rows stop early like the CNN, over the same most epochs; a grid is the CNN's too."""
    from dataclasses import replace

    from vqdna.benchmark.budgets import get_budget
    from vqdna.references.cnn import CNNConfig

    for name in ("indomain", "indomain-wide", "indomain-grid", "indomain-long", "indomain-unfrozen"):
        b = get_budget(name)
        ft, cnn = b.finetune_config(), CNNConfig(**b.cnn)
        assert (ft.epochs, ft.patience) == (cnn.epochs, cnn.patience) == (15, 3)
    assert get_budget("indomain").grid_points() == []
    points = get_budget("indomain-grid").grid_points()
    assert len(points) == 9 and {p["epochs"] for p in points} <= {5, 10, 15}
    # indomain-long changes the pre-training only: the same fine-tuning as indomain, 4x the steps
    long, base = get_budget("indomain-long"), get_budget("indomain")
    assert long.finetune_config() == base.finetune_config() and long.lm_steps == 4 * base.lm_steps
    # indomain-unfrozen: indomain-long's LM, fine-tuned with its tokenizer's encoder, nothing else changed
    unfrozen = get_budget("indomain-unfrozen")
    ft = unfrozen.finetune_config()
    assert ft.unfreeze_tokenizer and 0 < ft.tokenizer_lr_scale < 1
    assert replace(ft, unfreeze_tokenizer=False) == long.finetune_config()
    assert replace(unfrozen, name=long.name, ft_overrides=long.ft_overrides, rows=long.rows) == long
    assert get_budget("full").finetune_config().patience == 0  # the committed out-of-domain table is unchanged


def test_the_cli_offers_every_public_budget():
    from vqdna.benchmark.budgets import PUBLIC_BUDGETS
    from vqdna.cli import BUDGET_NAMES

    assert tuple(BUDGET_NAMES) == PUBLIC_BUDGETS
