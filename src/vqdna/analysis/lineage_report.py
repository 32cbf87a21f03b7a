"""``report.md`` of ``vqdna analyze``: the result of :func:`vqdna.analysis.lineage.analyze` as
Markdown tables (parameters, probe, code-space numbers, figures, per class).

Every number comes from the result dictionary, the one written (JSON-cleaned) to
``analysis.json``; nothing here computes.
"""
from __future__ import annotations

import math
from pathlib import Path

__all__ = ["report_markdown", "fmt"]

PARAMETER_ROWS = ("tokenizer", "tokenizer_type", "vocab_sizes", "task", "max_per_class", "seed", "metric", "n_perm",
                  "Cs", "max_iter", "projection", "tree", "tree_label", "distance", "groups")


def fmt(v, nd=3):
    """A number for a table: ``n/a`` for None or NaN, small values in ``g`` format."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{nd}g}" if 0 < abs(v) < 10 ** -(nd - 1) else f"{v:.{nd}f}"
    return str(v)


def report_markdown(r: dict, levels) -> str:
    """The report of result ``r``; ``levels`` lists ``(key, level indices)`` in table order."""
    keys = [k for k, _ in levels]
    L: list[str] = []
    L += _header_and_parameters(r)
    L += _probe_section(r["probe"])
    L += _code_space_section(r, keys)
    L += _figures_section(r["figures"])
    L += _per_class_section(r, keys)
    L.append("All numbers are in `analysis.json`.\n")
    return "\n".join(L)


def _header_and_parameters(r: dict) -> list[str]:
    p, d = r["parameters"], r["data"]
    L = [f"# Code-space analysis: {p['tokenizer_type'].upper()} tokenizer on `{Path(p['task']).name}`\n",
         "Reproduces Sec. 4.4 / App. B (Fig. 5) of VQDNA: a linear probe on bags of codes, Grad-CAM "
         "attribution of every code to the class it supports most, a 2-D map of each codebook, and the "
         "numbers that make the figure checkable.\n",
         "## Parameters\n",
         "| parameter | value |\n|---|---|"]
    L += [f"| {k} | `{p[k]}` |" for k in PARAMETER_ROWS]
    L.append(f"| features | {p['features']} |")
    L.append(f"| Grad-CAM | `{p['gradcam']}` |")
    rp = r["reference"]["primary"]
    L.append(f"| reference distance | {rp}: {r['reference'][rp].get('unit')} ({r['reference'][rp].get('source')}) |")
    L.append("")
    L.append(f"Rows train/dev/test: {d['rows']['train']}/{d['rows']['dev']}/{d['rows']['test']} "
             f"({d['distinct_sequences']} distinct sequences; {d['distinct_train_rows']} distinct train "
             f"(sequence, label) rows, fitted with multiplicity weights). {len(d['classes'])} classes. "
             f"Codes used per level: {d['codes_used_per_level']} of {p['vocab_sizes']}. "
             f"Run time {r['seconds']} s.\n")
    return L


def _probe_section(pr: dict) -> list[str]:
    te, mj = pr["test"], pr["majority_baseline_test"]
    return [
        "## Linear probe (Lin.)\n",
        "| | accuracy | macro F1 | MCC |\n|---|---|---|---|",
        f"| probe, test (C = {pr['C']}) | {fmt(te.get('accuracy'))} | {fmt(te.get('f1_macro'))} | "
        f"{fmt(te.get('mcc'))} |",
        f"| probe, dev | {fmt(pr['dev'].get('accuracy'))} | {fmt(pr['dev'].get('f1_macro'))} | "
        f"{fmt(pr['dev'].get('mcc'))} |",
        f"| majority class, test | {fmt(mj.get('accuracy'))} | {fmt(mj.get('f1_macro'))} | "
        f"{fmt(mj.get('mcc'))} |",
        f"\nTrain accuracy {fmt(pr['train'].get('accuracy'))}. Dev MCC per C: "
        + ", ".join(f"{c['C']}: {fmt(c['dev_mcc'])}{'' if c['converged'] else ' (max_iter)'}"
                    for c in pr["candidates"]) + "\n",
    ]


def _code_space_section(r: dict, keys: list[str]) -> list[str]:
    return (_main_table(r, keys) + _each_reference_table(r, keys) + _other_metric_table(r, keys)
            + _per_group_table(r, keys))


def _main_table(r: dict, keys: list[str]) -> list[str]:
    L = ["## Code space\n",
         "NN purity: share of class-supporting codes whose nearest such code (same level, "
         f"{r['parameters']['metric']}) supports the same class; chance = expectation under permuting the classes "
         "over the codes (p: permutation test). Mantel: Spearman correlation between the distances of the "
         "classes' attribution-weighted code centroids and the reference distances of the classes. "
         "Group ratio: mean centroid distance within a group / between groups (< 1: related classes "
         "together). Nearest class: share of classes whose nearest centroid is their nearest clade in "
         "the reference (chance 1/(n-1)).\n",
         "| level | codes with class / used / all | NN purity | chance | p | group NN purity (chance) | "
         "Mantel r (p, n) | group ratio (p) [in reference] | nearest = reference nearest (chance) | "
         "nearest in same group (chance) |",
         "|" + "---|" * 10]
    for key in keys:
        x = r["levels"][key]
        pu, gp, m, s, sr, nc = (x["nn_purity"], x["nn_group_purity"], x["mantel_vs_reference"],
                                x["group_separation"], x["group_separation_in_reference"], x["nearest_class"])
        gps = f"{fmt(gp['purity'])} ({fmt(gp['chance_expected'])})" if gp else "n/a"
        seps = f"{fmt(s['ratio'])} ({fmt(s['p_value'])}) [{fmt(sr['ratio'])}]" if s else "n/a"
        L.append(f"| {key} | {x['codes_with_class']} / {x['codes_used_in_task']} / {x['codes']} | "
                 f"{fmt(pu['purity'])} | {fmt(pu['chance_expected'])} | {fmt(pu['p_value'])} | {gps} | "
                 f"{fmt(m['spearman'])} ({fmt(m['p_value'])}, {m['n']}) | {seps} | "
                 f"{fmt(nc.get('agree_with_ref'))} ({fmt(nc.get('agree_with_ref_chance'))}) | "
                 f"{fmt(nc.get('same_group'))} ({fmt(nc.get('same_group_chance'))}) |")
    L.append("")
    return L


def _each_reference_table(r: dict, keys: list[str]) -> list[str]:
    others = [k for k in r["reference"] if k != "primary"]
    if len(others) <= 1:
        return []
    L = ["Mantel correlation of the centroid distances with each reference distance "
         "(Spearman r, permutation p):\n",
         "| level | " + " | ".join(f"{k} ({r['reference'][k]['unit']})" for k in others) + " |",
         "|---|" + "---|" * len(others)]
    for key in keys:
        ms = r["levels"][key]["mantel_vs_each_reference"]
        L.append(f"| {key} | " + " | ".join(
            f"{fmt(ms[k]['spearman'])} ({fmt(ms[k]['p_value'])})" if ms.get(k) else "n/a" for k in others) + " |")
    L.append("")
    return L


def _other_metric_table(r: dict, keys: list[str]) -> list[str]:
    om = r["levels"][keys[0]]["other_metric"]["metric"]
    L = [f"The same with {om} distances in code space (NN purity vs chance, p; Mantel r, p):\n",
         "| level | NN purity | chance | p | Mantel r | p |\n|---|---|---|---|---|---|"]
    for key in keys:
        o = r["levels"][key]["other_metric"]
        L.append(f"| {key} | {fmt(o['nn_purity']['purity'])} | {fmt(o['nn_purity']['chance_expected'])} | "
                 f"{fmt(o['nn_purity']['p_value'])} | {fmt(o['mantel_vs_reference']['spearman'])} | "
                 f"{fmt(o['mantel_vs_reference']['p_value'])} |")
    L.append("")
    return L


def _per_group_table(r: dict, keys: list[str]) -> list[str]:
    if not any(r["levels"][k]["group_separation"] for k in keys):
        return []
    L = ["Per group: mean centroid distance within the group / to the classes of other groups = ratio "
         "(permutation p of the ratio); in brackets the ratio for the reference distance:\n"]
    gnames = sorted({g for k in keys if r["levels"][k]["group_separation"]
                     for g in r["levels"][k]["group_separation"]["per_group"]})
    L.append("| level | " + " | ".join(gnames) + " |")
    L.append("|---|" + "---|" * len(gnames))
    for key in keys:
        sp, sr = r["levels"][key]["group_separation"], r["levels"][key]["group_separation_in_reference"]
        if not sp:
            continue
        cells = []
        for g in gnames:
            a, b = sp["per_group"].get(g), sr["per_group"].get(g)
            cells.append(f"{fmt(a['within'])} / {fmt(a['to_others'])} = {fmt(a['ratio'], 2)} "
                         f"(p {fmt(a.get('p_value'), 2)}) [{fmt(b['ratio'], 2)}]" if a and b else "n/a")
        L.append(f"| {key} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def _figures_section(figures: dict) -> list[str]:
    return ["## Figures\n"] + [f"![{key}]({fn})\n" for key, fn in figures.items()]


def _per_class_section(r: dict, keys: list[str]) -> list[str]:
    last = keys[-1]
    L = ["## Per class\n",
         "| class | group | train/dev/test rows | test recall | codes supported (" + ", ".join(keys) +
         f") | nearest class ({last}) | nearest clade (reference) |",
         "|---|---|---|---|---|---|---|"]
    near, near_ref = r["levels"][last]["nearest_class_by_class"], r["levels"][last]["nearest_class_by_reference"]
    for pc in r["per_class"]:
        rw = pc["rows"]
        L.append(f"| {pc['name']} | {pc['group'] or ''} | {rw['train']}/{rw['dev']}/{rw['test']} | "
                 f"{fmt(pc['test_recall'], 2)} | {', '.join(str(pc['codes_supported'][k]) for k in keys)} | "
                 f"{near.get(pc['name'], 'n/a')} | {near_ref.get(pc['name'], 'n/a')} |")
    L.append("")
    return L
