"""The rows of the benchmark table and how ``--tokenizers`` names them.

Three kinds of row, told apart by name:

* **pipelines** (:data:`ALL_TOKENIZERS`: ``hrq vq bpe kmer3 kmer6 nt6 char``): the tokenizer is
  built, the corpus tokenized, the LM pre-trained, then every task is fine-tuned and probed.
  ``all`` stands for the seven.
* **random-init controls** (``<tokenizer>-random``, e.g. ``hrq-random``, ``char-random``): the
  same LM architecture, the same frozen vocabulary (codebook) and the same fine-tuning config
  as ``<tokenizer>``, but no pre-training (:func:`vqdna.lm.finetune.finetune` with
  ``random_init=True`` on ``<tokenizer>``'s LM folder, which keeps only the frozen codebooks).
  Fine-tuning cells only (no probe: its features do not depend on pre-training for VQ/HRQ).
  ``<tokenizer>`` must be in the same run (an error otherwise): the control reads its LM folder
  and is only read against it (pre-trained minus random = what pre-training adds).
* **reference rows** (:data:`REFERENCES`), no pre-training at all: ``kmer-bag`` (bag of k-mers
  + logistic / ridge regression on the same training rows), ``kmer-bag-all`` (the same on every
  training row) and ``cnn`` (a 1D CNN trained from scratch on the same rows,
  :mod:`vqdna.references.cnn`). ``kmer-bag`` is in every run, named or not: it costs seconds and
  every table is read against it; ``kmer-bag-all`` runs when named or when the budget's
  ``kmer_all`` says so; ``cnn`` only when named.

Names may come in any order; the table lists pipelines, then controls, then references.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .budgets import PIPELINE_ROWS, Budget

__all__ = ["ALL_TOKENIZERS", "LEARNED", "REFERENCES", "RANDOM_SUFFIX", "RowPlan", "parse_rows", "parse_tokenizers",
           "random_base"]

ALL_TOKENIZERS = PIPELINE_ROWS
LEARNED = ("hrq", "vq")
REFERENCES = ("kmer-bag", "kmer-bag-all", "cnn")
RANDOM_SUFFIX = "-random"


def random_base(name: str) -> str | None:
    """``"hrq"`` for ``"hrq-random"``; None for a name that is not a random-init control."""
    if name.endswith(RANDOM_SUFFIX) and name[: -len(RANDOM_SUFFIX)] in ALL_TOKENIZERS:
        return name[: -len(RANDOM_SUFFIX)]
    return None


def _choices() -> str:
    return (f"pipelines {','.join(ALL_TOKENIZERS)} (or 'all'); random-init controls <pipeline>{RANDOM_SUFFIX} "
            f"(e.g. hrq{RANDOM_SUFFIX}); references {','.join(REFERENCES)}")


def parse_tokenizers(spec) -> list[str]:
    """The row names of a ``--tokenizers`` value (comma-separated string or list), checked and
    in the given order; ``all`` expands to the seven pipelines."""
    raw = [t.strip() for t in (spec.split(",") if isinstance(spec, str) else spec) if t.strip()]
    names: list[str] = []
    for t in raw:
        names.extend(ALL_TOKENIZERS if t == "all" else [t])
    bad = [t for t in names if t not in ALL_TOKENIZERS and t not in REFERENCES and random_base(t) is None]
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
    refs = {"kmer-bag"} | {r for r in names if r in REFERENCES}
    if budget.kmer_all:
        refs.add("kmer-bag-all")
    return RowPlan(pipelines=[t for t in names if t in ALL_TOKENIZERS],
                   random=[t for t in names if random_base(t) is not None],
                   references=[r for r in REFERENCES if r in refs])
