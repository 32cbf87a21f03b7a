"""Issue 12 must-have 1: LM inputs beyond 512 tokens. Rotary and ALiBi positions beside the default
learned absolute table, SDPA with a (B, 1, 1, L) padding mask, gradient checkpointing, and
pre-training, fine-tuning, ``predict`` and ``embed`` past 512 tokens (tiny sizes)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import vqdna.hub.modeling_vqdna as modeling
from vqdna.config import LMConfig, lm_configs, validate_lm_config
from vqdna.hub.modeling_vqdna import CLS, PAD, VQDNAConfig, VQDNAForMaskedLM, VQDNAForSequenceClassification

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
VOCAB = [16, 32]
LONG = ("rotary", "alibi")


def tiny(position_embedding="rotary", max_tokens=2048, **kw):
    base = dict(vocab_sizes=VOCAB, input_mode="learned", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=64, max_position_embeddings=max_tokens + 1, position_embedding=position_embedding)
    base.update(kw)
    return VQDNAConfig(**base)


def ids_of(B, L, seed=0, lengths=None):
    """(B, levels, L) codes with [CLS] in front; row b padded after ``lengths[b]`` positions."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randint(0, v, (B, L), generator=g) for v in VOCAB], 1)
    for level, v in enumerate(VOCAB):
        ids[:, level, 0] = v + CLS
        for b, n in enumerate(lengths or []):
            ids[b, level, n:] = v + PAD
    return ids


def masked_labels(ids, seed=1):
    g = torch.Generator().manual_seed(seed)
    lab = ids.clone()
    keep = torch.rand(ids.shape[0], ids.shape[2], generator=g) < 0.25
    keep[:, 0] = False
    lab[~keep.unsqueeze(1).expand_as(lab)] = -100
    lab[lab >= torch.tensor(VOCAB).view(1, -1, 1)] = -100  # no targets on [CLS] / [PAD]
    return lab


# ---------------------------------------------------------------- the model


@pytest.mark.parametrize("kind", LONG)
def test_long_positions_run_2048_tokens_and_padding_changes_nothing(kind):
    model = VQDNAForMaskedLM(tiny(kind)).eval()
    ids = ids_of(2, 2048, lengths=[2048, 700])
    with torch.no_grad():
        h = model.vqdna(ids).last_hidden_state
        alone = model.vqdna(ids[1:, :, :700]).last_hidden_state
    assert h.shape == (2, 2048, 32) and torch.isfinite(h).all()
    assert torch.allclose(h[1, :700], alone[0], atol=1e-5)  # the (B, 1, 1, L) mask hides the pads
    assert not any("position_embeddings" in n for n, _ in model.named_parameters())  # no table


def test_rotary_attention_sees_offsets_not_places():
    """RoPE: the score of a query and a key depends on their distance only (same vectors moved)."""
    cos, sin = modeling.rotary_cos_sin(64, 8, 10000.0, "cpu")
    q, k = torch.randn(8), torch.randn(8)

    def rot(x, i):
        return x * cos[0, i] + modeling.rotate_half(x) * sin[0, i]

    assert torch.allclose(rot(q, 10) @ rot(k, 3), rot(q, 50) @ rot(k, 43), atol=1e-5)


def test_alibi_blocks_equal_one_block(monkeypatch):
    """Queries in blocks (each recomputed in the backward pass) give the loss and gradients of one block."""
    model = VQDNAForMaskedLM(tiny("alibi", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)).train()
    ids = ids_of(2, 300, lengths=[300, 200])
    lab = masked_labels(ids)

    def loss_and_grads():
        model.zero_grad()
        loss = model(ids, labels=lab).loss
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    one = loss_and_grads()
    monkeypatch.setattr(modeling, "ATTENTION_BLOCK_ELEMENTS", 2 * 4 * 300 * 40)  # blocks of 40 queries (B = 2)
    blocks = loss_and_grads()
    assert torch.allclose(one[0], blocks[0], atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(one[1], blocks[1]))
    assert modeling.alibi_slopes(8).tolist() == [2.0 ** -i for i in range(1, 9)]


