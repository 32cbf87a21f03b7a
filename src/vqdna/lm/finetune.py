"""Stage 3: fine-tune a pre-trained VQDNA LM on a GUE-style task (METHOD.md stage 3).

Two recipes (:data:`vqdna.config.FINETUNE_PRESETS`, ``vqdna finetune --config cpu|paper|my.yaml``):
``cpu`` (the default, chosen on dev sets: benchmarks/results/finetune-recipe/) trains every LM
weight with mean+max pooling, lr 1e-3, up to 15 epochs with early stopping on dev (patience 3);
``paper`` is METHOD.md's LoRA.

* task = :func:`vqdna.sequence.tasks.load_task` (classification if every label is an integer,
  else regression); sequences tokenized with the LM's own tokenizer copy (``lm/tokenizer``).
* the head (:class:`~vqdna.hub.modeling_vqdna.VQDNAForSequenceClassification`) is new. What else trains
  is the ``method``: ``"lora"`` (the paper: LoRA adapters, peft, r=8, alpha=16, on the attention
  **query, key and value** projections; everything else frozen, the codebook projection too),
  ``"lora+embed"`` (also the input embedding and positions), ``"full"`` (every LM weight, no
  LoRA), ``"head"`` (a probe on frozen features). ``unfreeze_tokenizer`` also trains the VQ/HRQ
  encoder, at ``tokenizer_lr_scale`` x the learning rate (the model then reads nucleotides,
  :func:`build_classifier`).
* batches: a seeded shuffle per epoch, bucketed by length and padded to the batch's longest
  sequence (:func:`bucketed_batches`); the progress bar shows loss and rows/s.
* AdamW (weight decay 0.01), batch 32, linear warm-up over 6% of the steps then linear decay to
  0 (METHOD.md; :func:`vqdna.train.train_loop`, the one training loop); training truncates
  sequences to ``max_length`` tokens (512; up to the LM's own maximum, which rotary / ALiBi LMs
  raise to 32,768 and beyond) and ``gradient_checkpointing`` recomputes each layer in the
  backward pass (long inputs).
* the head batch-normalises the pooled vector (see :class:`~vqdna.hub.modeling_vqdna.ClassificationHead`
  for why; ``head_norm=False`` turns it off); its running statistics belong to the best epoch's
  saved state like the trainable weights. A batch of fewer than ``SMALL_BATCH`` (8) rows (long
  inputs) is normalised with the running statistics, which :func:`calibrate_head` starts from 64
  training rows' pooled vectors before the first step.
* dev is scored after every epoch; the best epoch (primary metric: MCC for classification,
  Spearman for regression) is kept and the test split is scored **once**, with its weights.
  ``patience`` > 0 stops after that many epochs without a better dev score (the CNN
  reference's rule; the schedule still spans ``epochs``).
  Dev and test read whole sequences (chunks of the LM's maximum length averaged, see
  :mod:`vqdna.lm.inference`).
* a strided VQ/HRQ tokenizer (one code per s nt) reads a sequence in s phases (from nucleotide
  0, 1, ..., s-1): ``shift_augment`` trains each row on a random phase every epoch,
  ``shift_average`` averages dev and test outputs over the phases (:func:`phase_codes`).
* ``seeds`` runs (seed 0, 1, ...): mean and sample std of every metric.
* ``grid``: learning rate {1e-4, 3e-4, 1e-3} x LoRA dropout {0, 0.05} (LoRA methods only) x epochs {4, 6, 8, 10}
  (the paper's learning rates were lost; these bracket the usual LoRA range). Every epoch
  budget is its **own run** with its own schedule (no reuse of a longer run's intermediate
  epochs, whose learning rate would not have decayed): 6 x (4+6+8+10) = 168 epochs with seed 0;
  the configuration with the best dev score is then run with the other seeds.
* ``max_train``: train on a stratified (regression: by label quintile) subsample of that many
  rows, drawn with a fixed seed (0) so every seed and grid point sees the same rows.

Output folder: ``config.json`` + ``model.safetensors`` of the best-dev seed, LoRA **merged**
(``merge_and_unload``: ``vqdna predict`` needs no peft), ``tokenizer/``, ``task.json`` (kind,
classes, label names, metric) and ``results.json`` (every dev and test metric per seed, the mean
and std, per-epoch history, config, grid, wall times, subsampling).
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..config import (FINETUNE_METHODS, FinetuneConfig, check_finetune_length, check_value, finetune_config, to_dict,
                      validate_finetune_config)
from ..io import load_safetensors, read_json, staged, write_json_atomic
from ..metrics import primary_metric, score, summarize_seeds
from ..sequence.subsample import stratified_subsample as subsample  # the benchmark's rows
from ..sequence.tasks import Task, load_task
from ..train import Hooks, comparable, is_main_process, loop_config, setup_runtime, train_loop
from .artifacts import (backbone_weights, check_model_files, copy_tokenizer, load_model_tokenizer, resolve_model,
                        save_model, save_tokenizer, tokenizer_encoder_spec, tokenizer_sha256)
from .inference import CodeCache, collate, pooled_features, predict_codes, tokenize
from ..hub.modeling_vqdna import POOLINGS, SMALL_BATCH, VQDNAConfig, VQDNAForSequenceClassification

METHODS = FINETUNE_METHODS  # FinetuneConfig.method (defined with the config, vqdna.config)


# ---------------------------------------------------------------- phases of a strided tokenizer


def phase_codes(tok, sequences, stride: int, *, where: str, keys=None) -> list:
    """The codes of every sequence read from nucleotide k, for k = 1 .. stride-1 (phase 0 is the
    sequence itself): one list per phase, or one dict per phase keyed by ``keys`` (the training
    split is indexed by row). A sequence of at most k nucleotides keeps phase 0."""
    out = []
    for k in range(1, stride):
        c = tokenize(tok, [s[k:] if len(s) > k else s for s in sequences], where=where)
        out.append(dict(zip(keys, c)) if keys is not None else c)
    return out


# ---------------------------------------------------------------- model


def build_classifier(model_dir, *, num_labels: int, head_dropout: float = 0.1, head_norm: bool = True,
                     attention_dropout: float | None = None, regression_mean: float = 0.0,
                     regression_std: float = 1.0, id2label: dict | None = None,
                     random_init: bool = False, pooling: str = "",
                     tokenizer_encoder=None) -> VQDNAForSequenceClassification:
    """A classifier whose encoder comes from a pre-trained (or fine-tuned) model folder.

    ``random_init``: keep only the frozen codebooks (or the tokenizer encoder) and initialise the
    rest at random (the "did pre-training help?" control). ``tokenizer_encoder``: a VQ/HRQ
    tokenizer folder (the LM's own): the model then reads nucleotides and carries that
    tokenizer's ConvNeXt encoder in front of the LM (``input_mode="encoder"``, see
    :meth:`~vqdna.hub.modeling_vqdna.VQDNAEmbeddings.encoder_features`), so fine-tuning can train it.
    """
    model_dir = Path(model_dir)
    cfg = VQDNAConfig.from_pretrained(model_dir)
    encoder_state = None
    if tokenizer_encoder is not None:
        cfg, encoder_state = _encoder_mode(cfg, Path(tokenizer_encoder))
    cfg.num_labels = num_labels
    cfg.architectures = ["VQDNAForSequenceClassification"]
    cfg.classifier_dropout = head_dropout
    cfg.classifier_norm = head_norm
    if attention_dropout is not None:  # else the LM's own
        cfg.attention_probs_dropout_prob = float(attention_dropout)
    if pooling:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        cfg.pooling = pooling
    cfg.regression_mean, cfg.regression_std = float(regression_mean), float(regression_std)
    if id2label:
        cfg.id2label = {int(k): str(v) for k, v in id2label.items()}
        cfg.label2id = {v: k for k, v in cfg.id2label.items()}
    model = VQDNAForSequenceClassification(cfg)
    backbone = backbone_weights(model_dir)
    if encoder_state is not None:
        backbone = {k: v for k, v in backbone.items() if not k.startswith("embeddings.codebook")}
        backbone.update(encoder_state)
    if random_init:
        backbone = {k: v for k, v in backbone.items() if k.startswith(("embeddings.codebook", "embeddings.tok_encoder"))}
        model.vqdna.load_state_dict(backbone, strict=False)
    else:
        missing, unexpected = model.vqdna.load_state_dict(backbone, strict=False)
        missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
        if missing or unexpected:
            raise ValueError(f"{model_dir}: encoder weights do not fit the config (missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]})")
    return model


def _encoder_mode(cfg: VQDNAConfig, tok_dir: Path) -> tuple[VQDNAConfig, dict]:
    """The config of a nucleotide-reading model that carries ``tok_dir``'s encoder, and that
    encoder's weights under the model's parameter names."""
    spec = read_json(tok_dir / "config.json")
    t = spec.get("model") or {}
    if spec.get("tokenizer_type") not in ("vq", "hrq") or cfg.input_mode != "codebook":
        raise ValueError(f"{tok_dir}: unfreezing the tokenizer needs a VQ/HRQ tokenizer and a codebook-input LM")
    if t.get("stride", 1) != 1:  # the nucleotide-reading model keeps one position per nucleotide
        raise ValueError(f"{tok_dir}: --unfreeze-tokenizer needs a stride-1 tokenizer (one code per nucleotide); "
                         f"this one has stride {t['stride']}: fine-tune with the frozen tokenizer instead")
    cfg.input_mode, cfg.vocab_sizes = "encoder", [5]
    cfg.tokenizer_encoder = tokenizer_encoder_spec(tok_dir)
    cfg.tokenizer_type, cfg.tokenizer_sha256 = "char", None  # set when the char tokenizer is saved beside it
    state = load_safetensors(tok_dir / "model.safetensors")
    enc = {f"embeddings.tok_encoder.{k[len('encoder.'):]}": v for k, v in state.items() if k.startswith("encoder.")}
    if not enc:
        raise ValueError(f"{tok_dir}/model.safetensors holds no encoder weights")
    return cfg, enc


def apply_method(model: VQDNAForSequenceClassification, method: str, *, r: int = 8, alpha: int = 16,
                 dropout: float = 0.05, targets=("query", "key", "value")):
    """Freeze what the method freezes and add LoRA; returns the module to train (a PeftModel for LoRA)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    for p in model.parameters():
        p.requires_grad_(False)
    net = model
    if method.startswith("lora"):
        import warnings

        from peft import LoraConfig, get_peft_model

        with warnings.catch_warnings():  # peft asks transformers a deprecated question (is_gradient_checkpointing)
            warnings.simplefilter("ignore", FutureWarning)
            net = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                                                   target_modules=list(targets), bias="none"))
    for name, p in model.named_parameters():
        if name.startswith(("classifier.", "vqdna.embeddings.tok_encoder.")):  # the head; an unfrozen tokenizer
            p.requires_grad_(True)
        elif method == "full" and "word_embeddings" not in name:
            p.requires_grad_(True)
        elif method == "lora+embed" and (name.startswith("vqdna.embeddings.")
                                         or name.startswith("vqdna.encoder.embeddings.")) \
                and "word_embeddings" not in name:
            p.requires_grad_(True)
    return net


