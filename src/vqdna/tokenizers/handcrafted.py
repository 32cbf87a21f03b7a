"""Hand-crafted genome vocabularies: the baselines VQDNA's learned vocabulary is compared to.

============  ====================================  ==============================================
key           class                                 vocabulary
============  ====================================  ==============================================
``kmer3``     :class:`Kmer3Tokenizer` (k=3)         overlapping 3-mers (DNABERT): 64 + UNK = 65
``kmer6``     :class:`Kmer6Tokenizer` (k=6)         overlapping 6-mers (DNABERT): 4096 + UNK = 4097
``nt6``       :class:`NT6Tokenizer`                 non-overlapping 6-mers + A C G T N singles
                                                    (Nucleotide Transformer): 4096 + 5 = 4101
``bpe``       :class:`BPETokenizer`                 byte-pair encoding trained on DNA
                                                    (DNABERT-2): 4096 by default
``char``      :class:`CharTokenizer`                one token per nucleotide (HyenaDNA): A C G T N
============  ====================================  ==============================================

All of them follow :class:`~vqdna.tokenizers.base.GenomeTokenizer`: ``encode`` gives one
``(1, n_tokens)`` int64 array per sequence (a single level), ids are ``0..vocab_size-1``
(no special tokens: the language model appends its own), ``codebooks()`` is ``None``
(the LM learns its embedding table), and ``save_pretrained`` writes ``config.json``
whose ``"tokenizer_type"`` is the key above.

Building one by key: ``HANDCRAFTED[key]()`` works for every key except ``bpe``, which
must be trained (``BPETokenizer.train(...)``); :func:`build_handcrafted` does both.

Input policy (shared, from :mod:`vqdna.sequence.alphabet`):

* lowercase (soft-masked) letters are upper-cased;
* ``N`` and the other IUPAC codes ``R Y S W K M B D H V U`` are all read as ``N``: the
  hand-crafted vocabularies have no token for the other codes. ``encode`` returns an
  :class:`~vqdna.tokenizers.base.Encoded` list that also holds each sequence's runs of these
  letters (``codes.non_acgt``, as the code store's manifest), and ``decode(codes)`` writes
  them back, so ``decode(encode(seqs))`` gives the exact IUPAC letters; decoding plain
  arrays without ``non_acgt`` gives ``N`` there;
* any other character raises :class:`~vqdna.sequence.alphabet.SequenceError` naming the
  sequence and position.

``encode`` also accepts uint8/int index arrays (A=0 C=1 G=2 T=3 N=4, as produced by
:func:`vqdna.sequence.alphabet.encode` and the training corpus) in place of strings.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io import read_json, write_json_atomic
from ..sequence.alphabet import OTHER, SequenceError
from ..sequence.alphabet import decode as _idx_to_str
from ..sequence.alphabet import encode as _str_to_idx
from ..sequence.kmers import rolling_kmer_codes  # its home before sequence/kmers.py: still imports from here
from .base import GenomeTokenizer, encoded, restore_letters

_LETTERS = np.frombuffer(b"ACGTN", dtype=np.uint8)


# --------------------------------------------------------------------------- helpers
def _check_batch(seqs) -> None:
    if isinstance(seqs, (str, bytes)):
        raise TypeError("encode() takes a list of sequences, not one string: use encode([seq])")


def to_indices(seq, *, where: str = "sequence") -> np.ndarray:
    """A sequence (str/bytes, or an index array) as uint8 indices A=0 C=1 G=2 T=3 N/IUPAC=4."""
    if isinstance(seq, np.ndarray):
        if seq.dtype.kind not in "iu":
            raise SequenceError(f"{where}: index arrays must be integer, got {seq.dtype}")
        if seq.ndim != 1:
            raise SequenceError(f"{where}: index arrays must be 1-D, got shape {seq.shape}")
        if seq.size and (seq.min() < 0 or seq.max() > OTHER):
            raise SequenceError(f"{where}: index arrays must hold 0..4 (A C G T N)")
        return seq.astype(np.uint8, copy=False)
    if not isinstance(seq, (str, bytes)):
        raise TypeError(f"{where}: expected a DNA string, got {type(seq).__name__}")
    return _str_to_idx(seq, where=where)


def _codes_1d(code, vocab_size: int, where: str) -> np.ndarray:
    """Token ids of one sequence as a 1-D int64 array; accepts shape (1, n) or (n,)."""
    a = np.asarray(code)
    if a.ndim == 2:
        if a.shape[0] != 1:
            raise ValueError(f"{where}: a hand-crafted tokenizer has one level; got shape {a.shape}")
        a = a[0]
    elif a.ndim != 1:
        raise ValueError(f"{where}: expected token ids of shape (1, n) or (n,), got {a.shape}")
    if a.size and a.dtype.kind not in "iu":
        raise ValueError(f"{where}: token ids must be integers, got {a.dtype}")
    a = a.astype(np.int64, copy=False)
    if a.size and (a.min() < 0 or a.max() >= vocab_size):
        bad = int(a[(a < 0) | (a >= vocab_size)][0])
        raise ValueError(f"{where}: token id {bad} outside 0..{vocab_size - 1}")
    return a


def _concatenated(idx) -> tuple[np.ndarray, list[int], list[int]] | None:
    """A batch of uint8 index arrays (what the code store passes to ``encode_indices``) as one
    array with each one's start and length; ``None`` for anything else (strings, other dtypes,
    values beyond N), which then goes through ``encode`` and its checks."""
    idx = list(idx)
    if len(idx) < 2 or not all(isinstance(a, np.ndarray) and a.dtype == np.uint8 and a.ndim == 1 for a in idx):
        return None
    cat = np.concatenate(idx)
    if cat.size and cat.max() > OTHER:
        return None
    lengths = [len(a) for a in idx]
    starts = np.cumsum([0] + lengths[:-1]).tolist()
    return cat, starts, lengths


def kmer_letters(k: int) -> np.ndarray:
    """(4**k, k) uint8 table of the letters of every k-mer, in id order."""
    ids = np.arange(4 ** k, dtype=np.int64)
    shifts = 2 * np.arange(k - 1, -1, -1, dtype=np.int64)
    return _LETTERS[(ids[:, None] >> shifts[None, :]) & 3]


class _HandcraftedBase(GenomeTokenizer):
    """Common save/load for the parameter-only (no weights) tokenizers."""

    def _config(self) -> dict:
        return {"tokenizer_type": self.tokenizer_type, "vocab_size": self.vocab_sizes[0]}

    def save_pretrained(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path / "config.json", self._config())

    @staticmethod
    def _read_config(path, expected: Sequence[str]) -> dict:
        cfg_path = Path(path) / "config.json"
        if not cfg_path.exists():
            raise FileNotFoundError(f"{path}: not a tokenizer folder (no config.json)")
        cfg = read_json(cfg_path)
        kind = cfg.get("tokenizer_type")
        if kind not in expected:
            raise ValueError(f"{cfg_path}: tokenizer_type is {kind!r}, expected one of {list(expected)}")
        return cfg

    def _matches(self, path, cfg: dict):
        """``self`` after checking that ``path``'s config.json records what this tokenizer would
        write (every field of :meth:`_config`, equal): a damaged or hand-edited field is named with
        the file, never taken silently (a parameter-only tokenizer is its config)."""
        for key, want in self._config().items():
            got = cfg.get(key)
            if got != want or isinstance(got, bool) != isinstance(want, bool):  # true is no 1
                raise ValueError(f"{Path(path) / 'config.json'}: {key} is {got!r}, but a {self.tokenizer_type} "
                                 f"tokenizer has {want!r}; the file is damaged or hand-edited")
        return self

    def encode_indices(self, idx) -> list[np.ndarray]:
        """``encode`` reads index arrays directly; the code arrays only (no non-ACGT runs)."""
        return list(self.encode(list(idx)))

    @property
    def batch_invariant(self) -> bool:
        """Every sequence of a batch is encoded on its own: its codes are those it gets alone."""
        return True

    def token_strings(self) -> list[str]:
        """The string of every token id (for inspecting the vocabulary)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_sizes[0]})"


