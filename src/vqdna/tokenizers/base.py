"""The one interface every genome tokenizer offers (learned or hand-crafted).

Stages 2 and 3 know a tokenizer only through this interface:

* ``encode(seqs)`` -> one ``int64`` array of shape ``(n_levels, n_tokens)`` per sequence.
  Learned tokenizers give one token per nucleotide (per ``stride`` nucleotides, ``ceil(n / stride)``
  tokens, for a strided VQ/HRQ tokenizer) and one row per HRQ level;
  hand-crafted ones have a single level.
  ``encode`` returns an :class:`Encoded` list: it also carries, per sequence, the runs of
  non-ACGT letters (``N`` and IUPAC codes, ``[start, length, letter]``, as the code store's
  manifest keeps them), so that ``decode(encode(seqs))`` gives those letters back.
* ``decode(codes, non_acgt=None)`` -> the DNA strings back (exactly for lossless tokenizers).
  The non-ACGT runs come from ``non_acgt`` (one run list per sequence) or, when ``codes``
  is what ``encode`` returned, from ``codes.non_acgt``; they are written over the decoded
  letters, so a round trip never turns ``N`` into a base. Without runs (plain arrays, e.g.
  ``decode([codes[0]])``) decoding gives what the codes say: learned tokenizers a base at
  every position, hand-crafted ones ``N``. A strided tokenizer pads a sequence whose length is
  not a multiple of its stride and cuts the padding off on decode: ``encode`` also returns the
  lengths (``codes.nucleotides``), ``decode(codes, lengths=...)`` takes them for plain arrays.
* ``encode_chunks(idx, chunk_length)`` -> the codes of one long sequence in pieces whose
  concatenation equals ``encode`` of the whole sequence (what :func:`vqdna.codes.write_codes`
  stores), with bounded memory.
* ``encode_indices(idx)`` -> ``encode`` of uint8 index arrays (A=0 C=1 G=2 T=3 N=4, what
  :func:`vqdna.sequence.alphabet.encode` and the code store read) as a plain list of code arrays.
* ``encode_packed(idx, lengths)`` -> ``encode_indices`` of sequences packed back to back, packed
  back to back (codes and tokens per sequence): the code store's batches.
* ``batch_invariant`` -> whether a sequence's codes are the same in a batch as alone (then short
  records are encoded in batches by the code store).
* ``halo`` -> how many nucleotides beyond a stretch of sequence its tokens depend on, or ``None``
  where no bound holds (then only ``encode_chunks`` cuts a sequence exactly).
* ``vocab_sizes`` / ``n_levels`` -> the number of token ids per level, and of levels. Ids are
  ``0..vocab_size-1``; the language model appends its own special ids ([PAD], [MASK], [CLS]) after them.
* ``nucleotides_per_token(seqs)`` -> the mean compression on ``seqs``.
* ``codebooks()`` -> a frozen embedding table per level ``(vocab_size, dim)`` that the
  language model reads as its input (VQDNA), or ``None`` when the LM must learn one;
  ``codebook_combine`` says how the LM combines a position's level vectors (``"mean"`` or
  ``"sum"``); ``embed(seqs)`` gives the frozen vectors per token (only where there are codebooks).
* ``flops_per_nucleotide()`` -> the network cost of tokenizing (0 for table look-ups).
* ``save_pretrained(dir)`` / ``from_pretrained(dir)``: a folder with ``config.json``
  (always holding ``"tokenizer_type"``) and, where there are weights, ``model.safetensors``.
  :func:`vqdna.tokenizers.load_tokenizer` opens any of them by reading that type.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Iterator, Sequence

import numpy as np
import torch

from ..sequence import alphabet


class Encoded(list):
    """What ``encode`` returns: a list of ``(n_levels, n_tokens)`` int64 arrays, one per
    sequence, plus ``non_acgt``: per sequence, its runs of non-ACGT letters as
    ``[start, length, letter]`` (0-based nucleotide positions, upper-case letter; ``[]`` when it
    has none), the format of the code store's manifest. ``decode`` reads them to give the letters
    back. Slices and list edits keep every array paired with its runs; arrays added from
    elsewhere have none (``None``). The runs are found when first asked for (``encode`` itself
    pays nothing for them)."""

    def __init__(self, codes=(), non_acgt=None, *, source=None):
        super().__init__(codes)
        self._source = None
        if source is not None:  # (sequences, indices): runs computed on first use
            self._runs = None
            self._source = source
        else:
            self._runs = list(non_acgt) if non_acgt is not None else [None] * len(self)
            if len(self._runs) != len(self):
                raise ValueError(f"{len(self)} code arrays but {len(self._runs)} non-ACGT run lists")

    @property
    def non_acgt(self) -> list:
        if self._runs is None:
            seqs, idx = self._source
            self._runs = [alphabet.non_acgt_runs_of(q, i) for q, i in zip(seqs, idx)]
            self._source = None
        return self._runs

    @non_acgt.setter
    def non_acgt(self, runs) -> None:
        runs = list(runs)
        if len(runs) != len(self):
            raise ValueError(f"{len(self)} code arrays but {len(runs)} non-ACGT run lists")
        self._runs, self._source = runs, None

    @staticmethod
    def _runs_of(items):
        return list(items.non_acgt) if isinstance(items, Encoded) else [None] * len(items)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Encoded(list.__getitem__(self, i), self.non_acgt[i])
        return list.__getitem__(self, i)

    def __setitem__(self, i, value):
        if isinstance(i, slice):
            value = list(value) if not isinstance(value, Encoded) else value
            self.non_acgt[i] = self._runs_of(value)
        else:
            self.non_acgt[i] = None
        list.__setitem__(self, i, value)

    def __delitem__(self, i):
        del self.non_acgt[i]
        list.__delitem__(self, i)

    def __add__(self, other):
        return Encoded(list(self) + list(other), self.non_acgt + self._runs_of(other))

    def __radd__(self, other):
        return Encoded(list(other) + list(self), self._runs_of(other) + self.non_acgt)

    def __iadd__(self, other):
        self.extend(other)
        return self

    def __reduce__(self):
        return (Encoded, (list(self), self.non_acgt))

    def copy(self):
        return Encoded(self, self.non_acgt)

    def append(self, value):
        list.append(self, value)
        self.non_acgt.append(None)

    def extend(self, values):
        values = values if isinstance(values, (list, tuple)) else list(values)
        runs = self._runs_of(values)
        list.extend(self, values)
        self.non_acgt.extend(runs)

    def insert(self, i, value):
        list.insert(self, i, value)
        self.non_acgt.insert(i, None)

    def pop(self, i=-1):
        self.non_acgt.pop(i)
        return list.pop(self, i)

    def remove(self, value):
        for i, v in enumerate(self):
            if v is value:
                del self[i]
                return
        raise ValueError("Encoded.remove(x): x not in list (compared by identity)")

    def clear(self):
        list.clear(self)
        self.non_acgt.clear()

    def reverse(self):
        list.reverse(self)
        self.non_acgt.reverse()

    def sort(self, *args, **kwargs):
        raise TypeError("Encoded lists of code arrays cannot be sorted; sort list(codes) instead")


def encoded(codes: Sequence[np.ndarray], seqs: Sequence, idx: Sequence[np.ndarray]) -> Encoded:
    """``codes`` of the input ``seqs`` (strings or index arrays; ``idx`` their indices) with
    their non-ACGT runs: what every ``encode`` returns."""
    codes, idx = list(codes), list(idx)
    seqs = list(seqs) if hasattr(seqs, "__len__") and len(seqs) == len(idx) else idx  # an iterator is consumed
    # by then: the indices give the letters (N)
    if len(codes) != len(idx):
        raise ValueError(f"{len(codes)} code arrays for {len(idx)} sequences")
    return Encoded(codes, source=(seqs, idx))


def restore_letters(decoded: list[str], codes, non_acgt=None) -> list[str]:
    """Write the non-ACGT runs (``non_acgt``, else ``codes.non_acgt`` when ``codes`` is an
    :class:`Encoded`) over the decoded sequences; every ``decode`` ends with this."""
    if non_acgt is None:
        non_acgt = getattr(codes, "non_acgt", None)
        if non_acgt is None:
            return decoded
    elif isinstance(non_acgt, (str, bytes)) or len(non_acgt) != len(decoded):
        raise ValueError(f"non_acgt must hold one run list per sequence: got {len(non_acgt)} "
                         f"for {len(decoded)} sequences")
    out = []
    for i, (seq, runs) in enumerate(zip(decoded, non_acgt)):
        try:
            out.append(alphabet.restore_non_acgt(seq, runs) if runs else seq)
        except ValueError as e:
            raise ValueError(f"sequence {i}: {e}") from None
    return out


class GenomeTokenizer(ABC):
    """The interface of every genome tokenizer (the module docstring lists it): callers use nothing
    else, so a learned and a hand-crafted tokenizer go through the same code."""

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
    def decode(self, codes: Sequence[np.ndarray], non_acgt: Sequence[list] | None = None) -> list[str]:
        """DNA strings from token arrays; non-ACGT runs from ``non_acgt`` or ``codes.non_acgt``
        are put back (:func:`restore_letters`)."""

    def encode_indices(self, idx: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``encode`` of index arrays (uint8, A=0 C=1 G=2 T=3 N/IUPAC=4, as
        :func:`vqdna.sequence.alphabet.encode` gives): the code arrays only, without the non-ACGT
        runs, so decoding them gives what the codes say at those positions.

        This default goes through strings; tokenizers override it to read the indices directly."""
        return list(self.encode([alphabet.decode(a) for a in idx]))

    def encode_packed(self, idx: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``encode_indices`` of the sequences packed back to back in ``idx`` (uint8 indices;
        ``lengths`` nucleotides each), packed the same way: ``(codes (n_levels, total), tokens per
        sequence)``. What the code store calls for a batch of short records (only where
        ``batch_invariant``).

        This default splits the batch and concatenates ``encode_indices``; tokenizers whose codes
        are a vectorised function of the letters override it to do without a Python object per
        sequence."""
        ends = np.cumsum(lengths)
        codes = self.encode_indices([idx[e - n:e] for e, n in zip(ends.tolist(), lengths.tolist())])
        n_tokens = np.array([c.shape[1] for c in codes], dtype=np.int64)
        return (np.concatenate(codes, axis=1) if len(codes) > 1 else codes[0]), n_tokens

    @property
    def batch_invariant(self) -> bool:
        """Whether ``encode_indices`` of several sequences gives every one of them exactly (bit for
        bit) the codes it gets alone, so that unrelated sequences may share a batch
        (:func:`vqdna.codes.write_codes` batches short records only then). ``False`` here, the safe
        default; hand-crafted tokenizers encode each sequence on its own (``True``)."""
        return False

    @property
    def halo(self) -> int | None:
        """Nucleotides of context on each side that the tokens of a stretch depend on: encoding
        ``idx[s - halo : e + halo]`` gives, for the tokens that start in ``[s, e)``, those of the
        whole sequence. ``None`` (this default) where no such bound holds, e.g. where a token's
        boundaries depend on letters arbitrarily far away: use :meth:`encode_chunks` there."""
        return None

    def encode_chunks(self, idx: np.ndarray, chunk_length: int = 1 << 20) -> Iterator[tuple[int, np.ndarray]]:
        """Encode one sequence (uint8 indices, :func:`vqdna.sequence.alphabet.encode`) in pieces of
        about ``chunk_length`` nt: yields ``(nucleotides, codes)`` pairs whose codes, concatenated,
        equal ``encode`` of the whole sequence and whose nucleotides sum to ``len(idx)``.

        This default encodes the whole sequence at once (exact, memory grows with it);
        tokenizers override it to stream with bounded memory."""
        yield len(idx), self.encode([alphabet.decode(idx)])[0]

    def codebooks(self) -> list[torch.Tensor] | None:
        """Frozen per-level embedding tables, or ``None`` (the LM learns its own)."""
        return None

    @property
    def codebook_combine(self) -> str:
        """How a position's level code vectors make one input vector for the LM: ``"mean"`` (Eq. 7;
        this default) or ``"sum"`` (plain residual quantization, whose levels add up to the vector)."""
        return "mean"

    def embed(self, seqs: Sequence[str]) -> list[torch.Tensor]:
        """The frozen embedding of every token, ``(n_tokens, dim)`` per sequence, from ``codebooks()``.
        Tokenizers without codebooks have none: the LM learns its table (this default raises)."""
        raise NotImplementedError(f"the {self.tokenizer_type} tokenizer has no embedding table (codebooks() is None)")

    def flops_per_nucleotide(self) -> float:
        """Floating-point operations a network spends to tokenize one nucleotide; 0 for tokenizers
        that look tokens up in a table (this default)."""
        return 0.0

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

