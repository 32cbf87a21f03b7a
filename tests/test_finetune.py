"""Stage 3 fine-tuning, predict and embed: LoRA freezes what it should, results and saved models
are consistent, bad input gives clear errors."""
import csv
import json

import numpy as np
import pytest
import torch

from vqdna.lm.finetune import apply_method, build_classifier, finetune, subsample
from vqdna.config import FinetuneConfig, finetune_config

torch.set_num_threads(1)
QUICK = FinetuneConfig(epochs=2, batch_size=16, lr=3e-3, eval_batch_size=64)


def test_lora_leaves_frozen_weights_unchanged(tiny_lm):
    torch.manual_seed(0)
    model = build_classifier(tiny_lm, num_labels=2)
    net = apply_method(model, "lora")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in k or k.startswith("classifier.") for k in trainable)
    assert any(".query." in k for k in trainable) and any(".value." in k for k in trainable)
    assert not any("dense" in k and "attention" not in k and "classifier" not in k for k in trainable)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        ids = torch.randint(0, 64, (8, 2, 20), generator=g)
        ids[:, 1] = torch.randint(0, 128, (8, 20), generator=g)
        loss = net(input_ids=ids, labels=torch.randint(0, 2, (8,), generator=g)).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    head_stats = {k for k in changed if k.startswith("classifier.norm.")}  # the head's running statistics
    assert changed - head_stats and changed - head_stats <= trainable
    assert any("lora_B" in k for k in changed) and any(k.startswith("classifier.") for k in changed)


def test_subsample_is_stratified_and_seeded():
    y = np.array([0] * 900 + [1] * 100)
    a = subsample(y, 100, "classification", seed=0)
    assert len(a) == 100 and (y[a] == 1).sum() == 10
    assert np.array_equal(a, subsample(y, 100, "classification", seed=0))
    r = subsample(np.linspace(0, 1, 500), 50, "regression")
    assert len(r) == 50


def test_finetune_classification_save_predict(tiny_lm, lm_tasks, tmp_path):
    from vqdna.cli import main
    from vqdna.hub.modeling_vqdna import VQDNAForSequenceClassification

    out = tmp_path / "ft"
    r = finetune(tiny_lm, lm_tasks["classification"], out=out, seeds=2, config=QUICK, progress=False)
    assert r["metric"] == "mcc" and len(r["per_seed"]) == 2
    for k in ("mcc", "f1_macro", "accuracy"):
        assert set(r["test"][k]) == {"mean", "std", "values"} and len(r["test"][k]["values"]) == 2
    assert all(len(s["history"]) == 2 for s in r["per_seed"])
    saved = json.loads((out / "results.json").read_text())
    assert saved["subsample"] is None and saved["config"]["lora_r"] == 8
    # the merged model loads without peft and predicts the test split exactly as scored
    model = VQDNAForSequenceClassification.from_pretrained(out)
    assert not any("lora" in k for k in model.state_dict())
    pred_csv = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(out), "--csv", str(lm_tasks["classification"] / "test.csv"),
                 "--out", str(pred_csv)]) == 0
    rows = list(csv.DictReader(open(pred_csv)))
    assert len(rows) == 24 and set(rows[0]) == {"sequence", "prediction", "prob_0", "prob_1"}
    from vqdna.metrics import classification_metrics

    y = [int(l.split(",")[1]) for l in (lm_tasks["classification"] / "test.csv").read_text().split()[1:]]
    m = classification_metrics(y, [int(r_["prediction"]) for r_ in rows])
    seed = saved["saved_seed"]
    assert m["mcc"] == pytest.approx(saved["per_seed"][seed]["test"]["mcc"], abs=1e-9)
    # reloading twice gives identical predictions
    from vqdna.lm.inference import predict

    predict(out, lm_tasks["classification"] / "test.csv", tmp_path / "again.csv")
    assert open(pred_csv).read() == open(tmp_path / "again.csv").read()