@pytest.mark.parametrize("kind,blocks", [("absolute", False), ("rotary", False), ("alibi", False),
                                         ("rotary", True), ("alibi", True)])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(kind, blocks, monkeypatch):
    """Dropout on (its RNG is replayed); ``blocks``: attention in blocks of 40 queries, each itself
    checkpointed (ALiBi, and rotary's attention dropout on CPU), inside the checkpointed layers."""
    if blocks:
        monkeypatch.setattr(modeling, "ATTENTION_BLOCK_ELEMENTS", 2 * 4 * 200 * 40)
    model = VQDNAForMaskedLM(tiny(kind, max_tokens=256)).train()
    ids = ids_of(2, 200, lengths=[200, 150])
    lab = masked_labels(ids)

    def loss_and_grads():
        model.zero_grad()
        torch.manual_seed(3)
        loss = model(ids, labels=lab).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = loss_and_grads()
    model.activation_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.vqdna.encoder.encoder.layer)
    ckpt = loss_and_grads()
    assert torch.allclose(plain[0], ckpt[0], atol=1e-6)
    assert plain[1].keys() == ckpt[1].keys()
    assert all(torch.allclose(plain[1][n], ckpt[1][n], atol=1e-6) for n in plain[1])


@pytest.mark.parametrize("kind", LONG)
def test_save_load_round_trip(tmp_path, kind):
    model = VQDNAForSequenceClassification(tiny(kind, num_labels=3)).eval()
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["position_embedding"] == kind
    back = VQDNAForSequenceClassification.from_pretrained(tmp_path).eval()
    assert back.config.position_embedding == kind and back.config.max_tokens == 2048
    ids = ids_of(2, 900, lengths=[900, 600])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, back(ids).logits)


def test_absolute_default_is_unchanged(tmp_path):
    """The default keeps its table and BERT's own attention and stops at its rows; a config.json written
    before issue 12 (no position keys) loads as absolute."""
    cfg = VQDNAConfig(vocab_sizes=VOCAB, input_mode="learned", hidden_size=32, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=129)
    model = VQDNAForMaskedLM(cfg)
    assert cfg.position_embedding == "absolute" and LMConfig().position_embedding == "absolute"
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved.pop("position_embedding") == "absolute" and saved.pop("rope_theta") == 10000.0
    (tmp_path / "config.json").write_text(json.dumps(saved))
    old = VQDNAForMaskedLM.from_pretrained(tmp_path).eval()
    assert old.config.position_embedding == "absolute"
    with torch.no_grad():
        assert torch.equal(old(ids_of(1, 100)).logits[0], model.eval()(ids_of(1, 100)).logits[0])
    assert type(model.vqdna.encoder.encoder.layer[0].attention.self).__name__ == "BertSelfAttention"
    assert model.vqdna.encoder.embeddings.position_embeddings.weight.shape == (129, 32)
    with pytest.raises(ValueError, match="exceed max_position_embeddings 129"):
        model(ids_of(1, 130))


def test_config_limits():
    validate_lm_config(LMConfig(position_embedding="rotary", max_length=32_768))
    validate_lm_config(LMConfig(position_embedding="alibi", max_length=32_768))
    with pytest.raises(ValueError, match="1..512 with absolute positions.*rotary or alibi"):
        validate_lm_config(LMConfig(max_length=1024))
    with pytest.raises(ValueError, match="position_embedding must be one of"):
        validate_lm_config(LMConfig(position_embedding="sinusoidal"))
    mc, tc = lm_configs("tiny", dict(position_embedding="rotary", max_length=4096, seq_length=1024,
                                     gradient_checkpointing=True))
    assert (mc.max_length, tc.seq_length, tc.gradient_checkpointing) == (4096, 1024, True)
    with pytest.raises(ValueError, match="seq_length 1024"):
        lm_configs("tiny", dict(seq_length=1024))  # absolute: max_length 512


def test_inference_batches_keep_512_models_and_split_long_chunks():
    from vqdna.lm.inference import _batches

    short = [(i, 0, 300 + i % 213) for i in range(300)]
    sizes = [len(b) for b in _batches(short, 128)]
    assert sizes == [128, 128, 44]  # a 512-token model: batch_size chunks, as before
    long = [(i, 0, 32_768) for i in range(5)] + [(5, 0, 100)]
    batches = list(_batches(long, 8))
    assert [len(b) for b in batches] == [1, 1, 1, 1, 1, 1]  # 8 x 512 tokens: one 32k chunk at a time
    assert sorted(j for b in batches for j in b) == list(range(6))


# ---------------------------------------------------------------- the stages


FAST = dict(batch_size=2, eval_windows=2, max_steps=2, warmup_steps=1, eval_every=2, checkpoint_every=2)


