"""The nucleotide alphabet and the policy for N and other IUPAC codes.

Policy (METHOD.md, stage 1, "open" point resolved here):

* ``A C G T`` (either case; soft-masked lowercase is upper-cased) map to 0..3.
* ``N`` and the other IUPAC ambiguity codes ``R Y S W K M B D H V`` and ``U``
  are *not* dropped and do *not* raise: they map to index 4 (``OTHER``). The
  tokenizer sees them as an all-zero one-hot vector (``n_policy="zero"``, the
  default) or as a fifth one-hot channel (``n_policy="channel"``). Reconstruction
  loss and accuracy are computed on A/C/G/T positions only. The exact letters are
  kept beside the codes (see :func:`non_acgt_runs`) so decoding restores them.
* Any other byte (digits, ``-``, ``*``, ``.``, spaces inside a sequence ...) is
  an error that names the file, record and position.
"""
from __future__ import annotations

import numpy as np

ACGT = "ACGT"
OTHER = 4  # index of every non-ACGT IUPAC letter
IUPAC_OTHER = "NRYSWKMBDHVU"

# byte -> index; 255 marks an invalid byte
_LUT = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(ACGT):
    _LUT[ord(_c)] = _i
    _LUT[ord(_c.lower())] = _i
for _c in IUPAC_OTHER:
    _LUT[ord(_c)] = OTHER
    _LUT[ord(_c.lower())] = OTHER

_LETTERS = np.frombuffer(b"ACGTN", dtype=np.uint8)


class SequenceError(ValueError):
    """Bad sequence input; the message names the file, record and position."""


def encode(seq: str | bytes, *, where: str = "sequence") -> np.ndarray:
    """Map a DNA string to uint8 indices (A=0, C=1, G=2, T=3, N/IUPAC=4).

    ``where`` names the source (file and record) for the error message.
    """
    raw = np.frombuffer(seq.encode("ascii", "replace") if isinstance(seq, str) else seq, dtype=np.uint8)
    idx = _LUT[raw]
    bad = np.flatnonzero(idx == 255)
    if bad.size:
        p = int(bad[0])
        ch = chr(raw[p])
        raise SequenceError(
            f"{where}: invalid character {ch!r} at position {p + 1} "
            f"({bad.size} invalid in all); allowed: A C G T, N and IUPAC codes {IUPAC_OTHER}"
        )
    return idx


def decode(idx: np.ndarray) -> str:
    """Inverse of :func:`encode` for indices 0..4 (4 prints as ``N``)."""
    return _LETTERS[np.asarray(idx, dtype=np.int64)].tobytes().decode("ascii")


def non_acgt_runs(seq: str) -> list[list]:
    """Runs of identical non-ACGT letters as ``[start, length, letter]`` (upper case).

    Stored beside the codes so that :func:`restore_non_acgt` gives back the exact
    IUPAC letters after decoding.
    """
    up = np.frombuffer(seq.upper().encode("ascii"), dtype=np.uint8)
    other = _LUT[up] == OTHER
    if not other.any():
        return []
    runs = []
    pos = np.flatnonzero(other)
    # split where position jumps or letter changes
    brk = np.flatnonzero((np.diff(pos) != 1) | (np.diff(up[pos]) != 0)) + 1
    for chunk in np.split(pos, brk):
        runs.append([int(chunk[0]), int(chunk.size), chr(up[chunk[0]])])
    return runs


def restore_non_acgt(seq: str, runs: list[list]) -> str:
    """Put the stored non-ACGT letters back into a decoded sequence."""
    if not runs:
        return seq
    buf = bytearray(seq.encode("ascii"))
    for start, length, letter in runs:
        buf[start:start + length] = letter.encode("ascii") * length
    return buf.decode("ascii")
