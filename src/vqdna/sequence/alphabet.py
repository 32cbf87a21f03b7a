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

INVALID = 255  # BYTE_TO_INDEX entry of a byte outside the alphabet

#: byte -> index (A/C/G/T either case 0..3, N and the other IUPAC codes 4, any other byte
#: :data:`INVALID`): ``BYTE_TO_INDEX[np.frombuffer(raw, np.uint8)]`` encodes without raising,
#: for callers that report invalid letters their own way. Read-only.
BYTE_TO_INDEX = np.full(256, INVALID, dtype=np.uint8)
for _i, _c in enumerate(ACGT):
    BYTE_TO_INDEX[ord(_c)] = _i
    BYTE_TO_INDEX[ord(_c.lower())] = _i
for _c in IUPAC_OTHER:
    BYTE_TO_INDEX[ord(_c)] = OTHER
    BYTE_TO_INDEX[ord(_c.lower())] = OTHER
BYTE_TO_INDEX.flags.writeable = False

_LETTERS = np.frombuffer(b"ACGTN", dtype=np.uint8)


class SequenceError(ValueError):
    """Bad sequence input; the message names the file, record and position."""


def encode(seq: str | bytes, *, where: str = "sequence") -> np.ndarray:
    """Map a DNA string to uint8 indices (A=0, C=1, G=2, T=3, N/IUPAC=4).

    ``where`` names the source (file and record) for the error message.
    """
    raw = np.frombuffer(seq.encode("ascii", "replace") if isinstance(seq, str) else seq, dtype=np.uint8)
    idx = BYTE_TO_INDEX[raw]
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
    raw = np.frombuffer(seq.encode("ascii") if isinstance(seq, str) else bytes(seq), dtype=np.uint8)
    return _runs(raw, BYTE_TO_INDEX[raw] == OTHER)


def _runs(raw: np.ndarray, other: np.ndarray) -> list[list]:
    """Runs of ``raw`` letters where ``other`` holds (vectorised; one list entry per run)."""
    pos = np.flatnonzero(other)
    if not pos.size:
        return []
    up = raw[pos] & 0xDF  # upper case (these are letters)
    first = np.flatnonzero(np.concatenate(([True], (np.diff(pos) != 1) | (np.diff(up) != 0))))
    lengths = np.diff(np.append(first, pos.size))
    letters = up[first].tobytes().decode("ascii")
    return [[s, n, c] for s, n, c in zip(pos[first].tolist(), lengths.tolist(), letters)]


def non_acgt_runs_of(seq, idx: np.ndarray) -> list[list]:
    """:func:`non_acgt_runs` of ``seq`` given its indices ``idx`` (from :func:`encode`): a cheap
    ``[]`` when ``idx`` holds no index 4; ``seq`` may be a str, bytes or the index array itself
    (whose non-ACGT letters are all ``N``)."""
    other = idx == OTHER
    if not other.any():
        return []
    if isinstance(seq, np.ndarray):
        return _runs(_LETTERS[idx], other)
    raw = np.frombuffer(seq.encode("ascii") if isinstance(seq, str) else bytes(seq), dtype=np.uint8)
    return _runs(raw, other)


def restore_non_acgt(seq: str, runs: list[list]) -> str:
    """Put the stored non-ACGT letters back into a decoded sequence.

    Raises ``ValueError`` when a run lies beyond the end of ``seq`` (the runs belong to
    another sequence, or the codes were cut)."""
    if not runs:
        return seq
    end = max(int(start) + int(length) for start, length, _ in runs)
    if end > len(seq):
        raise ValueError(f"non-ACGT runs reach position {end} but the decoded sequence has {len(seq)} nt: "
                         "they belong to another sequence (or the codes were cut)")
    buf = bytearray(seq.encode("ascii"))
    for start, length, letter in runs:
        buf[start:start + length] = letter.encode("ascii") * length
    return buf.decode("ascii")
