"""Fine-tuning speed with and without attention dropout (issue 19, item 6: what dominates the
`full` table's wall time, and what `full-fast` changed to meet the 2-hour target).

One fine-tuning step = forward + backward + AdamW step of the classifier (every LM weight trains,
mean+max pooling: the `cpu` recipe) on a batch of 32 sequences of L tokens, the GUE / gRNA lengths
(doench2016 30 nt, prom_core 70, mouse / tf 101, prom_300 300; one token per nucleotide for
HRQ / char / 3-mer rows). Rows: the LM's own attention dropout (BERT's 0.1) against 0. With
dropout on the attention probabilities, SDPA on a CPU falls back to its math kernel and draws one
random number per attention score (batch x heads x L x L); without it, SDPA runs its flash kernel.
The two variants alternate in one process (``--repeats`` rounds of ``--steps`` timed steps after a
warm-up), so a busy CPU slows both alike; the table gives the median ms per step and the ratio.
A last row times a pre-training (masked-LM) step of the `full` budget's shape (16 windows of 256).

    python benchmarks/finetune_speed.py --threads 1            # the shipped hrq-cpu-v1 LM (the tiny shape)
    python benchmarks/finetune_speed.py --model runs/x/hrq/lm  # any LM folder
"""
from __future__ import annotations

import argparse
import statistics
import time


def finetune_step(model_dir, length: int, batch: int, attention_dropout):
    """A step function of the classifier on random codes of ``length`` tokens."""
    import torch

    from vqdna.lm.finetune import apply_method, build_classifier
    from vqdna.lm.inference import collate

    torch.manual_seed(0)
    model = build_classifier(model_dir, num_labels=2, pooling="meanmax", attention_dropout=attention_dropout)
    net = apply_method(model, "full")
    model.train()
    vocab = model.config.vocab_sizes
    g = torch.Generator().manual_seed(0)
    rows = [torch.stack([torch.randint(0, v, (length,), generator=g) for v in vocab]).numpy() for _ in range(batch)]
    ids, mask = collate(rows, vocab)
    labels = torch.randint(0, 2, (batch,), generator=g)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def step():
        net(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    return step


def pretrain_step(model_dir, length: int, batch: int, attention_dropout):
    """A masked-LM step of a model with the LM folder's shape (random weights)."""
    import torch

    from vqdna.hub.modeling_vqdna import VQDNAConfig, VQDNAForMaskedLM
    from vqdna.lm.masking import mask_codes

    cfg = VQDNAConfig.from_pretrained(model_dir)
    if attention_dropout is not None:
        cfg.attention_probs_dropout_prob = attention_dropout
    torch.manual_seed(0)
    model = VQDNAForMaskedLM(cfg).train()
    vocab = cfg.vocab_sizes
    g = torch.Generator().manual_seed(0)
    codes = torch.stack([torch.randint(0, v, (batch, length + 1), generator=g) for v in vocab], 1)
    codes[:, :, 0] = torch.tensor([v + 2 for v in vocab]).view(1, -1)  # [CLS]
    x, y = mask_codes(codes, vocab, generator=g)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def step():
        model(x, labels=y).loss.backward()
        opt.step()
        opt.zero_grad()
    return step


def timed(step, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps * 1000


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="hrq-cpu-v1", help="an LM folder or a shipped model's name")
    p.add_argument("--lengths", default="30,70,101,300")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    import torch

    from vqdna.lm.artifacts import resolve_model

    torch.set_num_threads(a.threads)
    model_dir = resolve_model(a.model)
    cases = [(f"fine-tune, {a.batch} x {L}", finetune_step, L, a.batch) for L in map(int, a.lengths.split(","))]
    cases.append(("pre-train, 16 x 256", pretrain_step, 256, 16))
    print(f"model {a.model}; {a.threads} thread(s); median of {a.repeats} rounds x {a.steps} steps (ms per step)\n")
    print("| step | attention dropout 0.1 (the LM's) | attention dropout 0 | speed-up |")
    print("|---|---:|---:|---:|")
    for name, make, L, B in cases:
        steps = {p_: make(model_dir, L, B, p_) for p_ in (0.1, 0.0)}
        for s in steps.values():
            s()  # warm-up
        ms = {p_: [] for p_ in steps}
        for _ in range(a.repeats):
            for p_, s in steps.items():
                ms[p_].append(timed(s, a.steps))
        m = {p_: statistics.median(v) for p_, v in ms.items()}
        print(f"| {name} | {m[0.1]:.0f} | {m[0.0]:.0f} | {m[0.1] / m[0.0]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