def merged(net, model: VQDNAForSequenceClassification) -> VQDNAForSequenceClassification:
    """The plain classifier with LoRA folded into the attention weights (no peft needed to use it)."""
    if net is model:
        return model
    return net.merge_and_unload()


def trainable_state(model: nn.Module) -> dict:
    """What fine-tuning changes: trainable parameters and the head's running statistics."""
    state = {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}
    state.update({k: b.detach().clone() for k, b in model.named_buffers() if k.startswith("classifier.")})
    return state


# ---------------------------------------------------------------- data


def bucketed_batches(lengths: np.ndarray, batch_rows: int, *, seed, pool: int = 50) -> list[np.ndarray]:
    """Row indices of one epoch's batches, bucketed by length so that padding to a batch's
    longest sequence wastes little: a seeded permutation is cut into pools of ``pool`` batches,
    each pool is sorted by length and cut into batches, and the batch order is shuffled.
    Every row appears exactly once; a pure function of ``seed`` (resume-safe)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(lengths))
    out = []
    step = batch_rows * pool
    for s in range(0, len(perm), step):
        chunk = perm[s:s + step]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out.extend(chunk[b:b + batch_rows] for b in range(0, len(chunk), batch_rows))
    order = rng.permutation(len(out))
    return [out[i] for i in order]


class ClassifierStep(nn.Module):
    """Adapter for :func:`vqdna.train.train_loop`."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, batch):
        return {"loss": self.net(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                 labels=batch["labels"]).loss}


