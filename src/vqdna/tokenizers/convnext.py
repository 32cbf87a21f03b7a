"""ConvNeXt-1D encoder and decoder of the VQDNA tokenizer (paper Sec. 3.3, Figure 3).

Tensors stay channels-last, (batch, length, channels), so the inverted-bottleneck
linears are plain GEMMs over all nucleotides of the batch; only the depthwise
convolution transposes. Stride is 1 everywhere: one vector per nucleotide.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvNeXtBlock(nn.Module):
    """depthwise Conv1d(k) -> LayerNorm -> Linear(d, 4d) -> GELU -> Linear(4d, d) -> + residual."""

    def __init__(self, *, dim: int, kernel_size: int = 7, mlp_ratio: int = 4, layer_scale: float = 0.0):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_ratio * dim)
        self.fc2 = nn.Linear(mlp_ratio * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale)) if layer_scale > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, d)
        y = self.dwconv(x.transpose(1, 2)).transpose(1, 2)
        y = self.fc2(F.gelu(self.fc1(self.norm(y))))
        if self.gamma is not None:
            y = y * self.gamma
        return x + y


class Encoder(nn.Module):
    """One-hot DNA (B, L) indices -> a list of (B, L, d) outputs after the chosen blocks.

    Stem: Conv1d(n_inputs -> stem_dim, kernel 5) + LayerNorm + GELU, then a linear
    projection to d (METHOD.md: open whether the stem outputs d directly; here it projects).
    """

    def __init__(self, *, n_inputs: int, stem_dim: int, dim: int, depth: int, kernel_size: int,
                 mlp_ratio: int, layer_scale: float = 0.0):
        super().__init__()
        # Row 4 (N / IUPAC) of the one-hot table is all zero unless the fifth channel is on.
        table = torch.zeros(5, n_inputs)
        table[torch.arange(n_inputs), torch.arange(n_inputs)] = 1.0
        self.register_buffer("one_hot", table, persistent=False)
        self.stem = nn.Conv1d(n_inputs, stem_dim, 5, padding=2)
        self.stem_norm = nn.LayerNorm(stem_dim)
        self.proj = nn.Linear(stem_dim, dim)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim=dim, kernel_size=kernel_size, mlp_ratio=mlp_ratio, layer_scale=layer_scale)
            for _ in range(depth)
        )

    def forward(self, idx: torch.Tensor, levels: tuple) -> list[torch.Tensor]:
        x = F.embedding(idx.long(), self.one_hot)  # (B, L, n_inputs)
        x = self.stem(x.transpose(1, 2)).transpose(1, 2)
        x = self.proj(F.gelu(self.stem_norm(x)))
        outs = []
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            if i in levels:
                outs.append(x)
        return outs


class Decoder(nn.Module):
    """Mirror of the encoder: blocks, then LayerNorm -> Linear(d, stem_dim) -> GELU -> Conv1d(k5) logits."""

    def __init__(self, *, n_outputs: int, stem_dim: int, dim: int, depth: int, kernel_size: int,
                 mlp_ratio: int, layer_scale: float = 0.0):
        super().__init__()
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim=dim, kernel_size=kernel_size, mlp_ratio=mlp_ratio, layer_scale=layer_scale)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, stem_dim)
        self.head = nn.Conv1d(stem_dim, n_outputs, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, d) -> (B, L, n_outputs)
        for block in self.blocks:
            x = block(x)
        x = F.gelu(self.proj(self.norm(x)))
        return self.head(x.transpose(1, 2)).transpose(1, 2)
