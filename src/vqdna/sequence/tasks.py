"""Fine-tuning tasks in the GUE layout: a folder with ``train.csv``, ``dev.csv`` and ``test.csv``.

Each CSV has a header holding (at least) the columns ``sequence`` and ``label``; any other
column is ignored. :func:`load_task` reads the three splits, validates every row and decides
the task type from the labels:

* every label in all three splits is an integer literal (``0``, ``1``, ``3``; ``+1``/``-0``
  accepted, ``1.0`` is *not* an integer literal) -> **classification**, ``n_classes = max + 1``.
  The labels must be exactly ``0..n_classes-1``: a negative label, or a class id below the
  maximum that no row of any split carries, is an error; a single class is an error too.
  Every class of dev and test must occur in train: a dev/test label that train lacks is an
  error naming the label, the split and the line (the classifier could never predict it).
* otherwise (any label such as ``0.53``, ``1e-3`` or ``1.0``) -> **regression**, labels
  stored as ``float32``.

Validation policy (every error names the file and the 1-based line, header = line 1):

* missing file, empty file (no header), header without ``sequence`` or ``label``, header
  without data rows;
* a row with too few fields, an empty sequence, a character outside the alphabet of
  :mod:`vqdna.sequence.alphabet` (N and the other IUPAC codes are allowed, as everywhere in
  the project);
* a label that does not parse as a finite number.

Sequences are upper-cased; whitespace around a field is stripped; blank lines (and rows whose
fields are all blank) are skipped; header names are matched case-insensitively; a UTF-8 BOM is
accepted. :func:`read_sequence_csv` is the reader, shared with ``vqdna predict`` and ``embed``.
An optional ``labels.json`` (``{"name": id, ...}``) in the folder is kept as
:attr:`Task.label_names`.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .alphabet import BYTE_TO_INDEX, INVALID, IUPAC_OTHER, SequenceError

SPLITS = ("train", "dev", "test")

__all__ = ["TaskError", "SequenceError", "Split", "Task", "load_task", "read_sequence_csv", "task_name", "SPLITS"]


def task_name(path) -> str:
    """A task folder's short name: GUE/tf/0 -> tf0, GUE/prom/prom_core_tata -> prom_core_tata,
    grna/doench2016 -> doench2016 (the benchmark's and the corpus's name of a task)."""
    path = Path(path)
    return f"{path.parent.name}{path.name}" if path.name.isdigit() else path.name


class TaskError(ValueError):
    """Bad task folder or CSV content; the message names the file and the line."""


@dataclass
class Split:
    """One split of a task: upper-cased sequences and their labels."""

    sequences: list[str]
    labels: np.ndarray  # int64 (classification) or float32 (regression)
    path: Path | None = None
    lines: np.ndarray | None = field(default=None, repr=False)  # 1-based file line per row

    def __len__(self) -> int:
        return len(self.sequences)


@dataclass
class Task:
    name: str
    path: Path
    splits: dict[str, Split]
    kind: str  # "classification" | "regression"
    n_classes: int | None = None
    label_names: dict[str, int] | None = None

    @property
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def dev(self) -> Split:
        return self.splits["dev"]

    @property
    def test(self) -> Split:
        return self.splits["test"]

    def with_train_rows(self, idx) -> "Task":
        """The same task with its training split cut to rows ``idx`` (dev and test unchanged)."""
        t = self.train
        sub = Split([t.sequences[i] for i in idx], t.labels[idx], t.path, None if t.lines is None else t.lines[idx])
        return replace(self, splits={**self.splits, "train": sub})

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        extra = f", n_classes={self.n_classes}" if self.n_classes is not None else ""
        return f"Task({self.name!r}, {self.kind}{extra}, {sizes})"


def _default_name(path: Path) -> str:
    # GUE numbers some folders (tf/0, mouse/3): keep the parent to stay readable.
    if path.name.isdigit() and path.parent.name:
        return f"{path.parent.name}/{path.name}"
    return path.name


def _is_int_literal(s: str) -> bool:
    t = s[1:] if s[:1] in "+-" else s
    return t.isdigit() and t.isascii()


def _is_blank(row: list[str]) -> bool:
    return not any(x.strip() for x in row)


def read_sequence_csv(path, *, label_required: bool = False) -> tuple[list[str], list[str] | None, list[int]]:
    """The project's reader of sequence CSVs: task splits (:func:`load_task`) and the inputs of
    ``vqdna predict`` / ``embed``.

    Returns the sequences (alphabet checked, upper-cased), the raw label strings (``None`` when
    the header has no ``label`` column; ``""`` for a row without that field) and the 1-based
    file line of every row. The header needs a ``sequence`` column, and a ``label`` column when
    ``label_required`` (then every row must hold both fields). Header names match
    case-insensitively, a UTF-8 BOM is accepted, fields are stripped, rows whose fields are all
    blank are skipped. Errors (:class:`TaskError`, :class:`SequenceError`) name the file and line.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such CSV file")
    want = ("sequence", "label") if label_required else ("sequence",)
    seqs: list[str] = []
    labels: list[str] = []
    lines: list[int] = []
    with open(file, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next((row for row in reader if not _is_blank(row)), None)
        if header is None:
            raise TaskError(f"{file}: empty file (no header line; expected a header with {','.join(want)!r})")
        header = [h.strip().lower() for h in header]
        missing = [c for c in want if c not in header]
        if missing:
            raise TaskError(
                f"{file}:{reader.line_num}: header has no {' or '.join(repr(c) for c in missing)} column "
                f"(found {', '.join(repr(h) for h in header)})"
            )
        i_seq = header.index("sequence")
        i_lab = header.index("label") if "label" in header else None
        need = max(i_seq, i_lab if label_required else 0) + 1
        for row in reader:
            if _is_blank(row):
                continue
            line = reader.line_num
            if len(row) < need:
                raise TaskError(f"{file}:{line}: {len(row)} field(s), expected at least {need} "
                                f"(header: {','.join(header)})")
            s = row[i_seq].strip()
            if not s:
                raise TaskError(f"{file}:{line}: empty sequence")
            seqs.append(s)
            labels.append(row[i_lab].strip() if i_lab is not None and len(row) > i_lab else "")
            lines.append(line)
    if not seqs:
        raise TaskError(f"{file}: no data rows after the header")
    _check_alphabet(file, seqs, lines)  # before upper(): "ß".upper() is "SS"
    return [q.upper() for q in seqs], (labels if i_lab is not None else None), lines


def _check_alphabet(file: Path, seqs: list[str], lines: list[int]) -> None:
    """Validate all sequences in one vectorised pass (same alphabet as :func:`alphabet.encode`)."""
    blob = "".join(seqs).encode("ascii", "replace")
    bad = np.flatnonzero(BYTE_TO_INDEX[np.frombuffer(blob, dtype=np.uint8)] == INVALID)
    if not bad.size:
        return
    # str.encode(..., "replace") turns each non-ASCII character into one "?", so byte
    # offsets equal character offsets and the bad row is found by its cumulative length.
    ends = np.cumsum([len(s) for s in seqs])
    r = int(np.searchsorted(ends, bad[0], side="right"))
    p = int(bad[0] - (ends[r - 1] if r else 0))
    n_bad = int(np.count_nonzero(bad < ends[r])) - int(np.count_nonzero(bad < (ends[r - 1] if r else 0)))
    raise SequenceError(
        f"{file}:{lines[r]}: invalid character {seqs[r][p]!r} at position {p + 1} of the sequence "
        f"({n_bad} invalid in it); allowed: A C G T, N and IUPAC codes {IUPAC_OTHER}"
    )


def _parse_labels(file: Path, raw: list[str], lines: list[int]) -> tuple[bool, list]:
    """Return (all_int, values) or raise on a label that is not a finite number."""
    try:
        if all(_is_int_literal(s) for s in raw):
            return True, [int(s) for s in raw]
    except ValueError:  # pragma: no cover
        pass
    vals = []
    for s, line in zip(raw, lines):
        try:
            v = float(s)
        except ValueError:
            shown = s if s else "(empty)"
            raise TaskError(f"{file}:{line}: label {shown!r} is not a number") from None
        if not math.isfinite(v):
            raise TaskError(f"{file}:{line}: label {s!r} is not a finite number")
        vals.append(v)
    return False, vals


def load_task(path: str | Path, *, name: str | None = None) -> Task:
    """Load and validate a GUE-style task folder (see the module docstring for the rules)."""
    path = Path(path)
    if not path.is_dir():
        raise TaskError(f"{path}: not a task folder (expected a directory with train.csv, dev.csv, test.csv)")
    parsed = {}
    for split in SPLITS:
        file = path / f"{split}.csv"
        if not file.is_file():
            raise TaskError(f"{file}: missing file (a task folder needs {', '.join(s + '.csv' for s in SPLITS)})")
        seqs, raw, lines = read_sequence_csv(file, label_required=True)
        all_int, vals = _parse_labels(file, raw, lines)
        parsed[split] = (file, seqs, raw, lines, all_int, vals)

    classification = all(p[4] for p in parsed.values())
    splits: dict[str, Split] = {}
    n_classes = None
    if classification:
        max_lab = max(max(p[5]) for p in parsed.values())
        n_classes = max_lab + 1
        seen = np.zeros(max(n_classes, 1), dtype=bool)
        for split, (file, seqs, raw, lines, _, vals) in parsed.items():
            arr = np.asarray(vals, dtype=np.int64)
            neg = np.flatnonzero(arr < 0)
            if neg.size:
                j = int(neg[0])
                raise TaskError(f"{file}:{lines[j]}: class label {raw[j]!r} is negative; "
                                f"classification labels must be 0..K-1")
            seen[arr] = True
            splits[split] = Split(seqs, arr, file, np.asarray(lines, dtype=np.int64))
        if n_classes < 2:
            raise TaskError(f"{path}: classification task with a single class (every label is {max_lab})")
        absent = np.flatnonzero(~seen)
        if absent.size:
            raise TaskError(
                f"{path}: class labels must be 0..{n_classes - 1} but no row in any split has "
                f"label {', '.join(str(int(a)) for a in absent[:10])}"
            )
    else:
        for split, (file, seqs, raw, lines, _, vals) in parsed.items():
            splits[split] = Split(seqs, np.asarray(vals, dtype=np.float32), file,
                                  np.asarray(lines, dtype=np.int64))

    label_names = None
    lj = path / "labels.json"
    if lj.is_file():
        try:
            label_names = json.loads(lj.read_text())
        except json.JSONDecodeError as e:
            raise TaskError(f"{lj}:{e.lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(label_names, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in label_names.items()
        ):
            raise TaskError(f"{lj}: expected an object mapping label name -> integer id")
        if classification and any(not 0 <= v < n_classes for v in label_names.values()):
            raise TaskError(f"{lj}: ids must lie in 0..{n_classes - 1}")

    if classification:
        in_train = np.zeros(n_classes, dtype=bool)
        in_train[splits["train"].labels] = True
        for split in ("dev", "test"):
            sp = splits[split]
            unseen = np.flatnonzero(~in_train[sp.labels])
            if unseen.size:
                j = int(unseen[0])
                lab = int(sp.labels[j])
                names = {v: k for k, v in (label_names or {}).items()}
                shown = f"{lab} ({names[lab]!r})" if lab in names else str(lab)
                others = sorted({int(x) for x in sp.labels[unseen]} - {lab})
                raise TaskError(
                    f"{sp.path}:{int(sp.lines[j])}: class label {shown} of the {split} split never occurs in "
                    f"{splits['train'].path.name} ({unseen.size} {split} row(s) carry labels train lacks"
                    + (f", also {', '.join(map(str, others[:10]))}" if others else "")
                    + "); a classifier trained on train cannot predict it: move such rows to train or drop them")

    return Task(
        name=name or _default_name(path),
        path=path,
        splits=splits,
        kind="classification" if classification else "regression",
        n_classes=n_classes,
        label_names=label_names,
    )
