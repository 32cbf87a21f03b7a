"""Masked-LM corruption of code ids (METHOD.md stage 2: 25% of positions, 80/10/10 as in BERT).

* A position is eligible when it holds a real code (level-0 id below ``V_0``): [CLS], [PAD]
  and other special ids are never masked.
* Masking is **joint across HRQ levels**: a chosen position is corrupted on every level at once
  (all levels [MASK], or a random code on every level, or left unchanged), so no level leaks
  the answer of another.
* ``mode="token"``: exactly ``round(mask_prob * n_eligible)`` positions per row, uniformly.
  80% of them become [MASK], 10% a random code (drawn per level), 10% stay unchanged
  (each position decides independently).
* ``mode="span"`` (METHOD.md open point): neighbouring learned codes share most of their
  receptive field, so a lone masked code is easy to guess from its neighbours. Spans with
  geometric lengths (mean ``span_mean``, default 8 ~ the tokenizer's receptive-field radius,
  capped at ``4 * span_mean``) at uniform starts are added until ``mask_prob`` of the eligible
  positions are covered (the last span is trimmed to hit the target exactly). The 80/10/10
  decision is taken **per span** (SpanBERT), so a span is never half revealed.
* Labels hold the original ids at masked positions (every level) and -100 elsewhere.
* Everything random comes from the ``torch.Generator`` passed in: same generator state, same
  masks (this is what makes pre-training resumable).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..hub.modeling_vqdna import MASK

IGNORE = -100


def eligible_positions(input_ids: torch.Tensor, vocab_sizes) -> torch.Tensor:
    """(B, L) bool: positions holding a real code (not [CLS]/[PAD]/[MASK])."""
    return input_ids[:, 0] < vocab_sizes[0]


def _token_choice(elig: torch.Tensor, mask_prob: float, gen: torch.Generator) -> torch.Tensor:
    B, L = elig.shape
    k = torch.round(elig.sum(1).double() * mask_prob).long()  # per row
    scores = torch.rand(B, L, generator=gen)
    scores[~elig] = -1.0
    order = scores.argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(L).expand(B, L).contiguous())
    return rank < k.unsqueeze(1)


def _span_choice(elig: torch.Tensor, mask_prob: float, span_mean: float, gen: torch.Generator):
    """(chosen (B, L) bool, span id per position (B, L) long, -1 where not chosen)."""
    B, L = elig.shape
    chosen = np.zeros((B, L), dtype=bool)
    span_id = np.full((B, L), -1, dtype=np.int64)
    el = elig.numpy()
    p = 1.0 / max(span_mean, 1.0)
    max_len = max(int(4 * span_mean), 1)
    sid = 0
    for b in range(B):
        pos = np.flatnonzero(el[b])  # spans run over eligible positions (contiguous in them)
        n = len(pos)
        target = int(round(n * mask_prob))
        covered = np.zeros(n, dtype=bool)
        count = 0
        while count < target:
            # draw a batch of candidate spans from the generator, use them in order
            m = max(2 * math.ceil((target - count) / span_mean), 4)
            u = torch.rand(m, generator=gen).numpy()
            starts = torch.randint(0, n, (m,), generator=gen).numpy()
            lengths = np.minimum(np.floor(np.log1p(-u) / math.log1p(-p)).astype(np.int64) + 1, max_len) \
                if p < 1 else np.ones(m, dtype=np.int64)
            for s, ln in zip(starts, lengths):
                e = min(s + ln, n)
                new = np.flatnonzero(~covered[s:e]) + s
                if not len(new):
                    continue
                new = new[: target - count]
                covered[new] = True
                span_id[b, pos[new]] = sid
                sid += 1
                count += len(new)
                if count >= target:
                    break
        chosen[b, pos[covered]] = True
    return torch.from_numpy(chosen), torch.from_numpy(span_id)


def mask_codes(input_ids: torch.Tensor, vocab_sizes, *, generator: torch.Generator, mask_prob: float = 0.25,
               mode: str = "token", span_mean: float = 8.0, mask_token_prob: float = 0.8,
               random_token_prob: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt ``input_ids`` (B, n_levels, L) for MLM; returns ``(corrupted, labels)`` (see module doc).

    Runs on the CPU (inputs are moved there); the result has the input's device.
    """
    device = input_ids.device
    ids = input_ids.detach().cpu().long()
    B, n_levels, L = ids.shape
    if n_levels != len(vocab_sizes):
        raise ValueError(f"input_ids have {n_levels} levels, vocab_sizes {len(vocab_sizes)}")
    elig = eligible_positions(ids, vocab_sizes)
    if mode == "token":
        chosen = _token_choice(elig, mask_prob, generator)
        unit = torch.rand(B, L, generator=generator)
    elif mode == "span":
        chosen, span_id = _span_choice(elig, mask_prob, span_mean, generator)
        n_spans = int(span_id.max()) + 1 if chosen.any() else 0
        per_span = torch.rand(max(n_spans, 1), generator=generator)
        unit = torch.where(span_id >= 0, per_span[span_id.clamp(min=0)], torch.ones(B, L))
    else:
        raise ValueError(f"mask mode must be 'token' or 'span', not {mode!r}")
    labels = torch.where(chosen.unsqueeze(1), ids, torch.full_like(ids, IGNORE))
    to_mask = chosen & (unit < mask_token_prob)
    to_random = chosen & (unit >= mask_token_prob) & (unit < mask_token_prob + random_token_prob)
    out = ids.clone()
    for level, v in enumerate(vocab_sizes):
        rnd = torch.randint(0, v, (B, L), generator=generator)
        row = out[:, level]
        row[to_mask] = v + MASK
        row[to_random] = rnd[to_random]
    return out.to(device), labels.to(device)