# ---------------------------------------------------------------- one run


def train_one(lm_dir, task: Task, codes: dict, train_idx: np.ndarray, cfg: FinetuneConfig, *, seed: int,
              random_init: bool = False, device: str | None = None, progress: bool = False) -> dict:
    """Fine-tune once (one seed, one configuration). Returns metrics, history and the merged model."""
    t0 = time.time()
    runtime = setup_runtime(device)
    kind = task.kind
    y_train = task.train.labels[train_idx]
    num_labels = task.n_classes if kind == "classification" else 1
    mean, std = (float(y_train.mean()), float(y_train.std() or 1.0)) if kind == "regression" else (0.0, 1.0)
    id2label = {v: k for k, v in task.label_names.items()} if task.label_names else None
    torch.manual_seed(seed)
    model = build_classifier(lm_dir, num_labels=num_labels, head_dropout=cfg.head_dropout, head_norm=cfg.head_norm,
                             attention_dropout=cfg.attention_dropout, regression_mean=mean,
                             regression_std=std, id2label=id2label, random_init=random_init,
                             pooling=cfg.pooling,
                             tokenizer_encoder=Path(lm_dir) / "tokenizer" if cfg.unfreeze_tokenizer else None)
    max_len = min(cfg.max_length, model.config.max_tokens)
    if cfg.gradient_checkpointing:
        model.activation_checkpointing_enable()  # before LoRA wraps it; transformers' per-layer recompute
    train_codes = [codes["train"][i][:, :max_len] for i in train_idx]
    if cfg.head_warmup_epochs:  # LP-FT: the head first, on the frozen LM (its statistics from every training row)
        warm_head(model, train_codes, y_train, epochs=cfg.head_warmup_epochs, lr=cfg.lr,
                  weight_decay=cfg.weight_decay, seed=seed, batch_size=cfg.eval_batch_size)
    elif cfg.head_norm and cfg.batch_size < SMALL_BATCH:  # the head normalises with running statistics: start them
        calibrate_head(model, train_codes, seed=seed, batch_size=cfg.eval_batch_size)
    phases = codes.get("phases") or {}  # {split: [codes read from nucleotide k] for k = 1..stride-1}
    train_phases = [train_codes] + ([[ph[i][:, :max_len] for i in train_idx] for ph in phases.get("train", [])]
                                    if cfg.shift_augment else [])
    net = apply_method(model, cfg.method, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                       targets=cfg.lora_targets)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    vocab = model.config.vocab_sizes
    bs = cfg.batch_size
    per_step = bs * runtime.world_size
    steps_per_epoch = max(int(np.ceil(len(train_codes) / per_step)), 1)
    max_steps = steps_per_epoch * cfg.epochs

    lengths = np.array([c.shape[-1] for c in train_codes])
    epoch_batches: dict[int, list[np.ndarray]] = {}

    def batches_of(epoch: int) -> list[np.ndarray]:
        """This epoch's batches: a seeded shuffle, bucketed by length, batch order shuffled."""
        if epoch not in epoch_batches:
            epoch_batches.clear()
            epoch_batches[epoch] = bucketed_batches(lengths, per_step, seed=(seed, epoch))
        return epoch_batches[epoch]

    def get_batch(step, micro, rank):
        epoch, i = divmod(step, steps_per_epoch)
        batch = batches_of(epoch)[i]
        rows = batch[rank * bs: (rank + 1) * bs]
        if not len(rows):  # a rank past the end of a short last batch
            rows = batch[:1]
        # a random phase per row (only phase 0 without shift_augment), a pure function of (seed, step): resume-safe
        pick = np.random.default_rng((seed, step, micro, rank)).integers(0, len(train_phases), len(rows))
        ids, mask = collate([train_phases[p][j] for p, j in zip(pick, rows)], vocab)
        lab = torch.from_numpy(y_train[rows])
        return {"input_ids": ids, "attention_mask": mask, "labels": lab}

    def predict(m, split: str) -> np.ndarray:
        """Head outputs on a split; with ``shift_average`` the mean over the tokenizer's phases."""
        views = [codes[split]] + (phases.get(split, []) if cfg.shift_average else [])
        return np.mean([predict_codes(m, v, batch_size=cfg.eval_batch_size) for v in views], axis=0)

    def evaluate(step_model, step):
        pred = predict(model, "dev")
        return {f"dev_{k}": v for k, v in score(kind, task.dev.labels, pred).items()}

    def epoch_of(step: int) -> int:
        return int(round(step / steps_per_epoch))

    # one evaluation per epoch; the loop keeps the best epoch's trainable state in memory, no checkpoints
    loop = loop_config(cfg, max_steps=max_steps, warmup_steps=max(int(round(cfg.warmup_ratio * max_steps)), 1),
                       min_lr_ratio=0.0, eval_every=steps_per_epoch, checkpoint_every=0,
                       best_metric=f"dev_{primary_metric(kind)}", progress=progress,
                       log_name=f"finetune seed {seed}", unit="rows",
                       lr_scales=lr_scales(cfg))
    # with LP-FT the warmed head on the frozen LM is epoch 0, a candidate like every epoch: fine-tuning
    # is kept only where dev says it beat the head alone
    warmed = ({"step": 0, "metrics": evaluate(model, 0), "state": trainable_state(model)}
              if cfg.head_warmup_epochs else None)
    state = train_loop(ClassifierStep(net), cfg=loop, get_batch=get_batch, evaluate=evaluate, out_dir=None,
                       runtime=runtime, hooks=Hooks(snapshot=lambda _: trainable_state(model)), units_per_batch=bs)
    best = state["best"]
    if warmed and comparable(warmed["metrics"][loop.best_metric]) >= comparable(best["metrics"][loop.best_metric]):
        best = warmed  # ties go to the simpler model
    history = [dict(epoch=epoch_of(h["step"]), **{k: v for k, v in h.items() if k.startswith("dev_")})
               for h in ([dict(step=0, **warmed["metrics"])] if warmed else []) + state["history"]]
    # the best epoch's weights, then the test split once
    with torch.no_grad():
        tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
        for k, v in best["state"].items():
            tensors[k].copy_(v)
    train_time = time.time() - t0
    final = merged(net, model).eval()
    pred = predict(final, "test")
    test = score(kind, task.test.labels, pred)
    return dict(seed=seed, best_epoch=epoch_of(best["step"]), epochs_run=epoch_of(state["step"]), dev=_unprefixed(best["metrics"], "dev_"), test=test,
                history=history, trainable_parameters=n_trainable, steps=state["step"], train_rows=len(train_codes),
                train_time_s=train_time, wall_time_s=time.time() - t0, model=final)


