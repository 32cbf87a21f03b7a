"""The VQDNA BERT (HF classes): input embedding, MLM heads, classification / regression heads,
save/load, padding, the paper-size preset."""
import numpy as np
import pytest
import torch

from vqdna.hub.modeling_vqdna import CLS, MASK, PAD, SMALL_BATCH, VQDNAConfig, VQDNAForMaskedLM, VQDNAForSequenceClassification

torch.set_num_threads(1)
VOCAB = [16, 32]


def tiny_config(**kw):
    base = dict(vocab_sizes=VOCAB, codebook_dim=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=33)
    base.update(kw)
    return VQDNAConfig(**base)


def random_ids(B=3, L=20, seed=0, vocab=VOCAB):
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randint(0, v, (B, L), generator=g) for v in vocab], 1)
    for level, v in enumerate(vocab):
        ids[:, level, 0] = v + CLS
    return ids


def with_books(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    model.vqdna.embeddings.set_codebooks([torch.randn(v, 8, generator=g) for v in VOCAB])
    return model


def test_codebook_embedding_is_projected_mean_or_sum():
    for combine in ("mean", "sum"):
        model = with_books(VQDNAForMaskedLM(tiny_config(codebook_combine=combine))).eval()
        emb = model.vqdna.embeddings
        ids = random_ids(B=4)
        ids[0, :, 3] = torch.tensor([v + MASK for v in VOCAB])
        out = emb(ids)
        b0, b1 = emb.codebooks()
        vec = b0[ids[1, 0, 5]] + b1[ids[1, 1, 5]]
        if combine == "mean":
            vec = vec / 2
        assert torch.allclose(out[1, 5], emb.proj(vec), atol=1e-6)
        assert torch.allclose(out[0, 0], emb.special.weight[CLS])
        assert torch.allclose(out[0, 3], emb.special.weight[MASK])
        # few tokens take the per-token path, many the projected-table path: same numbers
        assert torch.allclose(emb(ids[:1]), out[:1], atol=1e-5)
    # the codebooks are frozen buffers, not parameters
    names = [n for n, _ in model.named_parameters()]
    assert not any("codebook" in n for n in names)
    assert "vqdna.embeddings.codebook0" in model.state_dict()


def test_learned_input_mode():
    model = VQDNAForMaskedLM(tiny_config(input_mode="learned", codebook_dim=None, vocab_sizes=[5],
                                         ))
    ids = torch.randint(0, 5, (2, 10))
    ids[:, 0] = 5 + CLS
    out = model(ids)  # (B, L) accepted for one level
    assert out.logits[0].shape == (2, 10, 5)
    assert model.vqdna.embeddings.tables[0].weight.shape == (5 + 3, 32)


def test_mlm_loss_is_masked_cross_entropy_mean_over_levels():
    model = with_books(VQDNAForMaskedLM(tiny_config())).eval()
    ids = random_ids()
    labels = torch.full_like(ids, -100)
    labels[:, :, 4:7] = ids[:, :, 4:7]
    with torch.no_grad():
        full = model(ids).logits
        out = model(ids, labels=labels)
    per_level = [torch.nn.functional.cross_entropy(full[l][:, 4:7].reshape(-1, v), ids[:, l, 4:7].reshape(-1))
                 for l, v in enumerate(VOCAB)]
    assert torch.allclose(out.level_losses, torch.stack(per_level), atol=1e-5)
    assert torch.allclose(out.loss, torch.stack(per_level).mean(), atol=1e-5)
    assert out.masked_logits[1].shape == (9, VOCAB[1])


def test_save_load_masked_lm_identical(tmp_path):
    torch.manual_seed(0)
    model = with_books(VQDNAForMaskedLM(tiny_config())).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    again = VQDNAForMaskedLM.from_pretrained(tmp_path).eval()
    ids = random_ids()
    with torch.no_grad():
        a, b = model(ids).logits, again(ids).logits
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert again.config.model_type == "vqdna" and again.config.vocab_sizes == VOCAB
    assert again.vqdna.encoder.config._attn_implementation == "sdpa"


def test_padding_does_not_change_pooled_output():
    model = with_books(VQDNAForSequenceClassification(tiny_config(num_labels=2))).eval()
    ids = random_ids(B=1, L=12)
    padded = torch.cat([ids, torch.tensor([v + PAD for v in VOCAB]).view(1, 2, 1).expand(1, 2, 6)], 2)
    with torch.no_grad():
        a = model(ids).logits
        b = model(padded).logits  # attention mask derived from [PAD]
    assert torch.allclose(a, b, atol=1e-5)


def test_classification_and_regression_heads():
    ids = random_ids(B=4)
    clf = with_books(VQDNAForSequenceClassification(tiny_config(num_labels=3))).eval()
    out = clf(ids, labels=torch.tensor([0, 1, 2, 1]))
    assert out.logits.shape == (4, 3) and not clf.is_regression
    assert torch.allclose(out.loss, torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 1])))
    reg = with_books(VQDNAForSequenceClassification(tiny_config(num_labels=1, regression_mean=5.0,
                                                                regression_std=2.0))).eval()
    y = torch.tensor([4.0, 5.0, 6.0, 7.0])
    out = reg(ids, labels=y)
    assert reg.is_regression and out.logits.shape == (4, 1)
    # logits in label units; the loss is the MSE of the standardised values
    assert torch.allclose(out.loss, (((out.logits[:, 0] - y) / 2.0) ** 2).mean(), atol=1e-6)
    with torch.no_grad():
        raw = reg.classifier(reg.pooled(ids))
    assert torch.allclose(out.logits, raw * 2.0 + 5.0, atol=1e-5)


