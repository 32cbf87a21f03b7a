"""``results.md``, ``results.csv``, ``results.json`` and ``results.png`` of a benchmark folder.

:func:`aggregate` reads the cells (:func:`vqdna.benchmark.tables.collect`), adds the corpus,
the machine and the run log, and writes the four files. Every score is printed x 100 (MCC or
Spearman); a score with more than one seed is printed ``mean ± sample std``.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..config import FinetuneConfig
from ..io import write_json_atomic
from .budgets import Budget
from .cells import log
from .paper import PAPER_ROWS
from .rows import RowPlan
from .tables import collect

__all__ = ["aggregate", "render_markdown", "write_csv", "plot_results", "machine_info", "COLORS"]

COLORS = {"hrq": "#d62728", "vq": "#ff7f0e", "bpe": "#1f77b4", "kmer3": "#2ca02c", "kmer6": "#17becf",
          "nt6": "#9467bd", "char": "#7f7f7f", "kmer-bag": "#000000", "kmer-bag-all": "#555555", "cnn": "#8c564b"}
_TITLES = {"lora": "LoRA", "lora+embed": "LoRA + embeddings", "full": "full fine-tuning", "head": "head only"}
_METHODS = {"lora": "LoRA on {targets} (r {lora_r}, alpha {lora_alpha}, dropout {lora_dropout}) + a new head",
            "lora+embed": "LoRA on {targets} (r {lora_r}, alpha {lora_alpha}, dropout {lora_dropout}) + the input "
                          "projection / embedding tables + a new head",
            "full": "every LM weight (no LoRA) + a new head", "head": "the new head only (frozen LM)"}


def aggregate(out: Path, plan: RowPlan, tasks, budget: Budget, corpus_info: dict, run: dict | None = None) -> dict:
    out = Path(out)
    results = collect(out, plan, list(tasks), budget)
    from ..io import portable_path

    corpus = dict(corpus_info)
    for k in ("sources", "files"):
        if k in corpus:
            corpus[k] = [portable_path(f) for f in corpus[k]]
    results.update(corpus=corpus, machine=machine_info(), run=run or {})
    write_json_atomic(out / "results.json", results)
    write_csv(out / "results.csv", results)
    (out / "results.md").write_text(render_markdown(results))
    try:
        plot_results(results, out / "results.png")
    except Exception as e:  # noqa: BLE001 - a figure failure must not lose the tables
        log(f"figure not drawn: {e}")
    return results


def machine_info() -> dict:
    import platform

    import torch

    info = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    return info


# ---------------------------------------------------------------- csv


def write_csv(path: Path, res: dict) -> None:
    """One line per (kind, row): kind = finetune | probe | random_init | reference."""
    tasks = res["tasks"]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "tokenizer"] + tasks + ["mean", "mean_rank"])
        for kind in ("finetune", "probe"):
            for n, row in res[kind].items():
                w.writerow([kind, n] + [_fmt(row["scores"].get(t)) for t in tasks]
                           + [_fmt(row["mean"]), _fmt(row["mean_rank"], 2)])
        for kind in ("random_init", "reference"):
            for n, row in res[kind].items():
                w.writerow([kind, n] + [_fmt(row["scores"].get(t)) for t in tasks] + [_fmt(row["mean"]), ""])
    os.replace(tmp, path)


# ---------------------------------------------------------------- markdown


def _fmt(v, nd: int = 4) -> str:
    return "" if v is None else f"{v:.{nd}f}"


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _pm(v, sd, n_seeds: int | None) -> str:
    """``x ± s`` (x 100) when there is more than one seed, else ``x``."""
    if v is None:
        return "–"
    return f"{100 * v:.1f} ± {100 * sd:.1f}" if n_seeds and n_seeds > 1 else f"{100 * v:.1f}"


def _si(v) -> str:
    if v is None:
        return "–"
    for unit, s in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= unit:
            return f"{v / unit:.2f}{s}"
    return f"{v:.0f}"


def _score_table(res: dict, kind: str) -> list[str]:
    """Pipelines (ranked), then (fine-tuning) random-init controls, references and the paper."""
    tasks, metrics = res["tasks"], res["metrics"]
    means = res["means"]
    gue = means["gue_tasks"]
    show_gue = bool(gue) and len(gue) < len(tasks)
    head = "| row | " + " | ".join(f"{t} ({metrics.get(t, '?')})" for t in tasks) + " | mean |"
    head += f" GUE mean ({len(gue)}) |" if show_gue else ""
    head += " mean rank |"
    L = [head, "|---|" + "---|" * (len(tasks) + 2 + show_gue)]

    def line(label, row, ranked, gue_mean):
        cells = [_pm(row["scores"].get(t), row.get("std", {}).get(t, 0.0), row.get("seeds", {}).get(t))
                 for t in tasks]
        rank = "–" if not ranked or row.get("mean_rank") is None else f"{row['mean_rank']:.2f}"
        g = f" {_pct(gue_mean)} |" if show_gue else ""
        return f"| {label} | " + " | ".join(cells) + f" | {_pct(row['mean'])} |{g} {rank} |"

    kind_means = {n: m.get(kind, m.get("finetune", {})) for n, m in means["rows"].items()}
    for n, row in res[kind].items():
        L.append(line(n, row, True, kind_means.get(n, {}).get("gue")))
    if kind == "finetune":
        for n, row in res["random_init"].items():
            L.append(line(f"{n} (no pre-training)", row, False, means["rows"][n]["finetune"]["gue"]))
    for n, row in res["reference"].items():
        L.append(line(f"*{n}*", row, False, means["rows"][n]["finetune"]["gue"]))
    if kind == "finetune" and res["paper"]["tasks"]:
        for p in PAPER_ROWS:
            cells = [_pct(res["paper"]["tasks"].get(t, {}).get(p)) for t in tasks]
            pm = _pct(means["paper"].get(p))
            L.append(f"| *paper: {p}* | " + " | ".join(cells) + (f" | – | {pm} |" if show_gue else f" | {pm} |")
                     + " – |")
    return L


def _means_table(res: dict) -> list[str]:
    m = res["means"]
    gue, tasks = m["gue_tasks"], res["tasks"]
    g_head = f" fine-tuned, mean of the {len(gue)} GUE tasks |" if gue else ""
    L = [f"| row | fine-tuned, mean of {len(tasks)} tasks |{g_head} Lin. probe, mean of {len(tasks)} tasks |",
         "|---|---|---|" + ("---|" if gue else "")]
    for n, v in m["rows"].items():
        ft, pr = v.get("finetune", {}), v.get("probe")
        label = f"*{n}*" if n in res["reference"] else n
        g = f" {_pct(ft.get('gue'))} |" if gue else ""
        L.append(f"| {label} | {_pct(ft.get('all'))} |{g} {_pct(pr['all']) if pr else '–'} |")
    if gue:
        for p in PAPER_ROWS:
            L.append(f"| *paper: {p}* | – | {_pct(m['paper'].get(p))} | – |")
    return L


def _gain_table(res: dict) -> list[str]:
    gains = res["pretraining_gain"]
    bases = list(gains)
    head = "| task | " + " | ".join(f"{b} | {g['random_row']} | {b} − {g['random_row']}" for b, g in gains.items()) + " |"
    L = [head, "|---|" + "---|---|---|" * len(bases)]
    for t in res["tasks"]:
        cells = []
        for b in bases:
            g = gains[b]["tasks"].get(t)
            if g is None:
                cells += ["–"] * 3
                continue
            cells += [_pm(g["pretrained"], g["pretrained_std"], g["pretrained_seeds"]),
                      _pm(g["random"], g["random_std"], g["random_seeds"]), f"{100 * g['diff']:+.1f}"]
        L.append(f"| {t} | " + " | ".join(cells) + " |")
    cells = []
    for b in bases:
        g = gains[b]["mean"]
        if g is None:
            cells += ["–"] * 3
        else:
            n = max((x.get("pretrained_seeds") or 1 for x in gains[b]["tasks"].values()), default=1)
            cells += [_pm(g["pretrained"], g["pretrained_std"], n), _pm(g["random"], g["random_std"], n),
                      f"**{100 * g['diff']:+.1f}**"]
    L.append("| **mean** | " + " | ".join(cells) + " |")
    return L


def _vs_cnn_table(res: dict) -> list[str]:
    """Per row: test score minus the CNN's per task, tasks ahead, fine-tuning FLOPs per sequence / the CNN's."""
    tasks = res["tasks"]
    L = ["## Against the from-scratch CNN, per task", "",
         "| row | " + " | ".join(tasks) + " | mean | ahead | FLOPs / training sequence, x the CNN's |",
         "|---|" + "---|" * (len(tasks) + 3)]
    for n, v in res["vs_cnn"].items():
        cells = [f"{100 * v['diff'][t]:+.1f}" if t in v["diff"] else "–" for t in tasks]
        r = v.get("flops_ratio_to_cnn")
        fl = "–" if not r else f"{r['mean']:.2f} ({r['min']:.2f}-{r['max']:.2f})"
        L.append(f"| {n} | " + " | ".join(cells) + f" | **{100 * v['mean_diff']:+.1f}** | {v['ahead']} of "
                 f"{v['tasks']} | {fl} |")
    L += ["", "Test score minus the CNN's (x 100) on the same rows and seeds. FLOPs: training (forward + backward "
          "= 3 x forward) on one training sequence of the task's mean length: the LM's non-embedding weights and "
          "attention (a frozen tokenizer runs once per sequence, not per epoch; an unfrozen one's encoder trains "
          "with the LM and is counted; heads left out), the CNN's "
          "convolutions; mean (min-max) over tasks of the ratio.", ""]
    return L


def _seed_line(res: dict) -> str:
    b, seeds = res["budget"], res["seeds_per_task"]
    if not seeds:
        return f"{b['seeds']} seed(s) per task"
    by: dict[int, list[str]] = {}
    for t in res["tasks"]:
        if t in seeds:
            by.setdefault(seeds[t], []).append(t)
    rule = (f"rule: {b['seeds']} seed(s) on tasks with at most {b['small_task_rows']:,} training rows, "
            f"{b['large_task_seeds']} on the others" if b.get("small_task_rows") else
            f"rule: {b['seeds']} seed(s) on every task")
    return f"{rule}; " + "; ".join(f"{n} seed(s) (0..{n - 1}): {', '.join(ts)}" for n, ts in sorted(by.items(),
                                                                                                reverse=True))


def render_markdown(res: dict) -> str:
    b = res["budget"]
    cfg = res.get("finetune_config") or {}
    method = cfg.get("method", b.get("ft_method", "lora"))
    L = [f"# Tokenizer benchmark (budget `{b['name']}`)", ""]
    L.append("Every tokenizer: same corpus, same BERT preset, same number of pre-training **nucleotides**, "
             "same fine-tuning protocol and seeds. Scores are test MCC x 100 (classification) or Spearman x 100 "
             "(regression), `mean ± sample std` over seeds where a task has more than one; mean rank over "
             "tokenizers only (1 = best). Random-init controls (`<tokenizer>-random`: same architecture, frozen "
             "vocabulary and fine-tuning, no pre-training), reference rows (no pre-training at all) and the "
             "paper's numbers are not ranked.")
    L.append("")
    L.append(f"## Fine-tuning ({_TITLES.get(method, method)})")
    L.append("")
    L += _score_table(res, "finetune")
    L.append("")
    L.append(f"Seeds: {_seed_line(res)}.")
    if res["paper"]["tasks"]:
        L.append("")
        L.append("*paper* rows: the VQDNA paper's test MCC x 100 on the same GUE tasks (Li et al., ICML 2024, "
                 "Table 3: PD / CPD / TFP-Human, Table 4: TFP-Mouse; its row \"DNABERT-2 (BPE)\" and \"VQDNA (HRQ)\"; "
                 "BERT-base pre-trained on 35 billion nucleotides on GPUs), mean over the GUE tasks of this table; "
                 "– = a task the paper does not report.")
    L.append("")
    L.append("## Means")
    L.append("")
    L += _means_table(res)
    L.append("")
    if res["pretraining_gain"]:
        L.append("## What pre-training adds: pre-trained minus random init")
        L.append("")
        L += _gain_table(res)
        L.append("")
        L.append("Each pair: the same LM architecture, the same frozen vocabulary and the same fine-tuning config "
                 "and seeds; the control starts from random weights (only the codebook kept). Per task: mean ± "
                 "sample std over seeds. Mean row: the mean over tasks ± sqrt(sum of squared per-task stds) / "
                 "number of tasks (the seed spread of a mean of independent per-task means).")
        L.append("")
    if res.get("vs_cnn"):
        L += _vs_cnn_table(res)
    L.append("## Linear probing (Lin.): frozen mean-pooled token embeddings + logistic / ridge regression")
    L.append("")
    L += _score_table(res, "probe")
    L.append("")
    L.append("Probe features: VQ/HRQ = the tokenizer's quantized embedding (`tok.embed`, codebook vectors); "
             "hand-crafted = rows of the pre-trained LM's input embedding table for the sequence's tokens "
             "(they have no codebook). Same training rows as fine-tuning; C / alpha chosen on dev.")
    L.append("")
    L.append("## Cost per tokenizer")
    L.append("")
    L.append("| tokenizer | vocab | LM params | tokenizer params | tokens / 512 nt | nt / token | "
             "LM window (tokens = nt) | nucleotides seen | GFLOPs / 512 nt (LM + tok.) | LM val masked acc "
             "| wall time (min) |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for n, c in res["costs"].items():
        w = c["wall_time_s"]
        L.append(f"| {n} | {'+'.join(str(v) for v in c['vocab_sizes'])} | {_si(c['lm_parameters'])} | "
                 f"{_si(c['tokenizer_parameters']) if c.get('tokenizer_parameters') else '–'} | "
                 f"{c['tokens_per_512nt']:.1f} | {_nt_per_token(c)} | "
                 f"{c['seq_length_tokens']} = {c['window_nt_actual']:.1f} | "
                 f"{_si(c['nucleotides_seen'])} | {c['lm_flops_512nt'] / 1e9:.3f} + "
                 f"{c['tokenizer_flops_512nt'] / 1e9:.3f} | "
                 f"{'–' if c['lm_val_acc'] is None else format(c['lm_val_acc'], '.3f')} | "
                 f"{w['total'] / 60:.1f} ({w['tokenizer'] / 60:.1f} + {w['tokenize'] / 60:.1f} + "
                 f"{w['pretrain'] / 60:.1f} + {w['finetune'] / 60:.1f} + {w['probe'] / 60:.1f}) |")
    L.append("")
    L.append("nt / token: nucleotides of the corpus per token of its code store (a strided VQ/HRQ row: "
             "about its stride, printed beside it). "
             "Wall time = train tokenizer + tokenize corpus + pre-train + fine-tune all tasks + probe all tasks. "
             "FLOPs: LM forward on the tokens of 512 nt, 2 x non-embedding params x T + 4 x layers x T^2 x hidden "
             "(T = tokens + [CLS]); tokenizer = VQ/HRQ encoder + code search on 512 nt. Masked accuracy is over "
             "each tokenizer's own vocabulary (not comparable across tokenizers).")
    other = res.get("other_costs") or {}
    if other:
        L.append("")
        L.append("Controls and references, wall time over all tasks: " + "; ".join(
            f"{n} {v['wall_time_s'] / 60:.1f} min" + (f" ({_si(v['n_parameters'])} parameters)"
                                                       if v.get("n_parameters") else "")
            for n, v in other.items()) + ".")
    L.append("")
    L += _budget_section(res)
    return "\n".join(L)


def _nt_per_token(c: dict) -> str:
    """Nucleotides per token of a cost row, with the stride of a strided VQ/HRQ tokenizer."""
    r = "–" if c.get("nt_per_token") is None else f"{c['nt_per_token']:.2f}"
    return r + (f" (stride {c['tokenizer_stride']})" if (c.get("tokenizer_stride") or 1) > 1 else "")


def _strided_line(res: dict) -> list[str]:
    """The budget line of the strided learned rows (``hrq-s4``): what differs from their stride-1 row."""
    from .rows import learned_row

    rows = [(n, learned_row(n)) for n in res["costs"]]
    rows = [(n, q, s) for n, lr in rows if lr is not None for q, s in [lr] if s > 1]
    if not rows:
        return []
    return ["- strided learned tokenizers: " + "; ".join(
        f"`{n}` = {q} with stride {s} (one code per {s} nt; the same preset, steps and overrides plus stride={s}), "
        f"LM window {res['costs'][n]['seq_length_tokens']} tokens = {res['costs'][n]['window_nt_actual']:.1f} nt"
        for n, q, s in rows)]


def corpus_line(built: dict) -> str:
    """One line on a `vqdna data corpus` corpus: sources, leakage guard, counts, sha256."""
    t, g = built["task_sequences"], built["guard"]
    genomes = [Path(s["path"]).name.split("_GCF_")[0] for s in built["sources"] if s["kind"] == "fasta"]
    tasks = [s["task"] for s in built["sources"] if s["kind"] == "task"]
    guard = (f"leakage guard on: every training sequence sharing a canonical {g['k']}-mer with a dev/test sequence "
             f"of the {len(g['tasks'])} guarded tasks dropped ({t['dropped_leak']:,} sequences, "
             f"{t['dropped_leak_nucleotides']:,} nt), {built['genome_masked_nucleotides']:,} genome nt masked"
             if g["on"] else "leakage guard OFF")
    cap = f" (at most {built['max_nt_per_file']:,} nt per file)" if built.get("max_nt_per_file") else ""
    return (f"built by `vqdna data corpus` (sha256 {built['sha256'][:12]}): genomes {', '.join(genomes) or 'none'}"
            f"{cap}; the unlabelled training sequences of {len(tasks)} tasks ({t['kept']:,} sequences, "
            f"{t['kept_nucleotides']:,} nt; {t['dropped_duplicate']:,} exact duplicates dropped); {guard}")


def _budget_section(res: dict) -> list[str]:
    b = res["budget"]
    cfg = res.get("finetune_config") or {}
    L = ["## Budget", ""]
    c = res["corpus"]
    src = ", ".join(Path(s).name for s in c["sources"])
    if c.get("sliced"):
        L.append(f"- corpus: {c['nucleotides']:,} nt = {c['records']} evenly spaced blocks of {c['block']:,} nt "
                 f"taken from every record in proportion to its length, out of {c['source_nucleotides']:,} nt in "
                 f"{c['source_records']} records ({src})")
    else:
        L.append(f"- corpus: all {c['nucleotides']:,} nt in {c['records']} records ({src})")
    for built in c.get("built", []):  # a corpus of `vqdna data corpus`: what went into it
        L.append("- " + corpus_line(built))
    L.append(f"- VQ/HRQ tokenizers: `{b['tok_config']}` preset, {b['tok_steps']} steps "
             f"(overrides {b['tok_overrides']}); BPE: {b['bpe_vocab']} tokens, trained on the corpus above")
    L += _strided_line(res)
    L.append(f"- pre-training: `{b['lm_config']}` LM preset for every tokenizer, {b['lm_steps']} steps x "
             f"{b['lm_batch']} windows of {b['window_nt']} nt = {b['lm_steps'] * b['lm_batch'] * b['window_nt']:,} "
             f"nucleotides per tokenizer; window length in tokens = round({b['window_nt']} / nucleotides per token "
             f"on the corpus), so the window covers the same DNA for every tokenizer and nucleotides seen differ "
             f"only by that rounding (column above)" + (f"; LM overrides {b['lm_overrides']}" if b.get("lm_overrides") else ""))
    rows = ", ".join(f"{t} {x['used']:,} of {x['of']:,}" for t, x in res.get("train_rows", {}).items())
    method = cfg.get("method", b.get("ft_method", "lora"))
    what = _METHODS.get(method, method)
    if cfg:
        what = what.format(targets="/".join(cfg.get("lora_targets", ["query", "key", "value"])),
                           lora_r=cfg.get("lora_r"), lora_alpha=cfg.get("lora_alpha"),
                           lora_dropout=cfg.get("lora_dropout"))
    epochs = (f"at most {b['ft_epochs']} epochs, stopped after {cfg['patience']} without a better dev score "
              f"(the CNN's rule)" if cfg.get("patience") else f"{b['ft_epochs']} epochs")
    if b.get("grid"):
        epochs += (f"; dev-set grid lr {cfg.get('grid_lr')} x most epochs {cfg.get('grid_epochs')} with seed 0, the "
                   f"other seeds at the best on dev (the CNN on the same points)")
    L.append(f"- fine-tuning (`{method}`): {what}; {epochs}, lr {b['ft_lr']:g}, batch {b['ft_batch']}, "
             f"best dev epoch, test once; training rows subsampled (stratified, seed 0) to at most "
             f"{b['max_train']:,}: {rows}; dev and test complete")
    L.append(f"- seeds: {_seed_line(res)}")
    if cfg:
        keep = ("method", "lr", "epochs", "patience", "batch_size", "weight_decay", "warmup_ratio", "decay", "lora_r",
                "lora_alpha", "lora_dropout", "head_dropout", "attention_dropout", "head_norm", "pooling", "max_length",
                "precision")
        # and every other field the cells changed from its default (e.g. position_lr_scale via --set)
        default = json.loads(json.dumps(asdict(FinetuneConfig())))
        keep += tuple(k for k in cfg if k not in keep and k in default and cfg[k] != default[k])
        L.append("- FinetuneConfig of the cells: " + ", ".join(f"{k}={cfg[k]}" for k in keep if k in cfg))
    refs = ["bag of k-mers (k = 1..6) logistic / ridge regression on the same subsampled rows (`kmer-bag`)"]
    if "kmer-bag-all" in res["reference"]:
        refs.append("the same on all training rows (`kmer-bag-all`)")
    if "cnn" in res["reference"]:
        refs.append("a 1D CNN trained from scratch on one-hot DNA on the same rows and seeds (`cnn`, "
                    f"vqdna.references.cnn; arguments {b.get('cnn') or 'its defaults'})")
    L.append("- reference rows: " + "; ".join(refs))
    if res.get("random_rows"):
        L.append(f"- random-init controls: {', '.join(res['random_rows'])} (fine-tuning only, no probe)")
    m = res["machine"]
    L.append(f"- machine: {m.get('cpu', '?')}, {m.get('cpu_count')} cores, torch threads {m.get('torch_threads')}, "
             f"OMP_NUM_THREADS={m.get('OMP_NUM_THREADS')}, load average at the end {m.get('load_average')}")
    L.append("")
    L.append("Every field of the budget:")
    L.append("")
    L.append("| field | value |")
    L.append("|---|---|")
    for k, v in b.items():
        if isinstance(v, list):
            v = ", ".join(str(x) for x in v)
        L.append(f"| `{k}` | {v if v not in ('', None) else '–'} |")
    L.append("")
    return L


# ---------------------------------------------------------------- figure


def plot_results(res: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = res["tasks"]
    fig, axes = plt.subplots(2, 1, figsize=(max(7, 1.6 * len(tasks) + 2), 7.5), sharex=True)
    x = np.arange(len(tasks))
    for ax, kind, title in ((axes[0], "finetune", "fine-tuning"), (axes[1], "probe", "linear probe (Lin.)")):
        bars = [(n, row, {}) for n, row in res[kind].items()]
        if kind == "finetune":
            bars += [(n, row, {"hatch": "//", "alpha": 0.6}) for n, row in res["random_init"].items()]
        width = 0.8 / max(len(bars), 1)
        for i, (n, row, style) in enumerate(bars):
            vals = [100 * row["scores"].get(t, np.nan) for t in tasks]
            base = n[: -len("-random")] if n.endswith("-random") else n
            ax.bar(x - 0.4 + width * (i + 0.5), vals, width, label=n, color=COLORS.get(base), **style)
        for r, row in res["reference"].items():
            vals = [100 * row["scores"].get(t, np.nan) for t in tasks]
            ax.hlines(vals, x - 0.42, x + 0.42, colors=COLORS.get(r),
                      linestyles={"kmer-bag": "--", "cnn": "-."}.get(r, ":"), label=f"{r} (reference)")
        if kind == "finetune" and res["paper"]["tasks"]:
            for p, marker in zip(PAPER_ROWS, ("x", "*")):
                vals = [100 * res["paper"]["tasks"].get(t, {}).get(p, np.nan) for t in tasks]
                ax.plot(x, vals, marker, color="black", ls="none", label=f"paper: {p}")
        ax.axhline(0, color="black", lw=0.5)
        ax.set_ylabel("test MCC / Spearman x 100")
        ax.set_title(f"{title} — budget {res['budget']['name']}")
    axes[1].set_xticks(x)
    axes[1].set_xticklabels([f"{t}\n({res['metrics'].get(t, '?')})" for t in tasks], fontsize=8)
    axes[0].legend(fontsize=7, ncol=3, loc="best")
    fig.tight_layout()
    tmp = png.with_name(png.stem + f".tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, png)