def test_finetune_regression(tiny_lm, lm_tasks, tmp_path):
    out = tmp_path / "reg"
    from dataclasses import replace

    r = finetune(tiny_lm, lm_tasks["regression"], out=out, seeds=1,
                 config=replace(QUICK, max_train=40, pooling="cls"), progress=False)
    assert r["metric"] == "spearman" and "mse" in r["test"]
    assert r["subsample"] == dict(max_train=40, train_rows=40, of=64, stratified=True, seed=0)
    assert r["per_seed"][0]["train_rows"] == 40
    assert json.loads((out / "config.json").read_text())["pooling"] == "cls"
    from vqdna.lm.inference import predict

    s = predict(out, lm_tasks["regression"] / "dev.csv", tmp_path / "p.csv")
    assert "spearman" in s["metrics"]
    header = open(tmp_path / "p.csv").readline().strip()
    assert header == "sequence,prediction"


def test_bad_task_csv_names_file_and_line(tiny_lm, lm_tasks, tmp_path):
    import shutil

    from vqdna.sequence.tasks import TaskError

    bad = tmp_path / "bad"
    shutil.copytree(lm_tasks["classification"], bad)
    lines = (bad / "train.csv").read_text().splitlines()
    lines[2] = "ACGTXACGT,1"
    (bad / "train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"train\.csv:3"):
        finetune(tiny_lm, bad, out=tmp_path / "ft", seeds=1, config=QUICK, progress=False)
    lines[2] = "ACGTACGT,abc"
    (bad / "train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(TaskError, match=r"train\.csv:3"):
        finetune(tiny_lm, bad, out=tmp_path / "ft", seeds=1, config=QUICK, progress=False)
    # predict: a bad sequence in the CSV names the file and line too
    from vqdna.lm.inference import read_sequence_csv

    (tmp_path / "q.csv").write_text("sequence\nACGT\nAC-GT\n")
    with pytest.raises(ValueError, match=r"q\.csv:3"):
        read_sequence_csv(tmp_path / "q.csv")


def test_embed_mean_and_per_nucleotide(tiny_lm, lm_data, tmp_path):
    from vqdna.cli import main

    fa = tmp_path / "x.fa"
    seq = lm_data["sequence"]
    fa.write_text(f">a\n{seq[:50]}\n>b\n{seq[100:730]}\n")  # b: 630 nt -> two chunks of <= 512
    assert main(["embed", "--model", str(tiny_lm), "--fasta", str(fa), "--out", str(tmp_path / "e.npy")]) == 0
    e = np.load(tmp_path / "e.npy")
    assert e.shape == (2, 64) and np.isfinite(e).all()
    assert main(["embed", "--model", str(tiny_lm), "--fasta", str(fa), "--out", str(tmp_path / "e.npz"),
                 "--per-nucleotide"]) == 0
    z = np.load(tmp_path / "e.npz")
    assert z["seq0"].shape == (50, 64) and z["seq1"].shape == (630, 64)
    assert list(z["names"]) == ["a", "b"]
    # the mean-pooled vector of a one-chunk sequence is the mean of its nucleotide states
    assert np.allclose(e[0], z["seq0"].mean(0), atol=1e-5)


def test_embed_writes_exactly_the_path_given(tiny_lm, lm_data, tmp_path):
    """Issue 23: ``--out emb.npz`` without --per-nucleotide wrote ``emb.npz.npy``."""
    from vqdna.cli import main

    fa = tmp_path / "x.fa"
    fa.write_text(f">a\n{lm_data['sequence'][:60]}\n>b\n{lm_data['sequence'][200:280]}\n")
    common = ["embed", "--model", str(tiny_lm), "--fasta", str(fa)]
    assert main(common + ["--out", str(tmp_path / "emb.npz")]) == 0
    assert main(common + ["--out", str(tmp_path / "emb.bin")]) == 0
    assert main(common + ["--out", str(tmp_path / "tokens.out"), "--per-nucleotide"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.bin", "emb.npz", "tokens.out", "x.fa"]
    z = np.load(tmp_path / "emb.npz")
    assert z["embeddings"].shape == (2, 64) and list(z["names"]) == ["a", "b"]
    assert np.allclose(np.load(tmp_path / "emb.bin"), z["embeddings"])
    assert np.load(tmp_path / "tokens.out")["seq1"].shape == (80, 64)


def test_grid_runs_every_point_and_picks_on_dev(tiny_lm, lm_tasks, tmp_path):
    from dataclasses import replace

    cfg = replace(QUICK, grid_lr=(1e-3, 3e-3), grid_dropout=(0.0,), grid_epochs=(1, 2))
    r = finetune(tiny_lm, lm_tasks["classification"], out=tmp_path / "g", seeds=2, grid=True, config=cfg,
                 progress=False)
    assert [(g["lr"], g["epochs"]) for g in r["grid"]] == [(1e-3, 1), (1e-3, 2), (3e-3, 1), (3e-3, 2)]
    best = max(r["grid"], key=lambda g: g["dev"]["mcc"])  # first of the ties wins
    assert (r["config"]["lr"], r["config"]["epochs"]) == (best["lr"], best["epochs"])
    assert r["per_seed"][0]["dev"] == best["dev"] and len(r["per_seed"]) == 2


def test_bucketed_batches_cover_every_row_once_and_group_lengths():
    from vqdna.lm.finetune import bucketed_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 500, size=1003)
    batches = bucketed_batches(lengths, 32, seed=(0, 1))
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1003)) and len(batches) == int(np.ceil(1003 / 32))
    # padding to each batch's longest wastes far less than a plain shuffle would
    padded = sum(len(b) * lengths[b].max() for b in batches)
    plain = np.random.default_rng(0).permutation(1003)
    padded_plain = sum(len(plain[i:i + 32]) * lengths[plain[i:i + 32]].max() for i in range(0, 1003, 32))
    assert padded < 0.7 * padded_plain
    # a pure function of the seed (resume-safe); another epoch's seed gives another order
    assert all(np.array_equal(a, b) for a, b in zip(batches, bucketed_batches(lengths, 32, seed=(0, 1))))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, bucketed_batches(lengths, 32, seed=(0, 2))))


