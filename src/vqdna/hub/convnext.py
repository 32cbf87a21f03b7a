"""ConvNeXt-1D encoder and decoder of the VQDNA tokenizer (paper Sec. 3.3, Figure 3).

Tensors stay channels-last, (batch, length, channels), so the inverted-bottleneck
linears are plain GEMMs over all nucleotides of the batch; only the depthwise
convolution transposes. With ``stride`` 1 (the paper's tokenizer) there is one vector per
nucleotide. With ``stride`` s > 1 the encoder downsamples right after the stem with a strided
convolution (kernel = stride = s, so every nucleotide feeds exactly one code) and the decoder
upsamples right before its head with the matching transposed convolution (the "de-convolution"
decoder of the paper's Sec. 3.3): the blocks, the codes and the LM run on one vector per s
nucleotides. A kernel-equals-stride (transposed) convolution is a linear map of s
concatenated positions, which is how both are written here (channels-last, no transposes).
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


class Downsample(nn.Module):
    """Conv1d(d, d, kernel=s, stride=s) on (B, L, d), L a multiple of s -> (B, L / s, d): one
    vector per s nucleotides, as a linear map of the s concatenated positions."""

    def __init__(self, *, dim: int, stride: int):
        super().__init__()
        self.stride = stride
        self.proj = nn.Linear(stride * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, d = x.shape
        return self.proj(x.reshape(B, L // self.stride, self.stride * d))


class Upsample(nn.Module):
    """ConvTranspose1d(d, d, kernel=s, stride=s) on (B, T, d) -> (B, T * s, d): each code vector
    gives the vectors of its s nucleotides (the paper's de-convolution), as one linear map."""

    def __init__(self, *, dim: int, stride: int):
        super().__init__()
        self.stride = stride
        self.proj = nn.Linear(dim, stride * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        return self.proj(x).reshape(B, T * self.stride, d)


def pad_to_stride(x: torch.Tensor, stride: int) -> torch.Tensor:
    """(B, L, C) -> (B, ceil(L / stride) * stride, C), zeros appended (what the stem's own zero
    padding reads past the end): the last code of a sequence whose length is not a multiple of
    the stride covers its last nucleotides and zeros."""
    pad = -x.shape[1] % stride
    return F.pad(x, (0, 0, 0, pad)) if pad else x


def one_hot_table(n_inputs: int) -> torch.Tensor:
    """(5, n_inputs): the one-hot row of each nucleotide index. Row 4 (N / IUPAC) is all zero
    unless the fifth channel is on. Not saved with the weights (a constant): a model that
    transformers builds on the meta device refills it (``VQDNAPreTrainedModel._init_weights``)."""
    table = torch.zeros(5, n_inputs)
    table[torch.arange(n_inputs), torch.arange(n_inputs)] = 1.0
    return table


class Encoder(nn.Module):
    """One-hot DNA (B, L) indices -> a list of (B, ceil(L / stride), d) outputs after the chosen blocks.

    Stem: Conv1d(n_inputs -> stem_dim, kernel 5) + LayerNorm + GELU, then a linear
    projection to d (METHOD.md: open whether the stem outputs d directly; here it projects),
    then (``stride`` > 1) the strided convolution :class:`Downsample`.
    """

    def __init__(self, *, n_inputs: int, stem_dim: int, dim: int, depth: int, kernel_size: int,
                 mlp_ratio: int, layer_scale: float = 0.0, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.register_buffer("one_hot", one_hot_table(n_inputs), persistent=False)
        self.stem = nn.Conv1d(n_inputs, stem_dim, 5, padding=2)
        self.stem_norm = nn.LayerNorm(stem_dim)
        self.proj = nn.Linear(stem_dim, dim)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim=dim, kernel_size=kernel_size, mlp_ratio=mlp_ratio, layer_scale=layer_scale)
            for _ in range(depth)
        )
        # created last: a stride-1 encoder has the parameters (names and random draws) it always had
        self.downsample = Downsample(dim=dim, stride=stride) if stride > 1 else None

    def forward(self, idx: torch.Tensor, levels: tuple) -> list[torch.Tensor]:
        x = F.embedding(idx.long(), self.one_hot)  # (B, L, n_inputs)
        if self.downsample is not None:
            x = pad_to_stride(x, self.stride)
        x = self.stem(x.transpose(1, 2)).transpose(1, 2)
        x = self.proj(F.gelu(self.stem_norm(x)))
        if self.downsample is not None:
            x = self.downsample(x)
        outs = []
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            if i in levels:
                outs.append(x)
        return outs


class Decoder(nn.Module):
    """Mirror of the encoder: blocks, then (``stride`` > 1) the transposed convolution
    :class:`Upsample`, then LayerNorm -> Linear(d, stem_dim) -> GELU -> Conv1d(k5) logits."""

    def __init__(self, *, n_outputs: int, stem_dim: int, dim: int, depth: int, kernel_size: int,
                 mlp_ratio: int, layer_scale: float = 0.0, stride: int = 1):
        super().__init__()
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim=dim, kernel_size=kernel_size, mlp_ratio=mlp_ratio, layer_scale=layer_scale)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, stem_dim)
        self.head = nn.Conv1d(stem_dim, n_outputs, 5, padding=2)
        self.upsample = Upsample(dim=dim, stride=stride) if stride > 1 else None  # last: see Encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, T * stride, n_outputs)
        for block in self.blocks:
            x = block(x)
        if self.upsample is not None:
            x = self.upsample(x)
        x = F.gelu(self.proj(self.norm(x)))
        return self.head(x.transpose(1, 2)).transpose(1, 2)


