"""The one training loop of vqdna, shared by every stage.

A stage hands it a model whose ``forward(batch)`` returns a dict with ``loss``, a
``get_batch(step, micro, rank)`` function that is a pure function of its arguments (so a
resumed run draws the same data as an unbroken one), an ``evaluate(model, step)`` function,
optional hooks, and a :class:`LoopConfig` built from the stage's config (:func:`loop_config`).
The loop owns devices, torch.distributed (DDP under ``torchrun``/``accelerate launch``), mixed
precision, gradient accumulation, AdamW with warm-up + cosine (or linear) decay, progress,
checkpoints (safetensors + JSON, written atomically; or none), ``--resume``, a planned stop
(``stop_at``) and keeping the best evaluation's model state (``best_metric``).
"""
from __future__ import annotations

import math
import os
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .io import load_safetensors, read_json, save_safetensors, write_json_atomic


@dataclass
class LoopConfig:
    """How the loop runs one stage; a stage builds it from its own config with :func:`loop_config`."""

    max_steps: int
    lr: float
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.999)
    warmup_steps: int = 0  # linear warm-up of the learning rate
    min_lr_ratio: float = 0.01  # the decay ends at lr * this at max_steps
    # ((name fragment, factor), ...): parameters whose name contains the fragment train at
    # lr x factor (the first match; discriminative fine-tuning, e.g. a pre-trained front end slower)
    lr_scales: tuple = ()
    decay: str = "cosine"  # after warm-up: "cosine" (pre-training) or "linear" (METHOD.md's fine-tuning)
    grad_accum: int = 1  # micro-batches per optimizer step
    grad_clip: float = 1.0  # 0 = off
    eval_every: int = 500
    checkpoint_every: int = 500  # 0 = no checkpoints: nothing is written, the run cannot be resumed
    keep_checkpoints: int = 2
    # end after this step (its checkpoint written) while the schedule stays that of max_steps:
    # an interruption on purpose, continued later with resume; None = run to max_steps
    stop_at: int | None = None
    # a key of evaluate's result, higher is better: the loop keeps the model state of the best
    # evaluation in memory (Hooks.snapshot) and returns it; needs checkpoint_every = 0, since a
    # resumed run would not hold the best state of the steps before it
    best_metric: str = ""
    # early stopping: end the run after this many evaluations in a row without a new best
    # ``best_metric`` (the learning-rate schedule stays that of max_steps); 0 = never
    patience: int = 0
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (autocast); auto = bf16 on CUDA, fp32 on CPU
    log_name: str = "train"
    unit: str = ""  # what units_per_batch counts ("rows", "tokens"); named, the bar shows its rate
    progress: bool = True  # False: no progress bar (the evaluation lines are still printed)


# the fields a stage's config shares with LoopConfig, under the same name and meaning
SHARED_FIELDS = ("max_steps", "lr", "weight_decay", "betas", "warmup_steps", "min_lr_ratio", "decay",
                 "grad_accum", "eval_every", "checkpoint_every", "precision", "patience")


def loop_config(stage_config, **given) -> LoopConfig:
    """The :class:`LoopConfig` of a stage: the :data:`SHARED_FIELDS` its config has, then ``given``
    (what the stage decides itself: a warm-up it computed, the log name, ...)."""
    values = {k: getattr(stage_config, k) for k in SHARED_FIELDS if hasattr(stage_config, k)}
    values.update(given)
    return LoopConfig(**values)


@dataclass
class Runtime:
    """Where this process runs: device, rank and world size (from torchrun's env)."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def is_main_process() -> bool:
    """Rank 0 of a ``torchrun`` / ``accelerate launch`` job, or the only process: the one that writes."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def setup_runtime(device: str | None = None) -> Runtime:
    """Initialise torch.distributed when launched by torchrun/accelerate (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Runtime(dev, rank, world, local)


def lr_at(step: int, cfg: LoopConfig) -> float:
    """Linear warm-up, then cosine (or linear) decay to ``lr * min_lr_ratio``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(cfg.max_steps - cfg.warmup_steps, 1)
    t = min(max(step - cfg.warmup_steps, 0) / span, 1.0)
    if cfg.decay == "linear":
        shape = 1.0 - t
    elif cfg.decay == "cosine":
        shape = 0.5 * (1 + math.cos(math.pi * t))
    else:
        raise ValueError(f"decay must be 'cosine' or 'linear', not {cfg.decay!r}")
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * shape)