@pytest.fixture(scope="module")
def rotary_lm(lm_data, tmp_path_factory):
    """A rotary LM pre-trained for 2 steps on 640-token windows (max 2048 tokens)."""
    from vqdna.lm.pretrain import pretrain

    out = tmp_path_factory.mktemp("rotary_lm")
    pretrain(lm_data["codes"], out=out, config="tiny", progress=False,
             overrides=dict(FAST, position_embedding="rotary", max_length=2048, seq_length=640))
    return out


def checkpointing_calls(monkeypatch, cls) -> list:
    """Record every ``activation_checkpointing_enable`` call on models of ``cls`` (and still make it)."""
    calls, real = [], cls.activation_checkpointing_enable

    def spy(self, *a, **k):
        calls.append(type(self).__name__)
        return real(self, *a, **k)

    monkeypatch.setattr(cls, "activation_checkpointing_enable", spy)
    return calls


def test_pretrain_rotary_beyond_512_with_and_without_checkpointing(rotary_lm, lm_data, tmp_path, monkeypatch):
    from vqdna.lm.pretrain import pretrain

    m = json.loads((rotary_lm / "metrics.json").read_text())
    assert m["steps"] == 2 and np.isfinite(m["val_loss"]) and m["model_config"]["position_embedding"] == "rotary"
    assert json.loads((rotary_lm / "config.json").read_text())["max_position_embeddings"] == 2049
    calls = checkpointing_calls(monkeypatch, VQDNAForMaskedLM)
    pretrain(lm_data["codes"], out=tmp_path, config="tiny", progress=False,
             overrides=dict(FAST, position_embedding="rotary", max_length=2048, seq_length=640,
                            gradient_checkpointing=True))
    assert calls == ["VQDNAForMaskedLM"]
    a, b = load_file(rotary_lm / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


@pytest.mark.parametrize("kind", LONG)
def test_trained_at_128_runs_at_1024(lm_data, tmp_path, kind):
    from vqdna.lm.artifacts import load_backbone
    from vqdna.lm.pretrain import pretrain

    pretrain(lm_data["codes"], out=tmp_path, config="tiny", progress=False,
             overrides=dict(FAST, position_embedding=kind, max_length=1024, seq_length=128))
    backbone = load_backbone(tmp_path)
    vocab = backbone.config.vocab_sizes
    ids = torch.stack([torch.randint(0, v, (1, 1025)) for v in vocab], 1)
    ids[:, :, 0] = torch.tensor([v + CLS for v in vocab])
    with torch.no_grad():
        h = backbone(ids).last_hidden_state
    assert h.shape == (1, 1025, 64) and torch.isfinite(h).all()


def test_embed_finetune_predict_read_a_1500_nt_sequence_in_one_chunk(rotary_lm, lm_data, tmp_path, monkeypatch):
    import vqdna.lm.inference as inference
    from vqdna.config import finetune_config
    from vqdna.lm.finetune import finetune

    chunks = []
    real = inference.chunks_of

    def spy(codes, max_tokens):
        meta = real(codes, max_tokens)
        chunks.append((len(codes), len(meta), max(e - s for _, s, e in meta)))
        return meta

    monkeypatch.setattr(inference, "chunks_of", spy)
    seq = lm_data["sequence"]
    fasta = tmp_path / "long.fa"
    fasta.write_text(f">a\n{seq[:1500]}\n>b\n{seq[5000:5900]}\n")
    summary = inference.embed(rotary_lm, tmp_path / "e.npy", fasta=fasta)
    assert summary["shape"] == [2, 64] and chunks[-1] == (2, 2, 1500)  # one chunk per sequence

    rng = np.random.default_rng(0)
    task = tmp_path / "task"
    task.mkdir()
    for split, n in (("train", 8), ("dev", 4), ("test", 4)):
        rows = [(seq[s:s + int(rng.integers(600, 1100))], i % 2) for i, s in
                enumerate(rng.integers(0, len(seq) - 1200, n))]
        (task / f"{split}.csv").write_text("sequence,label\n" + "".join(f"{s},{y}\n" for s, y in rows))
    cfg = finetune_config("cpu", epochs=1, batch_size=4, max_length=2048, gradient_checkpointing=True)
    calls = checkpointing_calls(monkeypatch, VQDNAForSequenceClassification)
    finetune(rotary_lm, task, out=tmp_path / "ft", seeds=1, config=cfg, progress=False)
    assert calls == ["VQDNAForSequenceClassification"]
    chunks.clear()
    out = inference.predict(tmp_path / "ft", task / "test.csv", tmp_path / "p.csv")
    assert out["n"] == 4 and chunks == [(4, 4, chunks[0][2])] and chunks[0][2] > 512


# ---------------------------------------------------------------- the benchmark script


def test_long_inputs_benchmark_runs_at_a_tiny_size():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "long_inputs.py"), "--lengths", "1024",
                          "--repeats", "1", "--hidden", "32", "--layers", "1", "--heads", "2", "--absolute-max", "1024",
                          "--kinds", "absolute,rotary+ckpt"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    table = [line for line in out.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 2  # header, absolute, rotary with checkpointing
    assert all("1,024" in line for line in table[2:])


def test_cli_flags_for_long_inputs_win_over_the_yaml(tmp_path, monkeypatch):
    """`vqdna pretrain --position-embedding --max-length --seq-length --gradient-checkpointing` and
    `vqdna finetune --max-length --gradient-checkpointing` set their config fields over the YAML's;
    without the flags the YAML's values stay (no training: the stage functions are replaced)."""
    import vqdna.lm.finetune as finetune_mod
    import vqdna.lm.pretrain as pretrain_mod
    from vqdna.cli import build_parser, finetune_recipe

    def main(argv):  # the sub-command itself (vqdna.cli.main first checks that the input folders exist)
        a = build_parser().parse_args(argv)
        return a.func(a)

    lm_yaml = tmp_path / "lm.yaml"
    lm_yaml.write_text("preset: tiny\nmodel: {position_embedding: alibi, max_length: 4096}\n"
                       "train: {seq_length: 256, val_block: 8192, gradient_checkpointing: false}\n")
    seen = {}

    def fake_pretrain(codes, **kw):
        seen["lm"] = lm_configs(kw["config"], kw.get("overrides"), max_steps=kw.get("max_steps"))
        return {"steps": 0, "tokens_seen": 0, "wall_time_s": 0.0}

    monkeypatch.setattr(pretrain_mod, "pretrain", fake_pretrain)
    base = ["pretrain", "--codes", "c", "--out", str(tmp_path / "o"), "--config", str(lm_yaml)]
    main(base + ["--position-embedding", "rotary", "--max-length", "32768", "--seq-length", "8192",
                 "--gradient-checkpointing"])
    mc, tc = seen["lm"]
    assert (mc.position_embedding, mc.max_length, tc.seq_length, tc.gradient_checkpointing) == ("rotary", 32768, 8192,
                                                                                                 True)
    main(base)  # no flag: the YAML's
    mc, tc = seen["lm"]
    assert (mc.position_embedding, mc.max_length, tc.seq_length, tc.gradient_checkpointing) == ("alibi", 4096, 256,
                                                                                                 False)
    main(["pretrain", "--codes", "c", "--out", str(tmp_path / "o")])  # no YAML, no flag: the preset's (absolute)
    assert (seen["lm"][0].position_embedding, seen["lm"][1].gradient_checkpointing) == ("absolute", False)
    with pytest.raises(ValueError, match="rotary or alibi"):  # the override is validated like the YAML
        main(["pretrain", "--codes", "c", "--out", "o", "--max-length", "1024"])
    with pytest.raises(SystemExit):  # argparse: not a kind of positions
        build_parser().parse_args(["pretrain", "--codes", "c", "--out", "o", "--position-embedding", "learned"])

    ft_yaml = tmp_path / "ft.yaml"
    ft_yaml.write_text("preset: cpu\nmax_length: 2048\n")
    ft = ["finetune", "--model", "m", "--task", "t", "--out", "o", "--config", str(ft_yaml)]
    p = build_parser()
    c = finetune_recipe(p.parse_args(ft + ["--max-length", "32768", "--gradient-checkpointing"]))
    assert (c.max_length, c.gradient_checkpointing, c.method) == (32768, True, "full")
    c = finetune_recipe(p.parse_args(ft))
    assert (c.max_length, c.gradient_checkpointing) == (2048, False)
    monkeypatch.setattr(finetune_mod, "finetune", lambda *a, **kw: seen.setdefault("ft", kw["config"]))
    main(ft + ["--gradient-checkpointing", "--no-reference"])  # the fake returns no results to set against k-mers
    assert seen["ft"].gradient_checkpointing is True and seen["ft"].max_length == 2048