def test_meanmax_pooling_finetunes_and_reloads(tiny_lm, lm_tasks, tmp_path):
    from dataclasses import replace

    from vqdna.lm.inference import load_classifier, predict_codes, tokenize, load_model_tokenizer

    out = tmp_path / "ft"
    r = finetune(tiny_lm, lm_tasks["classification"], out=out, seeds=1, config=replace(QUICK, pooling="meanmax"),
                 progress=False)
    model = load_classifier(out)
    assert model.config.pooling == "meanmax" and model.classifier.dense.in_features == 2 * model.config.hidden_size
    tok = load_model_tokenizer(out)
    seqs = ["ACGTTGCAAC" * 7, "TTGACA" * 5]
    codes = tokenize(tok, seqs)
    a = predict_codes(model, codes)
    b = predict_codes(model, codes[::-1])[::-1]  # batch order does not matter
    assert np.allclose(a, b, atol=1e-5) and np.isfinite(r["test"]["mcc"]["mean"])


def test_meanmax_chunks_combine_by_max():
    from vqdna.lm.inference import collate, pooled_features
    from vqdna.hub.modeling_vqdna import VQDNAConfig, VQDNAModel

    cfg = VQDNAConfig(vocab_sizes=[16], input_mode="learned", hidden_size=16, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=32, max_position_embeddings=9, pooling="meanmax")
    torch.manual_seed(0)
    model = VQDNAModel(cfg).eval()
    codes = [(np.arange(20) % 16)[None]]  # 20 tokens -> chunks of 8, 8, 4
    pooled = pooled_features(model, codes)
    assert pooled.shape == (1, 32)
    parts = [codes[0][:, s:s + 8] for s in (0, 8, 16)]
    with torch.no_grad():
        ids, mask = collate(parts, [16])
        s, c, mx = model.pool(model(ids, mask).last_hidden_state, ids, mask, return_sum=True)
    assert torch.allclose(pooled[0, :16], s.sum(0) / c.sum(), atol=1e-5)
    assert torch.allclose(pooled[0, 16:], mx.amax(0), atol=1e-6)


