"""Hierarchical residual quantization (HRQ, paper Sec. 3.2, Eqs. 5-8).

Codebooks sit at several encoder depths (default after blocks 3 and 6, sizes 512 then
1024). With Z(l) the encoder output at level l and Q(l) its quantization:

* ``doubled`` (Eq. 6, default): H(1) = Z(1), H(l) = Z(l) + (Z(l) - Q(l-1)) = 2 Z(l) - Q(l-1);
  every level stays on the scale of Z, unlike plain residual quantization.
* ``chained``: H(l) = Z(l) + (H(l-1) - Q(l-1)).
* ``plain``: residual quantization, H(l) = Z(l) - sum_{j<l} Q(j); the output is then the
  *sum* of the level quantizations (what plain RQ reconstructs).

Q(l) = quantize_l(H(l)); the output embedding is the mean of the Q(l) (Eq. 7) and the
commitment term is sum_l ||H(l) - sg(Q(l))||^2 (Eq. 8). With one level this module is
exactly the VQ-VAE quantizer of Eqs. 1-4, which is how the VQ tokenizer uses it.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .quantizer import EMAVectorQuantizer, nearest_centroids


class HierarchicalResidualQuantizer(nn.Module):
    def __init__(self, *, codebook_sizes: tuple, dim: int, residual: str = "doubled", decay: float = 0.99,
                 eps: float = 1e-5, dead_code_threshold: float = 0.2):
        super().__init__()
        if residual not in ("doubled", "chained", "plain"):
            raise ValueError(f"residual must be doubled|chained|plain, not {residual!r}")
        self.residual = residual
        self.quantizers = nn.ModuleList(
            EMAVectorQuantizer(codebook_size=k, dim=dim, decay=decay, eps=eps,
                               dead_code_threshold=dead_code_threshold)
            for k in codebook_sizes
        )
        self.last_inputs: list[torch.Tensor] = []  # H(l) of the last training batch, for re-seeding

    def level_input(self, level: int, z: torch.Tensor, h_prev, q_prev, q_sum) -> torch.Tensor:
        """H(l) from Z(l) and the previous level (Eq. 6 and its alternatives)."""
        if level == 0:
            return z
        if self.residual == "doubled":
            return 2 * z - q_prev
        if self.residual == "chained":
            return z + (h_prev - q_prev)
        return z - q_sum

    def forward(self, zs: list[torch.Tensor]) -> dict:
        """zs: encoder outputs per level, each (B, L, D) -> embedding, codes, commitment."""
        if len(zs) != len(self.quantizers):
            raise ValueError(f"{len(zs)} encoder outputs for {len(self.quantizers)} codebooks")
        h_prev = q_prev = q_sum = None
        qs, codes, commit = [], [], 0.0
        inputs = []
        for level, (z, vq) in enumerate(zip(zs, self.quantizers)):
            h = self.level_input(level, z, h_prev, q_prev, q_sum)
            out = vq(h)
            q = out["quantized"]
            qs.append(q)
            codes.append(out["indices"])
            commit = commit + out["commit"]
            inputs.append(out["flat_inputs"])
            h_prev, q_prev = h, q
            q_sum = q if q_sum is None else q_sum + q
        if self.training:
            self.last_inputs = inputs
        return dict(embedding=self.combine(qs), codes=torch.stack(codes), commit=commit)

    @torch.no_grad()
    def codes(self, zs: list[torch.Tensor], nearest: list | None = None) -> torch.Tensor:
        """Codes only, (n_levels, ...): what ``forward(zs)["codes"]`` gives, without the embedding,
        the commitment term or EMA updates. ``nearest`` optionally replaces each level's
        ``vq.nearest`` (e.g. by :class:`~vqdna.hub.quantizer.PackedNearest`)."""
        if len(zs) != len(self.quantizers):
            raise ValueError(f"{len(zs)} encoder outputs for {len(self.quantizers)} codebooks")
        nearest = nearest or [vq.nearest for vq in self.quantizers]
        h_prev = q_prev = q_sum = None
        codes = []
        for level, (z, vq, find) in enumerate(zip(zs, self.quantizers, nearest)):
            h = self.level_input(level, z, h_prev, q_prev, q_sum)
            indices = find(h)
            codes.append(indices)
            if level + 1 < len(zs):
                # the straight-through value forward() hands to the next level: flat + (q - flat)
                flat = h.float()
                q = (flat + (vq.lookup(indices) - flat)).to(h.dtype)
                h_prev, q_prev = h, q
                q_sum = q if q_sum is None else q_sum + q
        return torch.stack(codes)

    def combine(self, qs: list[torch.Tensor]) -> torch.Tensor:
        """Output embedding: mean of the level quantizations (sum for plain RQ)."""
        total = torch.stack(qs).sum(0)
        return total if self.residual == "plain" else total / len(qs)

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (n_levels, ...) -> the embedding the decoder and the language model read."""
        return self.combine([vq.lookup(c) for vq, c in zip(self.quantizers, codes)])

    def _level_inputs(self, zs: list[torch.Tensor], *, blocked: bool = True):
        """Yield ``(level, quantizer, H(l))`` level by level. H(l + 1) is built from level l's codebook
        as it is once the caller's turn is over, so a caller may (re)initialise a level before the
        next one reads it. ``blocked``: the nearest codes in row blocks (no (N, K) distance matrix);
        ``False`` keeps ``kmeans_version`` 1-2's whole-matrix search, bit for bit."""
        h_prev = q_prev = q_sum = None
        for level, (z, vq) in enumerate(zip(zs, self.quantizers)):
            h = self.level_input(level, z, h_prev, q_prev, q_sum)
            yield level, vq, h
            if level == len(self.quantizers) - 1:
                break  # no level below reads this one's codes
            if blocked:
                codes = nearest_centroids(h.reshape(-1, h.shape[-1]).float(), vq.embed)[1].view(h.shape[:-1])
            else:
                codes = vq.nearest(h)
            q = vq.lookup(codes).to(h.dtype)
            h_prev, q_prev = h, q
            q_sum = q if q_sum is None else q_sum + q

    @torch.no_grad()
    def init_from_kmeans(self, zs: list[torch.Tensor], *, iters: int, repeats: int, max_samples: int,
                         generator: torch.Generator | None = None, version: int = 3) -> None:
        """Repeated K-means on each level in turn: level l sees H(l) built from the
        freshly initialised codebooks of the levels above it."""
        for _, vq, h in self._level_inputs(zs, blocked=version >= 3):
            vq.init_from_kmeans(_samples(h, max_samples, generator), iters=iters, repeats=repeats,
                                generator=generator, version=version)

    @torch.no_grad()
    def kmeans_stage(self, zs: list[torch.Tensor], level: int, stage: str, *, iters: int, repeats: int,
                     max_samples: int, generator: torch.Generator | None = None) -> None:
        """``kmeans_version`` 4: one stage (``"seed"`` or ``"refine"``, see
        :meth:`EMAVectorQuantizer.kmeans_stage`) of level ``level``'s k-means, whose H(l) is built
        from the codebooks of the levels above as they are now."""
        for lv, vq, h in self._level_inputs(zs):
            if lv == level:
                vq.kmeans_stage(_samples(h, max_samples, generator), stage, iters=iters, repeats=repeats,
                                generator=generator)
                return

    @torch.no_grad()
    def reseed_dead_codes(self, generator: torch.Generator | None = None) -> list[int]:
        """Re-seed dead codes of every level from the last training batch's H(l)."""
        if not self.last_inputs:
            return [0] * len(self.quantizers)
        return [vq.reseed_dead_codes(x, generator) for vq, x in zip(self.quantizers, self.last_inputs)]


def _samples(h: torch.Tensor, max_samples: int, generator: torch.Generator | None) -> torch.Tensor:
    """H(l) as (N, D) float rows, at most ``max_samples`` of them (a random subset)."""
    flat = h.reshape(-1, h.shape[-1]).float()
    if flat.shape[0] > max_samples:
        flat = flat[torch.randperm(flat.shape[0], generator=generator)[:max_samples].to(flat.device)]
    return flat