# ============================================================ inference (no autograd)
# The classes below run the *same* network for inference only: weights are packed once
# for oneDNN (CPU, float32), GELU and the residual add ride on the GEMMs as oneDNN
# post-ops, the depthwise convolution runs channels-last (no transposes), and the stem
# (one-hot -> conv k5 -> LayerNorm -> GELU -> linear) becomes a table lookup: its output
# depends only on the 5-mer around a position, so it is tabulated for all 6^5 5-mers
# (A, C, G, T, N/IUPAC, padding). Results equal the modules' up to float rounding.
# They hold detached copies of the weights: rebuild them after the weights change.


def onednn_available() -> bool:
    """True when this torch build has the oneDNN packed-linear ops the fast path uses."""
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and hasattr(torch.ops.mkldnn, "_linear_pointwise")
                    and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))
    except Exception:  # pragma: no cover - exotic builds
        return False


class PackedLinear:
    """``x @ W.T + b``, optionally followed by exact (erf) GELU or ``+ add``, with W packed once.

    With ``onednn`` the weight is reordered into oneDNN's blocked layout and the GELU /
    addition are fused post-ops of the GEMM; otherwise plain ``F.linear`` (any device).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, *, onednn: bool):
        self.weight = weight.detach()
        self.bias = None if bias is None else bias.detach()
        self.packed = torch.ops.mkldnn._reorder_linear_weight(self.weight, None) if onednn else None

    def __call__(self, x: torch.Tensor, *, gelu: bool = False, add: torch.Tensor | None = None) -> torch.Tensor:
        if self.packed is not None:
            if add is not None:
                return torch.ops.mkldnn._linear_pointwise.binary(x, add, self.packed, self.bias, "add")
            if gelu:
                return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "gelu", [], "none")
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        y = F.linear(x, self.weight, self.bias)
        if gelu:
            y = F.gelu(y)
        return add + y if add is not None else y


def conv1d_channels_last(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int,
                         groups: int = 1) -> torch.Tensor:
    """``Conv1d`` on (B, L, C_in) -> (B, L, C_out) without transposes: a 1 x k Conv2d on an NHWC view."""
    B, L, C = x.shape
    y = F.conv2d(x.reshape(B, 1, L, C).permute(0, 3, 1, 2), weight.unsqueeze(2), bias,
                 padding=(0, padding), groups=groups)
    return y.permute(0, 2, 3, 1).reshape(B, L, -1)


class InferenceBlock:
    """ConvNeXtBlock.forward for inference: channels-last depthwise conv, LayerNorm, then
    fc1+GELU and fc2+residual as two packed GEMMs (layer scale folded into fc2)."""

    def __init__(self, block: ConvNeXtBlock, *, onednn: bool):
        self.dim = block.norm.normalized_shape[0]
        self.dw_weight = block.dwconv.weight.detach()
        self.dw_bias = block.dwconv.bias.detach()
        self.pad = block.dwconv.padding[0]
        self.norm = (block.norm.weight.detach(), block.norm.bias.detach(), block.norm.eps)
        self.fc1 = PackedLinear(block.fc1.weight, block.fc1.bias, onednn=onednn)
        w2, b2 = block.fc2.weight.detach(), block.fc2.bias.detach()
        if block.gamma is not None:
            g = block.gamma.detach()
            w2, b2 = w2 * g[:, None], b2 * g
        self.fc2 = PackedLinear(w2, b2, onednn=onednn)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, d) -> (B, L, d)
        B, L, d = x.shape
        y = conv1d_channels_last(x, self.dw_weight, self.dw_bias, self.pad, groups=d).reshape(B * L, d)
        y = F.layer_norm(y, (d,), *self.norm)
        return self.fc2(self.fc1(y, gelu=True), add=x.reshape(B * L, d)).view(B, L, d)


def kmer_codes(idx: torch.Tensor, k: int, n_symbols: int) -> torch.Tensor:
    """(B, L) symbols in [0, n_symbols) -> (B, L) int64 codes of the k-mer centred on each
    position, in base n_symbols + 1; positions past either end read the padding symbol n_symbols."""
    base, half = n_symbols + 1, k // 2
    p = F.pad(idx.long(), (half, k - 1 - half), value=n_symbols)
    L = idx.shape[-1]
    code = p[..., 0:L].clone()
    for j in range(1, k):
        code.mul_(base).add_(p[..., j:j + L])
    return code


class InferenceEncoder:
    """Encoder.forward for inference: stem by 5-mer table lookup, then InferenceBlocks."""

    def __init__(self, encoder: Encoder, *, onednn: bool):
        stem = encoder.stem
        self.k = stem.kernel_size[0]
        self.n_symbols = encoder.one_hot.shape[0]  # input indices 0..4
        if stem.padding[0] != self.k // 2 or self.k % 2 == 0:
            raise ValueError("the stem table needs a centred, odd stem kernel")
        self.table = self._stem_table(encoder)
        self.stride = encoder.stride
        d = encoder.downsample
        self.downsample = None if d is None else PackedLinear(d.proj.weight, d.proj.bias, onednn=onednn)
        self.blocks = [InferenceBlock(b, onednn=onednn) for b in encoder.blocks]

    @torch.no_grad()
    def _stem_table(self, enc: Encoder) -> torch.Tensor:
        """Stem output (after the projection) of every k-mer: ((n_symbols + 1) ** k, dim)."""
        base = self.n_symbols + 1
        n = base ** self.k
        digits = torch.arange(n)[:, None] // base ** torch.arange(self.k - 1, -1, -1)[None] % base  # (n, k)
        one_hot = torch.cat([enc.one_hot, enc.one_hot.new_zeros(1, enc.one_hot.shape[1])])  # padding row = 0
        x = F.embedding(digits.to(one_hot.device), one_hot)  # (n, k, n_inputs)
        s = F.conv1d(x.transpose(1, 2), enc.stem.weight, enc.stem.bias).squeeze(2)  # (n, stem_dim)
        return enc.proj(F.gelu(enc.stem_norm(s))).detach().contiguous()

    def __call__(self, idx: torch.Tensor, levels: tuple) -> list[torch.Tensor]:
        if idx.numel():
            lo, hi = torch.aminmax(idx)
            if int(lo) < 0 or int(hi) >= self.n_symbols:
                raise IndexError(f"nucleotide indices must lie in 0..{self.n_symbols - 1}, got {int(lo)}..{int(hi)}")
        if self.downsample is not None and idx.shape[-1] % self.stride:  # the padding symbol: zero one-hot
            idx = F.pad(idx, (0, -idx.shape[-1] % self.stride), value=self.n_symbols)
        x = F.embedding(kmer_codes(idx, self.k, self.n_symbols), self.table)
        if self.downsample is not None:
            B, L, d = x.shape
            x = self.downsample(x.reshape(B * L // self.stride, self.stride * d)).view(B, L // self.stride, d)
        outs = []
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            if i in levels:
                outs.append(x)
        return outs


class InferenceDecoder:
    """Decoder.forward for inference (packed blocks, channels-last head convolution)."""

    def __init__(self, decoder: Decoder, *, onednn: bool):
        self.blocks = [InferenceBlock(b, onednn=onednn) for b in decoder.blocks]
        u = decoder.upsample
        self.stride = 1 if u is None else u.stride
        self.upsample = None if u is None else PackedLinear(u.proj.weight, u.proj.bias, onednn=onednn)
        n = decoder.norm
        self.norm = (n.normalized_shape, n.weight.detach(), n.bias.detach(), n.eps)
        self.proj = PackedLinear(decoder.proj.weight, decoder.proj.bias, onednn=onednn)
        self.head = (decoder.head.weight.detach(), decoder.head.bias.detach(), decoder.head.padding[0])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, T * stride, n_outputs)
        for block in self.blocks:
            x = block(x)
        if self.upsample is not None:
            B, T, d = x.shape
            x = self.upsample(x.reshape(B * T, d)).view(B, T * self.stride, d)
        B, L, d = x.shape
        y = self.proj(F.layer_norm(x.reshape(B * L, d), *self.norm), gelu=True).view(B, L, -1)
        return conv1d_channels_last(y, *self.head)
