"""One config system: a dataclass per stage, named presets, YAML in and out.

Every stage builds its configs the same way (:class:`StageSpec`, README "Configs"): a preset
name (``tiny``, ``small``, ``paper``; stage 3: ``cpu``, ``paper``) or a YAML file that may name
a preset to start from (``preset: small``; without one, the stage's default preset, the one
``--config`` defaults to), then overrides (command-line flags win over the YAML). Unknown
presets, YAML keys and override fields are errors; the result is validated after the overrides.
Every stage preset is defined here, once: the benchmark's budgets and the demo's profiles name them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

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
    # 4: version 3's work at the end of warm-up spread over 2 steps per level (a level's seeds, then
    # their refinement), the codebook holding the state between them (issue 19: no step over 5x a
    # median step; version 3 packed it into one step, 6.9x on an idle machine);
    # 3: version 2 with its repeats run on 8 points per code and the winner refined on all samples,
    # and the step-0 run on a quarter of the samples (issue 19: no step over 5x a median step);
    # 2: blocked distances, a run stops once <= 0.1% of the points move, cheap k-means++ draws, one
    # run (not kmeans_repeats) at step 0, whose codes warm-up only starts from; 1: the k-means
    # before issue 19. Every version is kept so that a tokenizer trained with it is rebuilt bit
    # for bit from its seeds (the benchmark budgets and the demo pin 1: the committed tables)
    kmeans_version: int = 4
    # nucleotides per code (1, 2, 4 or 8): the encoder downsamples after the stem (a strided
    # convolution), the decoder upsamples before its head (a transposed convolution, the paper's
    # "de-convolution" decoder), so the LM reads stride-times fewer tokens. 1 = one code per
    # nucleotide, the paper's tokenizer (no extra layer). A sequence whose length is not a
    # multiple of the stride is padded (zero one-hot) on encode and cut back on decode.
    stride: int = 1

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
    window_stride: int = 0  # step between training windows (nt); 0 = half the window (overlap 50%)
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


def _coerce(cls, values: dict, origins: dict | None = None, start: str | None = None):
    """``cls(**values)`` (lists become tuples), remembering where each value came from
    (``origins``: field -> "file, key ...", "--flag", ...; ``start``: the preset the rest came
    from) for the messages of :func:`check_fields`. Unknown fields are an error."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}; known: {sorted(known)}")
    out = {}
    for k, v in values.items():
        default = known[k].default
        out[k] = tuple(v) if isinstance(default, tuple) and isinstance(v, list) else v
    config = cls(**out)
    config.__dict__["_origins"] = dict(origins or {})  # not a field: to_dict, == and replace ignore it
    config.__dict__["_start"] = start
    return config


# ---------------------------------------------------------------- every field: type and range, in one place


class ConfigError(ValueError):
    """A config value of the wrong type or out of range; the one-line message names the field,
    the value, what is allowed and where the value came from (file and key, flag or argument)."""


class Flags(dict):
    """Overrides that came from command-line flags: messages name them as flags (``--max-steps``).
    Keyword values given alongside a ``Flags`` layer (``pretrain(max_steps=...)``) count as flags too."""


def _at_least(n):
    return (lambda v: v >= n), f">= {n}"


_POSITIVE = (lambda v: v > 0), "> 0"
_SHARE = (lambda v: 0 <= v < 1), "in [0, 1)"
_FRACTION = (lambda v: 0 <= v <= 1), "in [0, 1]"

