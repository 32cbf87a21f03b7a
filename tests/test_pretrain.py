"""Stage 2 pre-training: windows, validation hold-out, tokenizer checks, outputs, resume."""
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vqdna.codes import CodeStore
from vqdna.lm.pretrain import WindowSampler, pretrain, tokenizer_sha256

torch.set_num_threads(1)
FAST = dict(seq_length=64, batch_size=4, eval_windows=4)


def test_windows_never_touch_validation_blocks(lm_data):
    store = CodeStore(lm_data["codes"])
    s = WindowSampler([store], 64, val_block=256, val_every=10, skip_n_runs=64)
    assert len(s.val_windows) > 0
    val = np.zeros(len(store), dtype=bool)
    for _, start in s.val_windows:
        val[start:start + 64] = True
    gap = store.records[1]["offset"] + 10_000  # the 200-N gap of chrB
    train = s.sample(np.random.default_rng(0), 20_000)
    for _, start in train:
        assert not val[start:start + 64].any()
        assert not (start < gap + 200 and gap < start + 64)
        rec = 0 if start < store.records[1]["offset"] else 1
        r = store.records[rec]
        assert r["offset"] <= start and start + 64 <= r["offset"] + r["length"]  # no window crosses records
    codes = s.gather(train[:5])
    assert codes.shape == (5, 2, 64)
    assert np.array_equal(codes[0, 1], np.asarray(store.levels[1][train[0, 1]:train[0, 1] + 64]))


def test_pretrain_outputs(tiny_lm, lm_data):
    from vqdna.hub.modeling_vqdna import VQDNAForMaskedLM

    for f in ("config.json", "model.safetensors", "metrics.json", "tokenizer/config.json",
              "tokenizer/model.safetensors"):
        assert (tiny_lm / f).exists(), f
    assert not (tiny_lm / "tokenizer" / "checkpoints").exists()
    assert tokenizer_sha256(tiny_lm / "tokenizer") == tokenizer_sha256(lm_data["tokenizer"])
    m = json.loads((tiny_lm / "metrics.json").read_text())
    assert m["steps"] == 6 and m["complete"] and m["history"]
    for k in ("val_acc_l0", "val_acc_l1", "val_ppl_l0", "val_ppl_l1", "tokens_per_s"):
        assert k in m
    model = VQDNAForMaskedLM.from_pretrained(tiny_lm)
    assert model.config.vocab_sizes == [64, 128] and model.config.input_mode == "codebook"
    from vqdna.tokenizers.learned import VQDNATokenizer

    books = VQDNATokenizer.from_pretrained(lm_data["tokenizer"], device="cpu").codebooks()
    assert torch.equal(model.vqdna.embeddings.codebook1[:128], books[1])


def test_resume_equals_unbroken_run(lm_data, tmp_path):
    kw = dict(config="tiny", max_steps=8, progress=False,
              overrides=dict(FAST, eval_every=4, checkpoint_every=4))
    pretrain(lm_data["codes"], out=tmp_path / "a", **kw)
    b = pretrain(lm_data["codes"], out=tmp_path / "b", stop_at=4, **kw)
    assert not b["complete"] and b["steps"] == 4
    b = pretrain(lm_data["codes"], out=tmp_path / "b", resume=True, **kw)
    assert b["complete"] and b["steps"] == 8
    wa, wb = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6, rtol=0), k
    ha = json.loads((tmp_path / "a" / "metrics.json").read_text())["history"]
    hb = json.loads((tmp_path / "b" / "metrics.json").read_text())["history"]
    assert [h["val_loss"] for h in ha] == pytest.approx([h["val_loss"] for h in hb], abs=1e-6)


