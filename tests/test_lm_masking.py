"""MLM masking: 25% of real positions, 80/10/10, joint across HRQ levels, never [CLS]/[PAD],
token and span modes, deterministic given a torch.Generator."""
import numpy as np
import torch

from vqdna.lm.masking import mask_codes
from vqdna.hub.modeling_vqdna import CLS, MASK, PAD

torch.set_num_threads(1)
VOCAB = [64, 128]


def make_ids(B=64, L=257, n_pad=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randint(0, v, (B, L), generator=g) for v in VOCAB], 1)
    for level, v in enumerate(VOCAB):
        ids[:, level, 0] = v + CLS
        ids[B // 2:, level, L - n_pad:] = v + PAD  # half the rows padded at the end
    return ids


def test_token_mode_statistics():
    ids = make_ids()
    x, y = mask_codes(ids, VOCAB, generator=torch.Generator().manual_seed(1))
    elig = ids[:, 0] < VOCAB[0]
    chosen = y[:, 0] != -100
    # exactly round(25%) of the real positions of every row; never [CLS] or [PAD]
    assert torch.equal(chosen.sum(1), torch.round(elig.sum(1).double() * 0.25).long())
    assert not (chosen & ~elig).any()
    # joint across levels: same positions labelled, [MASK] on every level at once
    assert torch.equal(chosen, y[:, 1] != -100)
    assert torch.equal(y[chosen.unsqueeze(1).expand_as(y)], ids[chosen.unsqueeze(1).expand_as(ids)])
    is_mask = [x[:, level] == v + MASK for level, v in enumerate(VOCAB)]
    assert torch.equal(is_mask[0], is_mask[1])
    # 80 / 10 / 10 (the "random" share is what is neither [MASK] nor unchanged on every level,
    # plus random draws that happen to hit the original code: ~1/64 of the 10%)
    n = chosen.sum().item()
    mask_share = (is_mask[0] & chosen).sum().item() / n
    unchanged = ((x == ids).all(1) & chosen).sum().item() / n
    random = 1 - mask_share - unchanged
    assert abs(mask_share - 0.8) < 0.03
    assert abs(random - 0.1) < 0.025 and abs(unchanged - 0.1) < 0.025
    # nothing outside the chosen positions changes; random codes stay inside each vocabulary
    assert torch.equal(x[~chosen.unsqueeze(1).expand_as(x)], ids[~chosen.unsqueeze(1).expand_as(ids)])
    for level, v in enumerate(VOCAB):
        row = x[:, level][chosen & ~is_mask[0]]
        assert row.min() >= 0 and row.max() < v


def test_deterministic_given_generator():
    ids = make_ids(B=8)
    a = mask_codes(ids, VOCAB, generator=torch.Generator().manual_seed(5))
    b = mask_codes(ids, VOCAB, generator=torch.Generator().manual_seed(5))
    c = mask_codes(ids, VOCAB, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    for mode in ("token", "span"):
        a = mask_codes(ids, VOCAB, generator=torch.Generator().manual_seed(5), mode=mode)
        b = mask_codes(ids, VOCAB, generator=torch.Generator().manual_seed(5), mode=mode)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def _runs(row: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a boolean row."""
    d = np.diff(np.concatenate([[0], row.astype(int), [0]]))
    return list(np.flatnonzero(d == -1) - np.flatnonzero(d == 1))


def test_span_mode_lengths_and_coverage():
    ids = make_ids(B=64, L=513, n_pad=100)
    x, y = mask_codes(ids, VOCAB, generator=torch.Generator().manual_seed(2), mode="span", span_mean=8)
    elig = ids[:, 0] < VOCAB[0]
    chosen = y[:, 0] != -100
    assert torch.equal(chosen.sum(1), torch.round(elig.sum(1).double() * 0.25).long())
    assert not (chosen & ~elig).any()
    runs = [r for row in chosen.numpy() for r in _runs(row)]
    # geometric spans of mean 8 (adjacent spans merge, the last one of a row is trimmed)
    assert 6 <= np.mean(runs) <= 16, np.mean(runs)
    token = mask_codes(ids, VOCAB, generator=torch.Generator().manual_seed(2))[1][:, 0] != -100
    assert np.mean([r for row in token.numpy() for r in _runs(row)]) < 2
    # 80/10/10 decided per span, still ~80% [MASK] over positions
    share = ((x[:, 0] == VOCAB[0] + MASK) & chosen).sum().item() / chosen.sum().item()
    assert 0.7 < share < 0.9


def test_single_level_and_short_rows():
    ids = torch.randint(0, 10, (3, 1, 5))
    ids[:, 0, 0] = 10 + CLS
    x, y = mask_codes(ids, [10], generator=torch.Generator().manual_seed(0))
    assert ((y[:, 0] != -100).sum(1) == 1).all()  # round(0.25 * 4) = 1


def test_pretrain_config_shares_reach_the_masking():
    """PretrainConfig.mask_random_prob / mask_keep_prob set the shares of the chosen positions
    (no random codes at 0: every chosen position is [MASK] or its own code); bad shares are refused."""
    import pytest

    from vqdna.config import lm_configs
    from vqdna.lm.pretrain import mask_shares

    _, tc = lm_configs("tiny", {"mask_random_prob": 0.0, "mask_keep_prob": 0.2})
    ids = make_ids()
    x, y = mask_codes(ids, VOCAB, generator=torch.Generator().manual_seed(1), **mask_shares(tc))
    chosen = y[:, 0] != -100
    is_mask = x[:, 0] == VOCAB[0] + MASK
    unchanged = (x == ids).all(1) & chosen
    assert torch.equal(is_mask | unchanged, chosen)  # no random code anywhere
    assert abs(unchanged.sum().item() / chosen.sum().item() - 0.2) < 0.03
    with pytest.raises(ValueError, match="mask_random_prob"):
        lm_configs("tiny", {"mask_random_prob": 0.9, "mask_keep_prob": 0.2})