def test_head_batch_normalises_pooled_vector_and_saves_running_stats(tmp_path):
    ids = random_ids(B=SMALL_BATCH + 2, seed=3)
    clf = with_books(VQDNAForSequenceClassification(tiny_config(num_labels=2, classifier_dropout=0.0)))
    head = clf.classifier
    with torch.no_grad():
        pooled = clf.pooled(ids)
        z = (pooled - pooled.mean(0)) / torch.sqrt(pooled.var(0, unbiased=False) + 1e-5)
        clf.train()
        out = clf.head(pooled)  # batch statistics in training
        assert torch.allclose(out, head.out_proj(torch.tanh(head.dense(z))), atol=1e-4)
        assert torch.allclose(head.norm.running_mean, 0.1 * pooled.mean(0), atol=1e-6)
        assert clf.head(pooled[:1]).shape == (1, 2)  # a one-row batch falls back to running statistics
        clf.eval()
        rm, rv = head.norm.running_mean, head.norm.running_var
        ev = clf.head(pooled)
        zr = (pooled - rm) / torch.sqrt(rv + 1e-5)
        assert torch.allclose(ev, head.out_proj(torch.tanh(head.dense(zr))), atol=1e-5)
    clf.save_pretrained(tmp_path)
    back = VQDNAForSequenceClassification.from_pretrained(tmp_path).eval()
    assert torch.equal(back.classifier.norm.running_var, rv)
    with torch.no_grad():
        assert torch.allclose(back(ids).logits, clf(ids).logits, atol=1e-6)
    # the switch: no normalisation at all
    plain = with_books(VQDNAForSequenceClassification(tiny_config(num_labels=2, classifier_norm=False))).eval()
    assert plain.classifier.norm is None


def test_head_normalises_a_small_batch_with_running_statistics():
    """Two rows would make every batch-normalised feature +-1: a batch under SMALL_BATCH rows updates
    the running statistics and is normalised with them; calibrate() starts them from given rows."""
    ids = random_ids(B=SMALL_BATCH + 4, seed=5)
    clf = with_books(VQDNAForSequenceClassification(tiny_config(num_labels=3, classifier_dropout=0.0)))
    head = clf.classifier
    with torch.no_grad():
        pooled = clf.pooled(ids)
        head.calibrate(pooled)
        assert torch.allclose(head.norm.running_mean, pooled.mean(0)) and torch.allclose(head.norm.running_var, pooled.var(0))
        clf.train()
        pair = pooled[:2]
        out = clf.head(pair)
        mean = 0.9 * pooled.mean(0) + 0.1 * pair.mean(0)  # BatchNorm's momentum 0.1, unbiased variance
        var = 0.9 * pooled.var(0) + 0.1 * pair.var(0)
        assert torch.allclose(head.norm.running_mean, mean, atol=1e-6) and torch.allclose(head.norm.running_var, var, atol=1e-6)
        z = (pair - mean) / torch.sqrt(var + 1e-5)
        assert torch.allclose(out, head.out_proj(torch.tanh(head.dense(z))), atol=1e-5)
        assert not torch.allclose(z.abs(), torch.ones_like(z), atol=1e-2)  # not the +-1 of batch statistics
        before = head.norm.running_mean.clone()
        clf.head(pooled[:1])  # one row: normalised with the running statistics, which it cannot update
        assert torch.equal(head.norm.running_mean, before)
        # never calibrated (e.g. a transformers Trainer): the first small batch starts the statistics
        fresh = with_books(VQDNAForSequenceClassification(tiny_config(num_labels=3, classifier_dropout=0.0))).train()
        fresh.head(pooled[2:5])
        assert torch.allclose(fresh.classifier.norm.running_mean, pooled[2:5].mean(0), atol=1e-6)
        assert torch.allclose(fresh.classifier.norm.running_var, pooled[2:5].var(0), atol=1e-6)


