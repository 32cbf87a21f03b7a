"""The VQDNA tokenizer network: ConvNeXt encoder -> VQ or HRQ codebooks -> decoder.

Loss (Eq. 3 / Eq. 8): cross-entropy reconstruction of the nucleotides plus
beta * commitment; the codebooks learn by EMA, not by a loss term. Reconstruction
loss and accuracy count A/C/G/T positions only (N/IUPAC have no letter to predict,
unless ``n_policy="channel"`` where the fifth class is predicted too).

With ``config.stride`` s > 1 (:mod:`.convnext`) a code covers s nucleotides: ``encode`` gives
``ceil(L / s)`` codes per level and ``decode_logits`` ``s`` logits per code; the decoder output is
cut back to the input length, so the loss scores the same nucleotides as at stride 1.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import TokenizerConfig
from ..hub.convnext import Decoder, Encoder, InferenceDecoder, InferenceEncoder, onednn_available
from ..hub.hrq import HierarchicalResidualQuantizer
from ..hub.quantizer import SUBSAMPLE_PER_CODE, PackedNearest


# kmeans_version 4: Lloyd iterations of a level's refinement per training step (a pass over
# 32,768 samples x 1,024 codes costs about a fifth of a `small` training step on one thread)
LLOYD_PER_STEP = 4


class VQDNAAutoencoder(nn.Module):
    def __init__(self, config: TokenizerConfig):
        super().__init__()
        self.config = c = config
        arch = dict(stem_dim=c.stem_dim, dim=c.dim, depth=c.depth, kernel_size=c.kernel_size,
                    mlp_ratio=c.mlp_ratio, layer_scale=c.layer_scale, stride=c.stride)
        self.encoder = Encoder(n_inputs=c.n_inputs, **arch)
        self.quantizer = HierarchicalResidualQuantizer(
            codebook_sizes=c.codebook_sizes, dim=c.dim, residual=c.hrq_residual, decay=c.ema_decay,
            eps=c.ema_eps, dead_code_threshold=c.dead_code_threshold)
        self.decoder = Decoder(n_outputs=c.n_inputs, **arch)

    def forward(self, idx: torch.Tensor) -> dict:
        """idx (B, L) nucleotide indices -> loss and the numbers the progress bar shows."""
        zs = self.encoder(idx, self.config.levels)
        q = self.quantizer(zs)
        logits = self.decoder(q["embedding"])[:, :idx.shape[1]]  # stride > 1: the padding cut off
        target = idx.long()
        scored = target < 4 if self.config.n_policy == "zero" else torch.ones_like(target, dtype=torch.bool)
        recon = F.cross_entropy(logits[scored].float(), target[scored]) if scored.any() else logits.sum() * 0
        acgt = target < 4
        correct = (logits.argmax(-1) == target) & acgt
        loss = recon + self.config.beta * q["commit"]
        return dict(loss=loss, recon=recon.detach(), commit=q["commit"].detach(),
                    correct=correct.sum(), scored=acgt.sum(), codes=q["codes"])

    def token_mask(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, L) nucleotide indices -> (B, ceil(L / stride)) bool: the codes that cover at least one
        A/C/G/T (at stride 1: ``idx < 4``); code usage counts these."""
        acgt = idx < 4
        s = self.config.stride
        if s == 1:
            return acgt
        acgt = F.pad(acgt, (0, -acgt.shape[-1] % s))
        return acgt.reshape(*acgt.shape[:-1], -1, s).any(-1)

    @torch.no_grad()
    def encode(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, L) -> codes (n_levels, B, ceil(L / stride)) (the codes of ``forward``, without its loss terms)."""
        return self.quantizer.codes(self.encoder(idx, self.config.levels))

    @torch.no_grad()
    def decode_logits(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (n_levels, B, T) -> nucleotide logits (B, T * stride, n_inputs)."""
        return self.decoder(self.quantizer.embed_codes(codes))

    @torch.no_grad()
    def init_codebooks(self, idx: torch.Tensor, *, max_samples: int, generator=None, start: bool = False) -> None:
        """Repeated K-means initialisation from the encoder outputs of ``idx`` (after warm-up).
        ``start`` (step 0, an untrained encoder): with ``kmeans_version`` 2 one k-means run, not
        ``kmeans_repeats``: it only gives warm-up data-dependent codes, which the Repeated K-means
        at the end of warm-up replaces (issue 19: the step-0 stall was 50x a training step); with
        version 3 also on a quarter of the samples (at least 4 per code), from as few windows."""
        version = self.config.kmeans_version
        if start and version >= 3:  # a quarter of the windows (and samples): warm-up only starts from these codes
            max_samples = max(max_samples // 4, 4 * max(self.config.codebook_sizes))
            idx = idx[:math.ceil(max_samples * self.config.stride / idx.shape[1])]  # one output per stride nt
        zs = self.encoder(idx, self.config.levels)
        repeats = 1 if start and version >= 2 else self.config.kmeans_repeats
        self.quantizer.init_from_kmeans([z.float() for z in zs], iters=self.config.kmeans_iters,
                                        repeats=repeats, max_samples=max_samples,
                                        generator=generator, version=self.config.kmeans_version)

    @property
    def kmeans_steps(self) -> int:
        """Training steps the end-of-warm-up k-means takes: 1, or with ``kmeans_version`` 4 per level
        one for its seeds and one per :data:`LLOYD_PER_STEP` of its ``kmeans_iters`` refinement
        iterations (12 for the `small` HRQ), so that no step holds much of it."""
        if self.config.kmeans_version < 4:
            return 1
        return self.config.n_levels * (1 + math.ceil(self.config.kmeans_iters / LLOYD_PER_STEP))

    def kmeans_stage(self, idx: torch.Tensor, step: int, *, max_samples: int, generator=None) -> None:
        """``kmeans_version`` 4, step ``step`` (0 .. ``kmeans_steps`` - 1) after warm-up: the encoder
        outputs of ``idx`` (this step's encoder), then for one level either its seeds (the Repeated
        K-means on :data:`SUBSAMPLE_PER_CODE` points per code; only the windows those need are
        encoded) or up to :data:`LLOYD_PER_STEP` Lloyd iterations on all samples from the codebook
        as it is (a stage stops early once the k-means has converged). The codebook is all the
        state between stages, so a run killed and resumed in between repeats nothing."""
        c = self.config
        level, j = divmod(step, self.kmeans_steps // c.n_levels)  # j: 0 the seeds, then refinement steps
        if j == 0:
            need = SUBSAMPLE_PER_CODE * c.codebook_sizes[level]
            idx = idx[:math.ceil(need * c.stride / idx.shape[1])]
        zs = self.encoder(idx, c.levels)
        iters = c.kmeans_iters if j == 0 else min(LLOYD_PER_STEP, c.kmeans_iters - (j - 1) * LLOYD_PER_STEP)
        self.quantizer.kmeans_stage([z.float() for z in zs], level, "refine" if j else "seed", iters=iters,
                                    repeats=c.kmeans_repeats, max_samples=max_samples, generator=generator)

    def flops_per_nucleotide(self, *, decoder: bool = False, search: bool = True) -> float:
        """FLOPs per nucleotide of tokenization: 2 per multiply-add of every convolution and
        linear layer of the encoder (stem conv on the one-hot input, projection, depthwise conv,
        fc1, fc2 of each block) plus the code-distance matmul of every level (not with
        ``search=False``: the encoder alone); with ``decoder`` also the decoder's. Biases,
        LayerNorm, GELU, residual adds and argmin are not counted.
        With a stride s the blocks and the code search run once per s nucleotides, and the
        strided (transposed) convolution adds 2 d^2 per nucleotide each (an int at stride 1)."""
        c = self.config
        block = 2 * (c.dim * c.kernel_size + 2 * c.dim * c.mlp_ratio * c.dim)
        dist = sum(2 * c.dim * k for k in c.codebook_sizes) if search else 0
        enc_nt = 2 * (c.n_inputs * c.stem_dim * 5 + c.stem_dim * c.dim)  # per nucleotide
        dec_nt = 2 * (c.dim * c.stem_dim + c.stem_dim * c.n_inputs * 5)
        if c.stride == 1:
            return enc_nt + c.depth * block + dist + ((c.depth * block + dec_nt) if decoder else 0)
        resample = 2 * c.dim * c.dim  # (transposed) conv of kernel s: 2 s d^2 per code = 2 d^2 per nucleotide
        enc = enc_nt + resample + (c.depth * block + dist) / c.stride
        dec = dec_nt + resample + c.depth * block / c.stride
        return enc + (dec if decoder else 0)


class InferenceModel:
    """Tokenization (and decoding) of a VQDNAAutoencoder for inference only.

    On a CPU with float32 weights and oneDNN, the encoder, the code search and the decoder
    run the packed paths of :mod:`.convnext` and :class:`.PackedNearest`; codes equal
    ``model.encode`` up to float rounding (near-ties). Elsewhere it calls the model's own
    modules. Weights are copied (and packed) at construction: ``matches(model)`` tells
    whether they are still the model's current ones.
    """

    def __init__(self, model: VQDNAAutoencoder, *, packed: bool = True):
        self.model = model
        self.levels = model.config.levels
        self.version = weights_version(model)
        p = next(model.parameters())
        self.packed = bool(packed and p.device.type == "cpu" and p.dtype == torch.float32)
        self.onednn = self.packed and onednn_available()
        self.encoder = InferenceEncoder(model.encoder, onednn=self.onednn) if self.packed else None
        self.nearest = [PackedNearest(vq, onednn=self.onednn) for vq in model.quantizer.quantizers] \
            if self.packed else None
        self._decoder = None

    def matches(self, model: VQDNAAutoencoder) -> bool:
        return model is self.model and weights_version(model) == self.version

    def encoder_outputs(self, idx: torch.Tensor) -> list[torch.Tensor]:
        if self.encoder is None:
            return self.model.encoder(idx, self.levels)
        return self.encoder(idx, self.levels)

    def encode(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, L) nucleotide indices -> codes (n_levels, B, ceil(L / stride))."""
        with torch.inference_mode():
            return self.model.quantizer.codes(self.encoder_outputs(idx), self.nearest)

    def decode_logits(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (n_levels, B, T) -> nucleotide logits (B, T * stride, n_inputs)."""
        with torch.inference_mode():
            emb = self.model.quantizer.embed_codes(codes)
            if not self.packed:
                return self.model.decoder(emb)
            if self._decoder is None:
                self._decoder = InferenceDecoder(self.model.decoder, onednn=self.onednn)
            return self._decoder(emb)


def weights_version(model: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is replaced or modified in place."""
    return tuple((t.data_ptr(), t._version) for t in (*model.parameters(), *model.buffers()))