@torch.no_grad()
def calibrate_head(model: VQDNAForSequenceClassification, train_codes: list, *, seed: int, batch_size: int,
                   rows: int = 64) -> None:
    """Start the head's running statistics from the pooled vectors of ``rows`` training rows (a
    seeded draw): a batch of fewer than SMALL_BATCH rows is normalised with them (ClassificationHead)."""
    pick = np.random.default_rng((seed, 1)).permutation(len(train_codes))[:rows]
    was = model.training
    model.eval()
    pooled = pooled_features(model.vqdna, [train_codes[i] for i in pick], batch_size=batch_size)
    model.train(was)
    model.classifier.calibrate(pooled)


#: rows per step of the head's warm-up: its batch normalisation reads a batch's own statistics
HEAD_WARMUP_BATCH = 32


def warm_head(model: VQDNAForSequenceClassification, train_codes: list, labels: np.ndarray, *, epochs: int,
              lr: float, weight_decay: float, seed: int, batch_size: int) -> float:
    """LP-FT's first stage (``FinetuneConfig.head_warmup_epochs``): the head alone, ``epochs`` of
    AdamW at ``lr`` over the frozen LM's pooled vectors of the training rows (computed once, in
    eval mode), batches of :data:`HEAD_WARMUP_BATCH` in a seeded order. Its running statistics start
    from all of them. Returns the last epoch's mean training loss."""
    was = model.training
    model.eval()
    with torch.no_grad():
        device = next(model.classifier.parameters()).device
        pooled = pooled_features(model.vqdna, train_codes, batch_size=batch_size).float().to(device)
    model.classifier.calibrate(pooled)
    model.classifier.train()
    y = torch.as_tensor(np.asarray(labels)).to(device)
    opt = torch.optim.AdamW(model.classifier.parameters(), lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng((seed, 2))
    last = float("nan")
    for _ in range(epochs):
        order, losses = rng.permutation(len(pooled)), []
        for i in range(0, len(order), HEAD_WARMUP_BATCH):
            rows = torch.from_numpy(order[i:i + HEAD_WARMUP_BATCH])
            if len(rows) < 2 and len(order) > 1:  # one row has no batch statistics: it joins the next epoch
                continue
            loss = model.loss(model.head(pooled[rows]), y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        last = float(np.mean(losses)) if losses else last
    model.train(was)
    return last


def _unprefixed(metrics: dict, prefix: str) -> dict:
    """The entries of ``metrics`` whose key starts with ``prefix``, the prefix dropped."""
    return {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix)}


# ---------------------------------------------------------------- the stage


def lr_scales(cfg: FinetuneConfig) -> tuple:
    """(parameter-name fragment, share of ``cfg.lr``) pairs of the training loop's parameter groups."""
    out = []
    if cfg.unfreeze_tokenizer:
        out.append(("tok_encoder", cfg.tokenizer_lr_scale))
    if cfg.position_lr_scale != 1.0:
        out.append(("position_embeddings", cfg.position_lr_scale))
    if cfg.backbone_lr_scale != 1.0:  # the first fragment that matches wins: the two above keep their share
        out.append(("vqdna.", cfg.backbone_lr_scale))
    return tuple(out)


def finetune(model_dir, task_dir, *, out, seeds: int = 3, grid: bool = False, config: FinetuneConfig | None = None,
             random_init: bool = False, device: str | None = None, progress: bool = True,
             code_cache: CodeCache | None = None) -> dict:
    """Fine-tune ``model_dir`` (from ``vqdna pretrain``) on the task folder ``task_dir``; see the module doc.
    ``code_cache``: task codes kept across calls that share a tokenizer (:class:`~vqdna.lm.inference.CodeCache`)."""
    t0 = time.time()
    cfg = config or finetune_config()  # the default recipe, cpu
    validate_finetune_config(cfg)
    check_value("seeds", seeds, "argument seeds")
    model_dir, out = resolve_model(model_dir), Path(out)
    if not (model_dir / "model.safetensors").exists():
        raise FileNotFoundError(f"{model_dir}: not a model folder (no model.safetensors); run `vqdna pretrain`")
    # every file this run reads, checked before any work (a damaged metrics.json used to fail after training)
    lm_config = check_model_files(model_dir)
    check_finetune_length(cfg, lm_config.max_tokens, model_dir)
    lm_metrics = _lm_summary(model_dir)
    task = load_task(task_dir)
    metric = primary_metric(task.kind)
    tok = load_model_tokenizer(model_dir)
    if cfg.unfreeze_tokenizer:  # the model reads nucleotides and runs the tokenizer's encoder itself
        from ..tokenizers.handcrafted import build_handcrafted

        if tok.tokenizer_type not in ("vq", "hrq"):
            raise ValueError(f"unfreeze_tokenizer needs a VQ/HRQ tokenizer; {model_dir} uses {tok.tokenizer_type}")
        tok = build_handcrafted("char")
    t_tok = time.time()
    train_idx = subsample(task.train.labels, cfg.max_train, task.kind, seed=0)
    # only the training rows that are used get tokenized (codes["train"] is indexed like the split)
    cache = code_cache if code_cache is not None else CodeCache()
    tok_id = "char (nucleotides)" if cfg.unfreeze_tokenizer else tokenizer_sha256(model_dir / "tokenizer")
    codes = {s: cache.tokenize(tok, tok_id, task.splits[s]) for s in ("dev", "test")}
    codes["train"] = dict(zip(train_idx.tolist(), cache.tokenize(tok, tok_id, task.train, train_idx)))
    stride = getattr(tok, "stride", 1) or 1
    if stride > 1 and (cfg.shift_augment or cfg.shift_average):
        rows = {"train": train_idx.tolist(), "dev": range(len(task.dev)), "test": range(len(task.test))}
        needed = (["train"] if cfg.shift_augment else []) + (["dev", "test"] if cfg.shift_average else [])
        codes["phases"] = {s: phase_codes(tok, [task.splits[s].sequences[i] for i in rows[s]], stride,
                                          where=f"{task.splits[s].path}: row",
                                          keys=rows[s] if s == "train" else None) for s in needed}
    t_tok = time.time() - t_tok
    log = print if progress else (lambda *a, **k: None)
    log(f"finetune: {task!r}; tokenizer {tok.tokenizer_type}; training on {len(train_idx)} of {len(task.train)} rows"
        f"; primary metric {metric}; method {cfg.method}")

    grid_results = []
    first = None
    if grid:
        # LoRA dropout is a grid axis only where there is LoRA
        dropouts = cfg.grid_dropout if cfg.method.startswith("lora") else (cfg.lora_dropout,)
        for lr in cfg.grid_lr:
            for dropout in dropouts:
                for epochs in cfg.grid_epochs:
                    c = replace(cfg, lr=lr, lora_dropout=dropout, epochs=epochs)
                    r = train_one(model_dir, task, codes, train_idx, c, seed=0, device=device,
                                  random_init=random_init)
                    grid_results.append(dict(lr=lr, lora_dropout=dropout, epochs=epochs, dev=r["dev"],
                                             best_epoch=r["best_epoch"], wall_time_s=r["wall_time_s"]))
                    log(f"  grid lr={lr:g} dropout={dropout:g} epochs={epochs}: dev {metric}="
                        f"{r['dev'][metric]:.4f} (epoch {r['best_epoch']}, {r['wall_time_s']:.0f}s)")
                    if first is None or r["dev"][metric] > first["dev"][metric]:
                        first, cfg_best = r, c
        cfg = cfg_best
        log(f"  grid choice: lr={cfg.lr:g} dropout={cfg.lora_dropout:g} epochs={cfg.epochs}")

    runs = []
    for seed in range(seeds):
        if seed == 0 and first is not None:
            r = first
        else:
            r = train_one(model_dir, task, codes, train_idx, cfg, seed=seed, device=device,
                          random_init=random_init, progress=progress)
        log(f"  seed {seed}: dev {metric}={r['dev'][metric]:.4f} (best epoch {r['best_epoch']}), "
            f"test {metric}={r['test'][metric]:.4f}  [{r['wall_time_s']:.0f}s]")
        runs.append(r)

    best_run = max(runs, key=lambda r: r["dev"][metric])
    task_info = dict(name=task.name, path=str(Path(task_dir).resolve()), kind=task.kind, n_classes=task.n_classes,
                     label_names=task.label_names, metric=metric,
                     sizes={k: len(v) for k, v in task.splits.items()})
    per_seed = [{k: v for k, v in r.items() if k != "model"} for r in runs]
    results = dict(
        task=task_info, model=str(model_dir.resolve()), random_init=random_init, metric=metric,
        test={k: v for k, v in summarize_seeds([r["test"] for r in runs]).items()},
        dev={k: v for k, v in summarize_seeds([r["dev"] for r in runs]).items()},
        seeds=list(range(seeds)), per_seed=per_seed, saved_seed=best_run["seed"],
        config=to_dict(cfg), grid=grid_results or None,
        subsample=dict(max_train=cfg.max_train, train_rows=len(train_idx), of=len(task.train),
                       stratified=True, seed=0) if len(train_idx) < len(task.train) else None,
        train_tokens_mean=float(np.mean([codes["train"][i].shape[-1] for i in train_idx.tolist()])),
        tokenize_time_s=t_tok, wall_time_s=time.time() - t0,
        lm_metrics=lm_metrics)
    if is_main_process():  # under torchrun every rank holds the same model; rank 0 writes it
        # every file is written, then moved into out together, config.json last: a failed run leaves no model
        with staged(out) as stage:
            if cfg.unfreeze_tokenizer:  # the nucleotide (char) tokenizer goes beside the model
                best_run["model"].config.tokenizer_sha256 = save_tokenizer(tok, stage / "tokenizer")
                save_model(best_run["model"], stage)
            else:
                save_model(best_run["model"], stage)
                copy_tokenizer(model_dir / "tokenizer", stage / "tokenizer", best_run["model"].config.tokenizer_sha256,
                               recorded="the model config's", consequence="the model folder is damaged")
            write_json_atomic(stage / "task.json", task_info)
            write_json_atomic(stage / "results.json", results)
    s = results["test"][metric]
    log(f"finetune {task.name}: test {metric} = {s['mean']:.4f} +- {s['std']:.4f} over {seeds} seed(s) "
        f"({results['wall_time_s']:.0f}s); saved to {out}")
    return results


def _lm_summary(model_dir: Path) -> dict | None:
    f = model_dir / "metrics.json"
    if not f.exists():
        return None
    m = read_json(f)
    return {k: v for k, v in m.items() if k in ("steps", "tokens_seen", "val_acc", "val_loss", "wall_time_s")}
