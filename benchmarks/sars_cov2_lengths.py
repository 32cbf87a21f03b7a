"""SARS-CoV-2 lineage classification at 1,000 nt, 8,000 nt and the whole genome (issue 22): the
paper's Table 6 shape on a task with signal, one row per tokenizer beside a k-mer reference.

* **Task** (``vqdna data nextstrain``, :mod:`vqdna.data.nextstrain`): the tips of a Nextstrain tree
  (default ``../shared/data/sars-cov-2/tree_2025-09-09.json``), classes = the Pango lineage cut at
  3 levels on the unaliased name (``--label-level 3``: JN.1 = BA.2.86.1.1 counts as BA.2.86), classes
  of >= 50 tips (12 on that tree; ``--min-classes 5`` fails otherwise); splits by tip (80/10/10,
  identical genomes in one split), dev/test rows identical to a training row dropped. Per tip one
  row: a window of 1,000 or 8,000 nt at a seeded random start (``--per-tip random-window``), or the
  whole genome (``--per-tip whole``). The same tips and splits at every length (the split does not
  depend on the row), so only the row length changes along the table.
* **Training rows**: ``--max-train-per-class`` (20) rows per class: 240 rows on 12 classes, so that
  one LM cell (a seed at one length) fits about 1.5 h of one core at its slowest (stride 1 and char
  at 8k, 8,000 tokens a sequence, ~5.5 s a training pass); dev and test keep every tip (~260 each).
* **References** (no LM, seconds to minutes): ``kmer-bag`` (1- to 6-mer frequencies, logistic
  regression, C on dev: :mod:`vqdna.references.kmer`) on the same 240 training rows, and
  ``kmer-bag-all`` on every training tip (2,101), the same dev and test rows.
* **LM rows** (``--rows hrq-s1,hrq-s4,hrq-s8,bpe,char``; none by default, they take ~15 CPU-hours):
  the harness of ``benchmarks/species_table6.py`` (equal pre-training compute per row, the ``cpu``
  fine-tuning recipe, a frozen-LM probe, costs per genome, the "does not fit" rule at 16,384 tokens),
  with tokenizers and LMs trained on ``train_genomes.fa``: the genomes of the **training tips only**,
  so no LM reads a dev or test genome. ``--estimate`` prints the expected CPU time of every row.

Tasks are built into ``--tasks-dir`` (``runs/sars-cov-2-lengths/tasks``: ``<L>/`` capped, ``<L>-all/``
uncapped, git-ignored), cells into ``--out``; ``results.json``, ``results.md`` and ``settings.json``
into ``--results`` (``benchmarks/results/sars-cov-2-lengths``)::

    python benchmarks/sars_cov2_lengths.py                       # the k-mer references, a few minutes
    python benchmarks/sars_cov2_lengths.py --estimate            # CPU time per LM row, nothing trained
    python benchmarks/sars_cov2_lengths.py --rows hrq-s4 --threads 1   # one LM row (~2-4 h), resumable

``results.json``: ``{"lengths": [1000, 8000, "whole"], "rows": {ROW: {"LENGTH": {"accuracy",
"macro_f1", "seeds"}}}, ...}`` (fractions; lengths as strings in ``rows``), plus the chance levels,
the task, the estimates and every cell (``details``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import species_table6 as t6  # noqa: E402  (the harness: cells, pre-training, fit check, costs)

LM_ROWS = t6.ROWS  # hrq-s1, hrq-s4, hrq-s8, bpe, char
REFERENCES = ("kmer-bag", "kmer-bag-all")
SHARED = "../shared/data/sars-cov-2"
#: one training pass (forward + backward) of one sequence of a tiny LM (2 x 64, rotary) on one thread
#: of this CPU, by tokens: the fit checks of benchmarks/results/species-table6 (a busy machine;
#: gradient checkpointing from 2,000 tokens there); interpolated on log-log axes, extrapolated with
#: the attention's T^2 above 8,000 tokens
PASS_SECONDS = ((125, 0.026), (250, 0.049), (1000, 0.12), (1705, 0.30), (2000, 0.56), (4000, 1.45),
                (6777, 3.49), (8000, 5.9))
#: nt per token of a row before it is trained (bpe: the 4,096-token BPE of yeast, species-table6)
NT_PER_TOKEN = {"hrq-s1": 1.0, "hrq-s2": 2.0, "hrq-s4": 4.0, "hrq-s8": 8.0, "bpe": 5.2, "char": 1.0}
#: knt/s of `vqdna tokenize` (write_codes) with an HRQ small tokenizer on one thread, by stride (measured
#: here on 2.09 Mnt of these genomes); the ~63 Mnt of training genomes take 12, 2.6 and 1.4 min at 1, 4, 8
TOKENIZE_KNT_S = {1: 89.0, 2: 200.0, 4: 408.0, 8: 737.0}
#: minutes to train a row's tokenizer (README: HRQ small, 1,200 steps, 16 min; scaled by --tok-steps)
TOKENIZER_MIN = {"hrq": 16.0, "bpe": 5.0, "char": 0.0}


@dataclass
class Settings(t6.Settings):
    """The species table's settings with this table's task and defaults (every field a flag)."""

    rows: tuple = ()  # LM rows; the k-mer references always run
    lengths: tuple = (1000, 8000, "whole")
    tasks_dir: str = "runs/sars-cov-2-lengths/tasks"
    corpus: tuple = ()  # default: train_genomes.fa of the task (training tips only)
    tree: str = f"{SHARED}/tree_2025-09-09.json"
    reference: str = f"{SHARED}/reference.fasta"
    label: str = "Nextclade_pango"
    label_level: int = 3
    unalias: bool = True
    min_class_size: int = 50
    min_classes: int = 5
    max_train_per_class: int = 20
    task_seed: int = 0
    whole_nt: int = 29903  # the reference's length: what "whole" means for costs and checkpointing
    epochs: tuple = (3,)
    max_train: tuple = (0,)  # the task is capped already (max_train_per_class)
    batch_rows: tuple = (32, 8, 2)
    # the LM at 0.1x the head's lr at every length: with the full rate (1.0) every fine-tuned cell sat at
    # chance (dev accuracy 3-19%) while a probe of the same frozen LMs read 87-92% on dev at the whole
    # genome; 0.1x raised whole-genome dev accuracy to 55 / 61% (bpe) and 58 / 36% (hrq-s8) in
    # finetune_variants.jsonl. Chosen on those dev numbers, for every LM row and length alike.
    backbone_lr_scale: tuple = (0.1,)
    # LP-FT, the head first trained alone on the frozen LM (100 epochs, milliseconds): the 0.1x recipe
    # still left every fine-tuned cell far below a probe of the same LM; with the warm-up the whole-
    # genome hrq-s8 dev accuracy went from 58 / 36% to 73 / 70% (2 seeds, sars_cov2_finetune_variants.py,
    # tag lpft100). Chosen on those dev numbers, for every LM row, length and random-init control alike
    head_warmup_epochs: tuple = (100,)
    seeds: int = 2
    # every LM row beside its random-init control (fine-tuned and probed): what pre-training adds
    random_controls: tuple = ("probe", "finetune")
    cost_window_nt: int = 29903  # costs per genome

    def task_folder(self, L, out: Path) -> Path:
        return build_task(self, L, capped=True)

    def nucleotides(self, L) -> int:
        return self.whole_nt if L == "whole" else int(L)

    def training_genomes(self) -> list[str]:
        if self.corpus:
            return list(self.corpus)
        return [str(build_task(self, "whole", capped=True) / "train_genomes.fa")]


def smoke_settings(s: Settings) -> Settings:
    """The LM path end to end in a few minutes: tiny budgets, 3 rows per class, 1k and 2k windows."""
    return dataclasses.replace(
        s, rows=("hrq-s8", "char"), lengths=(1000, 2000), max_train_per_class=3, tok_preset="tiny", tok_steps=30,
        bpe_vocab=256, pretrain_tflop=0.02, pretrain_window_nt=256, pretrain_batch=4, min_pretrain_steps=4,
        epochs=(1,), batch_rows=(8, 4), seeds=2, checkpointing_from_nt=2000, max_tokens=1500, max_step_s=120.0,
        cost_window_nt=2048, cost_repeats=1, cost_timeout_s=300.0)


def build_task(s: Settings, L, *, capped: bool) -> Path:
    """The task of length L (``<L>/``, training rows capped per class) or its uncapped twin
    (``<L>-all/``, every training tip: ``kmer-bag-all``), built when missing."""
    from vqdna.data.nextstrain import import_nextstrain

    d = Path(s.tasks_dir) / (str(L) if capped else f"{L}-all")
    if not (d / "summary.json").exists():
        t6.log(f"building the task {d}")
        import_nextstrain(s.tree, s.reference, d, label=s.label, label_level=s.label_level, unalias=s.unalias,
                          min_class_size=s.min_class_size, min_classes=s.min_classes, seed=s.task_seed,
                          per_tip="whole" if L == "whole" else "random-window",
                          window=1 if L == "whole" else int(L),
                          max_train_per_class=s.max_train_per_class if capped else None, progress=False)
    return d


def task_info(s: Settings) -> dict:
    """Classes, tips and rows of the tasks, and the chance levels of the test split."""
    info = {}
    for L in s.lengths:
        sm = json.loads((build_task(s, L, capped=True) / "summary.json").read_text())
        test = {c: v["windows"]["test"] for c, v in sm["classes"].items()}
        n_test = sum(test.values())
        top = max(test.values()) / n_test
        k = sm["n_classes"]
        info[str(L)] = dict(
            n_classes=k, tips=sm["tips_used"], tips_per_split=sm["tips_per_split"], rows=sm["rows"],
            train_rows_all=sm["train_rows_before_cap"] or sm["rows"]["train"],
            dedupe_dropped=sm["window_duplicates"]["rows_dropped"],
            genome_length=sm["genome_length"],
            corpus_nt=round(sm["tips_per_split"]["train"] * sm["genome_length"]["mean"]),  # ~ train_genomes.fa
            classes={c: sum(v["tips"].values()) for c, v in sm["classes"].items()},
            chance=dict(uniform_accuracy=1 / k, majority_accuracy=top,
                        majority_macro_f1=(2 * top / (1 + top)) / k))  # F1 of the one class predicted, over k
    return info


# ---------------------------------------------------------------- CPU-time estimates


def pass_seconds(tokens: float) -> float:
    """One training pass of one sequence (:data:`PASS_SECONDS`, log-log interpolation)."""
    pts = PASS_SECONDS
    if tokens <= pts[0][0]:
        return pts[0][1] * tokens / pts[0][0]
    if tokens >= pts[-1][0]:
        return pts[-1][1] * (tokens / pts[-1][0]) ** 2
    for (a, ya), (b, yb) in zip(pts, pts[1:]):
        if a <= tokens <= b:
            f = math.log(tokens / a) / math.log(b / a)
            return math.exp(math.log(ya) + f * math.log(yb / ya))
    raise AssertionError(tokens)


def estimate(s: Settings, info: dict, rows=LM_ROWS) -> dict:
    """Expected single-thread CPU minutes of every LM row, before anything is trained: the
    tokenizer (training it, and for HRQ tokenizing the training genomes), pre-training
    (``pretrain_tflop`` at ~20 GFLOP/s), and per length the seeds (epochs x
    training rows of training passes, dev every epoch and test once at a third of a pass) and the
    probe (one forward of every row); a length whose tokens exceed ``max_tokens`` does not fit."""
    out = {}
    for row in rows:
        kind = "hrq" if row.startswith("hrq") else row
        npt = NT_PER_TOKEN.get(row, 1.0)
        tok_min = TOKENIZER_MIN[kind] * (s.tok_steps / 1200 if kind == "hrq" else 1.0)
        if kind == "hrq":  # tokenizing the pre-training genomes (char and bpe: not measured, taken as 0)
            tok_min += info[str(s.lengths[-1])]["corpus_nt"] / TOKENIZE_KNT_S.get(int(row[-1]), 89.0) / 1e3 / 60
        cells, total = {}, tok_min + s.pretrain_tflop * 1e12 / 20e9 / 60
        for L in s.lengths:
            r = info[str(L)]["rows"]
            tokens = math.ceil(s.nucleotides(L) / npt)
            if tokens > s.max_tokens:
                cells[str(L)] = dict(tokens=tokens, fits=False,
                                     reason=f"{tokens:,} tokens per sequence > max {s.max_tokens:,}")
                continue
            p = pass_seconds(tokens)
            epochs = t6.per_length(s.epochs, s.lengths, L)
            seed_s = (epochs * r["train"] + (epochs * r["dev"] + r["test"]) / 3) * p
            probe_s = (r["train"] + r["dev"] + r["test"]) / 3 * p
            cells[str(L)] = dict(tokens=tokens, fits=True, pass_s=round(p, 3), min_per_seed=round(seed_s / 60, 1),
                                 probe_min=round(probe_s / 60, 1))
            total += (s.seeds * seed_s + probe_s) / 60
        out[row] = dict(nt_per_token=npt, lengths=cells, total_min=round(total, 1))
    return out


# ---------------------------------------------------------------- the run


def run(s: Settings, out: Path) -> dict:
    import torch

    torch.set_num_threads(s.threads)
    cells = out / "cells"
    cells.mkdir(parents=True, exist_ok=True)
    t6.check_settings(s, out)
    cell = t6.cell_maker(cells)
    for L in s.lengths:  # build every task first: the same tips and splits at every length
        build_task(s, L, capped=True)
        build_task(s, L, capped=False)
    info = task_info(s)
    for L in s.lengths:
        cell(f"kmer-bag_{L}", lambda: t6.kmer_cell(L, s, out))
        cell(f"kmer-bag-all_{L}", lambda: t6.kmer_cell(L, s, out, row="kmer-bag-all", all_rows=True,
                                                       folder=build_task(s, L, capped=False)))
    est = estimate(s, info, s.rows)
    for row in s.rows:
        t6.log(f"{row}: estimated {est[row]['total_min'] / 60:.1f} CPU-hours (one thread)")
        t6.run_row(row, s, out, cell)
    return collect(s, out, info)


def _mean(cells: list[dict]) -> dict:
    acc = [c["test"]["accuracy"] for c in cells]
    f1 = [c["test"]["f1_macro"] for c in cells]
    r = dict(accuracy=round(statistics.mean(acc), 4), macro_f1=round(statistics.mean(f1), 4), seeds=len(cells))
    if len(cells) > 1:
        r.update(accuracy_std=round(statistics.stdev(acc), 4), macro_f1_std=round(statistics.stdev(f1), 4))
    return r


def rows_with_cells(s: Settings, out: Path) -> tuple:
    """The LM rows that ``--rows`` names or that have a finished cell in OUT (in table order): one
    ``--rows`` run at a time adds its row to the table without dropping the others'."""
    done = {p.name.split("_", 1)[0] for p in (out / "cells").glob("*.json")}
    return tuple(r for r in LM_ROWS if r in s.rows or r in done)


