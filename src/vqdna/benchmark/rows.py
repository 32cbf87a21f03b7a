"""The rows of the benchmark table and how ``--tokenizers`` names them.

Three kinds of row, told apart by name:

* **pipelines** (:data:`ALL_TOKENIZERS`: ``hrq vq bpe kmer3 kmer6 nt6 char``): the tokenizer is
  built, the corpus tokenized, the LM pre-trained, then every task is fine-tuned and probed.
  ``all`` stands for the seven.
* **strided learned pipelines** (``<learned>-s<stride>``, stride 2, 4 or 8: ``hrq-s4``,
  ``vq-s8``, ...; issue 12): the learned tokenizer ``<learned>`` with the budget's preset, steps
  and overrides plus ``stride=<stride>`` (one code per ``stride`` nucleotides), then the same
  pipeline: the LM window covers the same ``window_nt`` nucleotides in ``stride``-times fewer
  tokens (:func:`vqdna.benchmark.pipeline.pretrain_cell`). Stride 1 is the row ``<learned>``
  itself; only learned tokenizers take a stride. Their codes cannot feed the nucleotide-reading
  model of ``unfreeze_tokenizer``, so a budget that unfreezes the tokenizer refuses them.
* **random-init controls** (``<tokenizer>-random``, e.g. ``hrq-random``, ``char-random``): the
  same LM architecture, the same frozen vocabulary (codebook) and the same fine-tuning config
  as ``<tokenizer>``, but no pre-training (:func:`vqdna.lm.finetune.finetune` with
  ``random_init=True`` on ``<tokenizer>``'s LM folder, which keeps only the frozen codebooks).
  Fine-tuning cells only (no probe: its features do not depend on pre-training for VQ/HRQ).
  ``<tokenizer>`` (a strided one too: ``hrq-s4-random``) must be in the same run (an error
  otherwise): the control reads its LM folder and is only read against it (pre-trained minus
  random = what pre-training adds).
* **reference rows** (:data:`REFERENCES`), no pre-training at all: ``kmer-bag`` (bag of k-mers
  + logistic / ridge regression on the same training rows), ``kmer-bag-all`` (the same on every
  training row) and ``cnn`` (a 1D CNN trained from scratch on the same rows,
  :mod:`vqdna.references.cnn`). ``kmer-bag`` is in every run, named or not: it costs seconds and
  every table is read against it; ``kmer-bag-all`` runs when named or when the budget's
  ``kmer_all`` says so; ``cnn`` only when named.

Names may come in any order; the table lists pipelines, then controls, then references.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .budgets import PIPELINE_ROWS, Budget

__all__ = ["ALL_TOKENIZERS", "LEARNED", "REFERENCES", "RANDOM_SUFFIX", "STRIDES", "RowPlan", "is_pipeline",
           "learned_row", "parse_rows", "parse_tokenizers", "random_base"]

ALL_TOKENIZERS = PIPELINE_ROWS
LEARNED = ("hrq", "vq")
REFERENCES = ("kmer-bag", "kmer-bag-all", "cnn")
RANDOM_SUFFIX = "-random"
STRIDES = (2, 4, 8)  # of the strided rows <learned>-s<stride> (stride 1 is the row <learned>)
_STRIDED = re.compile(r"^(?P<base>[a-z0-9]+)-s(?P<stride>[0-9]+)$")


def learned_row(name: str) -> tuple[str, int] | None:
    """(quantizer, stride) of a learned-tokenizer row: ``("hrq", 1)`` for ``"hrq"``, ``("hrq", 4)``
    for ``"hrq-s4"``; None for any other name (a bad stride too: :func:`parse_tokenizers` says why)."""
    if name in LEARNED:
        return name, 1
    m = _STRIDED.match(name)
    if m and m["base"] in LEARNED and int(m["stride"]) in STRIDES and m["stride"] == str(int(m["stride"])):
        return m["base"], int(m["stride"])
    return None


def is_pipeline(name: str) -> bool:
    """A row with its own tokenizer and pre-trained LM: one of :data:`ALL_TOKENIZERS` or a strided learned row."""
    return name in ALL_TOKENIZERS or learned_row(name) is not None


def random_base(name: str) -> str | None:
    """``"hrq"`` for ``"hrq-random"`` (``"hrq-s4"`` for ``"hrq-s4-random"``); None for a name that
    is not a random-init control."""
    if name.endswith(RANDOM_SUFFIX) and is_pipeline(name[: -len(RANDOM_SUFFIX)]):
        return name[: -len(RANDOM_SUFFIX)]
    return None


def _strided_error(name: str) -> str | None:
    """Why ``name``, shaped like a strided row (``<base>-s<digits>``), is not one; None otherwise."""
    m = _STRIDED.match(name[: -len(RANDOM_SUFFIX)] if name.endswith(RANDOM_SUFFIX) else name)
    if m is None or learned_row(m.group(0)) is not None:
        return None
    strides = ", ".join(map(str, STRIDES))
    if m["base"] in LEARNED:
        return (f"{name}: stride {m['stride']} is not one of {strides} nucleotides per code "
                f"(stride 1 is the row {m['base']} itself)")
    if m["base"] in ALL_TOKENIZERS:
        return (f"{name}: only the learned tokenizers ({', '.join(LEARNED)}) take a stride; "
                f"{m['base']} is a fixed rule (use {m['base']})")
    return None


def _choices() -> str:
    return (f"pipelines {','.join(ALL_TOKENIZERS)} (or 'all'); strided learned pipelines <learned>-s<stride> "
            f"(learned {','.join(LEARNED)}, stride {','.join(map(str, STRIDES))}, e.g. hrq-s4); random-init controls "
            f"<pipeline>{RANDOM_SUFFIX} (e.g. hrq{RANDOM_SUFFIX}, hrq-s4{RANDOM_SUFFIX}); "
            f"references {','.join(REFERENCES)}")


def parse_tokenizers(spec) -> list[str]:
    """The row names of a ``--tokenizers`` value (comma-separated string or list), checked and
    in the given order; ``all`` expands to the seven pipelines (not the strided ones)."""
    raw = [t.strip() for t in (spec.split(",") if isinstance(spec, str) else spec) if t.strip()]
    names: list[str] = []
    for t in raw:
        names.extend(ALL_TOKENIZERS if t == "all" else [t])
    for t in names:
        why = _strided_error(t)
        if why:
            raise ValueError(why)
    bad = [t for t in names if not is_pipeline(t) and t not in REFERENCES and random_base(t) is None]
    if bad or not names:
        raise ValueError(f"unknown row name(s) {bad}; choose from {_choices()}")
    if len(set(names)) != len(names):
        dup = sorted({t for t in names if names.count(t) > 1})
        raise ValueError(f"row(s) {dup} listed twice in {names}")
    for t in names:
        base = random_base(t)
        if base is not None and base not in names:
            raise ValueError(f"{t} needs {base} in the same run: it fine-tunes {base}'s LM architecture and frozen "
                             f"vocabulary from random weights and is read against {base}; add {base} to --tokenizers")
    return names


@dataclass
class RowPlan:
    """The rows of one run, by kind (see the module docstring)."""

    pipelines: list[str] = field(default_factory=list)
    random: list[str] = field(default_factory=list)  # "<pipeline>-random"
    references: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return self.pipelines + self.random + self.references

    def units(self) -> list[list[str]]:
        """Rows that must run in one process, in order: a pipeline with its random-init controls
        (they read its LM folder), and each cnn row alone; the k-mer references are left out
        (the parent process computes them, in seconds)."""
        out = [[p] + [r for r in self.random if random_base(r) == p] for p in self.pipelines]
        return out + [[r] for r in self.references if r == "cnn"]


def parse_rows(spec, budget: Budget) -> RowPlan:
    """The :class:`RowPlan` of ``spec`` (``None`` or empty: the budget's ``rows``)."""
    names = parse_tokenizers(spec if spec else list(budget.rows))
    strided = [t for t in names if (learned_row(random_base(t) or t) or ("", 1))[1] > 1]
    if strided and budget.finetune_config().unfreeze_tokenizer:
        raise ValueError(f"budget {budget.name} fine-tunes with unfreeze_tokenizer, which needs a stride-1 tokenizer "
                         f"(one code per nucleotide); strided row(s) {strided} cannot run in it")
    refs = {"kmer-bag"} | {r for r in names if r in REFERENCES}
    if budget.kmer_all:
        refs.add("kmer-bag-all")
    return RowPlan(pipelines=[t for t in names if is_pipeline(t)],
                   random=[t for t in names if random_base(t) is not None],
                   references=[r for r in REFERENCES if r in refs])