# The range of every numeric field (by name: a name means the same in every stage), and of the
# flags that are no config field (``--seeds``). A tuple field's rule holds for each element.
# Why these bounds: a count of steps, epochs, rows or tokens below 1 trains nothing (or divides
# by zero); a learning rate of 0 trains nothing and still looks finished; dropouts and shares
# are probabilities.
RANGES: dict[str, tuple] = {
    **dict.fromkeys(["max_steps", "batch_size", "epochs", "seeds", "seq_length", "short_length", "long_length",
                     "max_length", "num_hidden_layers", "num_attention_heads", "max_position_embeddings", "stem_dim", "dim", "depth", "kernel_size", "mlp_ratio", "codebook_sizes",
                     "levels", "kmeans_iters", "kmeans_repeats", "kmeans_samples", "reseed_every", "val_block",
                     "eval_every", "eval_windows", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "grad_accum", "lora_r", "lora_alpha", "eval_batch_size", "grid_epochs", "stride"],
                    _at_least(1)),
    **dict.fromkeys(["seed", "warmup_steps", "window_stride", "checkpoint_every", "skip_n_runs", "patience",
                     "max_train", "weight_decay", "beta", "layer_scale", "dead_code_threshold"], _at_least(0)),
    **dict.fromkeys(["lr", "grid_lr", "ema_eps", "span_mean"], _POSITIVE),
    **dict.fromkeys(["hidden_dropout", "attention_dropout", "lora_dropout", "head_dropout", "grid_dropout",
                     "val_fraction", "ema_decay", "betas"], _SHARE),
    **dict.fromkeys(["min_lr_ratio", "warmup_ratio"], _FRACTION),
    "val_every": _at_least(2),  # every val_every-th block is held out: 1 would hold out everything
}

_KINDS = {"int": (int, "an integer"), "float": (float, "a number"), "str": (str, "a string"),
          "bool": (bool, "true or false")}


_OPTIONAL = " | None"  # a field annotated ``float | None``: None means "not set" (its comment says what then)


def _kind_of(field) -> tuple[type, str, bool]:
    """(element type, its name, is a tuple) of a dataclass field, from its annotation (tuple
    fields: the type of their default's elements; ``float | None``: a float, or None)."""
    if field.type.endswith(_OPTIONAL):
        kind, text = _KINDS[field.type[:-len(_OPTIONAL)]]
        return kind, text, False
    if field.type == "tuple":
        kind, text = _KINDS[type(field.default[0]).__name__]
        return kind, text, True
    kind, text = _KINDS[field.type]
    return kind, text, False


def _checked_scalar(name: str, value, kind: type):
    """``value`` as a ``kind`` (an int is a float too; so is a number YAML 1.1 reads as a string,
    ``1e-3``), or a str saying what is wrong."""
    if kind is float and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None, "not a number"
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)) \
            or (kind is float and value != value):
        return None, "wrong type"
    test, _ = RANGES.get(name, (None, ""))
    if test is not None and not test(value):
        return None, "out of range"
    return value, ""


def allowed(name: str, kind: type = int, many: bool = False) -> str:
    """What ``name`` may hold, in words: "an integer >= 1", "a list of numbers > 0"."""
    text = _KINDS[kind.__name__][1]
    rule = RANGES.get(name, (None, ""))[1]
    return (f"a list of {text.split(' ', 1)[1]}s" if many else text) + (f" {rule}" if rule else "")


def check_value(name: str, value, where: str, kind: type = int, *, many: bool = False, stage: str = ""):
    """``value`` checked against the type and range of ``name`` (normalised: an int given for a
    float is a float, a list a tuple); a :class:`ConfigError` naming ``where`` it came from otherwise."""
    items = value if many else (value,)
    if many and not (isinstance(value, (list, tuple)) and value):
        items = None
    out = []
    for item in items or ():
        v, problem = _checked_scalar(name, item, kind)
        if problem:
            items = None
            break
        out.append(v)
    if items is None:
        what = f"{stage} config: " if stage else ""
        raise ConfigError(f"{what}{name} = {value!r} (from {where}): must be {allowed(name, kind, many)}")
    return tuple(out) if many else out[0]


def origin(config, name: str) -> str:
    """Where a config field's value came from: "file.yaml, key train.max_steps", "--epochs",
    "keyword argument lr", "preset tiny", or "the default" (a config built without StageSpec)."""
    given = config.__dict__.get("_origins", {}).get(name)
    return given or config.__dict__.get("_start") or "the default"


def given(config, name: str) -> bool:
    """Whether a config field was set by a YAML file, a flag or an argument (not by its preset)."""
    return name in config.__dict__.get("_origins", {})


