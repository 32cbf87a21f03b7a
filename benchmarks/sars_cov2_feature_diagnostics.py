"""Where pre-training loses the lineage signal of the SARS-CoV-2 table (issue 22): variant tokens, layers.

A random-init LM's pooled states probe better than the pre-trained LM's on this task (8 kb, bpe:
56 against 32% test accuracy), so pre-training removes signal that a random projection of the
tokens keeps. Two checks on a row of ``benchmarks/sars_cov2_lengths.py``'s OUT:

1. **Variant tokens.**
The lineage signal of a SARS-CoV-2 genome is a few dozen substitutions; under a BPE vocabulary a
substitution turns one token into another of the same length that differs at one letter (or into
other merges). A masked LM learns a token's vector from its contexts, and a variant token sits in
the same contexts as the token it replaces, so pre-training may draw the two together, erasing the
variant from the LM's states. This prints, for the bpe row's LM (``runs/sars-cov-2-lengths`` by
default) and a random-init LM of the same architecture, the cosine similarity of the input vectors
of every same-length token pair at Hamming distance 1, against random same-length pairs (BPE rows).
2. **Layers.** The table's probe (mean+max pooled states, logistic regression, C on dev, the same
training rows) on the output of the embeddings alone and of each transformer layer, pre-trained
and random init, at one length (``--length``, default 8000): which layer loses the signal.

    python benchmarks/sars_cov2_feature_diagnostics.py [--out runs/sars-cov-2-lengths] [--row bpe] [--length 8000]

About a minute on one core at 8 kb; reads the row's LM and the table's task.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch


def one_substitution_pairs(vocab: dict[str, int]) -> list[tuple[int, int]]:
    """Id pairs of same-length tokens (length >= 4) that differ at exactly one letter."""
    pairs, masks = [], defaultdict(list)
    for tok, i in vocab.items():
        if len(tok) >= 4:
            for k in range(len(tok)):
                masks[tok[:k] + "?" + tok[k + 1:]].append(i)
    for ids in masks.values():
        pairs += [(a, b) for j, a in enumerate(ids) for b in ids[j + 1:]]
    return pairs


def random_pairs(vocab: dict[str, int], n: int, seed: int = 0) -> list[tuple[int, int]]:
    """n id pairs of distinct same-length tokens (length >= 4), uniformly over tokens."""
    by_len = defaultdict(list)
    for tok, i in vocab.items():
        if len(tok) >= 4:
            by_len[len(tok)].append(i)
    lens = [L for L, ids in by_len.items() if len(ids) > 1]
    weights = np.array([len(by_len[L]) for L in lens], float)
    rng, out = np.random.default_rng(seed), []
    while len(out) < n:
        ids = by_len[lens[rng.choice(len(lens), p=weights / weights.sum())]]
        a, b = rng.choice(len(ids), 2, replace=False)
        out.append((ids[a], ids[b]))
    return out


def cosine(table: torch.Tensor, pairs) -> np.ndarray:
    a, b = (torch.tensor([p[k] for p in pairs]) for k in (0, 1))
    return torch.nn.functional.cosine_similarity(table[a], table[b], dim=-1).numpy()


sys.path.insert(0, str(Path(__file__).resolve().parent))
import sars_cov2_lengths as sc  # noqa: E402  (the table: its settings, tasks and probes)
import species_table6 as t6  # noqa: E402

#: the two LMs compared, as the table's probes build them
LMS = (("pre-trained", False), ("random init", True))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/sars-cov-2-lengths", help="the table's OUT (default %(default)s)")
    ap.add_argument("--row", default="bpe")
    ap.add_argument("--length", default="8000", help="the task length of the layer probes (1000, 8000 or whole)")
    a = ap.parse_args(argv)
    lm = Path(a.out) / "rows" / a.row / "lm"
    if not (lm / "model.safetensors").exists():
        raise SystemExit(f"{lm}: no LM there (run benchmarks/sars_cov2_lengths.py --rows {a.row})")
    torch.set_num_threads(1)
    if (lm / "tokenizer" / "bpe.json").exists():
        variant_tokens(lm, a.row)
    layer_probes(Path(a.out), a.row, a.length if a.length == "whole" else int(a.length))
    return 0


def variant_tokens(lm: Path, row: str) -> None:
    vocab = json.loads((lm / "tokenizer" / "bpe.json").read_text())["model"]["vocab"]
    subs = one_substitution_pairs(vocab)
    rand = random_pairs(vocab, max(len(subs), 1000))
    rows = []
    for name, random_init in LMS:
        table = t6.frozen_backbone(lm, random_init=random_init).embeddings.tables[0].weight.detach()
        cs, cr = cosine(table, subs), cosine(table, rand)
        rows.append((name, np.median(cs), np.median(cr), float((cs > np.quantile(cr, 0.99)).mean())))
    print(f"{row} LM: {len(subs):,} same-length token pairs one substitution apart, "
          f"{len(rand):,} random same-length pairs\n")
    print("| LM | median cosine, one substitution | median cosine, random pair | one-substitution pairs above the random pairs' 99th percentile |")
    print("|---|---:|---:|---:|")
    for name, ms, mr, above in rows:
        print(f"| {name} | {ms:.3f} | {mr:.3f} | {100 * above:.1f}% |")


def layer_probes(out: Path, row: str, L) -> None:
    from vqdna.evaluate import linear_probe
    from vqdna.lm.inference import pooled_features

    s = sc.saved_settings(out)  # the settings OUT's cells were made with (its tasks, rows and caps)
    task, codes = t6.task_codes(row, L, s, out)
    idx = t6.train_rows(task, L, s)
    y = {"train": task.train.labels[idx], "dev": task.dev.labels, "test": task.test.labels}
    splits = (("train", idx), ("dev", range(len(task.dev))), ("test", range(len(task.test))))
    batch = max(1, 16384 // t6.max_tokens_of(row, L, s, out))
    models = {name: t6.frozen_backbone(out / "rows" / row / "lm", random_init=r) for name, r in LMS}
    layers = {name: bb.encoder.encoder.layer for name, bb in models.items()}
    n_layers = len(layers["pre-trained"])

    def probe(X) -> str:
        r = linear_probe(X, y, task.kind, seed=0)
        return f"{100 * r['test']['accuracy']:.1f} / {100 * r['dev']['accuracy']:.1f}"

    def pooled(name: str, k: int, pooling: str) -> dict:
        bb = models[name]
        bb.config.pooling = pooling
        bb.encoder.encoder.layer = layers[name][:k]  # the first k layers
        with torch.no_grad():
            return {sp: pooled_features(bb, [codes[sp][i] for i in rows], batch_size=batch).numpy() for sp, rows in splits}

    print(f"\n{row} at {t6._len(L)} nt: the table's probe on each layer's pooled states, and on all of them side "
          f"by side (test / dev accuracy %)\n")
    print("| LM | pooling | embeddings | " + " | ".join(f"layer {k}" for k in range(1, n_layers + 1)) + " | all |")
    print("|---|---|" + "---:|" * (n_layers + 2))
    for pooling in ("meanmax", "mean"):
        for name in models:
            X = [pooled(name, k, pooling) for k in range(n_layers + 1)]
            every = {sp: np.concatenate([x[sp] for x in X], axis=1) for sp in X[0]}
            print(f"| {name} | {pooling} | " + " | ".join(probe(x) for x in X + [every]) + " |", flush=True)
    if not hasattr(models["pre-trained"].embeddings, "tables"):  # learned input vectors only (not a codebook)
        return
    V = models["pre-trained"].config.vocab_sizes[0]
    print(f"\n{row}'s input vector table as a projection of the token counts (no layer, no LayerNorm; "
          f"test / dev accuracy %)\n")
    print("| features | dims | effective rank (centred table) | top-5 directions' variance | probe |")
    print("|---|---:|---:|---:|---:|")
    feats = lambda f: {sp: np.stack([f(codes[sp][i][0][codes[sp][i][0] < V]) for i in rows]) for sp, rows in splits}
    print(f"| token counts | {V:,} | | | {probe(feats(lambda c: np.bincount(c, minlength=V) / max(len(c), 1)))} |")
    for name, bb in models.items():
        W = bb.embeddings.tables[0].weight.detach().numpy()[:V]
        sv = np.linalg.svd(W - W.mean(0), compute_uv=False) ** 2
        sv = sv / sv.sum()
        erank = float(np.exp(-(sv * np.log(sv + 1e-30)).sum()))
        print(f"| mean of the {name} table's vectors | {W.shape[1]} | {erank:.1f} | {100 * sv[:5].sum():.0f}% | "
              f"{probe(feats(lambda c: W[c].mean(0)))} |")


if __name__ == "__main__":
    sys.exit(main())
