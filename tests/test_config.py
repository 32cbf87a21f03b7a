"""The one config system of every stage (vqdna.config.StageSpec): presets and YAML, the override
rule, the default rule, flags against the YAML; no training, milliseconds."""
from __future__ import annotations

import dataclasses

import pytest

from vqdna.config import (FINETUNE_PRESETS, FINETUNE_STAGE, LM_PRESETS, LM_STAGE, PRESETS, STAGES, TOKENIZER_STAGE,
                          finetune_config, lm_configs, tokenizer_configs)


def _asdicts(configs):
    return [dataclasses.asdict(c) for c in configs]


def _yaml(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_every_preset_of_every_stage_builds():
    for name in PRESETS:
        for q in ("vq", "hrq"):
            mc, _ = tokenizer_configs(name, q)
            assert mc.quantizer == q
    for name in LM_PRESETS:
        lm_configs(name)
    for name in FINETUNE_PRESETS:
        finetune_config(name)
    assert list(STAGES.values()) == [TOKENIZER_STAGE, LM_STAGE, FINETUNE_STAGE]


@pytest.mark.parametrize("build", [
    lambda: tokenizer_configs("tiny", overrides={"dimension": 8}),
    lambda: tokenizer_configs("tiny", dimension=8),
    lambda: lm_configs("tiny", {"hidden": 8}),
    lambda: lm_configs("tiny", hidden=8),
    lambda: finetune_config("cpu", learning_rate=0.1),
])
def test_unknown_override_is_an_error_naming_it_and_the_known_ones(build):
    with pytest.raises(ValueError, match=r"unknown .*config field.*known: \[") as e:
        build()
    assert any(k in str(e.value) for k in ("dimension", "hidden", "learning_rate"))


def test_unknown_override_fails_before_any_work(tmp_path):
    from vqdna.lm.pretrain import pretrain
    from vqdna.tokenizers.training import train_tokenizer

    with pytest.raises(ValueError, match="'dimension'"):
        train_tokenizer(tmp_path / "missing.fa", out=tmp_path / "tok", overrides={"dimension": 8})
    with pytest.raises(ValueError, match="'hidden'"):
        pretrain([tmp_path / "missing"], out=tmp_path / "lm", overrides={"hidden": 8})
    assert not (tmp_path / "tok").exists() and not (tmp_path / "lm").exists()


def test_unknown_yaml_keys_are_errors_in_every_stage(tmp_path):
    with pytest.raises(ValueError, match="modle"):  # a misspelt section is no longer ignored
        tokenizer_configs(_yaml(tmp_path, "preset: small\nmodle: {dim: 8}\n"))
    with pytest.raises(ValueError, match="dimension"):
        tokenizer_configs(_yaml(tmp_path, "model: {dimension: 8}\n"))
    with pytest.raises(ValueError, match="trian"):
        lm_configs(_yaml(tmp_path, "trian: {max_steps: 8}\n"))
    with pytest.raises(ValueError, match="hidden"):
        lm_configs(_yaml(tmp_path, "model: {hidden: 8}\n"))
    with pytest.raises(ValueError, match="learning_rate"):
        finetune_config(_yaml(tmp_path, "learning_rate: 0.1\n"))
    with pytest.raises(ValueError, match="unknown .*preset 'huge'"):
        lm_configs(_yaml(tmp_path, "preset: huge\n"))
    with pytest.raises(FileNotFoundError, match="neither a preset"):
        tokenizer_configs("huge")


def test_values_are_validated_after_overrides():
    with pytest.raises(ValueError, match="one level"):  # VQ with two levels
        tokenizer_configs("tiny", "vq", {"levels": (1, 2), "codebook_sizes": (64, 64)})
    with pytest.raises(ValueError, match="num_heads"):
        lm_configs("tiny", {"num_heads": 3})
    with pytest.raises(ValueError, match="seq_length"):
        lm_configs("tiny", max_steps=5, seq_length=1024)
    with pytest.raises(ValueError, match="method"):
        finetune_config("cpu", method="everything")
    with pytest.raises(ValueError, match="pooling"):
        finetune_config("paper", pooling="max")


def test_yaml_without_preset_starts_from_the_stage_default(tmp_path):
    # the rule (README "Configs"): the preset --config defaults to: tiny, tiny, cpu
    assert (TOKENIZER_STAGE.default, LM_STAGE.default, FINETUNE_STAGE.default) == ("tiny", "tiny", "cpu")
    y = _yaml(tmp_path, "train: {max_steps: 7}\n")
    assert _asdicts(tokenizer_configs(y)) == _asdicts(tokenizer_configs("tiny", max_steps=7))
    assert _asdicts(tokenizer_configs(y, "hrq")) == _asdicts(tokenizer_configs("tiny", "hrq", max_steps=7))
    assert _asdicts(lm_configs(y)) == _asdicts(lm_configs("tiny", max_steps=7))
    f = _yaml(tmp_path, "epochs: 7\n", "ft.yaml")
    assert finetune_config(f) == finetune_config("cpu", epochs=7) == finetune_config(None, epochs=7)
    assert _asdicts(lm_configs()) == _asdicts(lm_configs("tiny"))
    assert _asdicts(tokenizer_configs()) == _asdicts(tokenizer_configs("tiny"))
    # an empty YAML is the default preset itself
    e = _yaml(tmp_path, "", "empty.yaml")
    assert _asdicts(lm_configs(e)) == _asdicts(lm_configs("tiny"))


def test_the_cli_defaults_are_the_stage_defaults():
    from vqdna.cli import build_parser

    p = build_parser()
    tok = p.parse_args(["train-tokenizer", "--fasta", "x.fa", "--out", "o"])
    lm = p.parse_args(["pretrain", "--codes", "c", "--out", "o"])
    ft = p.parse_args(["finetune", "--model", "m", "--task", "t", "--out", "o"])
    assert (tok.config, lm.config, ft.config) == (TOKENIZER_STAGE.default, LM_STAGE.default, FINETUNE_STAGE.default)


def test_flags_win_over_the_yaml(tmp_path):
    y = _yaml(tmp_path, "preset: small\nmodel: {quantizer: vq}\ntrain: {max_steps: 7, lr: 0.5}\n")
    mc, tc = tokenizer_configs(y, "hrq", max_steps=3)
    assert mc.quantizer == "hrq" and mc.levels == (2, 4) and mc.codebook_sizes == (512, 1024)  # small's HRQ sizes
    assert (tc.max_steps, tc.lr) == (3, 0.5)
    mc, tc = tokenizer_configs(y)  # no flag: the YAML's
    assert mc.quantizer == "vq" and tc.max_steps == 7
    lm = _yaml(tmp_path, "preset: small\ntrain: {max_steps: 7}\n", "lm.yaml")
    assert lm_configs(lm)[1].max_steps == 7 and lm_configs(lm, max_steps=3)[1].max_steps == 3
    assert lm_configs(lm, {"max_steps": 5}, max_steps=None)[1].max_steps == 5  # a flag not given changes nothing
    ft = _yaml(tmp_path, "preset: paper\nlr: 0.0003\nepochs: 6\n", "ft.yaml")
    c = finetune_config(ft, lr=0.01, epochs=None)
    assert (c.lr, c.epochs, c.method) == (0.01, 6, "lora")


def test_cli_quantizer_flag_wins_over_the_yaml(tmp_path, monkeypatch):
    import vqdna.tokenizers.training as training
    from vqdna.cli import main

    seen = []

    def fake_train_tokenizer(fasta, **kw):
        seen.append(tokenizer_configs(kw["config"], kw["quantizer"], kw.get("overrides"),
                                      max_steps=kw.get("max_steps"))[0].quantizer)
        return {}

    monkeypatch.setattr(training, "train_tokenizer", fake_train_tokenizer)
    fa = tmp_path / "x.fa"
    fa.write_text(">a\nACGT\n")
    vq = _yaml(tmp_path, "model: {quantizer: vq}\n", "vq.yaml")
    for args, want in ([["--config", vq], "vq"], [["--config", vq, "--quantizer", "hrq"], "hrq"],
                       [[], "hrq"], [["--quantizer", "vq"], "vq"]):
        assert main(["train-tokenizer", "--fasta", str(fa), "--out", str(tmp_path / "out"), *args]) == 0
        assert seen[-1] == want, args


def test_budgets_and_demo_profiles_name_stage_presets():
    from vqdna import benchmark as bm
    from vqdna.demo import PROFILES

    for b in bm.BUDGETS.values():
        tokenizer_configs(b.tok_config, "hrq", b.tok_overrides, max_steps=b.tok_steps)
        lm_configs(b.lm_config, max_steps=b.lm_steps)
        b.finetune_config()
    cpu = FINETUNE_PRESETS["cpu"]
    full = bm.BUDGETS["full"].finetune_config()
    assert (full.method, full.lr, full.pooling) == (cpu["method"], cpu["lr"], cpu["pooling"])
    assert (full.epochs, full.patience) == (4, 0)  # what the committed `full` table ran
    indomain = bm.BUDGETS["indomain"].finetune_config()
    assert (indomain.epochs, indomain.patience) == (cpu["epochs"], cpu["patience"])
    for p in PROFILES.values():
        tok, lm = p["tokenizer"], p["lm"]
        tokenizer_configs(tok["config"], "hrq", tok["overrides"], max_steps=tok["steps"])
        lm_configs(lm["config"], lm["overrides"], max_steps=lm["steps"])
        ft = {k: v for k, v in p["finetune"].items() if k not in ("recipe", "seeds")}
        finetune_config(p["finetune"]["recipe"], **ft)