# --------------------------------------------------------------------------- k-mer
class KmerTokenizer(_HandcraftedBase):
    """Overlapping k-mers (DNABERT): one token for every position ``i`` naming ``s[i:i+k]``.

    * ``n_tokens = L - k + 1``; a sequence shorter than ``k`` has no k-mer and raises
      :class:`SequenceError` (it cannot be represented; an UNK token would not decode to
      the right length).
    * ids: ``0..4**k-1`` are the ACGT k-mers in base-4 order (``A=0 C=1 G=2 T=3``, first
      base most significant: ``AAA=0``, ``AAC=1`` ... ``TTT=63``); id ``4**k`` (``unk_id``)
      stands for every k-mer that holds ``N`` or another IUPAC code.
    * decode: the first k-mer gives the first ``k`` bases and every following k-mer its
      last base. Where that k-mer is UNK, the base is taken from any other known k-mer
      covering the position; a position covered by UNKs only decodes as ``N``. So the
      round trip is exact on ACGT sequences; with ``N``/IUPAC inside, those letters come
      back as ``N`` and an A/C/G/T base lying in no N-free window of ``k`` bases (e.g.
      within ``k-1`` of an N at a sequence end, or between two N closer than ``k``) comes
      back as ``N`` too.
    """

    def __init__(self, *, k: int):
        if not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= 12:
            raise ValueError(f"k must be an integer in 1..12, got {k!r}")
        self.k = int(k)
        self.unk_id = 4 ** self.k
        self.tokenizer_type = f"kmer{self.k}"
        self._letters = None

    @property
    def vocab_sizes(self) -> list[int]:
        return [4 ** self.k + 1]

    @property
    def halo(self) -> int:
        """A k-mer reads the ``k - 1`` nt after its start."""
        return self.k - 1

    def _config(self) -> dict:
        return {**super()._config(), "k": self.k, "unk_id": self.unk_id, "overlapping": True}

    @classmethod
    def from_pretrained(cls, path) -> "KmerTokenizer":
        cfg = cls._read_config(path, [f"kmer{k}" for k in range(1, 13)])
        k = int(cfg["tokenizer_type"][4:])  # the type names k; config.json's k must agree (_matches)
        return _KMER_CLASSES.get(k, KmerTokenizer)(k=k)._matches(path, cfg)

    def encode(self, seqs) -> list[np.ndarray]:
        _check_batch(seqs)
        out, idxs = [], []
        for i, s in enumerate(seqs):
            idx = to_indices(s, where=f"sequence {i}")
            if len(idx) < self.k:
                raise SequenceError(
                    f"sequence {i}: {len(idx)} nt is shorter than k={self.k}; "
                    f"the {self.tokenizer_type} tokenizer needs at least {self.k} nt"
                )
            vals, has_n = rolling_kmer_codes(idx, self.k)
            vals[has_n] = self.unk_id
            out.append(vals.reshape(1, -1))
            idxs.append(idx)
        return encoded(out, seqs, idxs)

    def encode_indices(self, idx) -> list[np.ndarray]:
        """``encode`` of index arrays. A batch of them is encoded in one pass over their
        concatenation, each keeping the k-mers that lie inside it: those read only its own
        letters, so its codes are exactly those it gets alone (in far less time per short sequence)."""
        batch = _concatenated(idx)
        if batch is None or min(batch[2]) < self.k:  # encode checks and names a sequence shorter than k
            return list(self.encode(list(idx)))
        cat, starts, lengths = batch
        vals, has_n = rolling_kmer_codes(cat, self.k)
        vals[has_n] = self.unk_id
        vals = vals.reshape(1, -1)
        return [vals[:, s:s + n - self.k + 1] for s, n in zip(starts, lengths)]

    def encode_packed(self, idx: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The k-mers of the packed sequences in one pass, each keeping those inside it (as
        ``encode_indices``), without a Python object per sequence."""
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.size and lengths.min() < self.k:  # encode names the sequence shorter than k
            i = int(np.argmax(lengths < self.k))
            s = int(lengths[:i].sum())
            self.encode([idx[s:s + int(lengths[i])]])
        vals, has_n = rolling_kmer_codes(idx, self.k)
        vals[has_n] = self.unk_id
        # a k-mer is kept where it starts at least k - 1 nt before its sequence's end
        ends = np.cumsum(lengths)
        to_end = np.repeat(ends, lengths)[:vals.size] - np.arange(vals.size)
        return vals[to_end >= self.k].reshape(1, -1), lengths - self.k + 1

    def encode_chunks(self, idx: np.ndarray, chunk_length: int = 1 << 20):
        """k-mers starting in ``[s, s + chunk_length)`` from ``idx[s : s + chunk_length + k - 1]``:
        each piece reads the ``k - 1`` nt after it, so no k-mer across a chunk edge is lost."""
        idx = to_indices(idx)
        n, k = len(idx), self.k
        if n < k:
            yield from ((n, c) for c in self.encode([idx]))  # raises: shorter than k
            return
        n_tok = n - k + 1
        for s in range(0, n_tok, chunk_length):
            e = min(s + chunk_length, n_tok)
            yield (e - s if e < n_tok else n - s), self.encode([idx[s:e + k - 1]])[0]

    def decode(self, codes, non_acgt=None) -> list[str]:
        if self._letters is None:
            self._letters = kmer_letters(self.k)
        out = []
        for i, c in enumerate(codes):
            ids = _codes_1d(c, self.vocab_sizes[0], f"sequence {i}")
            n = ids.size
            if n == 0:
                out.append("")
                continue
            seq = np.full(n + self.k - 1, ord("N"), dtype=np.uint8)
            known = np.flatnonzero(ids != self.unk_id)
            letters = self._letters[ids[known]]  # (n_known, k)
            # write offsets j = 0..k-1 in order: the last write to a position comes from
            # the earliest known k-mer covering it (= "first k-mer + last base of the next")
            for j in range(self.k):
                seq[known + j] = letters[:, j]
            out.append(seq.tobytes().decode("ascii"))
        return restore_letters(out, codes, non_acgt)

    def token_strings(self) -> list[str]:
        table = kmer_letters(self.k)
        return [r.tobytes().decode("ascii") for r in table] + ["[UNK]"]

    def __repr__(self) -> str:
        return f"KmerTokenizer(k={self.k})"


class Kmer3Tokenizer(KmerTokenizer):
    """``KmerTokenizer(k=3)`` (key ``kmer3``), constructible without arguments."""

    def __init__(self, *, k: int = 3):
        if k != 3:
            raise ValueError("Kmer3Tokenizer has k=3; use KmerTokenizer(k=...) for other k")
        super().__init__(k=3)


class Kmer6Tokenizer(KmerTokenizer):
    """``KmerTokenizer(k=6)`` (key ``kmer6``), constructible without arguments."""

    def __init__(self, *, k: int = 6):
        if k != 6:
            raise ValueError("Kmer6Tokenizer has k=6; use KmerTokenizer(k=...) for other k")
        super().__init__(k=6)


_KMER_CLASSES = {3: Kmer3Tokenizer, 6: Kmer6Tokenizer}


# --------------------------------------------------------------------------- NT 6-mer
class NT6Tokenizer(_HandcraftedBase):
    """Non-overlapping 6-mers with single-letter fallback (Nucleotide Transformer).

    Left to right: take the next 6 letters as one token if they are all A/C/G/T;
    if that window holds a non-ACGT letter, emit single-letter tokens up to and
    including the first such letter; fewer than 6 letters left -> single letters.
    Equivalently: split at every ``N``, cut each ACGT run into 6-mers from its start
    and spell its last ``len % 6`` bases as single letters; every ``N`` is one token.

    * ids ``0..4095``: 6-mers in base-4 order (``AAAAAA=0`` ... ``TTTTTT=4095``);
      ``4096..4100``: the single letters ``A C G T N``.
    * ``n_tokens = sum over ACGT runs of (len//6 + len%6) + number of N``; for an
      N-free sequence ``L//6 + L%6`` (512 nt -> 85 + 2 = 87 tokens).
    * decode is exact (IUPAC codes come back as ``N``).
    """

    tokenizer_type = "nt6"
    K = 6
    SINGLE = 4 ** 6  # id of the single letter A; C G T N follow

    def __init__(self):
        self._table = None

    @property
    def vocab_sizes(self) -> list[int]:
        return [self.SINGLE + 5]

    def _config(self) -> dict:
        return {**super()._config(), "k": self.K, "single_letter_ids": {c: self.SINGLE + i for i, c in enumerate("ACGTN")}}

    @classmethod
    def from_pretrained(cls, path) -> "NT6Tokenizer":
        return cls()._matches(path, cls._read_config(path, ["nt6"]))

    def encode(self, seqs) -> list[np.ndarray]:
        _check_batch(seqs)
        k = self.K
        out, idxs = [], []
        for i, s in enumerate(seqs):
            idx = to_indices(s, where=f"sequence {i}")
            idxs.append(idx)
            L = len(idx)
            if L == 0:
                out.append(np.zeros((1, 0), np.int64))
                continue
            is_n = idx == OTHER
            pos = np.arange(L, dtype=np.int64)
            # bounds of the ACGT run holding each position (meaningless at N positions)
            run_start = np.maximum.accumulate(np.where(is_n, pos + 1, 0))
            run_end = np.minimum.accumulate(np.where(is_n, pos, L)[::-1])[::-1]
            off = pos - run_start
            full = (run_end - run_start) // k * k  # bases of the run covered by 6-mers
            is_kmer = ~is_n & (off % k == 0) & (off < full)
            is_single = is_n | (off >= full)
            starts = np.flatnonzero(is_kmer | is_single)
            ids = self.SINGLE + idx[starts].astype(np.int64)
            if L >= k:
                vals, _ = rolling_kmer_codes(idx, k)
                km = is_kmer[starts]
                ids[km] = vals[starts[km]]
            out.append(ids.reshape(1, -1))
        return encoded(out, seqs, idxs)

    def encode_chunks(self, idx: np.ndarray, chunk_length: int = 1 << 20):
        """Encode ``idx[s : e + 6]`` (``e = s + chunk_length``) and keep the tokens that start before
        ``e``: those equal the whole sequence's (a 6-mer's place depends only on the start of its
        ACGT run, to the left, and on whether 6 more bases follow, which the 6 extra nt settle);
        the next piece starts where the last kept token ends, which is where the whole
        sequence's tokenization restarts the same way."""
        idx = to_indices(idx)
        n, s = len(idx), 0
        while s < n:
            e = min(s + chunk_length, n)
            if e == n:
                yield n - s, self.encode([idx[s:]])[0]
                return
            ids = self.encode([idx[s:min(e + self.K, n)]])[0][0]
            lens = np.where(ids < self.SINGLE, self.K, 1)
            keep = (np.cumsum(lens) - lens) < e - s
            used = int(lens[keep].sum())
            yield used, ids[keep].reshape(1, -1)
            s += used

    def decode(self, codes, non_acgt=None) -> list[str]:
        if self._table is None:
            table = np.zeros((self.vocab_sizes[0], self.K), np.uint8)
            table[: self.SINGLE] = kmer_letters(self.K)
            table[self.SINGLE:, 0] = _LETTERS
            lens = np.full(self.vocab_sizes[0], self.K, np.int64)
            lens[self.SINGLE:] = 1
            self._table = (table, lens)
        table, lens = self._table
        cols = np.arange(self.K)
        out = []
        for i, c in enumerate(codes):
            ids = _codes_1d(c, self.vocab_sizes[0], f"sequence {i}")
            letters = table[ids][cols[None, :] < lens[ids][:, None]]
            out.append(letters.tobytes().decode("ascii"))
        return restore_letters(out, codes, non_acgt)

    def token_strings(self) -> list[str]:
        return [r.tobytes().decode("ascii") for r in kmer_letters(self.K)] + list("ACGTN")

    def __repr__(self) -> str:
        return "NT6Tokenizer()"


# --------------------------------------------------------------------------- char
class CharTokenizer(_HandcraftedBase):
    """One token per nucleotide (HyenaDNA): ids ``A=0 C=1 G=2 T=3 N=4`` (IUPAC -> N).

    ``n_tokens = L``; decode is exact apart from IUPAC codes becoming ``N``.
    """

    tokenizer_type = "char"

    @property
    def vocab_sizes(self) -> list[int]:
        return [5]

    @property
    def halo(self) -> int:
        return 0

    def _config(self) -> dict:
        return {**super()._config(), "alphabet": "ACGTN"}

    @classmethod
    def from_pretrained(cls, path) -> "CharTokenizer":
        return cls()._matches(path, cls._read_config(path, ["char"]))

    def encode(self, seqs) -> list[np.ndarray]:
        _check_batch(seqs)
        idxs = [to_indices(s, where=f"sequence {i}") for i, s in enumerate(seqs)]
        return encoded([i.astype(np.int64).reshape(1, -1) for i in idxs], seqs, idxs)

    def encode_indices(self, idx) -> list[np.ndarray]:
        """``encode`` of index arrays; a batch of them converted in one pass."""
        batch = _concatenated(idx)
        if batch is None:
            return list(self.encode(list(idx)))
        cat, starts, lengths = batch
        ids = cat.astype(np.int64).reshape(1, -1)
        return [ids[:, s:s + n] for s, n in zip(starts, lengths)]

    def encode_packed(self, idx: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return idx.astype(np.int64).reshape(1, -1), np.asarray(lengths, dtype=np.int64)

    def encode_chunks(self, idx: np.ndarray, chunk_length: int = 1 << 20):
        idx = to_indices(idx)
        for s in range(0, len(idx), chunk_length):
            part = idx[s:s + chunk_length]
            yield len(part), part.astype(np.int64).reshape(1, -1)

    def decode(self, codes, non_acgt=None) -> list[str]:
        out = [_idx_to_str(_codes_1d(c, 5, f"sequence {i}")) for i, c in enumerate(codes)]
        return restore_letters(out, codes, non_acgt)

    def token_strings(self) -> list[str]:
        return list("ACGTN")

    def __repr__(self) -> str:
        return "CharTokenizer()"


# --------------------------------------------------------------------------- BPE
class BPETokenizer(_HandcraftedBase):
    """Byte-pair encoding learned on DNA (DNABERT-2), with the Hugging Face ``tokenizers`` library.

    Build it with :meth:`train` (or load with :meth:`from_pretrained`); the trained model
    is saved as ``bpe.json`` (the ``tokenizers`` JSON format) beside ``config.json``.

    * Text seen by the model: upper-case ``A C G T N``; lowercase is upper-cased and every
      other IUPAC code becomes ``N`` before training and before encoding (so decoding
      gives ``N`` there). There is no pre-tokenizer: a sequence of up to ``WORD_LENGTH``
      (2**20 = 1,048,576) nt is one "word"; a longer one is cut at the fixed positions
      0, 2**20, 2 * 2**20, ... into words encoded independently, so no merge spans such a
      position. That cut is part of the definition of the encoding (``encode`` of a whole
      chromosome does it too), so a code store (:func:`vqdna.codes.write_codes`, which
      streams one word at a time) equals ``encode`` of every whole record exactly. Why not one
      word per record: the ``tokenizers`` library holds a word in memory at about 80 bytes
      per nt and its time grows faster than linearly (measured on fly DNA: 1 Mnt 0.9 s and
      83 MB, 4 Mnt 6.2 s and 330 MB), so a 25 Mnt chromosome would need about 2 GB. Training cuts records into chunks of ``chunk_length``
      (1,000) nt, so merges never span a chunk boundary there either.
    * The initial alphabet is always ``A C G T N`` (even if ``N`` is absent from the
      corpus), so every valid sequence encodes without an unknown token.
    * ids ``0..vocab_size-1``, no special tokens (the LM adds its own). ``vocab_size`` is
      the size actually reached: it is below the requested size when the corpus has too
      few pairs seen ``min_frequency`` times.
    * decode concatenates the token strings: exact apart from IUPAC -> ``N``.
    """

    tokenizer_type = "bpe"
    FILE = "bpe.json"
    WORD_LENGTH = 1 << 20  # longest word: longer sequences are encoded as words cut every 2**20 nt

    def __init__(self, tokenizer, *, info: dict | None = None):
        """Wrap a trained ``tokenizers.Tokenizer`` with a BPE model over ``A C G T N``."""
        from tokenizers import models

        if not isinstance(tokenizer.model, models.BPE):
            raise ValueError(f"expected a BPE model, got {type(tokenizer.model).__name__}")
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        n = len(vocab)
        strings = [None] * n
        for tok, i in vocab.items():
            if not 0 <= i < n or strings[i] is not None:
                raise ValueError("BPE vocabulary ids must be 0..vocab_size-1 without gaps")
            strings[i] = tok
        bad = [t for t in strings if not t or set(t) - set("ACGTN")]
        if bad:
            raise ValueError(f"BPE vocabulary holds non-DNA tokens (e.g. {bad[0]!r}); "
                             "special tokens are not allowed (the LM adds its own)")
        missing = [c for c in "ACGTN" if c not in vocab]
        if missing:
            raise ValueError(f"BPE vocabulary lacks the single letters {missing}")
        self._tok = tokenizer
        self._strings = np.array(strings, dtype=object)
        self.info = dict(info or {})

    @property
    def vocab_sizes(self) -> list[int]:
        return [len(self._strings)]

    # ---------------------------------------------------------------- training
    @staticmethod
    def _normalise(seq, where: str) -> str:
        """Upper-case ``A C G T N`` string (IUPAC -> N), validating the characters."""
        return _idx_to_str(to_indices(seq, where=where))

    @classmethod
    def train(
        cls,
        sequences,
        vocab_size: int = 4096,
        *,
        chunk_length: int = 1000,
        min_frequency: int = 2,
        max_token_length: int | None = None,
        show_progress: bool = False,
    ) -> "BPETokenizer":
        """Learn a BPE vocabulary of ``vocab_size`` tokens from DNA.

        ``sequences``: an iterable of DNA strings, uint8 index arrays, ``(name, sequence)``
        pairs, or records with a ``.sequence`` attribute (dnaio records,
        :func:`vqdna.sequence.fasta.read_fasta`); it is streamed once. Long sequences are
        cut into chunks of ``chunk_length`` nt for the trainer (shorter chunks train
        faster; the merges barely depend on it beyond a few hundred nt).
        """
        from tokenizers import Tokenizer, models, trainers

        if vocab_size < 5:
            raise ValueError(f"vocab_size must be at least 5 (A C G T N), got {vocab_size}")
        if chunk_length < 2:
            raise ValueError(f"chunk_length must be at least 2, got {chunk_length}")
        if isinstance(sequences, (str, bytes)):
            raise TypeError("train() takes an iterable of sequences, not one string: use train([seq])")
        stats = {"n_sequences": 0, "n_nucleotides": 0}

        def chunks():
            for i, item in enumerate(sequences):
                if hasattr(item, "sequence"):
                    where = f"record {i} ({getattr(item, 'name', '?')!r})"
                    seq = item.sequence
                elif isinstance(item, tuple) and len(item) == 2:
                    where, seq = f"record {i} ({item[0]!r})", item[1]
                else:
                    where, seq = f"sequence {i}", item
                s = cls._normalise(seq, where)
                stats["n_sequences"] += 1
                stats["n_nucleotides"] += len(s)
                for start in range(0, len(s), chunk_length):
                    yield s[start:start + chunk_length]

        tok = Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(
            vocab_size=int(vocab_size),
            min_frequency=int(min_frequency),
            show_progress=show_progress,
            special_tokens=[],
            initial_alphabet=list("ACGTN"),
            max_token_length=max_token_length,
        )
        tok.train_from_iterator(chunks(), trainer=trainer)
        if stats["n_nucleotides"] == 0:
            raise ValueError("BPE training corpus is empty")
        info = {
            "requested_vocab_size": int(vocab_size),
            "chunk_length": int(chunk_length),
            "min_frequency": int(min_frequency),
            "max_token_length": max_token_length,
            "train_sequences": stats["n_sequences"],
            "train_nucleotides": stats["n_nucleotides"],
        }
        return cls(tok, info=info)

    @classmethod
    def train_from_fasta(cls, paths, vocab_size: int = 4096, **kwargs) -> "BPETokenizer":
        """:meth:`train` on the records of FASTA files (plain or gzip)."""
        from ..sequence.fasta import read_fasta

        return cls.train(read_fasta(paths), vocab_size, **kwargs)

    # ---------------------------------------------------------------- encode / decode
    def encode(self, seqs) -> list[np.ndarray]:
        _check_batch(seqs)
        idxs = [to_indices(s, where=f"sequence {i}") for i, s in enumerate(seqs)]
        W = self.WORD_LENGTH
        words, owner = [], []  # every sequence as words of at most WORD_LENGTH nt (see the class doc)
        for i, idx in enumerate(idxs):
            for s in range(0, max(len(idx), 1), W):
                words.append(_idx_to_str(idx[s:s + W]))
                owner.append(i)
        encs = self._tok.encode_batch(words, add_special_tokens=False) if words else []
        parts: list[list] = [[] for _ in idxs]
        for i, e in zip(owner, encs):
            parts[i].append(np.asarray(e.ids, dtype=np.int64))
        out = [np.concatenate(p).reshape(1, -1) if len(p) > 1 else p[0].reshape(1, -1) for p in parts]
        return encoded(out, seqs, idxs)

    def encode_chunks(self, idx: np.ndarray, chunk_length: int = 1 << 20):
        """One word (``WORD_LENGTH`` nt) at a time, whatever ``chunk_length``: exactly ``encode``."""
        idx = to_indices(idx)
        for s in range(0, len(idx), self.WORD_LENGTH):
            part = idx[s:s + self.WORD_LENGTH]
            yield len(part), self.encode([part])[0]

    def decode(self, codes, non_acgt=None) -> list[str]:
        V = self.vocab_sizes[0]
        out = ["".join(self._strings[_codes_1d(c, V, f"sequence {i}")]) for i, c in enumerate(codes)]
        return restore_letters(out, codes, non_acgt)

    def token_strings(self) -> list[str]:
        return list(self._strings)

    # ---------------------------------------------------------------- save / load
    def _config(self) -> dict:
        return {**super()._config(), "tokenizer_file": self.FILE, **self.info}

    def save_pretrained(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / f"{self.FILE}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(self._tok.to_str())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path / self.FILE)
        write_json_atomic(path / "config.json", self._config())

    @classmethod
    def from_pretrained(cls, path) -> "BPETokenizer":
        from tokenizers import Tokenizer

        cfg = cls._read_config(path, ["bpe"])
        file = Path(path) / cfg.get("tokenizer_file", cls.FILE)
        if not file.exists():
            raise FileNotFoundError(f"{path}: BPE tokenizer file {file.name} is missing")
        info = {k: v for k, v in cfg.items() if k not in ("tokenizer_type", "vocab_size", "tokenizer_file")}
        tok = cls(Tokenizer.from_file(str(file)), info=info)
        if "vocab_size" in cfg and cfg["vocab_size"] != tok.vocab_sizes[0]:
            raise ValueError(f"{path}: config.json says vocab_size {cfg['vocab_size']} "
                             f"but {file.name} holds {tok.vocab_sizes[0]} tokens")
        return tok

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_sizes[0]})"

# --------------------------------------------------------------------------- registry
HANDCRAFTED: dict[str, type[GenomeTokenizer]] = {
    "kmer3": Kmer3Tokenizer,
    "kmer6": Kmer6Tokenizer,
    "nt6": NT6Tokenizer,
    "bpe": BPETokenizer,
    "char": CharTokenizer,
}


def build_handcrafted(name: str, sequences=None, **kwargs) -> GenomeTokenizer:
    """A hand-crafted tokenizer by key; ``bpe`` is trained on ``sequences`` (strings,
    index arrays or records with ``.sequence``) with ``kwargs`` passed to
    :meth:`BPETokenizer.train` (e.g. ``vocab_size=4096``)."""
    if name not in HANDCRAFTED:
        raise ValueError(f"unknown hand-crafted tokenizer {name!r}; known: {sorted(HANDCRAFTED)}")
    if name == "bpe":
        if sequences is None:
            raise ValueError("the bpe tokenizer must be trained: give sequences (or FASTA records)")
        return BPETokenizer.train(sequences, **kwargs)
    if kwargs:
        raise ValueError(f"{name}: unexpected options {sorted(kwargs)}")
    return HANDCRAFTED[name]()