def saved_settings(out: Path) -> Settings:
    """The settings OUT's cells were made with (OUT/settings.json, as the run wrote it): its tasks,
    rows and caps; a setting newer than the file takes its default, as the resume check reads it."""
    saved = json.loads((out / "settings.json").read_text())
    names = {f.name for f in dataclasses.fields(Settings)}
    return Settings(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in names})


def collect(s: Settings, out: Path, info: dict | None = None) -> dict:
    """results.json: the table (``rows``: every LM row with cells in OUT), the chance levels, the task,
    the estimates, every cell."""
    info = info or task_info(s)
    s = dataclasses.replace(s, rows=rows_with_cells(s, out))
    details = t6.gather(s, out)
    cells = out / "cells"
    rows: dict = {}
    for ref in REFERENCES:
        for L in s.lengths:
            c = t6.read(cells / f"{ref}_{L}.json")
            if c:
                rows.setdefault(ref, {})[str(L)] = dict(_mean([c]), train_rows=c["train_rows"])
        details.setdefault("references", {})[ref] = {str(L): t6.read(cells / f"{ref}_{L}.json") for L in s.lengths}
    for row in s.rows:
        for name in (row, f"{row}-random"):  # the row and its random-init control, where run
            for L in s.lengths:
                seeds = details["seeds"].get(f"{name}_{L}") or []
                if seeds:
                    rows.setdefault(name, {})[str(L)] = _mean(seeds)
                probe = (details.get("probe") or {}).get(f"{name}_{L}")
                if probe:
                    rows.setdefault(f"{name}-probe", {})[str(L)] = _mean([probe])
    return dict(lengths=list(s.lengths), rows=rows, task=info, estimates=estimate(s, info), details=details)


