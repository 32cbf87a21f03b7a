"""The one interface every genome tokenizer offers (learned or hand-crafted).

Stages 2 and 3 know a tokenizer only through this interface:

* ``encode(seqs)`` -> one ``int64`` array of shape ``(n_levels, n_tokens)`` per sequence.
  Learned tokenizers give one token per nucleotide and one row per HRQ level;
  hand-crafted ones have a single level.
* ``decode(codes)`` -> the DNA strings back (exactly for lossless tokenizers).
* ``vocab_sizes`` -> the number of token ids per level. Ids are ``0..vocab_size-1``;
  the language model appends its own special ids ([PAD], [MASK], [CLS]) after them.
* ``codebooks()`` -> a frozen embedding table per level ``(vocab_size, dim)`` that the
  language model reads as its input (VQDNA), or ``None`` when the LM must learn one.
* ``save_pretrained(dir)`` / ``from_pretrained(dir)``: a folder with ``config.json``
  (always holding ``"tokenizer_type"``) and, where there are weights, ``model.safetensors``.
  :func:`vqdna.tokenizers.load_tokenizer` opens any of them by reading that type.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np
import torch


class GenomeTokenizer(ABC):
    tokenizer_type: str = "base"

    @property
    @abstractmethod
    def vocab_sizes(self) -> list[int]:
        """Token ids per level."""

    @property
    def n_levels(self) -> int:
        return len(self.vocab_sizes)

    @abstractmethod
    def encode(self, seqs: Sequence[str]) -> list[np.ndarray]:
        """One ``(n_levels, n_tokens)`` int64 array per sequence."""

    @abstractmethod
    def decode(self, codes: Sequence[np.ndarray]) -> list[str]:
        """DNA strings from token arrays."""

    def codebooks(self) -> list[torch.Tensor] | None:
        """Frozen per-level embedding tables, or ``None`` (the LM learns its own)."""
        return None

    def nucleotides_per_token(self, seqs: Sequence[str]) -> float:
        """Mean nucleotides per token on ``seqs`` (a measure of compression)."""
        n_nt = sum(len(s) for s in seqs)
        n_tok = sum(c.shape[-1] for c in self.encode(seqs))
        return n_nt / max(n_tok, 1)

    @abstractmethod
    def save_pretrained(self, path: str | os.PathLike) -> None: ...

    @classmethod
    @abstractmethod
    def from_pretrained(cls, path: str | os.PathLike) -> "GenomeTokenizer": ...


# moved to vqdna.io (the ground floor); still importable from here
from ..io import read_json, write_json_atomic  # noqa: E402,F401
