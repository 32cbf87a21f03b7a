"""The VQDNA model that reads nucleotides: frozen tokenizer network + language model, one module.

``vqdna embed`` tokenizes with the tokenizer folder (stage 1) and runs the language model on the
codes (stage 2). :class:`VQDNANucleotideModel` holds both: the tokenizer's ConvNeXt encoder and
HRQ codebooks (frozen; the decoder is left out) in front of :class:`~.modeling_vqdna.VQDNAModel`.
Its input is what :class:`~.tokenization_vqdna.VQDNANucleotideTokenizer` gives: ``[CLS]`` then one
id per nucleotide (A C G T N = 0-4), ``[PAD]`` after; its ``last_hidden_state`` is
``(batch, 1 + codes, hidden)``: position 0 is [CLS], position ``1 + i`` the code of nucleotide
``i`` (of nucleotides ``i*s .. i*s+s-1`` for a stride-``s`` tokenizer). For a sequence of at
most ``config.max_tokens`` codes this equals ``vqdna embed --per-nucleotide`` (which cuts longer
sequences into chunks; here they are refused) up to float rounding, and up to a code that a
near-tie between two code vectors rounds the other way.

Each sequence of a batch is encoded alone at its own length, so padding never reaches the
convolutions: the codes of a sequence are the same in any batch.

This file belongs to the model package (torch, transformers and its sibling files only):
``vqdna export-hf`` copies it as it is.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

from .configuration_vqdna import CLS, NUCLEOTIDE_CLS, NUCLEOTIDE_PAD, PAD, VQDNANucleotideConfig
from .convnext import Encoder
from .hrq import HierarchicalResidualQuantizer
from .modeling_vqdna import VQDNAModel, VQDNAPreTrainedModel


@dataclass
class VQDNANucleotideOutput(ModelOutput):
    """``last_hidden_state`` (B, 1 + T, H); ``codes`` (B, n_levels, 1 + T): the language model's
    input ids (per level: codes, then [CLS] / [PAD] after the level's vocabulary)."""

    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple | None = None
    codes: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None


class VQDNANucleotideModel(VQDNAPreTrainedModel):
    config_class = VQDNANucleotideConfig
    config: VQDNANucleotideConfig

    def __init__(self, config: VQDNANucleotideConfig):
        super().__init__(config)
        enc = dict(config.tokenizer_encoder)
        self.levels, residual = tuple(enc.pop("levels")), enc.pop("residual")
        self.tokenizer_encoder = Encoder(**enc)
        self.quantizer = HierarchicalResidualQuantizer(codebook_sizes=tuple(config.vocab_sizes),
                                                       dim=config.codebook_dim, residual=residual)
        self.vqdna = VQDNAModel(config)
        for p in (*self.tokenizer_encoder.parameters(), *self.quantizer.parameters()):
            p.requires_grad_(False)  # the vocabulary is frozen (stage 1); fine-tune the LM
        self.post_init()

    @torch.no_grad()
    def nucleotide_codes(self, nucleotides: torch.Tensor) -> torch.Tensor:
        """(L,) nucleotide ids 0-4 -> (n_levels, ceil(L / stride)) codes, as the tokenizer gives."""
        zs = self.tokenizer_encoder(nucleotides[None], self.levels)
        return self.quantizer.codes(zs)[:, 0]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, **kwargs) -> VQDNANucleotideOutput:
        cfg = self.config
        if input_ids.dim() == 1:
            input_ids = input_ids[None]
        if attention_mask is None:
            attention_mask = (input_ids != NUCLEOTIDE_PAD).long()
        if bool((input_ids[:, 0] != NUCLEOTIDE_CLS).any()):
            raise ValueError("input_ids must start with [CLS] (id 5): use the model's tokenizer")
        lengths = attention_mask.sum(1).tolist()
        codes = []
        for b, n in enumerate(lengths):
            nuc = input_ids[b, 1:int(n)]
            if bool((nuc > 4).any()) or bool((nuc < 0).any()):
                raise ValueError(f"row {b}: a special id inside the sequence (nucleotides are ids 0-4)")
            codes.append(self.nucleotide_codes(nuc))
        T = max(c.shape[1] for c in codes)
        if T > cfg.max_tokens:
            raise ValueError(f"{T} codes exceed the {cfg.max_tokens} this model reads per forward pass; cut the "
                             f"sequence (the tokenizer's truncation=True) or embed it with `vqdna embed`, "
                             f"which runs it in chunks")
        dev = input_ids.device
        pad = torch.tensor([v + PAD for v in cfg.vocab_sizes], device=dev)
        ids = pad[None, :, None].repeat(len(codes), 1, 1 + T)
        mask = torch.zeros(len(codes), 1 + T, dtype=torch.long, device=dev)
        ids[:, :, 0] = torch.tensor([v + CLS for v in cfg.vocab_sizes], device=dev)
        for b, c in enumerate(codes):
            ids[b, :, 1:1 + c.shape[1]] = c
            mask[b, :1 + c.shape[1]] = 1
        out = self.vqdna(ids, mask, output_hidden_states=output_hidden_states)
        return VQDNANucleotideOutput(last_hidden_state=out.last_hidden_state, hidden_states=out.hidden_states,
                                     codes=ids, attention_mask=mask)