def publish(results: dict, where: Path) -> None:
    """results.json, results.md and settings.json (the settings of the table: its rows are every row tabled)."""
    where.mkdir(parents=True, exist_ok=True)
    t6.write(where / "results.json", results)
    t6.write(where / "settings.json", json.loads(json.dumps(results["details"]["settings"])))
    (where / "results.md").write_text(render(results))


# ---------------------------------------------------------------- tables


def _per_length_text(values, lengths) -> str:
    """A per-length setting as text: '3' (one value) or '32 / 8 / 2' (one per length)."""
    return " / ".join(f"{v:g}" for v in values) if len(values) == len(lengths) or len(values) == 1 else str(values)


def render(r: dict) -> str:
    d = r["details"]
    s = d["settings"]
    lengths = r["lengths"]
    info = r["task"]
    first = info[str(lengths[0])]
    ch = first["chance"]
    head = "| row | " + " | ".join(t6._len(x) for x in lengths) + " |"
    L = [f"## SARS-CoV-2 lineages ({first['n_classes']} classes: {s['label']} at level {s['label_level']}"
         f"{', unaliased' if s['unalias'] else ''}), test accuracy / macro-F1 %", "",
         f"Chance: {100 * ch['uniform_accuracy']:.1f}% accuracy for a uniform guess; always the largest test class: "
         f"{100 * ch['majority_accuracy']:.1f}% accuracy, {100 * ch['majority_macro_f1']:.1f}% macro-F1.", "",
         head, "|---|" + "---:|" * len(lengths)]
    notes = []
    lm = list(s["rows"])
    for row in list(REFERENCES) + lm + [f"{x}-random" for x in lm] + [f"{x}-probe" for x in lm] + \
            [f"{x}-random-probe" for x in lm]:
        got = r["rows"].get(row, {})
        if row.endswith(("-probe", "-random")) and not got:
            continue
        cols = []
        for x in lengths:
            c = got.get(str(x))
            fit = d["fit"].get(f"{row}_{x}")
            if c:
                sd = f" ± {100 * c['accuracy_std']:.1f}" if "accuracy_std" in c else ""
                # the best epoch of each seed: 0 is the warmed head on the frozen LM (LP-FT), kept on dev
                best = [str(e["best_epoch"]) for e in d["seeds"].get(f"{row}_{x}", []) if "best_epoch" in e]
                cols.append(f"{100 * c['accuracy']:.1f}{sd} / {100 * c['macro_f1']:.1f}"
                            + (f" ({c['seeds']} seeds" + (f", best epoch {'/'.join(best)}" if best else "") + ")"
                               if c["seeds"] > 1 else ""))
            elif fit and not fit["fits"]:
                notes.append(f"{row} at {t6._len(x)}: {fit['reason']}")
                cols.append(f"does not fit [{len(notes)}]")
            else:
                cols.append("–")
        name = {"kmer-bag": f"*kmer-bag ({first['rows']['train']} rows)*",
                "kmer-bag-all": f"*kmer-bag-all ({first['train_rows_all']:,} rows)*"}.get(row, row)
        L.append(f"| {name} | " + " | ".join(cols) + " |")
    L += [""] + [f"[{i}] {n}" for i, n in enumerate(notes, 1)] + [""]
    L += [f"Fine-tuned rows: the cpu recipe (every weight, mean+max pooling, lr 1e-3), the LM's weights at "
          f"{_per_length_text(s.get('backbone_lr_scale', [1.0]), lengths)} the head's lr, {_per_length_text(s['epochs'], lengths)} "
          f"epochs after {_per_length_text(s.get('head_warmup_epochs', [0]), lengths)} epochs of the head alone on the frozen LM "
          f"(LP-FT; the warmed head is epoch 0, kept when dev prefers it), batch {_per_length_text(s['batch_rows'], lengths)}; probe: logistic regression on the frozen LM's "
          f"mean+max pooled states (C on dev), the same training rows.", ""]
    L += ["## The task", "", "| length | rows train / dev / test | training tips | dev/test rows dropped "
          "(identical to a training row) |", "|---|---:|---:|---:|"]
    for x in lengths:
        t = info[str(x)]
        L.append(f"| {t6._len(x)} | {t['rows']['train']} / {t['rows']['dev']} / {t['rows']['test']} | "
                 f"{t['train_rows_all']:,} | {t['dedupe_dropped']} |")
    L += ["", "Classes (tips): " + ", ".join(f"{c} ({n})" for c, n in sorted(first["classes"].items(),
                                                                                key=lambda kv: -kv[1])) + ".", ""]
    L += ["## Estimated single-thread CPU time of the LM rows (before training; `--estimate`)", "",
          "| row | " + " | ".join(f"{t6._len(x)}: tokens, min / seed" for x in lengths) + " | total (h) |",
          "|---|" + "---:|" * (len(lengths) + 1)]
    for row, e in r["estimates"].items():
        cols = [f"{c['tokens']:,}, {c['min_per_seed']:.0f}" if c["fits"] else f"{c['tokens']:,}, does not fit"
                for c in (e["lengths"][str(x)] for x in lengths)]
        L.append(f"| {row} | " + " | ".join(cols) + f" | {e['total_min'] / 60:.1f} |")
    L += ["", f"Per row: its tokenizer (training it; HRQ: tokenizing the training genomes too), "
              f"{s['pretrain_tflop']:g} TFLOP of pre-training, {s['seeds']} seeds x "
              f"{list(s['epochs'])} epochs per length and a probe; the pass times are the species table's "
              f"(`PASS_SECONDS`), bpe's tokens assume the yeast BPE's 5.2 nt per token.", ""]
    if s["rows"]:
        L += t6.render_details(d)
    m = d["machine"]
    L += ["", f"Tree {Path(s['tree']).name}; tasks: `vqdna data nextstrain --label {s['label']} --label-level "
              f"{s['label_level']}{'' if s['unalias'] else ' --no-unalias'} --min-class-size {s['min_class_size']} "
              f"--min-classes {s['min_classes']} --per-tip random-window|whole --max-train-per-class "
              f"{s['max_train_per_class']} --seed {s['task_seed']}` (the uncapped twin for kmer-bag-all).",
          f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; torch {m['torch']}; "
          f"{s['threads']} thread(s).", f"Command: `python benchmarks/{d['command']}`", ""]
    return "\n".join(L)


