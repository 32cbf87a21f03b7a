"""One config system: a dataclass per stage, named presets, YAML in and out.

A preset name (``tiny``, ``small``, ``paper``) or a YAML file gives a config; a YAML
file may name a preset to start from (``preset: small``) and override any field.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path

import yaml


@dataclass
class TokenizerConfig:
    """Stage 1 model: ConvNeXt-1D encoder/decoder + VQ or HRQ (paper Sec. 3.1-3.3)."""

    quantizer: str = "vq"  # "vq" (one codebook) or "hrq" (a codebook per level, Sec. 3.2)
    stem_dim: int = 256  # stem Conv1d(4 -> stem_dim, kernel 5), as in Sec. 3.3
    dim: int = 384  # d: block width and code dimension (Table 8: 384 trades size for speed)
    depth: int = 6  # N residual ConvNeXt blocks in the encoder (and in the decoder)
    kernel_size: int = 7  # depthwise conv kernel in each block
    mlp_ratio: int = 4  # inverted bottleneck expansion
    codebook_sizes: tuple = (512,)  # K per level; VQ has one level (Table 7: 512 is the sweet spot)
    levels: tuple = (6,)  # encoder blocks after which each level quantizes (HRQ: (3, 6))
    hrq_residual: str = "doubled"  # Eq. 6: "doubled" H=2Z-Q_prev | "chained" H=Z+(H_prev-Q_prev) | "plain" RQ
    beta: float = 0.5  # commitment weight (Eq. 3: 0.5 for VQ; Eq. 8: 0.9 for HRQ)
    ema_decay: float = 0.99  # gamma of the EMA codebook update (Eq. 4)
    ema_eps: float = 1e-5  # Laplace smoothing of the EMA cluster sizes
    n_policy: str = "zero"  # N/IUPAC as an all-zero one-hot ("zero") or a fifth channel ("channel")
    layer_scale: float = 0.0  # ConvNeXt layer-scale init; 0 = off (METHOD.md: open, off)
    dead_code_threshold: float = 0.2  # re-seed a code whose EMA count falls below this share of the mean count:
    # 0.2 (not the usual ~0.03) keeps the rarely used codes moving to where the data is, which is what
    # lifted HRQ level-2 usage on an unseen species from 94% to 99.5% (README, "Results")
    kmeans_iters: int = 20  # Lloyd iterations per k-means run (Repeated K-means, Huh et al. 2023)
    kmeans_repeats: int = 3  # k-means restarts; the run with the lowest inertia wins

    @property
    def n_levels(self) -> int:
        return len(self.codebook_sizes)

    @property
    def n_inputs(self) -> int:
        return 5 if self.n_policy == "channel" else 4


@dataclass
class TokenizerTrainConfig:
    """Stage 1 training recipe (Appendix A), scaled by the preset."""

    max_steps: int = 2000
    batch_size: int = 64  # windows per step (per process); the paper uses 1024 on 8 GPUs
    lr: float = 1e-3
    weight_decay: float = 0.01  # AdamW, Appendix A
    betas: tuple = (0.9, 0.99)
    warmup_steps: int = 200  # linear warm-up at the short length; k-means runs when it ends
    short_length: int = 128  # window length during warm-up (Appendix A: 128)
    long_length: int = 256  # window length after warm-up (Appendix A: 256)
    stride: int = 0  # stride between training windows; 0 = half the window (overlap 50%)
    min_lr_ratio: float = 0.01  # cosine decays to lr * this
    kmeans_samples: int = 32768  # encoder outputs used by the k-means initialisation
    reseed_every: int = 20  # steps between dead-code checks
    val_fraction: float = 0.02  # share of each record held out for validation
    val_block: int = 2000  # held-out blocks of this many nt; windows never cross them
    eval_every: int = 200
    eval_windows: int = 256  # validation windows scored at each evaluation
    checkpoint_every: int = 200
    seed: int = 0
    precision: str = "auto"  # "auto": bf16 autocast on CUDA, fp32 on CPU (bf16 is slower on CPU)
    compile: bool = False  # torch.compile the model


PRESETS: dict[str, dict] = {
    # seconds on a CPU: for tests and smoke runs
    "tiny": dict(
        model=dict(stem_dim=32, dim=32, depth=2, codebook_sizes=(64,), levels=(2,)),
        train=dict(max_steps=60, batch_size=16, warmup_steps=20, short_length=64, long_length=128,
                   kmeans_samples=4096, eval_every=30, checkpoint_every=30, eval_windows=32, lr=3e-3),
    ),
    # tens of minutes on a CPU; the codebook sizes of the paper
    "small": dict(
        model=dict(stem_dim=64, dim=64, depth=4, codebook_sizes=(512,), levels=(4,)),
        train=dict(max_steps=3000, batch_size=32, warmup_steps=400, short_length=128, long_length=256,
                   eval_every=500, checkpoint_every=500, lr=2e-3),
    ),
    # the paper's sizes (Sec. 3.3): d = 384, 6 blocks, K = 512; HRQ 512 + 1024
    "paper": dict(
        model=dict(stem_dim=256, dim=384, depth=6, codebook_sizes=(512,), levels=(6,)),
        train=dict(max_steps=1_000_000, batch_size=1024, warmup_steps=50_000, short_length=128,
                   long_length=256, eval_every=5000, checkpoint_every=5000, lr=1e-4),
    ),
}


def _hrq_overrides(model: dict) -> dict:
    """HRQ defaults: levels after half and all of the blocks, codebooks growing with depth, beta 0.9."""
    depth = model.get("depth", 6)
    k = model.get("codebook_sizes", (512,))[0]
    return dict(levels=(depth // 2, depth), codebook_sizes=(k, 2 * k), beta=0.9)


def _coerce(cls, values: dict):
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}; known: {sorted(known)}")
    out = {}
    for k, v in values.items():
        default = known[k].default
        out[k] = tuple(v) if isinstance(default, tuple) and isinstance(v, list) else v
    return cls(**out)


def tokenizer_configs(name_or_path: str, quantizer: str = "vq") -> tuple[TokenizerConfig, TokenizerTrainConfig]:
    """Build the stage-1 configs from a preset name or a YAML file.

    YAML layout: ``preset: small`` (optional), ``model: {...}``, ``train: {...}``.
    """
    if name_or_path in PRESETS:
        spec = {"preset": name_or_path}
    else:
        p = Path(name_or_path)
        if not p.exists():
            raise FileNotFoundError(f"config {name_or_path!r} is neither a preset {sorted(PRESETS)} nor a file")
        spec = yaml.safe_load(p.read_text()) or {}
    base = PRESETS[spec.get("preset", "tiny")] if spec.get("preset", "tiny") in PRESETS else None
    if base is None:
        raise ValueError(f"{name_or_path}: unknown preset {spec.get('preset')!r}")
    model = dict(base["model"])
    quantizer = spec.get("model", {}).get("quantizer", quantizer)
    if quantizer == "hrq":
        model.update(_hrq_overrides(model))
    model.update(spec.get("model", {}))
    model["quantizer"] = quantizer
    train = dict(base["train"])
    train.update(spec.get("train", {}))
    mc, tc = _coerce(TokenizerConfig, model), _coerce(TokenizerTrainConfig, train)
    validate_tokenizer_config(mc)
    return mc, tc


def validate_tokenizer_config(c: TokenizerConfig) -> None:
    if c.quantizer not in ("vq", "hrq"):
        raise ValueError(f"quantizer must be 'vq' or 'hrq', not {c.quantizer!r}")
    if len(c.levels) != len(c.codebook_sizes):
        raise ValueError(f"levels {c.levels} and codebook_sizes {c.codebook_sizes} differ in length")
    if c.quantizer == "vq" and c.n_levels != 1:
        raise ValueError("a VQ tokenizer has one level; use quantizer 'hrq' for several")
    if list(c.levels) != sorted(set(c.levels)) or c.levels[-1] != c.depth or c.levels[0] < 1:
        raise ValueError(f"levels {c.levels} must increase within 1..depth and end at depth={c.depth}")
    if c.hrq_residual not in ("doubled", "chained", "plain"):
        raise ValueError(f"hrq_residual must be doubled|chained|plain, not {c.hrq_residual!r}")
    if c.n_policy not in ("zero", "channel"):
        raise ValueError(f"n_policy must be 'zero' or 'channel', not {c.n_policy!r}")
    if max(c.codebook_sizes) > 65535:
        raise ValueError("codebooks larger than 65535 do not fit the uint16 code files")


def to_dict(obj) -> dict:
    d = dataclasses.asdict(obj)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def from_dict(cls, d: dict):
    return _coerce(cls, {k: v for k, v in d.items() if k in {f.name for f in fields(cls)}})


def save_yaml(path, **sections) -> None:
    Path(path).write_text(yaml.safe_dump({k: to_dict(v) for k, v in sections.items()}, sort_keys=False))


# ============================================================ stage 2: the language model
@dataclass
class LMConfig:
    """Stage 2 model: a BERT encoder over one token per nucleotide (paper Sec. 3.3, METHOD.md stage 2)."""

    hidden_size: int = 768  # BERT-base (paper)
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072  # 4 x hidden, as in BERT
    hidden_dropout: float = 0.1  # BERT defaults
    attention_dropout: float = 0.1
    # "codebook": the frozen tokenizer codebooks, mean (or sum) of level vectors, projected to
    # hidden (VQDNA; METHOD.md default). "learned": an embedding table per level, summed (the
    # alternative; what hand-crafted tokenizers, whose codebooks() is None, always use).
    # "auto" = codebook when the tokenizer has codebooks, else learned.
    input_mode: str = "auto"
    # how level code vectors combine in codebook mode: "auto" follows the tokenizer (sum for
    # plain residual quantization, mean otherwise: Eq. 7), or force "mean" / "sum"
    codebook_combine: str = "auto"
    max_length: int = 512  # tokens per forward pass, excluding [CLS] (positions = max_length + 1)
    # sequence vector for fine-tuning: "mean" over tokens (pads and [CLS] excluded) or the "cls" state
    pooling: str = "mean"
    mlm_shared_transform: bool = True  # one dense+GELU+LayerNorm transform for all MLM heads (False: one per level)


@dataclass
class LMTrainConfig:
    """Stage 2 recipe (METHOD.md: 500k steps, batch 2048, length 512, cosine, 10k warm-up), scaled by preset."""

    max_steps: int = 500_000
    batch_size: int = 2048  # windows per optimizer step per process (= micro batch x grad_accum)
    grad_accum: int = 1  # micro-batches per step; batch_size must divide by it
    seq_length: int = 512  # tokens per training window (<= LMConfig.max_length); [CLS] is added in front
    lr: float = 5e-4  # not given by the paper; DNABERT-2's peak lr at a similar batch size
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.98)  # RoBERTa's beta2 for large-batch MLM
    warmup_steps: int = 10_000
    min_lr_ratio: float = 0.01  # cosine decays to lr * this
    mask_prob: float = 0.25  # share of positions masked (METHOD.md: 25%), 80/10/10
    mask_mode: str = "token"  # "token" (independent positions) or "span" (contiguous spans; METHOD.md open point)
    span_mean: float = 8.0  # mean span length in span mode (geometric), ~ the tokenizer's receptive field
    val_block: int = 2048  # the corpus is cut into blocks of this many tokens ...
    val_every: int = 50  # ... and every val_every-th block is held out (training windows never touch it)
    skip_n_runs: int = 64  # training windows avoid runs of >= this many non-ACGT letters (assembly gaps); 0 = off
    eval_every: int = 5000
    eval_windows: int = 512  # validation windows scored per evaluation (fixed windows, fixed masks)
    checkpoint_every: int = 5000
    seed: int = 0
    precision: str = "auto"  # "auto": bf16 autocast on CUDA, fp32 on CPU


LM_PRESETS: dict[str, dict] = {
    # seconds on a CPU: tests and smoke runs
    "tiny": dict(
        model=dict(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_length=512),
        train=dict(max_steps=40, batch_size=8, seq_length=128, lr=2e-3, warmup_steps=5, eval_every=20,
                   eval_windows=16, checkpoint_every=20),
    ),
    # the CPU check: ~3 s per step (16 x 256 tokens, one busy core), so 200 steps fit 10 minutes
    # (--max-steps 200); the full 1200 steps take about an hour
    "small": dict(
        model=dict(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024),
        train=dict(max_steps=1200, batch_size=16, seq_length=256, lr=1e-3, warmup_steps=100, eval_every=200,
                   eval_windows=64, checkpoint_every=200),
    ),
    # the paper: BERT-base, 500k steps of 2048 x 512 tokens (METHOD.md stage 2)
    "base": dict(model={}, train={}),
}


def lm_configs(name_or_path: str) -> tuple[LMConfig, LMTrainConfig]:
    """Stage-2 configs from a preset (tiny | small | base) or a YAML file
    (``preset: small``, ``model: {...}``, ``train: {...}``)."""
    if name_or_path in LM_PRESETS:
        spec = {"preset": name_or_path}
    else:
        p = Path(name_or_path)
        if not p.exists():
            raise FileNotFoundError(f"config {name_or_path!r} is neither a preset {sorted(LM_PRESETS)} nor a file")
        spec = yaml.safe_load(p.read_text()) or {}
    preset = spec.get("preset", "base")
    if preset not in LM_PRESETS:
        raise ValueError(f"{name_or_path}: unknown preset {preset!r}; known: {sorted(LM_PRESETS)}")
    model = dict(LM_PRESETS[preset]["model"], **(spec.get("model") or {}))
    train = dict(LM_PRESETS[preset]["train"], **(spec.get("train") or {}))
    mc, tc = _coerce(LMConfig, model), _coerce(LMTrainConfig, train)
    validate_lm_config(mc, tc)
    return mc, tc


def validate_lm_config(m: LMConfig, t: LMTrainConfig | None = None) -> None:
    if m.hidden_size % m.num_heads:
        raise ValueError(f"hidden_size {m.hidden_size} must be a multiple of num_heads {m.num_heads}")
    if m.input_mode not in ("auto", "codebook", "learned"):
        raise ValueError(f"input_mode must be auto|codebook|learned, not {m.input_mode!r}")
    if m.codebook_combine not in ("auto", "mean", "sum"):
        raise ValueError(f"codebook_combine must be auto|mean|sum, not {m.codebook_combine!r}")
    if m.pooling not in ("mean", "cls", "meanmax"):
        raise ValueError(f"pooling must be 'mean', 'cls' or 'meanmax', not {m.pooling!r}")
    if not 1 <= m.max_length <= 512:
        raise ValueError(f"max_length must be in 1..512, not {m.max_length}")
    if t is None:
        return
    if not 1 <= t.seq_length <= m.max_length:
        raise ValueError(f"seq_length {t.seq_length} must be in 1..max_length={m.max_length}")
    if t.batch_size % t.grad_accum:
        raise ValueError(f"batch_size {t.batch_size} must be a multiple of grad_accum {t.grad_accum}")
    if t.mask_mode not in ("token", "span"):
        raise ValueError(f"mask_mode must be 'token' or 'span', not {t.mask_mode!r}")
    if not 0 < t.mask_prob < 1:
        raise ValueError(f"mask_prob must be in (0, 1), not {t.mask_prob}")
    if t.val_every < 2 or t.val_block < t.seq_length:
        raise ValueError(f"need val_every >= 2 and val_block >= seq_length (got {t.val_every}, {t.val_block})")


# ============================================================ stage 3: fine-tuning
@dataclass
class FinetuneConfig:
    """Stage 3 recipe (METHOD.md: frozen tokenizer and attention, LoRA r=8 alpha=16, AdamW, batch 32,
    weight decay 0.01, grid over lr x dropout {0, 0.05} x epochs {4, 6, 8, 10}, 3 seeds)."""

    lr: float = 1e-3  # LoRA; the paper's values were lost. CPU check: 1e-3 beat 3e-4 on doench2016 dev (0.36 / 0.30)
    epochs: int = 10
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06  # share of the steps with linear warm-up, then `decay` to 0
    decay: str = "linear"  # METHOD.md's fine-tuning schedule ("cosine" = the pre-training one)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: tuple = ("query", "key", "value")  # the attention projections of every layer
    # what trains besides LoRA and the new head: "lora" (paper: nothing else), "lora+embed"
    # (also the codebook projection / learned embeddings), "full" (every LM weight, no LoRA), "head" (probe)
    method: str = "lora"
    # fine-tune the VQ/HRQ tokenizer's ConvNeXt encoder too: the model then reads nucleotides and
    # feeds the encoder's unquantized output to the LM (not the paper's frozen recipe; its own row)
    unfreeze_tokenizer: bool = False
    head_dropout: float = 0.1
    # batch-normalise the pooled vector entering the head: mean-pooled states barely differ between
    # sequences, and an unnormalised head learns slowly (see lm.modeling.ClassificationHead)
    head_norm: bool = True
    pooling: str = ""  # "" = the LM's (mean by default), or "mean" / "cls" for this task
    max_length: int = 512  # training truncates to this many tokens; inference chunks whole sequences
    eval_batch_size: int = 128
    max_train: int = 0  # subsample training rows (stratified, seeded); 0 = all
    grid_lr: tuple = (1e-4, 3e-4, 1e-3)
    grid_dropout: tuple = (0.0, 0.05)
    grid_epochs: tuple = (4, 6, 8, 10)
    precision: str = "auto"


# Stage-3 recipes. "paper": METHOD.md's (LoRA on q/k/v only, mean pooling, 10 epochs; lr lost
# from the paper, 1e-3 measured best for it on a CPU). "cpu": chosen on dev sets of 4 GUE /
# gRNA tasks with a CPU-budget HRQ LM (benchmarks/results/finetune-recipe/README.md): every LM
# weight trains (the paper's LoRA freezes the codebook projection, which a small LM needs to
# adapt: prom_core_tata dev MCC 0.45 -> 0.83), lr 1e-3 (3e-4 was slower on every task), mean
# and max pooling (a motif anywhere in the sequence survives the max), 4 epochs.
FINETUNE_PRESETS: dict[str, dict] = {
    "paper": dict(method="lora", lr=1e-3, epochs=10, pooling="mean"),
    "cpu": dict(method="full", lr=1e-3, epochs=4, pooling="meanmax"),
}


def finetune_config(name_or_path: str = "cpu", **overrides) -> FinetuneConfig:
    """A :class:`FinetuneConfig` from a recipe (``cpu`` | ``paper``) or a YAML file
    (``preset: cpu`` plus fields), then ``overrides`` (None values are ignored). Unknown fields
    are errors."""
    if name_or_path in FINETUNE_PRESETS:
        spec = {"preset": name_or_path}
    else:
        p = Path(name_or_path)
        if not p.exists():
            raise FileNotFoundError(f"fine-tuning config {name_or_path!r} is neither a recipe "
                                    f"{sorted(FINETUNE_PRESETS)} nor a file")
        spec = yaml.safe_load(p.read_text()) or {}
        if not isinstance(spec, dict):
            raise ValueError(f"{p}: expected a mapping (preset: cpu, lr: ..., ...)")
    preset = spec.pop("preset", "cpu")
    if preset not in FINETUNE_PRESETS:
        raise ValueError(f"{name_or_path}: unknown fine-tuning recipe {preset!r}; known: {sorted(FINETUNE_PRESETS)}")
    values = {**FINETUNE_PRESETS[preset], **spec, **{k: v for k, v in overrides.items() if v is not None}}
    return _coerce(FinetuneConfig, values)
