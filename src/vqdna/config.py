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
    dead_code_threshold: float = 0.03  # re-seed a code whose EMA count falls below this share of the mean count
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
