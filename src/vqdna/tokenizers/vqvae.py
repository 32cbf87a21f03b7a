"""The VQDNA tokenizer network: ConvNeXt encoder -> VQ or HRQ codebooks -> decoder.

Loss (Eq. 3 / Eq. 8): cross-entropy reconstruction of the nucleotides plus
beta * commitment; the codebooks learn by EMA, not by a loss term. Reconstruction
loss and accuracy count A/C/G/T positions only (N/IUPAC have no letter to predict,
unless ``n_policy="channel"`` where the fifth class is predicted too).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import TokenizerConfig
from .convnext import Decoder, Encoder
from .hrq import HierarchicalResidualQuantizer


class VQDNAAutoencoder(nn.Module):
    def __init__(self, config: TokenizerConfig):
        super().__init__()
        self.config = c = config
        arch = dict(stem_dim=c.stem_dim, dim=c.dim, depth=c.depth, kernel_size=c.kernel_size,
                    mlp_ratio=c.mlp_ratio, layer_scale=c.layer_scale)
        self.encoder = Encoder(n_inputs=c.n_inputs, **arch)
        self.quantizer = HierarchicalResidualQuantizer(
            codebook_sizes=c.codebook_sizes, dim=c.dim, residual=c.hrq_residual, decay=c.ema_decay,
            eps=c.ema_eps, dead_code_threshold=c.dead_code_threshold)
        self.decoder = Decoder(n_outputs=c.n_inputs, **arch)

    def forward(self, idx: torch.Tensor) -> dict:
        """idx (B, L) nucleotide indices -> loss and the numbers the progress bar shows."""
        zs = self.encoder(idx, self.config.levels)
        q = self.quantizer(zs)
        logits = self.decoder(q["embedding"])
        target = idx.long()
        scored = target < 4 if self.config.n_policy == "zero" else torch.ones_like(target, dtype=torch.bool)
        recon = F.cross_entropy(logits[scored].float(), target[scored]) if scored.any() else logits.sum() * 0
        acgt = target < 4
        correct = (logits.argmax(-1) == target) & acgt
        loss = recon + self.config.beta * q["commit"]
        return dict(loss=loss, recon=recon.detach(), commit=q["commit"].detach(),
                    correct=correct.sum(), scored=acgt.sum(), codes=q["codes"])

    @torch.no_grad()
    def encode(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, L) -> codes (n_levels, B, L)."""
        return self.quantizer(self.encoder(idx, self.config.levels))["codes"]

    @torch.no_grad()
    def decode_logits(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (n_levels, B, L) -> nucleotide logits (B, L, n_inputs)."""
        return self.decoder(self.quantizer.embed_codes(codes))

    @torch.no_grad()
    def init_codebooks(self, idx: torch.Tensor, *, max_samples: int, generator=None) -> None:
        """Repeated K-means initialisation from the encoder outputs of ``idx`` (after warm-up)."""
        zs = self.encoder(idx, self.config.levels)
        self.quantizer.init_from_kmeans([z.float() for z in zs], iters=self.config.kmeans_iters,
                                        repeats=self.config.kmeans_repeats, max_samples=max_samples,
                                        generator=generator)

    def flops_per_nucleotide(self, *, decoder: bool = False) -> int:
        """Multiply-adds x 2 per nucleotide of the encoder + distances (+ decoder)."""
        c = self.config
        block = 2 * (c.dim * c.kernel_size + 2 * c.dim * c.mlp_ratio * c.dim)
        enc = 2 * (c.n_inputs * c.stem_dim * 5 + c.stem_dim * c.dim) + c.depth * block
        dist = sum(2 * c.dim * k for k in c.codebook_sizes)
        dec = c.depth * block + 2 * (c.dim * c.stem_dim + c.stem_dim * c.n_inputs * 5)
        return enc + dist + (dec if decoder else 0)