def test_unfrozen_tokenizer_starts_at_the_frozen_model_and_trains_its_encoder(tiny_lm, lm_data, lm_tasks, tmp_path):
    from dataclasses import replace

    from safetensors.torch import load_file

    from vqdna.cli import main
    from vqdna.lm.inference import collate, load_model_tokenizer, tokenize
    from vqdna.tokenizers.handcrafted import build_handcrafted

    frozen = build_classifier(tiny_lm, num_labels=2).eval()
    open_ = build_classifier(tiny_lm, num_labels=2, tokenizer_encoder=tiny_lm / "tokenizer").eval()
    seqs = ["ACGTTGCAACGGATTACAGGCTTAGCATCGATCGGGCTAGCTAGCATCG", "TATAAAAGGCGCGCTTTACGATNNACGT"]
    i0, m0 = collate(tokenize(load_model_tokenizer(tiny_lm), seqs), frozen.config.vocab_sizes)
    i1, m1 = collate(tokenize(build_handcrafted("char"), seqs), open_.config.vocab_sizes)
    with torch.no_grad():  # the encoder's unquantized output is close to the codebook vectors the LM read
        e0, e1 = frozen.vqdna.embeddings(i0), open_.vqdna.embeddings(i1)
    assert e1.shape == e0.shape and float((e0 - e1).norm() / e0.norm()) < 0.5
    assert torch.equal(e0[:, 0], e1[:, 0])  # [CLS] is the same learned vector

    out = tmp_path / "ft_open"
    r = finetune(tiny_lm, lm_tasks["classification"], out=out, seeds=1,
                 config=replace(QUICK, method="full", unfreeze_tokenizer=True), progress=False)
    assert np.isfinite(r["test"]["mcc"]["mean"])
    saved = load_file(out / "model.safetensors")
    start = load_file(tiny_lm / "tokenizer" / "model.safetensors")
    key = next(k for k in start if k.startswith("encoder.blocks.0.fc1.weight"))
    assert not torch.equal(saved[f"vqdna.embeddings.tok_encoder.{key[len('encoder.'):]}"], start[key])
    assert json.loads((out / "tokenizer" / "config.json").read_text())["tokenizer_type"] == "char"
    pred = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(out), "--csv", str(lm_tasks["classification"] / "test.csv"),
                 "--out", str(pred)]) == 0
    assert len(open(pred).read().split()) == 25