def test_chunked_inference_averages_chunks():
    from vqdna.lm.inference import collate, pooled_features

    model = with_books(VQDNAForSequenceClassification(tiny_config(num_labels=2, max_position_embeddings=9))).eval()
    codes = [np.stack([np.arange(20) % 16, np.arange(20) % 32])]  # 20 tokens, chunks of 8 -> 8 + 8 + 4
    pooled = pooled_features(model.vqdna, codes)
    parts = [codes[0][:, s:s + 8] for s in (0, 8, 16)]
    with torch.no_grad():
        ids, mask = collate(parts, VOCAB)
        s, c = model.vqdna.pool(model.vqdna(ids, mask).last_hidden_state, ids, mask, return_sum=True)
    assert torch.allclose(pooled[0], s.sum(0) / c.sum(), atol=1e-5)
    assert c[:, 0].tolist() == [8, 8, 4]


def test_token_embedding_table_is_the_learned_table_without_special_rows():
    model = VQDNAForMaskedLM(tiny_config(input_mode="learned", codebook_dim=None))
    for level, v in enumerate(VOCAB):
        table = model.vqdna.token_embedding_table(level)
        assert table.shape == (v, 32) and not table.requires_grad
        assert torch.equal(table, model.vqdna.embeddings.tables[level].weight[:v])
    with pytest.raises(ValueError, match="only 'learned'"):
        with_books(VQDNAForMaskedLM(tiny_config())).vqdna.token_embedding_table()


def test_parameter_counts_leave_out_the_unread_bert_token_table():
    for mode in ("learned", "codebook"):
        kw = {"input_mode": "learned", "codebook_dim": None} if mode == "learned" else {}
        bb = VQDNAForMaskedLM(tiny_config(**kw)).vqdna
        n, e = bb.parameter_counts(), bb.encoder.embeddings
        assert n["total"] == sum(p.numel() for p in bb.parameters()) - e.word_embeddings.weight.numel()
        looked_up = e.position_embeddings.weight.numel() + e.token_type_embeddings.weight.numel() + (
            sum(t.weight.numel() for t in bb.embeddings.tables) if mode == "learned"
            else bb.embeddings.special.weight.numel())
        assert n["total"] - n["nonembedding"] == looked_up
        assert n["frozen_codebook_values"] == (0 if mode == "learned" else sum(v + 3 for v in VOCAB) * 8)


def test_base_preset_constructs_and_trains_one_step():
    from vqdna.config import lm_configs
    from vqdna.lm.pretrain import build_lm_config

    mc, tc = lm_configs("base")
    assert (mc.hidden_size, mc.num_layers, mc.num_heads, tc.seq_length) == (768, 12, 12, 512)

    class Tok:  # a stand-in tokenizer: HRQ 512 + 1024 codes of dim 384 (the paper's sizes)
        vocab_sizes, n_levels, tokenizer_type, codebook_combine = [512, 1024], 2, "hrq", "mean"

        def codebooks(self):
            return [torch.randn(512, 384), torch.randn(1024, 384)]

    cfg = build_lm_config(Tok(), mc)
    model = VQDNAForMaskedLM(cfg)
    assert 85e6 < sum(p.numel() for p in model.parameters()) < 100e6
    ids = random_ids(B=1, L=65, vocab=[512, 1024])
    labels = torch.full_like(ids, -100)
    labels[:, :, 5:20] = ids[:, :, 5:20]
    out = model(ids, labels=labels)
    out.loss.backward()
    assert model.vqdna.embeddings.proj.weight.grad is not None
    assert torch.isfinite(out.loss)


def test_lazy_top_level_exports():
    import vqdna

    assert vqdna.VQDNAForMaskedLM is VQDNAForMaskedLM
    assert vqdna.VQDNAConfig is VQDNAConfig
    from vqdna.tokenizers.learned import VQDNATokenizer

    assert vqdna.VQDNATokenizer is VQDNATokenizer
    with pytest.raises(AttributeError):
        vqdna.NoSuchThing
