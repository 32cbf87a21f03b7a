"""HRQ (Sec. 3.2): levels, the three Eq. 6 variants, the mean embedding, the Eq. 8 loss."""
import pytest
import torch

from vqdna.config import tokenizer_configs
from vqdna.hub.hrq import HierarchicalResidualQuantizer
from vqdna.tokenizers.vqvae import VQDNAAutoencoder


def _hrq(residual):
    torch.manual_seed(0)
    h = HierarchicalResidualQuantizer(codebook_sizes=(4, 8), dim=3, residual=residual)
    h.eval()
    return h


@pytest.mark.parametrize("residual", ["doubled", "chained", "plain"])
def test_level_inputs_follow_eq6_and_its_alternatives(residual):
    h = _hrq(residual)
    z1, z2 = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    out = h([z1, z2])
    q1 = h.quantizers[0].embed[out["codes"][0]]
    q2 = h.quantizers[1].embed[out["codes"][1]]
    expected_h2 = {"doubled": 2 * z2 - q1, "chained": z2 + (z1 - q1), "plain": z2 - q1}[residual]
    # level 2 chose the code nearest to the expected H(2)
    d = torch.cdist(expected_h2.reshape(-1, 3), h.quantizers[1].embed)
    assert torch.equal(d.argmin(1), out["codes"][1].reshape(-1))
    expected_emb = (q1 + q2) if residual == "plain" else (q1 + q2) / 2
    assert torch.allclose(out["embedding"], expected_emb, atol=1e-6)
    assert torch.allclose(h.embed_codes(out["codes"]), expected_emb, atol=1e-6)
    # Eq. 8: the commitment is the sum over levels
    c = torch.nn.functional.mse_loss(z1, q1) + torch.nn.functional.mse_loss(expected_h2, q2)
    assert torch.allclose(out["commit"], c, atol=1e-5)


def test_hrq_model_shapes_and_levels():
    mc, tc = tokenizer_configs("tiny", "hrq")
    assert mc.levels == (1, 2) and mc.codebook_sizes == (64, 128) and mc.beta == 0.9
    m = VQDNAAutoencoder(mc)
    x = torch.randint(0, 5, (3, 50))
    out = m(x)
    assert out["codes"].shape == (2, 3, 50)
    assert out["codes"][0].max() < 64 and out["codes"][1].max() < 128
    codes = m.encode(x)
    assert m.decode_logits(codes).shape == (3, 50, 4)


def test_paper_configs_match_the_paper_and_run_a_step():
    for q, sizes, levels in [("vq", (512,), (6,)), ("hrq", (512, 1024), (3, 6))]:
        mc, tc = tokenizer_configs("paper", q)
        assert (mc.dim, mc.stem_dim, mc.depth, mc.codebook_sizes, mc.levels) == (384, 256, 6, sizes, levels)
        assert tc.short_length == 128 and tc.long_length == 256 and tc.batch_size == 1024
        m = VQDNAAutoencoder(mc)
        n = sum(p.numel() for p in m.parameters()) + sum(b.numel() for b in m.buffers() if b.ndim == 2) // 2
        assert 14e6 < n < 18e6
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
        out = m(torch.randint(0, 4, (2, 128)))
        out["loss"].backward()
        opt.step()
        assert torch.isfinite(out["loss"])


def test_bad_configs_are_rejected():
    from vqdna.config import TokenizerConfig, validate_tokenizer_config

    with pytest.raises(ValueError, match="one level"):
        validate_tokenizer_config(TokenizerConfig(quantizer="vq", codebook_sizes=(4, 8), levels=(3, 6)))
    with pytest.raises(ValueError, match="hrq_residual"):
        validate_tokenizer_config(TokenizerConfig(quantizer="hrq", codebook_sizes=(4, 8), levels=(3, 6),
                                                  hrq_residual="nope"))