def test_finetune_recipes_presets_yaml_and_overrides(tmp_path):
    from vqdna.config import finetune_config

    cpu, paper = finetune_config("cpu"), finetune_config("paper")
    assert (paper.method, paper.pooling) == ("lora", "mean") and cpu.method != "lora"
    assert finetune_config("cpu", lr=5e-4, epochs=None).lr == 5e-4 and finetune_config("cpu", epochs=None).epochs == cpu.epochs
    y = tmp_path / "ft.yaml"
    y.write_text("preset: paper\nlr: 0.0003\nlora_targets: [query, value]\n")
    c = finetune_config(str(y))
    assert (c.method, c.lr, c.lora_targets) == ("lora", 3e-4, ("query", "value"))
    y.write_text("preset: cpu\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="learning_rate"):
        finetune_config(str(y))
    with pytest.raises(FileNotFoundError, match="neither a recipe"):
        finetune_config("fast")
    # the unfrozen encoder's share of the learning rate: only with an unfrozen encoder, never negative
    assert finetune_config("cpu", unfreeze_tokenizer=True, tokenizer_lr_scale=0.1).tokenizer_lr_scale == 0.1
    with pytest.raises(ValueError, match="needs unfreeze_tokenizer"):
        finetune_config("cpu", tokenizer_lr_scale=0.1)
    with pytest.raises(ValueError, match="tokenizer_lr_scale = -1.0"):
        finetune_config("cpu", unfreeze_tokenizer=True, tokenizer_lr_scale=-1.0)
    # the position embeddings' share: a parameter group of its own only when it is not 1
    from vqdna.lm.finetune import lr_scales

    assert lr_scales(finetune_config("cpu")) == ()
    assert lr_scales(finetune_config("cpu", position_lr_scale=10.0)) == (("position_embeddings", 10.0),)
    assert lr_scales(finetune_config("cpu", unfreeze_tokenizer=True, position_lr_scale=10.0)) == (
        ("tok_encoder", 0.1), ("position_embeddings", 10.0))
    with pytest.raises(ValueError, match="position_lr_scale = -2.0"):
        finetune_config("cpu", position_lr_scale=-2.0)
    with pytest.raises(ValueError, match="backbone_lr_scale = -0.1"):
        finetune_config("cpu", backbone_lr_scale=-0.1)


def test_backbone_lr_scale_slows_every_lm_weight_but_not_the_head(tiny_lm):
    """backbone_lr_scale: the LM's weights (LoRA adapters too) in groups at that share of lr, the new
    head at lr; the position embeddings keep their own share."""
    from vqdna.lm.finetune import lr_scales
    from vqdna.train import LoopConfig, make_optimizer

    for method in ("full", "lora"):
        cfg = finetune_config("cpu", method=method, backbone_lr_scale=0.1, position_lr_scale=10.0)
        net = apply_method(build_classifier(tiny_lm, num_labels=2), method)
        opt = make_optimizer(net, LoopConfig(max_steps=1, lr=1e-3, lr_scales=lr_scales(cfg)))
        scale_of = {id(p): g["lr_scale"] for g in opt.param_groups for p in g["params"]}
        named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
        head = [scale_of[id(p)] for n, p in named if "classifier." in n]
        lm = [(n, scale_of[id(p)]) for n, p in named if "classifier." not in n]
        assert head and set(head) == {1.0}
        assert lm and all(s == (10.0 if "position_embeddings" in n else 0.1) for n, s in lm)


def test_finetune_flops_count_an_unfrozen_encoder(tiny_lm):
    """The benchmark's cost column: an unfrozen tokenizer's encoder trains with the LM (3 x its
    forward FLOPs per nucleotide), without the code search a frozen tokenizer runs once."""
    from vqdna.benchmark.pipeline import finetune_flops_per_sequence
    from vqdna.tokenizers import load_tokenizer

    tok = load_tokenizer(tiny_lm / "tokenizer")
    encoder = tok.model.flops_per_nucleotide(search=False)
    assert 0 < encoder < tok.flops_per_nucleotide()
    frozen = finetune_flops_per_sequence(tiny_lm, 100)
    assert finetune_flops_per_sequence(tiny_lm, 100, unfrozen_tokenizer=True) == pytest.approx(frozen + 3 * encoder * 100)


def test_attention_dropout_is_the_lms_unless_given(tiny_lm, lm_tasks, tmp_path):
    """FinetuneConfig.attention_dropout: None keeps the LM's own (BERT's 0.1); a value replaces it
    in every layer and in the saved model; out of [0, 1) it is refused before any work."""
    from vqdna.config import finetune_config

    def attention_p(model):
        return {m.p for n, m in model.named_modules() if n.endswith("attention.self.dropout")}

    assert finetune_config("cpu").attention_dropout is None
    assert attention_p(build_classifier(tiny_lm, num_labels=2)) == {0.1}
    assert attention_p(build_classifier(tiny_lm, num_labels=2, attention_dropout=0.0)) == {0.0}
    y = tmp_path / "ft.yaml"
    y.write_text("preset: cpu\nattention_dropout: null\n")
    assert finetune_config(str(y)).attention_dropout is None
    with pytest.raises(ValueError, match="attention_dropout = 1.5"):
        finetune_config("cpu", attention_dropout=1.5)
    # without attention dropout the same seed trains another model, saved with its dropout
    out = tmp_path / "ft0"
    cfg = FinetuneConfig(epochs=1, batch_size=16, lr=3e-3, eval_batch_size=64, attention_dropout=0.0)
    r0 = finetune(tiny_lm, lm_tasks["classification"], out=out, seeds=1, config=cfg, progress=False)
    r1 = finetune(tiny_lm, lm_tasks["classification"], out=tmp_path / "ft1", seeds=1,
                  config=FinetuneConfig(epochs=1, batch_size=16, lr=3e-3, eval_batch_size=64), progress=False)
    assert json.loads((out / "config.json").read_text())["attention_probs_dropout_prob"] == 0.0
    assert r0["config"]["attention_dropout"] == 0.0 and r1["config"]["attention_dropout"] is None
    assert r0["per_seed"][0]["history"] != r1["per_seed"][0]["history"]


def test_small_batches_start_the_head_statistics_from_training_rows(tiny_lm):
    """Batches under SMALL_BATCH rows are normalised with running statistics, started from the pooled
    vectors of training rows (not BatchNorm's 0 / 1): calibrate_head sets them before the first step."""
    from vqdna.hub.modeling_vqdna import SMALL_BATCH
    from vqdna.lm.finetune import calibrate_head
    from vqdna.lm.inference import pooled_features

    model = build_classifier(tiny_lm, num_labels=2)
    rng = np.random.default_rng(0)
    codes = [np.stack([rng.integers(0, 64, n), rng.integers(0, 128, n)]) for n in rng.integers(20, 60, 12)]
    calibrate_head(model, codes, seed=0, batch_size=4, rows=8)
    picked = np.random.default_rng((0, 1)).permutation(12)[:8]
    with torch.no_grad():
        want = pooled_features(model.eval().vqdna, [codes[i] for i in picked])
    assert torch.allclose(model.classifier.norm.running_mean, want.mean(0), atol=1e-5)
    assert torch.allclose(model.classifier.norm.running_var, want.var(0), atol=1e-5)
    assert SMALL_BATCH > 2


def test_finetune_calibrates_the_head_for_small_batches_only(tiny_lm, lm_tasks, monkeypatch):
    from vqdna.hub.modeling_vqdna import ClassificationHead
    from vqdna.lm.artifacts import load_model_tokenizer
    from vqdna.lm.finetune import train_one
    from vqdna.lm.inference import tokenize
    from vqdna.sequence.tasks import load_task

    calls = []
    real = ClassificationHead.calibrate
    monkeypatch.setattr(ClassificationHead, "calibrate", lambda self, pooled: (calls.append(len(pooled)), real(self, pooled)))
    task = load_task(lm_tasks["classification"])
    tok = load_model_tokenizer(tiny_lm)
    codes = {sp: tokenize(tok, getattr(task, sp).sequences, where=sp) for sp in ("train", "dev", "test")}
    rows = np.arange(len(task.train.labels))
    for bs in (2, 16):
        cfg = FinetuneConfig(epochs=1, batch_size=bs, lr=3e-3, eval_batch_size=64)
        r = train_one(tiny_lm, task, codes, rows, cfg, seed=0)
        assert 0 <= r["test"]["accuracy"] <= 1
    assert calls == [64]  # batch 2: once, from 64 training rows; batch 16: batch statistics, no calibration


def test_head_warmup_trains_the_head_alone_before_fine_tuning(tiny_lm, lm_tasks, monkeypatch):
    """head_warmup_epochs (LP-FT): the head alone on the frozen LM's pooled vectors of the training
    rows, its statistics from all of them; the LM's weights do not move; train_one runs it first
    (no small-batch calibration then) and the config refuses a negative count."""
    from vqdna.lm import finetune as ft
    from vqdna.lm.artifacts import load_model_tokenizer
    from vqdna.lm.inference import pooled_features, tokenize
    from vqdna.sequence.tasks import load_task

    task = load_task(lm_tasks["classification"])
    tok = load_model_tokenizer(tiny_lm)
    codes = {sp: tokenize(tok, getattr(task, sp).sequences, where=sp) for sp in ("train", "dev", "test")}
    y = task.train.labels
    torch.manual_seed(0)
    model = build_classifier(tiny_lm, num_labels=2)
    lm_before = {k: v.clone() for k, v in model.vqdna.state_dict().items()}
    with torch.no_grad():
        pooled = pooled_features(model.eval().vqdna, codes["train"])

    def train_loss():
        model.eval()
        with torch.no_grad():
            return float(model.loss(model.head(pooled.float()), torch.as_tensor(y)))

    before = train_loss()
    model.train()
    last = ft.warm_head(model, codes["train"], y, epochs=60, lr=3e-3, weight_decay=0.0, seed=0, batch_size=64)
    assert model.training  # as it was
    assert np.isfinite(last) and train_loss() < 0.8 * before
    assert all(torch.equal(v, lm_before[k]) for k, v in model.vqdna.state_dict().items())
    assert int(model.classifier.norm.num_batches_tracked) > 1  # calibrated on all rows, then its batches
    # train_one: the warm-up first (with the recipe's lr), then the usual loop
    seen = []
    monkeypatch.setattr(ft, "warm_head", lambda m, c, labels, **kw: seen.append((len(c), kw["epochs"], kw["lr"])))
    monkeypatch.setattr(ft, "calibrate_head", lambda *a, **kw: seen.append("calibrate"))
    cfg = FinetuneConfig(epochs=1, batch_size=2, lr=3e-3, eval_batch_size=64, head_warmup_epochs=5)
    ft.train_one(tiny_lm, task, codes, np.arange(len(y)), cfg, seed=0)
    assert seen == [(len(y), 5, 3e-3)]
    with pytest.raises(ValueError, match="head_warmup_epochs = -1"):
        finetune_config("cpu", head_warmup_epochs=-1)


def test_head_warmup_is_epoch_zero_kept_when_dev_prefers_it(tiny_lm, lm_tasks, monkeypatch):
    """With LP-FT the warmed head on the frozen LM is scored on dev as epoch 0 and kept when no
    fine-tuning epoch beats it (the LM's weights then come back unchanged); otherwise the best epoch."""
    from vqdna.lm import finetune as ft
    from vqdna.lm.artifacts import load_model_tokenizer
    from vqdna.lm.inference import tokenize
    from vqdna.sequence.tasks import load_task

    task = load_task(lm_tasks["classification"])
    tok = load_model_tokenizer(tiny_lm)
    codes = {sp: tokenize(tok, getattr(task, sp).sequences, where=sp) for sp in ("train", "dev", "test")}
    cfg = FinetuneConfig(epochs=2, batch_size=4, lr=3e-3, eval_batch_size=64, head_warmup_epochs=3)
    lm0 = {k: v.clone() for k, v in build_classifier(tiny_lm, num_labels=2).vqdna.state_dict().items()}
    real_score = ft.score
    for dev_mcc, want_epoch in (([0.9, 0.1, 0.2], 0), ([0.1, 0.2, 0.5], 2)):
        dev_calls = iter(dev_mcc)

        def fake_score(kind, labels, pred, _calls=dev_calls):
            m = real_score(kind, labels, pred)
            if labels is task.dev.labels:
                m["mcc"] = next(_calls)
            return m

        monkeypatch.setattr(ft, "score", fake_score)
        r = ft.train_one(tiny_lm, task, codes, np.arange(len(task.train.labels)), cfg, seed=0)
        assert [h["epoch"] for h in r["history"]] == [0, 1, 2]
        assert r["best_epoch"] == want_epoch and r["dev"]["mcc"] == max(dev_mcc)
        same = all(torch.equal(v, lm0[k]) for k, v in r["model"].vqdna.state_dict().items())
        assert same == (want_epoch == 0)