def test_code_folders_from_different_tokenizers_are_refused(lm_data, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(lm_data["codes"], other)
    man = json.loads((other / "manifest.json").read_text())
    man["tokenizer"]["sha256"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match="different tokenizers"):
        pretrain([lm_data["codes"], other], out=tmp_path / "lm", config="tiny", max_steps=1, progress=False)
    # a tokenizer folder that is not the one the codes were made with
    with pytest.raises(ValueError, match="sha256"):
        pretrain(other, out=tmp_path / "lm", config="tiny", max_steps=1, progress=False)


def test_several_code_folders(lm_data, tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(lm_data["codes"], twin)
    m = pretrain([lm_data["codes"], twin], out=tmp_path / "lm", config="tiny", max_steps=2, progress=False,
                 overrides=dict(FAST, eval_every=2, checkpoint_every=2))
    assert len(m["code_folders"]) == 2 and m["steps"] == 2


def test_cli_pretrain(lm_data, tmp_path, capsys):
    from vqdna.cli import main

    rc = main(["pretrain", "--codes", str(lm_data["codes"]), "--config", "tiny", "--out", str(tmp_path / "lm"),
               "--max-steps", "2"])
    assert rc == 0 and "saved language model" in capsys.readouterr().out
    assert main(["pretrain", "--codes", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2


def test_learning_rate_schedules():
    from vqdna.train import LoopConfig, lr_at

    cos = LoopConfig(max_steps=110, lr=1.0, warmup_steps=10, min_lr_ratio=0.0)
    lin = LoopConfig(max_steps=110, lr=1.0, warmup_steps=10, min_lr_ratio=0.0, decay="linear")
    for cfg in (cos, lin):
        assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
        assert lr_at(10, cfg) == pytest.approx(1.0) and lr_at(110, cfg) == pytest.approx(0.0)
    assert lr_at(60, lin) == pytest.approx(0.5) and lr_at(35, lin) == pytest.approx(0.75)
    assert lr_at(35, cos) == pytest.approx(0.5 * (1 + np.cos(np.pi * 0.25)))
    with pytest.raises(ValueError, match="decay"):
        lr_at(50, LoopConfig(max_steps=110, lr=1.0, decay="step"))


def test_lr_scales_train_the_named_parameters_at_their_share_of_the_rate():
    from vqdna.train import LoopConfig, Runtime, make_optimizer, train_loop

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tok_encoder, self.head = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)

        def forward(self, batch):
            return {"loss": self.head(self.tok_encoder(batch["x"])).pow(2).mean()}

    torch.manual_seed(0)
    model = Net()
    cfg = LoopConfig(max_steps=3, lr=0.1, eval_every=3, checkpoint_every=0, progress=False,
                     lr_scales=(("tok_encoder", 0.0),))
    groups = make_optimizer(model, cfg).param_groups
    assert [(len(g["params"]), g["lr_scale"]) for g in groups] == [(1, 1.0), (1, 1.0), (1, 0.0), (1, 0.0)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_loop(model, cfg=cfg, get_batch=lambda s, m, r: {"x": torch.randn(8, 4)}, evaluate=lambda m, s: {},
               out_dir=None, runtime=Runtime(torch.device("cpu")))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in after if k.startswith("tok_encoder"))  # lr x 0
    assert not torch.equal(before["head.weight"], after["head.weight"])
    plain = make_optimizer(model, LoopConfig(max_steps=3, lr=0.1)).param_groups  # no scales: the two usual groups
    assert [len(g["params"]) for g in plain] == [2, 2]


def _short_record_store(tmp_path, lengths):
    """A code store of records of the given lengths (char tokenizer: one code per nt)."""
    from vqdna.codes import write_codes
    from vqdna.tokenizers.handcrafted import build_handcrafted

    rng = np.random.default_rng(1)
    fa = tmp_path / "short.fa"
    fa.write_text("".join(f">r{i}\n{''.join(rng.choice(list('ACGT'), n))}\n" for i, n in enumerate(lengths)))
    return CodeStore(write_codes(build_handcrafted("char"), fa, tmp_path / "codes", progress=False) and tmp_path / "codes")


def test_short_records_are_packed_into_windows_long_ones_stand_alone(tmp_path):
    lengths = [100] * 30 + [500] + [90] * 20
    store = _short_record_store(tmp_path, lengths)
    packed = WindowSampler([store], 128, val_block=100_000, val_every=1_000, skip_n_runs=0)
    alone = WindowSampler([store], 128, val_block=100_000, val_every=1_000, skip_n_runs=0, pack_short_records=False)
    long_rec = store.records[30]
    lo, hi = long_rec["offset"], long_rec["offset"] + long_rec["length"]
    starts = alone.sample(np.random.default_rng(0), 2000)[:, 1]
    assert ((starts >= lo) & (starts + 128 <= hi)).all()  # without packing only the long record has windows
    starts = packed.sample(np.random.default_rng(0), 5000)[:, 1]
    before, after, inside = starts + 128 <= lo, starts >= hi, (starts >= lo) & (starts + 128 <= hi)
    assert before.any() and after.any() and inside.any()
    assert (before | after | inside).all()  # no window mixes the long record with a short neighbour
    assert packed.n_train_starts > 4 * alone.n_train_starts
