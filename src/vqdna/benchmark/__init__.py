"""``vqdna benchmark``: every tokenizer through the same pipeline at an equal budget (issues 4, 9).

For each tokenizer (``hrq vq bpe kmer3 kmer6 nt6 char``; :mod:`.pipeline`):

1. **vocabulary**: VQ/HRQ are trained (``small`` preset, steps by budget) and BPE is trained
   (4096 tokens, ``tokenizers`` library) on the benchmark corpus; the others are fixed rules.
2. **tokenize** the corpus once (:func:`vqdna.codes.write_codes`).
3. **pre-train the same BERT preset on the same number of nucleotides.** Every tokenizer runs
   the same number of steps with the same batch of windows, and every window covers the same
   number of nucleotides ``window_nt``: its length in tokens is
   ``seq_length = round(window_nt / r)``, where ``r`` = nucleotides per token of *that*
   tokenizer on the corpus (total nucleotides / total tokens of its code store: 1.0 for
   char, VQ, HRQ and the overlapping k-mers, ~5.3 for BPE, ~5.9 for NT 6-mers). Nucleotides
   seen = ``steps x batch x seq_length x r`` (equal up to rounding ``seq_length`` to an integer;
   the actual value is reported). A compressing tokenizer thus reads fewer tokens per step
   and costs fewer FLOPs for the same DNA; the context in nucleotides is the same for all.
4. **fine-tune every task** with the same protocol and seeds:
   :meth:`Budget.finetune_config` (method, lr, epochs, batch of the budget), training rows
   subsampled to ``max_train`` (stratified, seed 0: every row of the table and every seed sees
   the same rows), best dev epoch, test scored once (:func:`vqdna.lm.finetune.finetune`).
5. **linear probing** ("Lin."): mean-pooled frozen *token embeddings*, then the project's
   linear probe (:func:`vqdna.evaluate.linear_probe`: logistic regression or ridge, strength
   chosen on dev), on the same training rows as fine-tuning.

Strided learned rows ``hrq-s2``, ``hrq-s4``, ``hrq-s8`` (``vq-s4``, ...; :mod:`.rows`) run the
same pipeline with a tokenizer that emits one code per ``stride`` nucleotides (issue 12): the
LM's windows cover the same ``window_nt`` nucleotides in ``stride``-times fewer tokens.

Plus, on the same splits, rows and seeds (:mod:`.rows`): random-init controls
``<tokenizer>-random`` (the same LM and frozen vocabulary, fine-tuned without pre-training)
and reference rows without pre-training (:mod:`.references`): ``kmer-bag``, ``kmer-bag-all``
and ``cnn``. The fine-tuning table prints the paper's DNABERT-2 and VQDNA (HRQ) numbers beside
ours on the GUE tasks (:mod:`.paper`).

Budgets (:data:`BUDGETS`, :mod:`.budgets`): ``quick``, ``standard``, ``full`` and a hidden
``test``; ``--seeds`` / ``--max-train`` / ``--small-task-rows`` / ``--large-task-seeds`` override
theirs. Every field is written to ``results.md`` / ``results.json``.

Output folder::

    results.md  results.csv  results.json  results.png     (:mod:`.report`, from :mod:`.tables`)
    cells/      one JSON per (row, task, kind) (:mod:`.cells`); a killed benchmark, run again
                with the same --out, skips every cell that exists (and resumes the tokenizer /
                LM training from checkpoints)
    work/       corpus slice, tokenizers, code stores, language models, task folders built here
                (``--work DIR`` puts them elsewhere)

Cost columns per tokenizer: parameters (LM, and tokenizer network for VQ/HRQ), tokens per 512
nucleotides (measured on 512-nt windows of the corpus), FLOPs per sequence = forward pass of the
LM on the tokens of 512 nt, ``2 x N x T + 4 x layers x T^2 x hidden`` (``N`` = non-embedding
LM parameters, i.e. without lookup tables; ``T`` = tokens + [CLS]; the second term is
QK^T and AV), plus for VQ/HRQ the tokenizer's own encoder on 512 nt (reported separately and in
the total), and wall time of every stage.

Modules: :mod:`.budgets` (the budgets), :mod:`.rows` (row names), :mod:`.inputs` (tasks and
corpus), :mod:`.cells` (cell files, resume), :mod:`.pipeline` (a tokenizer's cells),
:mod:`.references` (reference cells), :mod:`.run` (:func:`run_benchmark`, ``--jobs``),
:mod:`.tables` (cells to tables), :mod:`.report` (markdown / csv / png), :mod:`.paper`.
"""
from __future__ import annotations

from .budgets import BUDGETS, FULL_RECIPE, PUBLIC_BUDGETS, Budget, get_budget
from .cells import cell_path, read_cell, write_cell
from .inputs import prepare_corpus, resolve_tasks, task_name
from .paper import PAPER_GUE
from .pipeline import lm_costs, probe_features
from .report import aggregate, render_markdown
from .rows import (ALL_TOKENIZERS, LEARNED, REFERENCES, STRIDES, RowPlan, is_pipeline, learned_row, parse_rows,
                   parse_tokenizers, random_base)
from .run import _COST, row_queue, run_benchmark, work_queue

__all__ = ["run_benchmark", "BUDGETS", "FULL_RECIPE", "PUBLIC_BUDGETS", "Budget", "get_budget", "ALL_TOKENIZERS",
           "LEARNED", "REFERENCES", "STRIDES", "RowPlan", "is_pipeline", "learned_row", "parse_rows",
           "parse_tokenizers", "random_base", "task_name",
           "resolve_tasks", "prepare_corpus", "cell_path", "read_cell", "write_cell", "lm_costs", "probe_features",
           "aggregate", "render_markdown", "row_queue", "work_queue", "PAPER_GUE", "_COST"]