def autocast_for(device: torch.device, precision: str):
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device.type, dtype=dtype)


def make_optimizer(model: torch.nn.Module, cfg: LoopConfig) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases, norms and other 1-d parameters; ``cfg.lr_scales`` puts
    the parameters they name in their own groups (``lr_scale`` of a group multiplies the schedule)."""
    groups: dict[tuple, list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            scale = next((f for frag, f in cfg.lr_scales if frag in name), 1.0)
            groups.setdefault((p.ndim >= 2, scale), []).append(p)
    # the two plain groups first and always present (the order a checkpoint's optimizer state has)
    keys = [(True, 1.0), (False, 1.0)] + sorted(k for k in groups if k[1] != 1.0)
    return torch.optim.AdamW([dict(params=groups.get(k, []), weight_decay=cfg.weight_decay if k[0] else 0.0,
                                   lr_scale=k[1]) for k in keys], lr=cfg.lr, betas=tuple(cfg.betas))


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(folder: Path, model, optimizer, state: dict, keep: int = 2) -> Path:
    """Write ``folder/step-N/`` (model, optimizer, trainer state) then point ``latest.json`` at it.

    The step folder is written under a temporary name and renamed; ``latest.json`` is
    replaced atomically, so a run killed at any moment leaves a loadable checkpoint.
    """
    folder.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['step']:08d}"
    tmp = folder / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_safetensors({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                     tmp / "model.safetensors")
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    save_safetensors(opt_tensors, tmp / "optimizer.safetensors")
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    save_safetensors(rng, tmp / "rng.safetensors")
    write_json_atomic(tmp / "trainer.json", dict(state, optimizer=opt_meta))
    final = folder / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    write_json_atomic(folder / "latest.json", {"step": state["step"], "dir": name})
    steps = sorted(p for p in folder.glob("step-*") if p.is_dir())
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(folder: Path, model, optimizer, *, log: Callable | None = None) -> dict | None:
    """Restore the newest intact checkpoint in ``folder``; returns its trainer state, or None when
    there is no checkpoint.

    The candidates are the checkpoint ``latest.json`` names, then every ``step-*`` folder, newest
    first. One with a missing, truncated or garbage file (or a ``latest.json`` that cannot be
    read) is skipped with a message naming the file and what is wrong (``log``; default stderr);
    when checkpoints exist but none is intact, a ``ValueError`` lists them.
    """
    log = log or (lambda s: print(s, file=sys.stderr))
    folder = Path(folder)
    candidates: list[Path] = []
    latest = folder / "latest.json"
    if latest.exists():
        try:
            name = read_json(latest)["dir"]
            if not isinstance(name, str) or not name.startswith("step-") or "/" in name or "\\" in name:
                raise ValueError(f"{latest}: 'dir' is {name!r}, not a step-* folder name")
            candidates.append(folder / name)
        except (ValueError, KeyError, TypeError) as e:
            why = e if isinstance(e, ValueError) else f"{latest}: no 'dir' entry"
            log(f"--resume: skipping {latest.name}: {why}; looking for step-* folders instead")
    for p in sorted((p for p in folder.glob("step-*") if p.is_dir()), key=_step_of, reverse=True):
        if p not in candidates:
            candidates.append(p)
    skipped = []
    for ck in candidates:
        try:
            if not ck.is_dir():
                raise FileNotFoundError(f"{ck}: no such checkpoint folder")
            weights = load_safetensors(ck / "model.safetensors")
            state = read_json(ck / "trainer.json")
            if not isinstance(state, dict) or "step" not in state or "optimizer" not in state:
                raise ValueError(f"{ck / 'trainer.json'}: not a trainer state (no 'step' / 'optimizer')")
            opt = load_safetensors(ck / "optimizer.safetensors")
            rng = load_safetensors(ck / "rng.safetensors")
            try:
                model.load_state_dict(weights)
            except RuntimeError as e:
                raise ValueError(f"{ck / 'model.safetensors'}: does not fit this model (written with another "
                                 f"config?): {str(e).splitlines()[0]}") from None
            try:
                optimizer.load_state_dict(_unflatten_optimizer(opt, state.pop("optimizer")))
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise ValueError(f"{ck / 'optimizer.safetensors'}: does not fit this optimizer ({e})") from None
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state(rng["cuda"])
        except (ValueError, OSError, KeyError, TypeError, RuntimeError) as e:
            why = str(e) if isinstance(e, (ValueError, OSError)) else f"{ck}: {type(e).__name__}: {e}"
            skipped.append(f"{ck.name}: {why}")
            log(f"--resume: skipping checkpoint {ck.name}: {why}")
            continue
        if skipped:
            log(f"--resume: falling back to {ck} (step {state['step']})")
        return state
    if not candidates:
        return None
    raise ValueError(f"{folder}: no intact checkpoint to resume from ({len(skipped)} skipped, see above: "
                     f"{', '.join(s.split(':', 1)[0] for s in skipped)}); rerun without --resume to start over")


def _step_of(p: Path) -> int:
    try:
        return int(p.name.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def _flatten_optimizer(sd: dict) -> tuple[dict, dict]:
    tensors, meta = {}, {"param_groups": sd["param_groups"], "state": {}}
    for pid, st in sd["state"].items():
        meta["state"][str(pid)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                meta["state"][str(pid)][k] = v
    return tensors, meta


def _unflatten_optimizer(tensors: dict, meta: dict) -> dict:
    state = {int(pid): dict(extra) for pid, extra in meta["state"].items()}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


# ---------------------------------------------------------------- the loop


@dataclass
class Hooks:
    """Stage-specific work the loop calls at fixed points (all optional)."""

    before_step: Callable | None = None  # (step, model, batch) -> None, e.g. k-means init, re-seeding
    progress: Callable | None = None  # (model, outputs) -> dict of numbers for the progress bar
    on_eval: Callable | None = None  # (step, metrics) -> None
    # (model) -> dict of tensors to keep of the best evaluation (LoopConfig.best_metric);
    # default: a copy of the model's state_dict
    snapshot: Callable | None = None


def comparable(value) -> float:
    """A metric as a comparable number: NaN ranks below everything."""
    value = float(value)
    return -math.inf if math.isnan(value) else value


def train_loop(model: torch.nn.Module, *, cfg: LoopConfig, get_batch: Callable, evaluate: Callable,
               out_dir: str | Path | None, runtime: Runtime, resume: bool = False,
               hooks: Hooks | None = None, units_per_batch: int = 0) -> dict:
    """Train ``model`` to ``cfg.max_steps`` (or ``cfg.stop_at``); returns the trainer state
    (``step``, ``seen``, ``history``, ``wall_time``; with ``cfg.best_metric`` also ``best``: the
    ``step``, ``metrics`` and kept model ``state`` of the best evaluation, None if none scored).

    ``get_batch(step, micro, rank)`` must depend only on its arguments (and fixed data),
    so that the data position is the step and resuming reproduces an unbroken run.
    ``evaluate(model, step)`` returns a dict of numbers; it runs in eval mode without gradients
    every ``eval_every`` steps and at ``max_steps``. ``units_per_batch`` (nucleotides or tokens per
    micro-batch per process) feeds the "seen" counter; it may be a function of the step.
    Checkpoints go to ``out_dir/checkpoints`` (no ``out_dir`` needed with ``checkpoint_every=0``).
    """
    hooks = hooks or Hooks()
    if cfg.patience and not cfg.best_metric:
        raise ValueError("patience (early stopping) needs best_metric")
    if cfg.best_metric and cfg.checkpoint_every:
        raise ValueError("best_metric keeps the best state in memory only: it needs checkpoint_every=0")
    if resume and not cfg.checkpoint_every:
        raise ValueError("resume needs checkpoints (checkpoint_every > 0)")
    ck_dir = Path(out_dir) / "checkpoints" if cfg.checkpoint_every else None
    model.to(runtime.device)
    optimizer = make_optimizer(model, cfg)
    state = {"step": 0, "seen": 0, "history": [], "wall_time": 0.0}
    if resume:
        state = _resumed_state(ck_dir, model, optimizer, runtime) or state
    ddp = runtime.world_size > 1
    net = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False) if ddp else model
    amp = autocast_for(runtime.device, cfg.precision)
    bar = tqdm(total=cfg.max_steps, initial=state["step"], desc=cfg.log_name,
               disable=not (runtime.is_main and cfg.progress), dynamic_ncols=True, mininterval=1.0)
    snapshot = hooks.snapshot or (lambda m: {k: v.detach().clone() for k, v in m.state_dict().items()})
    best, since_best = None, 0
    t0 = time.time() - state["wall_time"]
    step = state["step"]
    end = cfg.max_steps if cfg.stop_at is None else min(cfg.max_steps, cfg.stop_at)
    seen0, t_resume = state["seen"], time.time()
    while step < end:
        out = _optimizer_step(net, model, optimizer, step, cfg, get_batch, hooks, runtime, amp)
        units = units_per_batch(step) if callable(units_per_batch) else units_per_batch
        state["seen"] += units * cfg.grad_accum * runtime.world_size
        step += 1
        state["step"] = step
        if runtime.is_main:
            shown = {"loss": f"{out['loss'].item():.4f}"}
            if cfg.unit:
                rate = (state["seen"] - seen0) / max(time.time() - t_resume, 1e-9)
                shown[f"{cfg.unit}/s"] = f"{rate:.0f}"
            if hooks.progress is not None:
                shown.update(hooks.progress(model, out))
            bar.set_postfix(shown, refresh=False)
            bar.update(1)
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            model.eval()
            with torch.no_grad(), amp:
                metrics = evaluate(model, step)
            metrics.update(step=step, seen=state["seen"], lr=lr_at(step - 1, cfg),
                           train_loss=float(out["loss"].item()), wall_time=time.time() - t0)
            state["history"].append(metrics)
            if runtime.is_main:
                bar.write(f"[{cfg.log_name}] step {step}: " + _metrics_line(metrics))
            # a NaN score (e.g. Spearman of constant predictions) ranks below every number, but the
            # first evaluation is kept whatever it scored, so a run always has a best state
            if cfg.best_metric and (best is None or comparable(metrics[cfg.best_metric]) > comparable(best["metrics"][cfg.best_metric])):
                best = {"step": step, "metrics": metrics, "state": snapshot(model)}
                since_best = 0
            else:
                since_best += 1
            if hooks.on_eval is not None:
                hooks.on_eval(step, metrics)
            if cfg.patience and since_best >= cfg.patience and step < end:
                if runtime.is_main:
                    bar.write(f"[{cfg.log_name}] early stop at step {step}: no better {cfg.best_metric} "
                              f"in {cfg.patience} evaluations (best at step {best['step']})")
                state["stopped_early"] = step
                break
        if cfg.checkpoint_every and (step % cfg.checkpoint_every == 0 or step in (cfg.max_steps, end)):
            state["wall_time"] = time.time() - t0
            if runtime.is_main:
                save_checkpoint(ck_dir, model, optimizer, state, keep=cfg.keep_checkpoints)
            if ddp:
                dist.barrier()
    bar.close()
    state["wall_time"] = time.time() - t0
    if cfg.best_metric:
        state["best"] = best
    return state


def _optimizer_step(net, model, optimizer, step: int, cfg: LoopConfig, get_batch, hooks: Hooks,
                    runtime: Runtime, amp) -> dict:
    """One optimizer step at ``step``'s learning rate over ``cfg.grad_accum`` micro-batches;
    returns the last micro-batch's outputs."""
    model.train()
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, cfg) * group.get("lr_scale", 1.0)
    ddp = net is not model
    for micro in range(cfg.grad_accum):
        batch = _to_device(get_batch(step, micro, runtime.rank), runtime.device)
        if hooks.before_step is not None and micro == 0:
            hooks.before_step(step, model, batch)
        sync = nullcontext() if (not ddp or micro == cfg.grad_accum - 1) else net.no_sync()
        with sync, amp:
            out = net(batch)
            loss = out["loss"] / cfg.grad_accum
        loss.backward()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return out


def _metrics_line(metrics: dict) -> str:
    """An evaluation's numbers on one line (lists and tables left out)."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
                     if not isinstance(v, (list, dict)))


def _resumed_state(ck_dir: Path, model, optimizer, runtime: Runtime) -> dict | None:
    """The trainer state of the newest intact checkpoint (model and optimizer restored), or None."""
    loaded = load_checkpoint(ck_dir, model, optimizer, log=None if runtime.is_main else (lambda s: None))
    if runtime.is_main:
        if loaded is not None:
            print(f"resumed from {ck_dir} at step {loaded['step']}")
        else:
            print(f"--resume: no checkpoint in {ck_dir}; starting from scratch")
    return loaded


def _to_device(batch, device):
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch
