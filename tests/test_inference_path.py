"""The packed inference path (VQDNATokenizer(fast=True), the default) against the plain modules."""
import numpy as np
import torch

from vqdna.config import tokenizer_configs
from vqdna.sequence.fasta import read_fasta
from vqdna.tokenizers.learned import VQDNATokenizer
from vqdna.tokenizers.vqvae import InferenceModel, VQDNAAutoencoder


def test_fast_codes_equal_plain_codes(tiny_hrq_tokenizer, yeast_genome):
    seq = next(read_fasta(yeast_genome)).sequence[:60_000]
    seq = seq[:500] + "NNNNRYNN" + seq[508:]
    fast = VQDNATokenizer.from_pretrained(tiny_hrq_tokenizer)
    plain = VQDNATokenizer.from_pretrained(tiny_hrq_tokenizer, fast=False)
    a, b = fast.encode([seq, seq[:777]]), plain.encode([seq, seq[:777]])
    assert fast._engine_cache is not None and plain._engine_cache is None
    for x, y in zip(a, b):
        assert x.shape == y.shape and (x == y).mean() > 0.9999
    assert fast.decode(a) == plain.decode(a)


def test_engine_follows_weight_changes(tiny_hrq_tokenizer):
    tok = VQDNATokenizer.from_pretrained(tiny_hrq_tokenizer)
    tok.encode(["ACGT" * 100])
    eng = tok._engine_cache
    with torch.no_grad():
        tok.model.encoder.blocks[0].fc1.weight.mul_(1.5)
    codes = tok.encode(["ACGT" * 100])[0]
    assert tok._engine_cache is not eng
    assert np.array_equal(codes, VQDNATokenizer(tok.model, tok.config, device="cpu", fast=False)
                          .encode(["ACGT" * 100])[0])


def test_inference_model_matches_modules_with_layer_scale_and_n_channel():
    cfg, _ = tokenizer_configs("tiny", "hrq")
    cfg.layer_scale, cfg.n_policy = 0.5, "channel"
    torch.manual_seed(0)
    model = VQDNAAutoencoder(cfg).eval()
    idx = torch.randint(0, 5, (3, 301), dtype=torch.uint8)
    model.init_codebooks(idx, max_samples=900)
    eng = InferenceModel(model)
    with torch.no_grad():
        for a, b in zip(model.encoder(idx, cfg.levels), eng.encoder_outputs(idx)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        codes = model.encode(idx)
        assert (eng.encode(idx) == codes).float().mean() > 0.999
        torch.testing.assert_close(eng.decode_logits(codes), model.decode_logits(codes), rtol=1e-5, atol=1e-5)