def check_fields(config, stage: str = "") -> None:
    """Check (and normalise) the type and range of every field of a stage config, before any
    work: the one rule for YAML, presets, flags, library overrides and files that hold a config."""
    for f in fields(config):
        if getattr(config, f.name) is None and f.type.endswith(_OPTIONAL):
            continue
        kind, _, many = _kind_of(f)
        value = check_value(f.name, getattr(config, f.name), origin(config, f.name), kind, many=many, stage=stage)
        setattr(config, f.name, value)


def tokenizer_configs(name_or_path: str | None = None, quantizer: str | None = None, overrides: dict | None = None,
                      **flags) -> tuple[TokenizerConfig, TokenizerTrainConfig]:
    """The stage-1 configs from a preset (tiny | small | paper; None = tiny) or a YAML file
    (``preset: small``, ``model: {...}``, ``train: {...}``), then ``overrides`` and then ``flags``
    (field -> value of either config; None = not given).

    ``quantizer`` (vq | hrq) is a flag like any other: given, it wins over the YAML's
    ``model: {quantizer: ...}``; None = the YAML's, else vq. HRQ starts from the preset's HRQ sizes.
    """
    return TOKENIZER_STAGE.build(name_or_path, overrides, _like(overrides, dict(flags, quantizer=quantizer)))


def _like(overrides: dict | None, values: dict) -> dict:
    """Keyword values that come with ``overrides``: flags too when ``overrides`` are (:class:`Flags`)."""
    return Flags(values) if isinstance(overrides, Flags) else values


def _tokenizer_start(start: dict, given: dict, overrides: dict) -> dict:
    """Stage 1's preset for the quantizer the config ends with (overrides, else YAML, else vq):
    an HRQ tokenizer starts from the preset's HRQ levels, codebooks and beta (:func:`_hrq_overrides`)."""
    quantizer = overrides["model"].get("quantizer") or given["model"].get("quantizer") or "vq"
    model = dict(start["model"])
    if quantizer == "hrq":
        model.update(_hrq_overrides(model))
    model["quantizer"] = quantizer
    return dict(start, model=model)


def tokenizer_quantizer(name_or_path: str) -> str | None:
    """The quantizer a stage-1 config names (a YAML's ``model: {quantizer: ...}``), or None."""
    _, given = TOKENIZER_STAGE.read(name_or_path)
    return given["model"].get("quantizer")


def validate_tokenizer_config(c: TokenizerConfig, train: TokenizerTrainConfig | None = None) -> None:
    """Raises ValueError for a stage-1 model config that cannot be built (``train``: its windows
    must hold whole tokens; :class:`ConfigError` for a field's type or range)."""
    check_fields(c, "tokenizer")
    if train is not None:
        check_fields(train, "tokenizer")
    if c.quantizer not in ("vq", "hrq"):
        raise ValueError(f"quantizer must be 'vq' or 'hrq', not {c.quantizer!r}")
    if c.kmeans_version not in (1, 2, 3, 4):
        raise ValueError(f"kmeans_version must be 1 (the k-means before issue 19), 2, 3 or 4, not {c.kmeans_version!r}")
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
    if c.stride not in (1, 2, 4, 8):
        raise ValueError(f"stride must be 1, 2, 4 or 8 nucleotides per code, not {c.stride!r}")
    if train is not None and (train.short_length % c.stride or train.long_length % c.stride):
        raise ValueError(f"training windows short_length={train.short_length} and long_length={train.long_length} "
                         f"must be multiples of stride={c.stride}")


