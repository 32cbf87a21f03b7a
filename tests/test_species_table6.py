"""benchmarks/species_table6.py (issue 12 must-have 4): the equal-compute arithmetic, the
"does not fit" rule and the tables, without training anything."""

import json
import pytest
from conftest import load_benchmark_script

t6 = load_benchmark_script("species_table6")


def test_training_flops_generalise_the_sweep_formula():
    sweep = load_benchmark_script("pretrain_sweep")
    size = sweep.SIZES["tiny"]
    H, L, F = size["hidden_size"], size["num_layers"], size["intermediate_size"]
    vocab = [512, 1024]
    ours = t6.train_flops_per_step(nonembedding=L * (4 * H * H + 2 * H * F), head=H * H + H * sum(vocab), layers=L,
                                   hidden=H, seq=256, batch=16, mask=0.25)
    assert ours == pytest.approx(sweep.flops_per_step(size, vocab, seq=256, batch=16, mask=0.25))
    # the forward term is lm_costs': 2 x non-embedding parameters x T + 4 x layers x T^2 x hidden
    assert t6.lm_forward_flops(nonembedding=1000, layers=2, hidden=64, tokens=511) == 2 * 1000 * 512 + 4 * 2 * 512**2 * 64


def test_equal_compute_gives_a_strided_row_more_steps_and_nucleotides():
    common = dict(nonembedding=70_000, head=100_000, layers=2, hidden=64, batch=16, mask=0.25)
    window_nt, tflop = 2048, 10.0
    steps = {s: t6.budget_steps(tflop, t6.train_flops_per_step(seq=window_nt // s, **common), 20) for s in (1, 4, 8)}
    for s, n in steps.items():  # every row spends the budget (to one step)
        per_step = t6.train_flops_per_step(seq=window_nt // s, **common)
        assert abs(n * per_step - tflop * 1e12) <= per_step
    nt_seen = {s: n * 16 * window_nt for s, n in steps.items()}
    assert steps[1] < steps[4] < steps[8] and nt_seen[1] < nt_seen[4] < nt_seen[8]
    assert t6.budget_steps(1e-9, 1e9, 20) == 20  # the floor


def test_does_not_fit_rule():
    ok = dict(seconds=2.0, peak_rss_mb=1000.0, peak_over_model_mb=500.0)
    common = dict(max_tokens=16384, rows=8, max_step_s=600, max_memory_gb=16)
    assert t6.fit_verdict(tokens=8000, probe=ok, **common) == ""
    assert "32,000 tokens per sequence > max 16,384" in t6.fit_verdict(tokens=32000, probe=None, **common)
    assert "~800 s > 600 s" in t6.fit_verdict(tokens=8000, probe=dict(ok, seconds=100.0), **common)
    # the model once + 8 x one sequence's activations: 0.5 GB + 8 x 2.5 GB
    big = dict(ok, peak_rss_mb=3000.0, peak_over_model_mb=2500.0)
    assert "a step of 8 sequences ~20.0 GB > 16 GB" in t6.fit_verdict(tokens=8000, probe=big, **common)
    assert "killed" in t6.fit_verdict(tokens=8000, probe={"error": "killed (out of memory?)"}, **common)
    assert "min > 30 min" in t6.fit_verdict(tokens=8000, probe=ok, finetune_s=3600, max_finetune_min=30, **common)
    assert t6.fit_verdict(tokens=8000, probe=ok, finetune_s=3600, **common) == ""  # no cap by default


def test_per_length_settings():
    lengths = (1000, 8000, 32000)
    assert t6.per_length((4,), lengths, 8000) == 4
    assert t6.per_length((900, 112, 28), lengths, 32000) == 28
    with pytest.raises(ValueError, match="one value or one per length"):
        t6.per_length((1, 2), lengths, 1000)
    ap = t6.argparse.ArgumentParser()
    t6.add_arguments(ap, t6.Settings())
    s = t6.parse_settings(ap.parse_args(["--lengths", "1000,8000,32000", "--backbone-lr-scale", "1,0.3,0.1"]))
    assert s.backbone_lr_scale == (1.0, 0.3, 0.1)
    assert t6.finetune_recipe(32000, s).backbone_lr_scale == 0.1 and t6.finetune_recipe(1000, s).backbone_lr_scale == 1
    with pytest.raises(ValueError, match="one value or one per length"):
        t6.parse_settings(ap.parse_args(["--lengths", "1000,8000", "--backbone-lr-scale", "1,0.3,0.1"]))
    s = t6.parse_settings(ap.parse_args(["--lengths", "1000,8000", "--max-train", "0", "--batch-rows", "8",
                                         "--head-warmup-epochs", "0,100"]))
    assert t6.finetune_recipe(8000, s).head_warmup_epochs == 100 and t6.finetune_recipe(1000, s).head_warmup_epochs == 0
    assert t6.parse_settings(ap.parse_args(["--random-controls", ""])).random_controls == ()  # none
    assert t6.parse_settings(ap.parse_args(["--random-controls", "probe,finetune"])).random_controls == \
        ("probe", "finetune")
    with pytest.raises(SystemExit, match="--random-controls: unknown fine-tune"):
        t6.parse_settings(ap.parse_args(["--random-controls", "probe,fine-tune"]))


def test_tables_from_cells():
    s = t6.dataclasses.asdict(t6.Settings(rows=("hrq-s4", "char"), lengths=(1000, 32000), seeds=2))
    pre = dict(nt_per_token=4.0, seq_tokens=512, flops_per_step=1e10, steps=1000, tflop=10.0, tokens_seen=8.2e6,
               nucleotides_seen=3.3e7, corpus_passes=47.0, pretrain_wall_s=480.0, val_acc=0.05)
    cost = dict(tokens=8192, lm_forward_flops=2e10, tokenizer_flops=1e10, total_flops=3e10,
                measured=dict(forward_s=1.0, seconds=6.0, peak_rss_mb=600.0))
    fit = dict(tokens=250, train_rows=900, batch_rows=32, checkpointing=False, probe=dict(seconds=0.03),
               est_finetune_s=90.0, fits=True, reason="")
    seed = dict(accuracy=0.5, wall_s=60.0, config=dict(method="full", lr=1e-3, pooling="meanmax"))
    machine = dict(cpu="cpu", cores=2, memory_gb=23, torch="2")
    results = dict(settings=s, command="species_table6.py --out x", machine=machine,
                   pretrain={"hrq-s4": pre, "char": dict(pre, nt_per_token=1.0)},
                   costs={"hrq-s4": cost, "char": dict(cost, measured={"error": "over 3,600 s"})},
                   fit={"hrq-s4_1000": fit, "hrq-s4_32000": dict(fit, tokens=8000), "char_1000": fit,
                        "char_32000": dict(fit, tokens=32000, probe=None, fits=False,
                                           reason="32,000 tokens per sequence > max 16,384")},
                   seeds={"hrq-s4_1000": [seed, dict(seed, accuracy=0.7)], "hrq-s4_32000": [seed], "char_1000": [],
                          "char_32000": []})
    md = t6.render(results)
    assert "kmer-bag" not in md  # results of an older run have no reference row
    results["reference"] = {"1000": dict(accuracy=0.25), "32000": None}
    md = t6.render(results)
    assert "| *kmer-bag (no LM: 1-6-mer frequencies, logistic regression)* | – | *25.0* | – |" in md
    assert "LM frozen" not in md
    results["probe"] = {"hrq-s4_1000": dict(accuracy=0.4), "hrq-s4_32000": None, "char_1000": None}
    md = t6.render(results)
    assert "| hrq-s4 | 40.0 | – |" in md and "| char | – | does not fit |" in md
    assert "| hrq-s4 | 4.00 | 60.0 ± 14.1 | 50.0 (1 of 2 seeds) |" in md
    assert "| char | 1.00 | – | does not fit [1] |" in md
    assert "[1] char at 32k: 32,000 tokens per sequence > max 16,384" in md
    assert "over 3,600 s" in md


def test_pretraining_mask_setting_and_settings_from_before_it(tmp_path):
    """--mask-random-prob reaches the LM's pre-training config; an OUT whose settings.json predates
    a setting resumes when the setting is at its default, and refuses another value."""
    ap = t6.argparse.ArgumentParser()
    t6.add_arguments(ap, t6.Settings())
    s = t6.parse_settings(ap.parse_args(["--mask-random-prob", "0"]))
    assert t6.lm_overrides(s, 64)["mask_random_prob"] == 0.0
    assert t6.lm_overrides(t6.parse_settings(ap.parse_args(["--pretrain-seed", "3"])), 64)["seed"] == 3
    old = json.loads(json.dumps(t6.dataclasses.asdict(t6.Settings())))
    del old["mask_random_prob"]
    (tmp_path / "settings.json").write_text(json.dumps(old))
    t6.check_settings(t6.Settings(), tmp_path)  # the default: resumes
    (tmp_path / "settings.json").write_text(json.dumps(old))
    with pytest.raises(SystemExit, match="mask_random_prob"):
        t6.check_settings(s, tmp_path)
    # a tokenizer for a row added later resumes; another tokenizer for a row with cells does not
    one = t6.dataclasses.replace(t6.Settings(), tokenizer_dirs={"bpe": "a"})
    (tmp_path / "settings.json").unlink()
    t6.check_settings(one, tmp_path)
    t6.check_settings(t6.dataclasses.replace(one, tokenizer_dirs={"bpe": "a", "hrq-s8": "b"}), tmp_path)
    with pytest.raises(SystemExit, match="tokenizer_dirs"):
        t6.check_settings(t6.dataclasses.replace(one, tokenizer_dirs={"bpe": "c", "hrq-s8": "b"}), tmp_path)