# ---------------------------------------------------------------- command line


def main(argv=None) -> int:
    S = Settings()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/sars-cov-2-lengths", help="cells, tokenizers and LMs (default %(default)s)")
    ap.add_argument("--results", default="benchmarks/results/sars-cov-2-lengths",
                    help="where results.json, results.md and settings.json go (default %(default)s)")
    ap.add_argument("--estimate", action="store_true", help="print the CPU time of every LM row and stop")
    ap.add_argument("--collect", action="store_true",
                    help="rebuild the results from OUT's finished cells (every row that has any), train nothing")
    t6.add_arguments(ap, S)
    ap.add_argument("--tree", help=f"Auspice tree JSON (default {S.tree})")
    ap.add_argument("--reference", help=f"reference FASTA (default {S.reference})")
    ap.add_argument("--label", help=f"tip attribute of the classes (default {S.label})")
    ap.add_argument("--label-level", type=int, help=f"(default {S.label_level})")
    ap.add_argument("--no-unalias", dest="unalias", action="store_const", const=False)
    ap.add_argument("--min-class-size", type=int, help=f"(default {S.min_class_size})")
    ap.add_argument("--min-classes", type=int, help=f"(default {S.min_classes})")
    ap.add_argument("--max-train-per-class", type=int, help=f"(default {S.max_train_per_class})")
    ap.add_argument("--task-seed", type=int, help=f"seed of the split and the window starts (default {S.task_seed})")
    a = ap.parse_args(argv)
    if a.worker:
        t6.worker(json.loads(a.worker))
        return 0
    if a.from_json:
        print(render(json.loads(Path(a.from_json).read_text())))
        return 0
    s = t6.parse_settings(a, S, smoke=smoke_settings)
    if a.smoke and a.tasks_dir is None:
        s = dataclasses.replace(s, tasks_dir=str(Path(a.out) / "tasks"))
    if a.estimate:
        info = task_info(s)
        for row, e in estimate(s, info).items():
            cells = ", ".join(f"{t6._len(x)}: " + (f"{c['tokens']:,} tokens, {c['min_per_seed']:.0f} min a seed"
                                                   if c["fits"] else c["reason"])
                              for x, c in zip(s.lengths, e["lengths"].values()))
            print(f"{row}: {e['total_min'] / 60:.1f} CPU-hours ({cells})")
        return 0
    t0 = time.time()
    results = collect(s, Path(a.out)) if a.collect else run(s, Path(a.out))
    publish(results, Path(a.results))
    print(render(results))
    t6.log(f"done in {(time.time() - t0) / 60:.1f} min; {Path(a.results) / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