def to_dict(obj) -> dict:
    d = dataclasses.asdict(obj)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def from_dict(cls, d: dict, where: str | None = None):
    """``cls`` from a dict a file holds (unknown keys dropped: fields removed since); ``where``
    ("tok/config.json, key model") names the file in the messages of :func:`check_fields`."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping of fields, not {d!r}")
    values = {k: v for k, v in d.items() if k in {f.name for f in fields(cls)}}
    return _coerce(cls, values, {k: f"{where}.{k}" for k in values} if where else None)


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
    # positions: "absolute" (BERT's learned table, max_length <= 512, cannot run longer than its rows),
    # "rotary" (RoPE) or "alibi" (positions inside attention, no table: max_length up to
    # LONG_MAX_LENGTH, and a model trained on short windows runs on longer ones). Issue 12.
    position_embedding: str = "absolute"
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
    # of the chosen positions, the share given a random code and the share left as they are (the
    # rest become [MASK]); BERT's 10 / 10. A random code trains the LM to put back what the context
    # predicts, and it cannot tell a random code from a real variant: on near-identical genomes that
    # is a lesson to erase variants. A bpe LM on whole SARS-CoV-2 genomes: 96.7% lineage accuracy
    # with 0 against 91.3% with 0.1 (two pre-training seeds; benchmarks/results/sars-cov-2-lengths/)
    mask_random_prob: float = 0.1
    mask_keep_prob: float = 0.1
    span_mean: float = 8.0  # mean span length in span mode (geometric), ~ the tokenizer's receptive field
    val_block: int = 2048  # the corpus is cut into blocks of this many tokens ...
    val_every: int = 50  # ... and every val_every-th block is held out (training windows never touch it)
    # consecutive records shorter than seq_length are read as one stretch (windows cross their
    # boundaries; vqdna.lm.pretrain, "Short records"): else a corpus of 100-nt task sequences gives no window
    pack_short_records: bool = True
    skip_n_runs: int = 64  # training windows avoid runs of >= this many non-ACGT letters (assembly gaps); 0 = off
    eval_every: int = 5000
    eval_windows: int = 512  # validation windows scored per evaluation (fixed windows, fixed masks)
    checkpoint_every: int = 5000
    seed: int = 0
    precision: str = "auto"  # "auto": bf16 autocast on CUDA, fp32 on CPU
    # recompute each BERT layer in the backward pass instead of keeping its activations: same loss and
    # gradients, about a third more compute, activation memory of one layer instead of all (long windows)
    gradient_checkpointing: bool = False


LM_PRESETS: dict[str, dict] = {
    # seconds on a CPU: tests and smoke runs
    "tiny": dict(
        model=dict(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_length=512),
        train=dict(max_steps=40, batch_size=8, seq_length=128, lr=2e-3, warmup_steps=5, eval_every=20,
                   eval_windows=16, checkpoint_every=20),
    ),
    # the LM sized to the CNN reference's cost (issue 18): fine-tuning FLOPs per 101-nt sequence 1.9x
    # the CNN's (tiny: 0.6x); the pre-training sweep's "wide" (benchmarks/results/pretrain-sweep/)
    "wide": dict(
        model=dict(hidden_size=128, num_layers=2, num_heads=4, intermediate_size=256, max_length=512),
        train=dict(max_steps=2000, batch_size=16, seq_length=256, lr=1e-3, warmup_steps=100, eval_every=500,
                   eval_windows=64, checkpoint_every=500),
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


def lm_configs(name_or_path: str | None = None, overrides: dict | None = None,
               **flags) -> tuple[LMConfig, LMTrainConfig]:
    """The stage-2 configs from a preset (tiny | small | base; None = tiny) or a YAML file
    (``preset: small``, ``model: {...}``, ``train: {...}``), then ``overrides`` and then ``flags``
    (field -> value of either config; None = not given)."""
    return LM_STAGE.build(name_or_path, overrides, _like(overrides, flags))


# positions of the language model (LMConfig.position_embedding; absolute is BERT's and the default)
POSITION_EMBEDDINGS = ("absolute", "rotary", "alibi")
ABSOLUTE_MAX_LENGTH = 512  # BERT's table (the paper's length)
LONG_MAX_LENGTH = 131_072  # rotary / ALiBi: a bound against typos; 32,768 is what issue 12 asks and tests


def validate_lm_config(m: LMConfig, t: LMTrainConfig | None = None) -> None:
    """Raises ValueError (:class:`ConfigError` for a field's type or range) for a stage-2 config that cannot run."""
    check_fields(m, "language model")
    if t is not None:
        check_fields(t, "language model")
    if m.hidden_size % m.num_heads:
        raise ValueError(f"hidden_size {m.hidden_size} must be a multiple of num_heads {m.num_heads}")
    if m.input_mode not in ("auto", "codebook", "learned"):
        raise ValueError(f"input_mode must be auto|codebook|learned, not {m.input_mode!r}")
    if m.codebook_combine not in ("auto", "mean", "sum"):
        raise ValueError(f"codebook_combine must be auto|mean|sum, not {m.codebook_combine!r}")
    if m.pooling not in ("mean", "cls", "meanmax"):
        raise ValueError(f"pooling must be 'mean', 'cls' or 'meanmax', not {m.pooling!r}")
    if m.position_embedding not in POSITION_EMBEDDINGS:
        raise ValueError(f"position_embedding must be one of {POSITION_EMBEDDINGS}, not {m.position_embedding!r}")
    if m.position_embedding == "rotary" and (m.hidden_size // m.num_heads) % 2:
        raise ValueError(f"rotary positions need an even head size (hidden_size / num_heads), "
                         f"not {m.hidden_size // m.num_heads}")
    longest = ABSOLUTE_MAX_LENGTH if m.position_embedding == "absolute" else LONG_MAX_LENGTH
    if not 1 <= m.max_length <= longest:
        long_absolute = m.position_embedding == "absolute" and m.max_length > longest
        hint = "; longer inputs need position_embedding rotary or alibi" if long_absolute else ""
        raise ValueError(f"max_length must be in 1..{longest} with {m.position_embedding} positions, "
                         f"not {m.max_length}{hint}")
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
    if min(t.mask_random_prob, t.mask_keep_prob) < 0 or t.mask_random_prob + t.mask_keep_prob > 1:
        raise ValueError(f"mask_random_prob ({t.mask_random_prob}) and mask_keep_prob ({t.mask_keep_prob}) must be "
                         ">= 0 with a sum <= 1")
    if t.val_every < 2 or t.val_block < t.seq_length:
        raise ValueError(f"need val_every >= 2 and val_block >= seq_length (got {t.val_every}, {t.val_block})")


# ============================================================ stage 3: fine-tuning
@dataclass
class FinetuneConfig:
    """Stage 3 recipe (METHOD.md: frozen tokenizer and attention, LoRA r=8 alpha=16, AdamW, batch 32,
    weight decay 0.01, grid over lr x dropout {0, 0.05} x epochs {4, 6, 8, 10}, 3 seeds)."""

    lr: float = 1e-3  # LoRA; the paper's values were lost. CPU check: 1e-3 beat 3e-4 on doench2016 dev (0.36 / 0.30)
    epochs: int = 10  # the most epochs (the learning-rate schedule spans them all)
    # early stopping: stop after this many epochs in a row without a better dev score (the best
    # epoch's weights are kept either way); 0 = run every epoch. The CNN reference stops after 3
    # (vqdna.references.cnn.CNNConfig.patience): a fair table gives every row the same rule.
    patience: int = 0
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
    # the unfrozen encoder's learning rate as a share of `lr` (discriminative fine-tuning, as
    # ULMFiT): its weights come from stage 1, and at the LM's own lr (scale 1) mouse3's seed 1 and
    # mouse0 never left chance. 0.1 and 0.3 tied on the dev sets of mouse3 and mouse0 (mean dev
    # MCC 0.645 / 0.640); 0.1 had a quarter of the seed spread (benchmarks/results/indomain-unfrozen/)
    tokenizer_lr_scale: float = 0.1
    # the absolute position embeddings' learning rate as a share of `lr` (1 = the LM's): masked-LM
    # pre-training on windows at random offsets leaves them at their initial size while the code
    # vectors grow, so a task that reads positions (a motif at a fixed offset) starts with little
    # of them; a larger share lets fine-tuning grow them back (benchmarks/results/stride4-pretraining/)
    position_lr_scale: float = 1.0
    # every other pre-trained LM weight's learning rate as a share of `lr` (the new head always trains
    # at `lr`); 1 = the cpu recipe. Few rows of long, near-identical inputs need less: on whole
    # SARS-CoV-2 genomes (240 rows, 3 epochs, bpe LM) every weight at lr 1e-3 left the model at
    # chance (9.6% test accuracy) where a head on the frozen LM reached 50.0% and every weight at
    # 1e-4 36.9% (benchmarks/results/sars-cov-2-lengths/)
    backbone_lr_scale: float = 1.0
    # epochs of training the new head alone on the frozen LM's pooled vectors of the training rows
    # before every weight fine-tunes (LP-FT, Kumar et al., ICLR 2022); 0 = off, the cpu recipe. A new
    # head's first steps send large, random gradients into the LM; a head that already separates the
    # classes sends small, useful ones. Costs one forward pass over the training rows (the vectors
    # are cached, the head's epochs take milliseconds)
    head_warmup_epochs: int = 0
    head_dropout: float = 0.1
    # dropout on the attention probabilities while fine-tuning; None = the LM's own (BERT's 0.1,
    # unless pre-training set another). 0 is MosaicBERT's and DNABERT-2's choice, and on a CPU it
    # is what lets SDPA run its flash kernel: with dropout it falls back to the math kernel, which
    # draws one random number per attention score (B x heads x L x L) and fine-tunes the tiny LM
    # 1.1-1.8x slower at 30-300 tokens (benchmarks/finetune_speed.py)
    attention_dropout: float | None = None
    # batch-normalise the pooled vector entering the head: mean-pooled states barely differ between
    # sequences, and an unnormalised head learns slowly (see hub.modeling_vqdna.ClassificationHead)
    head_norm: bool = True
    pooling: str = ""  # "" = the LM's (mean by default), or "mean" / "cls" for this task
    max_length: int = 512  # training truncates to this many tokens (and the LM's max); inference chunks whole sequences
    gradient_checkpointing: bool = False  # recompute each BERT layer in the backward pass (long inputs: less memory)
    # A strided VQ/HRQ tokenizer (stride s > 1) cuts a sequence into s-nt codes from its first
    # nucleotide; read from nucleotide k = 1..s-1 (its s "phases") the same sequence gives other
    # codes, and a short sequence's few tokens depend on where it happens to start. shift_augment:
    # every training row reads from a random phase each epoch (s x the data, no extra step);
    # shift_average: dev and test average the head's outputs over the s phases (s x the inference
    # cost, as many LM tokens as stride 1). Both do nothing at stride 1 and for hand-crafted tokenizers.
    shift_augment: bool = False
    shift_average: bool = False
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
# and max pooling (a motif anywhere in the sequence survives the max); up to 15 epochs with early
# stopping after 3 without a better dev score (issue 18: the from-scratch CNN's rule; at 4 fixed
# epochs the best epoch was the last on most small tasks, and with early stopping the best epochs
# of the in-domain HRQ LM were 4-14, benchmarks/results/indomain/).
FINETUNE_PRESETS: dict[str, dict] = {
    "paper": dict(method="lora", lr=1e-3, epochs=10, pooling="mean"),
    "cpu": dict(method="full", lr=1e-3, epochs=15, patience=3, pooling="meanmax"),
}


FINETUNE_METHODS = ("lora", "lora+embed", "full", "head")  # FinetuneConfig.method


def finetune_config(name_or_path: str | None = None, *layers: dict, **overrides) -> FinetuneConfig:
    """A :class:`FinetuneConfig` from a recipe (``cpu`` | ``paper``; None = ``cpu``) or a YAML file
    (``preset: cpu`` plus fields), then ``layers`` (dicts of overrides, e.g. :class:`Flags`) and
    ``overrides`` (None values are ignored: flags not given)."""
    return FINETUNE_STAGE.build(name_or_path, *layers, overrides)[0]


def validate_finetune_config(c: FinetuneConfig) -> None:
    """Raises ValueError (:class:`ConfigError` for a field's type or range) for a stage-3 recipe that cannot run."""
    check_fields(c, "fine-tuning")
    if c.method not in FINETUNE_METHODS:
        raise ValueError(f"method must be one of {FINETUNE_METHODS}, not {c.method!r}")
    if c.pooling not in ("", "mean", "cls", "meanmax"):
        raise ValueError(f"pooling must be '' (the LM's), 'mean', 'cls' or 'meanmax', not {c.pooling!r}")
    if c.decay not in ("linear", "cosine"):
        raise ValueError(f"decay must be 'linear' or 'cosine', not {c.decay!r}")
    for name in ("position_lr_scale", "backbone_lr_scale", "head_warmup_epochs"):
        if getattr(c, name) < 0:
            raise ConfigError(f"fine-tuning config: {name} = {getattr(c, name)} (from {origin(c, name)}) must be >= 0")
    if c.tokenizer_lr_scale < 0:
        raise ConfigError(f"fine-tuning config: tokenizer_lr_scale = {c.tokenizer_lr_scale} must be >= 0")
    if given(c, "tokenizer_lr_scale") and not c.unfreeze_tokenizer:
        raise ConfigError(f"fine-tuning config: tokenizer_lr_scale (from {origin(c, 'tokenizer_lr_scale')}) "
                          "scales the unfrozen tokenizer's learning rate: it needs unfreeze_tokenizer")


def check_finetune_length(c: FinetuneConfig, longest: int, model) -> None:
    """A ``max_length`` that a YAML, a flag or an argument gave must fit the language model
    (``longest`` tokens: the rows of an absolute position table, the length a rotary / ALiBi LM
    was built for); the recipe's own 512 is capped to a shorter LM's without a word (train_one)."""
    if given(c, "max_length") and c.max_length > longest:
        raise ConfigError(f"fine-tuning config: max_length = {c.max_length} (from {origin(c, 'max_length')}): "
                          f"must be at most {longest}, the longest input the language model {model} takes")


# ============================================================ one way to build every stage's configs
@dataclass
class StageSpec:
    """How one stage's configs are built from ``--config`` and overrides. Every stage goes
    through :meth:`build`, so one set of rules holds everywhere (README, "Configs"):

    - start: the preset ``--config`` names, or the YAML's ``preset:``; a YAML that names none
      starts from the stage's ``default`` preset, the one ``--config`` defaults to;
    - the YAML's fields replace the preset's; overrides (command-line flags, keyword arguments;
      None = not given) replace both: a flag always wins over the YAML;
    - an unknown preset, YAML key or override field is an error that names the known ones;
    - the finished configs are validated, so no override slips past the checks.
    """

    stage: str  # the stage in messages
    # YAML section -> dataclass, in the order build returns them; a single section "" = the fields
    # sit at the YAML's top level (stage 3). Field names are unique across a stage's sections,
    # so an override field names its section.
    sections: dict
    presets: dict  # preset name -> {section: fields}; a flat field dict for a single "" section
    default: str  # the preset a config starts from when it names none
    validate: Callable  # (*configs) -> None; raises ValueError
    noun: str = "preset"  # what the stage calls a preset ("recipe" in stage 3)
    # (preset sections, YAML sections, override sections) -> the sections to start from: the
    # stage's own start (stage 1: an HRQ tokenizer starts from the preset's HRQ sizes)
    prepare: Callable | None = None

    def __post_init__(self):
        names = [f.name for cls in self.sections.values() for f in fields(cls)]
        if len(names) != len(set(names)) or self.default not in self.presets:
            raise ValueError(f"{self.stage}: field names must be unique across sections and the default a preset")

    @property
    def flat(self) -> bool:
        return list(self.sections) == [""]

    def read(self, name_or_path: str | Path | None) -> tuple[str, dict]:
        """(preset name, YAML fields per section) of a preset name or a YAML file (None = the default)."""
        if name_or_path is None:
            name_or_path = self.default
        if isinstance(name_or_path, str) and name_or_path in self.presets:
            return name_or_path, {s: {} for s in self.sections}
        p = Path(name_or_path)
        if not p.exists():
            raise FileNotFoundError(f"{self.stage} config {str(name_or_path)!r} is neither a {self.noun} "
                                    f"{sorted(self.presets)} nor a file")
        try:
            spec = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML ({' '.join(str(e).split())})") from None
        if not isinstance(spec, dict):
            raise ValueError(f"{p}: expected a mapping (preset: {self.default}, ...)")
        preset = spec.pop("preset", self.default)
        if preset not in self.presets:
            raise ValueError(f"{p}: unknown {self.stage} {self.noun} {preset!r}; known: {sorted(self.presets)}")
        if self.flat:
            return preset, {"": spec}
        unknown = sorted(set(spec) - set(self.sections))
        if unknown:
            raise ValueError(f"{p}: unknown key(s) {unknown}; known: {['preset', *self.sections]}")
        given = {s: spec.get(s) or {} for s in self.sections}
        for s, values in given.items():
            if not isinstance(values, dict):
                raise ValueError(f"{p}: {s}: expected a mapping of fields, not {values!r}")
        return preset, given

    def route(self, *overrides: dict | None) -> dict:
        """Overrides (dicts of field -> value, a later one winning; None values = not given) per
        section; an unknown field is an error."""
        owner = {f.name: s for s, cls in self.sections.items() for f in fields(cls)}
        given = {k: v for layer in overrides for k, v in (layer or {}).items() if v is not None}
        unknown = sorted(set(given) - set(owner))
        if unknown:
            raise ValueError(f"unknown {self.stage} config field(s) {unknown}; known: {sorted(owner)}")
        out = {s: {} for s in self.sections}
        for k, v in given.items():
            out[owner[k]][k] = v
        return out

    def build(self, name_or_path: str | Path | None = None, *overrides: dict | None) -> tuple:
        """The stage's configs (one per section, validated): preset, then YAML, then ``overrides``
        (dicts of field -> value, a later one winning; None values = not given)."""
        preset, given = self.read(name_or_path)
        routed = self.route(*overrides)
        start = self.presets[preset]
        start = {"": start} if self.flat else start
        if self.prepare is not None:
            start = self.prepare(start, given, routed)
        origins = self.origins(name_or_path, given, *overrides)
        configs = tuple(_coerce(cls, {**start.get(s, {}), **given[s], **routed[s]}, origins, f"{self.noun} {preset}")
                        for s, cls in self.sections.items())
        self.validate(*configs)
        return configs

    @staticmethod
    def origins(name_or_path, given: dict, *overrides: dict | None) -> dict:
        """field -> where its value came from, for the messages: the YAML file and key, the flag
        (a :class:`Flags` layer) or the argument (any other override; the last one given wins)."""
        out = {k: f"{name_or_path}, key {s + '.' if s else ''}{k}" for s, values in given.items() for k in values}
        for layer in overrides:
            for k, v in (layer or {}).items():
                if v is not None:
                    out[k] = f"flag --{k.replace('_', '-')}" if isinstance(layer, Flags) else f"argument {k}"
        return out

    def override(self, configs: tuple, *overrides: dict | None) -> tuple:
        """``configs`` (one per section) with ``overrides`` applied by the rule of :meth:`build`,
        validated: for a start that is no preset (the benchmark budgets' FinetuneConfig defaults)."""
        routed = self.route(*overrides)
        origins = self.origins(None, {}, *overrides)
        out = tuple(_coerce(cls, {**dataclasses.asdict(c), **routed[s]}, {**c.__dict__.get("_origins", {}), **origins},
                            c.__dict__.get("_start"))
                    for (s, cls), c in zip(self.sections.items(), configs))
        self.validate(*out)
        return out


TOKENIZER_STAGE = StageSpec("tokenizer", {"model": TokenizerConfig, "train": TokenizerTrainConfig}, PRESETS,
                            default="tiny", validate=validate_tokenizer_config, prepare=_tokenizer_start)
LM_STAGE = StageSpec("language model", {"model": LMConfig, "train": LMTrainConfig}, LM_PRESETS,
                     default="tiny", validate=validate_lm_config)
FINETUNE_STAGE = StageSpec("fine-tuning", {"": FinetuneConfig}, FINETUNE_PRESETS, default="cpu",
                           validate=validate_finetune_config, noun="recipe")
STAGES = {"tokenizer": TOKENIZER_STAGE, "lm": LM_STAGE, "finetune": FINETUNE_STAGE}
