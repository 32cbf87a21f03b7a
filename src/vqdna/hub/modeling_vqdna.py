"""The VQDNA language model as Hugging Face classes (paper Sec. 3.3, METHOD.md stage 2-3).

A BERT encoder (:class:`transformers.BertModel`, SDPA attention) reads **one token per
nucleotide** and one code id per HRQ level:

* ``input_ids``: ``(batch, n_levels, length)`` int64; a ``(batch, length)`` tensor is accepted
  for single-level tokenizers. Per level ``l`` the ids ``0..V_l-1`` are the tokenizer's codes
  and the language model appends three special ids: ``[PAD] = V_l``, ``[MASK] = V_l + 1``,
  ``[CLS] = V_l + 2``. Special tokens are joint across levels (all levels of a position carry
  the same special token); level 0 decides whether a position is special.
* ``attention_mask``: ``(batch, length)``, 1 = token, 0 = padding (default: derived from [PAD]).

Input embedding (``config.input_mode``):

* ``"codebook"`` (VQDNA, the default): the tokenizer's frozen codebooks are stored in the
  model as buffers (saved with it, never trained); a position's vector is the mean of its
  level code vectors (Eq. 7; the sum for plain residual quantization), projected by a
  trainable ``Linear(codebook_dim -> hidden)``. The special tokens have learned
  hidden-size vectors.
* ``"learned"``: one trainable table of ``V_l + 3`` rows per level, summed over levels
  (METHOD.md's alternative; hand-crafted tokenizers, whose ``codebooks()`` is None, use it).

Positions (``config.position_embedding``; issue 12, inputs beyond 512 tokens):

* ``"absolute"`` (the default, the paper's BERT): a learned table of ``max_position_embeddings``
  rows added to the input; it cannot run beyond the length it has rows for.
* ``"rotary"`` (RoPE, Su et al. 2021): no table; every layer rotates its queries and keys by
  their position (:class:`LongContextSelfAttention`), so attention sees relative offsets and a
  model trained on short windows runs on longer ones.
* ``"alibi"`` (Press et al. 2022, symmetric as in MosaicBERT): no table; a per-head bias
  ``-slope_h * |i - j|`` added to the attention scores, computed in blocks of queries so the
  ``length x length`` bias never exists whole (:func:`blocked_attention`).

Every kind runs ``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient
kernels on GPU, the flash kernel on CPU); with rotary and ALiBi the padding mask goes to it as
``(batch, 1, 1, length)``, never as BERT's ``(batch, 1, length, length)``, so memory grows with
the length, not its square (attention dropout on CPU, which SDPA's CPU flash kernel lacks, also
runs in blocks of queries). ``max_position_embeddings - 1`` is the most tokens a forward pass
takes (the chunk length of :mod:`.inference`) for every kind. Gradient checkpointing is
transformers' (``model.activation_checkpointing_enable()``: each BERT layer is recomputed in the
backward pass).

Heads:

* :class:`VQDNAForMaskedLM`: one MLM head per level (a dense+GELU+LayerNorm transform, shared
  by default, then a decoder to the ``V_l`` codes); the loss is the mean over levels of the
  cross-entropy on the masked positions only. Logits are computed only at labelled positions
  during training, which is what makes the MLM step cheaper than BERT's full-vocabulary head.
* :class:`VQDNAForSequenceClassification`: RoBERTa-style head (dropout, dense, tanh, dropout,
  out_proj) on the **mean-pooled** final hidden states (pads and [CLS] excluded; the default,
  ``config.pooling="mean"``) or on the [CLS] state (``pooling="cls"``). Mean pooling is the
  default because MLM pre-training never trains the [CLS] state (no sentence objective),
  while every token state is trained; DNABERT-2 and Caduceus pool the same way.
  ``num_labels == 1`` is regression (MSE on labels standardised with
  ``config.regression_mean/std``; ``logits`` come back in label units).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import BertModel, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput
from transformers.models.bert.modeling_bert import BertEmbeddings, BertSelfAttention
from transformers.models.llama.modeling_llama import rotate_half
from transformers.utils import ModelOutput

from .configuration_vqdna import CLS, MASK, N_SPECIAL, PAD, POOLINGS, POSITION_EMBEDDINGS, VQDNAConfig  # noqa: F401
from .convnext import Encoder, one_hot_table


# ---------------------------------------------------------------- building blocks


class VQDNAEmbeddings(nn.Module):
    """Per-position input vectors (hidden size) from the code ids of every level."""

    def __init__(self, config: VQDNAConfig):
        super().__init__()
        self.config = config
        self.mode = config.input_mode
        self.vocab_sizes = list(config.vocab_sizes)
        H = config.hidden_size
        if self.mode == "codebook":
            D = config.codebook_dim
            # frozen tables with 3 zero rows for the special ids (their vectors come from `special`)
            for level, v in enumerate(self.vocab_sizes):
                self.register_buffer(f"codebook{level}", torch.zeros(v + N_SPECIAL, D), persistent=True)
            self.proj = nn.Linear(D, H)
            self.special = nn.Embedding(N_SPECIAL, H)
            self.scale = 1.0 / len(self.vocab_sizes) if config.codebook_combine == "mean" else 1.0
        elif self.mode == "encoder":
            enc = dict(config.tokenizer_encoder)
            self.levels, self.residual = tuple(enc.pop("levels")), enc.pop("residual")
            self.tok_encoder = Encoder(**enc)
            self.proj = nn.Linear(config.codebook_dim, H)
            self.special = nn.Embedding(N_SPECIAL, H)
        else:
            self.tables = nn.ModuleList(nn.Embedding(v + N_SPECIAL, H) for v in self.vocab_sizes)

    def codebooks(self) -> list[torch.Tensor]:
        return [getattr(self, f"codebook{level}") for level in range(len(self.vocab_sizes))]

    @torch.no_grad()
    def set_codebooks(self, tables) -> None:
        """Copy the tokenizer's per-level codebooks ``(V_l, D)`` into the frozen buffers."""
        if self.mode != "codebook":
            raise ValueError("set_codebooks: the model uses learned embeddings (input_mode='learned')")
        for level, (buf, t) in enumerate(zip(self.codebooks(), tables)):
            t = torch.as_tensor(t, dtype=buf.dtype)
            if t.shape != (self.vocab_sizes[level], buf.shape[1]):
                raise ValueError(f"codebook of level {level}: shape {tuple(t.shape)}, model expects "
                                 f"{(self.vocab_sizes[level], buf.shape[1])}")
            buf[: self.vocab_sizes[level]].copy_(t)
            buf[self.vocab_sizes[level]:].zero_()

    def encoder_features(self, nucleotides: torch.Tensor) -> torch.Tensor:
        """(B, L) nucleotide indices (0-3 ACGT, 4 N/IUPAC) -> (B, L, codebook_dim): the tokenizer
        encoder's output combined over HRQ levels as the quantizer combines its levels (Eq. 7),
        without the rounding to code vectors (each level's residual is taken against the
        previous level's unquantized input). With a tokenizer that reconstructs well this is
        within quantization error of the codebook embedding the LM was pre-trained on."""
        zs = self.tok_encoder(nucleotides, self.levels)
        hs, prev, total = [], None, None
        for level, z in enumerate(zs):
            if level == 0 or self.residual == "chained":
                h = z
            elif self.residual == "doubled":
                h = 2 * z - prev
            else:  # plain residual quantization
                h = z - total
            hs.append(h)
            prev, total = h, (h if total is None else total + h)
        return total if self.residual == "plain" else total / len(hs)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids (B, n_levels, L) -> (B, L, hidden)."""
        if self.mode == "encoder":
            ids = input_ids[:, 0]
            special = ids >= 5
            h = self.proj(self.encoder_features(ids.masked_fill(special, 4)))  # specials read as N (zero one-hot)
            sid = (ids - 5).clamp(0, N_SPECIAL - 1)
            return torch.where(special.unsqueeze(-1), self.special(sid).to(h.dtype), h)
        if self.mode == "learned":
            out = self.tables[0](input_ids[:, 0])
            for level in range(1, len(self.tables)):
                out = out + self.tables[level](input_ids[:, level])
            return out
        tables = self.codebooks()
        W, b = self.proj.weight, self.proj.bias
        V0 = self.vocab_sizes[0]
        if input_ids.shape[0] * input_ids.shape[2] >= sum(t.shape[0] for t in tables):
            # many tokens: project the (small) tables once, then gather hidden-size rows. Exact:
            # proj(scale * sum_l t_l[i_l]) = scale * sum_l (t_l W^T)[i_l] + b, and level 0's
            # special rows are set so that a special position comes out as its learned vector
            # (the other levels' special rows are zero).
            p0 = torch.cat([tables[0][:V0].to(W.dtype) @ W.t(), (self.special.weight - b) / self.scale])
            e = F.embedding(input_ids[:, 0], p0)
            for level in range(1, len(tables)):
                e = e + F.embedding(input_ids[:, level], tables[level].to(W.dtype) @ W.t())
            return (e * self.scale if self.scale != 1.0 else e) + b
        e = F.embedding(input_ids[:, 0], tables[0])
        for level in range(1, len(tables)):
            e = e + F.embedding(input_ids[:, level], tables[level])
        h = self.proj(e * self.scale if self.scale != 1.0 else e)
        special = input_ids[:, 0] >= V0
        sid = (input_ids[:, 0] - V0).clamp(0, N_SPECIAL - 1)
        h = torch.where(special.unsqueeze(-1), self.special(sid).to(h.dtype), h)
        return h


# ---------------------------------------------------------------- positions for long inputs (issue 12)

# attention scores built for a block of queries at a time hold at most this many values (64 MB in fp32)
ATTENTION_BLOCK_ELEMENTS = 1 << 24


def rotary_cos_sin(length: int, head_dim: int, theta: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE's ``(1, length, head_dim)`` cosines and sines of positions ``0..length-1`` (RoFormer,
    in the half-split layout of transformers' ``rotate_half``), in float32 whatever the model dtype:
    a position times a frequency reaches 32,768 and bf16 would round it."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * inv_freq
    emb = torch.cat([angles, angles], dim=-1)[None]
    return emb.cos(), emb.sin()


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes (Press et al. 2022): the geometric series 2^(-8/n), 2^(-16/n), ... for
    a power of two n; otherwise those of the power of two below, then every other one of the next."""
    def series(n):
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    p = 2 ** math.floor(math.log2(n_heads))
    slopes = series(p) if p == n_heads else series(p) + series(2 * p)[0::2][: n_heads - p]
    return torch.tensor(slopes, dtype=torch.float32)


def blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor | None, *,
                      slopes: torch.Tensor | None = None, dropout_p: float = 0.0) -> torch.Tensor:
    """SDPA over blocks of queries, for what makes SDPA build the ``L x L`` scores whole: ALiBi's bias
    ``-slope_h * |i - j|`` (``slopes``; symmetric, bidirectional as in MosaicBERT), a float mask
    built here a block at a time, and attention dropout on CPU, whose flash kernel has none (the
    math kernel it falls back to keeps the B x H x L x L scores for the backward pass, several
    copies of 8.6 GB at 32k tokens and 2 heads).

    ``keep``: (B, 1, 1, L) bool padding mask (True = attend) or None. A block holds at most
    :data:`ATTENTION_BLOCK_ELEMENTS` scores; when gradients are needed each block runs under
    ``torch.utils.checkpoint`` (its dropout replayed from the saved RNG state), so the backward pass
    rebuilds one block's scores at a time: memory grows with the length, not its square."""
    B, H, L, _ = q.shape
    block = max(16, ATTENTION_BLOCK_ELEMENTS // (B * H * L))
    keys = torch.arange(L, device=q.device)

    def attend(q_block: torch.Tensor, start: int) -> torch.Tensor:
        mask = keep
        if slopes is not None:
            queries = torch.arange(start, start + q_block.shape[2], device=q.device)
            dist = (queries[:, None] - keys[None, :]).abs()
            mask = (-slopes.to(q.device)[:, None, None] * dist).to(q.dtype)  # (H, Lq, L), made in fp32
            if keep is not None:
                mask = mask.masked_fill(~keep, float("-inf"))  # (B, H, Lq, L)
        return F.scaled_dot_product_attention(q_block, k, v, attn_mask=mask, dropout_p=dropout_p)

    if block >= L:
        return attend(q, 0)
    recompute = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    outs = []
    for start in range(0, L, block):
        q_block = q[:, :, start:start + block]
        if recompute:
            outs.append(torch.utils.checkpoint.checkpoint(attend, q_block, start, use_reentrant=False))
        else:
            outs.append(attend(q_block, start))
    return torch.cat(outs, dim=2)


class PositionFreeEmbeddings(nn.Module):
    """BERT's embedding layer without its position table, for rotary / ALiBi positions (which live in
    attention). Same parameter names as :class:`~transformers.models.bert.modeling_bert.BertEmbeddings`
    otherwise: ``word_embeddings`` (one row, never read: we pass inputs_embeds), the one-row
    ``token_type_embeddings``, ``LayerNorm``, ``dropout``."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                cache_length: int = 0) -> torch.Tensor:
        return self.dropout(self.LayerNorm(inputs_embeds + self.token_type_embeddings.weight[0]))


class LongContextSelfAttention(BertSelfAttention):
    """BERT's self-attention (same ``query`` / ``key`` / ``value`` weights, so LoRA targets and weight
    names stay) with rotary or ALiBi positions, always through torch SDPA. ``attention_mask``:
    None or (B, 1, 1, L) bool (True = attend), as :class:`VQDNAModel` passes it."""

    def __init__(self, config: BertConfig, *, position_embedding: str, rope_theta: float = 10000.0,
                 layer_idx: int | None = None):
        super().__init__(config, layer_idx=layer_idx)
        if position_embedding not in ("rotary", "alibi"):
            raise ValueError(f"LongContextSelfAttention: position_embedding must be rotary or alibi, "
                             f"not {position_embedding!r}")
        self.position_embedding = position_embedding
        self.rope_theta = rope_theta

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        B, L = hidden_states.shape[:2]
        shape = (B, L, -1, self.attention_head_size)
        q = self.query(hidden_states).view(shape).transpose(1, 2)
        k = self.key(hidden_states).view(shape).transpose(1, 2)
        v = self.value(hidden_states).view(shape).transpose(1, 2)
        p = self.dropout.p if self.training else 0.0
        slopes = None
        if self.position_embedding == "rotary":
            cos, sin = rotary_cos_sin(L, self.attention_head_size, self.rope_theta, q.device)
            cos, sin = cos[:, None].to(q.dtype), sin[:, None].to(q.dtype)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        else:
            slopes = alibi_slopes(self.num_attention_heads)
        if slopes is None and (p == 0.0 or q.device.type == "cuda"):  # SDPA's own kernels, dropout included
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask, dropout_p=p)
        else:
            out = blocked_attention(q, k, v, attention_mask, slopes=slopes, dropout_p=p)
        return out.transpose(1, 2).reshape(B, L, self.all_head_size), None


class VQDNAPreTrainedModel(PreTrainedModel):
    config_class = VQDNAConfig
    config: VQDNAConfig
    base_model_prefix = "vqdna"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["BertLayer"]

    def _init_weights(self, module):
        """PreTrainedModel's normal init (std = initializer_range), plus BERT's position-id buffers;
        the frozen codebook buffers are never touched (they are loaded or copied in)."""
        if isinstance(module, VQDNAEmbeddings):
            return
        if isinstance(module, Encoder):  # the tokenizer network's constant one-hot table (not saved)
            with torch.no_grad():
                module.one_hot.copy_(one_hot_table(module.one_hot.shape[1]).to(module.one_hot.device))
            return
        if isinstance(module, nn.BatchNorm1d):
            module.reset_running_stats()
        super()._init_weights(module)
        if isinstance(module, BertEmbeddings):
            with torch.no_grad():
                n = module.position_ids.shape[-1]
                module.position_ids.copy_(torch.arange(n, device=module.position_ids.device).expand((1, -1)))
                module.token_type_ids.zero_()

    # helpers shared by the heads --------------------------------------------------
    def _ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        if input_ids.dim() == 2:
            if self.config.n_levels != 1:
                raise ValueError(f"input_ids of shape {tuple(input_ids.shape)}: this model has "
                                 f"{self.config.n_levels} levels; pass (batch, n_levels, length)")
            input_ids = input_ids.unsqueeze(1)
        if input_ids.dim() != 3 or input_ids.shape[1] != self.config.n_levels:
            raise ValueError(f"input_ids must be (batch, {self.config.n_levels}, length), got {tuple(input_ids.shape)}")
        if input_ids.shape[-1] > self.config.max_position_embeddings:
            raise ValueError(f"{input_ids.shape[-1]} tokens exceed max_position_embeddings "
                             f"{self.config.max_position_embeddings}; cut long sequences into chunks")
        return input_ids


class VQDNAModel(VQDNAPreTrainedModel):
    """Embeddings + BERT encoder body; returns the final hidden states."""

    def __init__(self, config: VQDNAConfig):
        super().__init__(config)
        self.embeddings = VQDNAEmbeddings(config)
        self.encoder = BertModel(config.bert_config(), add_pooling_layer=False)
        if config.position_embedding != "absolute":  # positions inside attention: no table
            bert = self.encoder.config
            self.encoder.embeddings = PositionFreeEmbeddings(bert)
            for i, layer in enumerate(self.encoder.encoder.layer):
                layer.attention.self = LongContextSelfAttention(bert, position_embedding=config.position_embedding,
                                                                rope_theta=config.rope_theta, layer_idx=i)
        # BERT's own token table is never read (we pass inputs_embeds): freeze its single row
        self.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings

    def set_input_embeddings(self, value):
        self.embeddings = value

    def token_embedding_table(self, level: int = 0) -> torch.Tensor:
        """The learned input vector of every code of ``level``, ``(V_l, hidden)`` (special ids left
        out; ``input_mode="learned"`` only): what a probe reads as frozen token features."""
        if self.config.input_mode != "learned":
            raise ValueError(f"token_embedding_table: input_mode is {self.config.input_mode!r}; only "
                             "'learned' has a token table (codebook models read the tokenizer's codebooks)")
        return self.embeddings.tables[level].weight.detach()[: self.config.vocab_sizes[level]]

    def parameter_counts(self) -> dict[str, int]:
        """``"total"``: the parameters the model reads (BERT's own token table, never read, left out);
        ``"nonembedding"``: those that are not table look-ups (the code tables, special vectors,
        position and token-type embeddings are), which is what the forward FLOPs count;
        ``"frozen_codebook_values"``: the values of the frozen codebook buffers."""
        total = nonemb = 0
        for name, p in self.named_parameters():
            if name.startswith("encoder.embeddings.word_embeddings"):
                continue  # BERT's own token table: never read (inputs_embeds)
            total += p.numel()
            lookup = name.startswith(("embeddings.tables", "embeddings.special", "encoder.embeddings.position_embeddings",
                                      "encoder.embeddings.token_type_embeddings"))
            if not lookup:
                nonemb += p.numel()
        books = sum(b.numel() for n, b in self.named_buffers() if n.startswith("embeddings.codebook"))
        return {"total": total, "nonembedding": nonemb, "frozen_codebook_values": books}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, **kwargs) -> BaseModelOutput:
        input_ids = self._ids(input_ids)
        if attention_mask is None:
            attention_mask = (input_ids[:, 0] != self.config.vocab_sizes[0] + PAD).long()
        # all-ones mask -> None, so SDPA runs its unmasked fast path
        mask = None if bool(attention_mask.all()) else attention_mask
        if mask is not None and self.config.position_embedding != "absolute":
            # a 4D mask goes to attention as it is: (B, 1, 1, L), not the (B, 1, L, L) BERT would build
            mask = mask.bool()[:, None, None, :]
        out = self.encoder(inputs_embeds=self.embeddings(input_ids), attention_mask=mask,
                           output_hidden_states=output_hidden_states)
        return BaseModelOutput(last_hidden_state=out.last_hidden_state, hidden_states=out.hidden_states)

    def pool(self, hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
             *, return_sum: bool = False):
        """Sequence vectors (B, pooled_size): the mean over real tokens ([CLS] and pads excluded),
        the [CLS] state, or (``meanmax``) the mean and the per-feature max over real tokens, concatenated.

        With ``return_sum`` return ``(sum, count)`` (``meanmax``: ``(sum, count, max)``) so that
        chunks of one long sequence can be combined: sums and counts add, maxima take the max.
        """
        input_ids = self._ids(input_ids)
        if self.config.pooling == "cls":
            if return_sum:
                return hidden[:, 0], torch.ones(hidden.shape[0], 1, dtype=hidden.dtype, device=hidden.device)
            return hidden[:, 0]
        keep = input_ids[:, 0] < self.config.vocab_sizes[0] + CLS  # codes and [MASK]; not [PAD] / [CLS]
        keep = keep & (input_ids[:, 0] != self.config.vocab_sizes[0] + PAD)
        if attention_mask is not None:
            keep = keep & attention_mask.bool()
        w = keep.unsqueeze(-1).to(hidden.dtype)
        total, count = (hidden * w).sum(1), w.sum(1)
        mx = None
        if self.config.pooling == "meanmax":
            mx = hidden.masked_fill(~keep.unsqueeze(-1), float("-inf")).amax(1)
            mx = torch.where(count > 0, mx, torch.zeros_like(mx))  # a chunk with no real token
        if return_sum:
            return (total, count) if mx is None else (total, count, mx)
        mean = total / count.clamp(min=1)
        return mean if mx is None else torch.cat([mean, mx], dim=-1)


# ---------------------------------------------------------------- masked LM


@dataclass
class VQDNAMaskedLMOutput(ModelOutput):
    """``loss``: mean over levels of the masked cross-entropy; ``level_losses`` (n_levels,);
    ``logits``: per level (B, L, V_l), only when no labels are given; ``masked_logits``: per
    level (N, V_l) at the labelled positions (row order of ``labels[:, l][labels[:, l] != -100]``
    is that of ``(labels != -100).any(1)``, i.e. the union of the levels' labelled positions)."""

    loss: torch.Tensor | None = None
    level_losses: torch.Tensor | None = None
    logits: tuple | None = None
    masked_logits: tuple | None = None
    hidden_states: torch.Tensor | None = None


class MLMTransform(nn.Module):
    """BERT's prediction-head transform: dense -> GELU -> LayerNorm."""

    def __init__(self, config: VQDNAConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x):
        return self.LayerNorm(F.gelu(self.dense(x)))


class VQDNAForMaskedLM(VQDNAPreTrainedModel):
    def __init__(self, config: VQDNAConfig):
        super().__init__(config)
        self.vqdna = VQDNAModel(config)
        n_tr = 1 if config.mlm_shared_transform else config.n_levels
        self.transforms = nn.ModuleList(MLMTransform(config) for _ in range(n_tr))
        self.decoders = nn.ModuleList(nn.Linear(config.hidden_size, v) for v in config.vocab_sizes)
        self.post_init()

    def _heads(self, h: torch.Tensor) -> list[torch.Tensor]:
        if len(self.transforms) == 1:
            t = self.transforms[0](h)
            return [dec(t) for dec in self.decoders]
        return [dec(tr(h)) for tr, dec in zip(self.transforms, self.decoders)]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                **kwargs) -> VQDNAMaskedLMOutput:
        input_ids = self._ids(input_ids)
        hidden = self.vqdna(input_ids, attention_mask, output_hidden_states=output_hidden_states)
        h = hidden.last_hidden_state
        if labels is None:
            return VQDNAMaskedLMOutput(logits=tuple(self._heads(h)), hidden_states=hidden.hidden_states)
        labels = self._ids(labels)
        sel = (labels != -100).any(1)  # (B, L): positions with a target on any level
        logits = self._heads(h[sel])
        losses = []
        for level, lg in enumerate(logits):
            lab = labels[:, level][sel]
            if bool((lab != -100).any()):
                losses.append(F.cross_entropy(lg.float(), lab, ignore_index=-100))
            else:  # nothing masked: a zero that keeps the graph (and DDP) connected
                losses.append(lg.sum() * 0.0)
        level_losses = torch.stack(losses)
        return VQDNAMaskedLMOutput(loss=level_losses.mean(), level_losses=level_losses, masked_logits=tuple(logits),
                                   hidden_states=hidden.hidden_states)


# ---------------------------------------------------------------- sequence classification / regression


#: a training batch of fewer rows normalises the pooled vector with running statistics (ClassificationHead)
SMALL_BATCH = 8


class ClassificationHead(nn.Module):
    """RoBERTa's head (dropout -> dense -> tanh -> dropout -> out_proj) on the pooled vector,
    after a batch normalisation without affine weights (``config.classifier_norm``, on by default).

    Why the normalisation: a mean over hundreds of LayerNorm-ed token states is dominated by one
    shared component; what tells sequences apart is a small spread around it (per-feature std
    across sequences 0.0003-0.6 against a shared value of ~0.7, the less the weaker the LM). The
    usual 0.02-init head then sees nearly the same input for every sequence and learns slowly
    (tf/0, 1000 rows: MCC 0.08 without, 0.19 with a standardisation, 4 epochs); scikit-learn probes
    work on the same features only because they standardise first. A *fixed* standardisation
    taken at the start is unstable when the spread is tiny: LoRA moves all sequences together
    by more than their spread and the amplified shift saturates the head (the demo's 300-step LM
    collapsed to one class). Batch statistics follow that drift; running statistics are used in
    evaluation and saved with the model.

    Small batches (fewer than :data:`SMALL_BATCH` rows: long inputs, e.g. whole genomes two at a
    time) make a batch's own statistics noise: with two rows every feature becomes +-1, the sign of
    the row's difference from its batch partner, and evaluation (running statistics) sees other
    inputs than training did (bpe LM, SARS-CoV-2 8-kb windows: 9.2% test accuracy at batch 2 against
    14.6% at batch 8). A small training batch therefore updates the running statistics and is
    normalised *with them* (they still follow the drift, over ~10 steps); :meth:`calibrate` starts
    them from the pooled vectors of some training rows (``vqdna finetune`` does), else the first
    small batch does, not BatchNorm's mean 0 / variance 1.
    """

    def __init__(self, config: VQDNAConfig):
        super().__init__()
        p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.norm = nn.BatchNorm1d(config.pooled_size, affine=False) if config.classifier_norm else None
        self.dropout = nn.Dropout(p)
        self.dense = nn.Linear(config.pooled_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)
        # whether the running statistics hold data (calibrated, trained or loaded): read from
        # num_batches_tracked once per head, not every step (a device-to-host sync on a GPU)
        self._calibrated = False

    def forward(self, x):
        if self.norm is not None:
            if self.training and x.shape[0] < SMALL_BATCH:
                if x.shape[0] > 1:  # update the running statistics only (one row has no variance)
                    with torch.no_grad():
                        self._calibrated = self._calibrated or bool(self.norm.num_batches_tracked)
                        if not self._calibrated:  # never calibrated: start from this batch
                            self.calibrate(x.detach())
                        else:
                            F.batch_norm(x.detach(), self.norm.running_mean, self.norm.running_var, training=True,
                                         momentum=self.norm.momentum, eps=self.norm.eps)
                            self.norm.num_batches_tracked += 1
                x = F.batch_norm(x, self.norm.running_mean, self.norm.running_var, eps=self.norm.eps)
            else:
                x = self.norm(x)
        x = torch.tanh(self.dense(self.dropout(x)))
        return self.out_proj(self.dropout(x))

    @torch.no_grad()
    def calibrate(self, pooled: torch.Tensor) -> None:
        """Set the running statistics to those of ``pooled`` (rows x pooled_size), e.g. the pooled
        vectors of some training rows before the first small-batch step."""
        if self.norm is None or pooled.shape[0] < 2:
            return
        pooled = pooled.to(self.norm.running_mean)
        self.norm.running_mean.copy_(pooled.mean(0))
        self.norm.running_var.copy_(pooled.var(0))
        self.norm.num_batches_tracked.fill_(1)
        self._calibrated = True


class VQDNAForSequenceClassification(VQDNAPreTrainedModel):
    def __init__(self, config: VQDNAConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.vqdna = VQDNAModel(config)
        self.classifier = ClassificationHead(config)
        self.post_init()

    @property
    def is_regression(self) -> bool:
        return self.config.num_labels == 1

    def pooled(self, input_ids, attention_mask=None, *, return_sum: bool = False):
        """Pooled final hidden states of a batch (see :meth:`VQDNAModel.pool`)."""
        input_ids = self._ids(input_ids)
        h = self.vqdna(input_ids, attention_mask).last_hidden_state
        return self.vqdna.pool(h, input_ids, attention_mask, return_sum=return_sum)

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits (classification) or predictions in label units (regression) from pooled vectors."""
        out = self.classifier(pooled)
        if self.is_regression:
            out = out * self.config.regression_std + self.config.regression_mean
        return out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **kwargs) -> SequenceClassifierOutput:
        logits = self.head(self.pooled(input_ids, attention_mask))
        return SequenceClassifierOutput(loss=None if labels is None else self.loss(logits, labels), logits=logits)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy, or for regression the MSE in standardised label units."""
        if self.is_regression:
            m, s = self.config.regression_mean, self.config.regression_std
            return F.mse_loss((logits.squeeze(-1).float() - m) / s, (labels.float() - m) / s)
        return F.cross_entropy(logits.float(), labels.long())


def register_auto_classes() -> None:
    """Make ``AutoConfig`` / ``AutoModelForMaskedLM`` / ``AutoModelForSequenceClassification`` know "vqdna"."""
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

    try:
        AutoConfig.register("vqdna", VQDNAConfig)
        AutoModel.register(VQDNAConfig, VQDNAModel)
        AutoModelForMaskedLM.register(VQDNAConfig, VQDNAForMaskedLM)
        AutoModelForSequenceClassification.register(VQDNAConfig, VQDNAForSequenceClassification)
    except ValueError:  # already registered
        pass
