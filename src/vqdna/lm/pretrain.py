"""Stage 2: masked-LM pre-training of the VQDNA BERT on stored codes (METHOD.md stage 2).

Data: one or more code folders (:class:`vqdna.codes.CodeStore`, memory-mapped uint16, one
array per HRQ level) written by ``vqdna tokenize``. They must all come from the same tokenizer
(the sha256 of its weights, recorded in each manifest, must agree).

Windows: each training batch holds ``seq_length``-token windows drawn uniformly over all
allowed start positions of all records, by a pure function of ``(seed, step, micro, rank)``
(so ``--resume`` and DDP ranks reproduce an unbroken run, see :func:`vqdna.train.train_loop`),
with ``[CLS]`` put in front. The corpus is cut into blocks of ``val_block`` tokens numbered
consecutively over all records; every ``val_every``-th block (the one at ``val_every // 2``
in each period, ~2%) is held out for validation and no training window overlaps it; training
windows also avoid runs of >= ``skip_n_runs`` N/IUPAC letters (assembly gaps, all one code; with
a strided tokenizer, one code per ``stride`` nt, the codes that lie wholly inside such a run).
**Short records** (a corpus of task sequences: 70-300 nt; ``vqdna data corpus``): a record of
at least ``seq_length`` tokens gives windows of its own, as above; a run of consecutive records
each shorter than that is read as one stretch (``pack_short_records``, the default), so windows
cross their boundaries, as RoBERTa packs sentences across documents. Without it such records
give no training window at all. Each record's codes are its own (encoded alone, no halo from
its neighbour), so what crosses a boundary is only the context attention sees: a masked code
next to a junction is predicted partly from unrelated DNA, a few positions of ~100 per record.
Validation blocks are cut from the stretches like from any record.
Validation scores a fixed set of non-overlapping windows from the held-out blocks with fixed
masks: masked accuracy and perplexity (exp of the masked cross-entropy) per level.

Output folder: ``config.json`` + ``model.safetensors`` (``VQDNAForMaskedLM.save_pretrained``),
``tokenizer/`` (a copy of the tokenizer folder named in the code manifest, sha256 checked),
``metrics.json`` (final validation metrics, throughput, history), ``pretrain_config.yaml``,
and ``checkpoints/`` (for ``--resume``; it holds the run's ``pretrain_config.yaml`` while it runs).
These files appear together when the run completes (:func:`vqdna.lm.artifacts.staged`); a run
that fails or stops early (``stop_at``) leaves only ``checkpoints/``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..codes import CodeStore
from ..config import LMConfig, from_dict, lm_configs, save_yaml, to_dict, validate_lm_config
from ..io import staged, write_json_atomic
from ..tokenizers.base import GenomeTokenizer
from ..train import Hooks, loop_config, setup_runtime, train_loop
from .artifacts import copy_tokenizer, open_tokenizer, save_model
from .artifacts import tokenizer_sha256  # noqa: F401 (its old import path)
from .masking import mask_codes
from ..hub.modeling_vqdna import CLS, VQDNAConfig, VQDNAForMaskedLM

CONFIG_NAME = "pretrain_config.yaml"

# ---------------------------------------------------------------- code folders and their tokenizer


def open_code_stores(paths) -> tuple[list[CodeStore], dict]:
    """Open code folders and check they share one tokenizer; returns (stores, tokenizer fingerprint)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ValueError("no code folders given")
    stores = [CodeStore(p) for p in paths]
    fp = stores[0].manifest["tokenizer"]
    for s in stores[1:]:
        other = s.manifest["tokenizer"]
        if other.get("sha256") != fp.get("sha256") or other.get("vocab_sizes") != fp.get("vocab_sizes"):
            raise ValueError(
                f"code folders come from different tokenizers: {stores[0].path} has "
                f"{fp.get('type')} sha256 {str(fp.get('sha256'))[:12]}... ({fp.get('path')}), {s.path} has "
                f"{other.get('type')} sha256 {str(other.get('sha256'))[:12]}... ({other.get('path')}); "
                f"tokenize every FASTA with the same tokenizer")
    return stores, fp


def load_verified_tokenizer(fp: dict, tokenizer_path=None) -> tuple[GenomeTokenizer, Path]:
    """Open the tokenizer the codes were made with (the manifest's path unless given), sha256 checked."""
    path = Path(tokenizer_path or fp.get("path") or "")
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"tokenizer folder {path} (named in the code manifest) not found; "
                                f"pass the folder with --tokenizer")
    return open_tokenizer(path, fp.get("sha256")), path


# ---------------------------------------------------------------- building the model


def build_lm_config(tokenizer: GenomeTokenizer, mc: LMConfig, *, sha256: str | None = None) -> VQDNAConfig:
    """The VQDNAConfig for a tokenizer and an :class:`LMConfig` (resolves the "auto" choices)."""
    validate_lm_config(mc)
    books = tokenizer.codebooks()
    mode = mc.input_mode
    if mode == "auto":
        mode = "codebook" if books is not None else "learned"
    if mode == "codebook" and books is None:
        raise ValueError(f"input_mode 'codebook' needs a tokenizer with codebooks; {tokenizer.tokenizer_type} "
                         f"has none (use input_mode 'learned' or 'auto')")
    combine = mc.codebook_combine
    if combine == "auto":
        combine = tokenizer.codebook_combine
    return VQDNAConfig(vocab_sizes=list(tokenizer.vocab_sizes), input_mode=mode,
                       codebook_dim=int(books[0].shape[1]) if mode == "codebook" else None,
                       codebook_combine=combine, hidden_size=mc.hidden_size, num_hidden_layers=mc.num_layers,
                       num_attention_heads=mc.num_heads, intermediate_size=mc.intermediate_size,
                       hidden_dropout_prob=mc.hidden_dropout, attention_probs_dropout_prob=mc.attention_dropout,
                       max_position_embeddings=mc.max_length + 1, position_embedding=mc.position_embedding,
                       pooling=mc.pooling,
                       mlm_shared_transform=mc.mlm_shared_transform, tokenizer_type=tokenizer.tokenizer_type,
                       tokenizer_sha256=sha256)


def build_masked_lm(tokenizer: GenomeTokenizer, mc: LMConfig, *, sha256: str | None = None) -> VQDNAForMaskedLM:
    """A freshly initialised :class:`VQDNAForMaskedLM` reading ``tokenizer``'s codes (codebooks copied in)."""
    model = VQDNAForMaskedLM(build_lm_config(tokenizer, mc, sha256=sha256))
    if model.config.input_mode == "codebook":
        model.vqdna.embeddings.set_codebooks(tokenizer.codebooks())
    return model


# ---------------------------------------------------------------- windows


class WindowSampler:
    """Training and validation windows over one or more code stores (see the module docstring)."""

    def __init__(self, stores: list[CodeStore], seq_length: int, *, val_block: int = 2048, val_every: int = 50,
                 skip_n_runs: int = 64, pack_short_records: bool = True):
        self.stores = stores
        self.W = W = int(seq_length)
        self.n_levels = len(stores[0].levels)
        seg_store, seg_start, seg_count = [], [], []
        val = []
        counter = 0  # global block number over all records of all stores
        for si, store in enumerate(stores):
            stride = store.manifest["tokenizer"].get("stride", 1)  # nucleotides per code (strided VQ/HRQ)
            for off, n, gaps in _stretches(store, W, stride, skip_n_runs, pack_short_records):
                blocks = math.ceil(n / val_block) if n else 0
                bad = []  # excluded [start, end) intervals, stretch coordinates
                for b in range(blocks):
                    if (counter + b) % val_every == val_every // 2:
                        bad.append((b * val_block, min((b + 1) * val_block, n)))
                counter += blocks
                for s, e in bad:  # validation windows: non-overlapping, inside the block, off the gaps
                    for w in range(s, e - W + 1, W):
                        if not any(gs < w + W and w < ge for gs, ge in gaps):
                            val.append((si, off + w))
                for a, e in _complement(sorted(bad + gaps), n):
                    if e - a >= W:
                        seg_store.append(si)
                        seg_start.append(off + a)
                        seg_count.append(e - a - W + 1)
        if not seg_count:
            raise ValueError(f"no training window of {W} tokens fits between the held-out blocks of "
                             f"{', '.join(str(s.path) for s in stores)}; use a shorter seq_length or more data")
        if not val:  # a corpus shorter than val_every // 2 blocks: hold out the last window of the largest segment
            i = int(np.argmax(seg_count))
            if seg_count[i] < W + 1:
                raise ValueError("corpus too small to hold out a validation window")
            seg_count[i] -= W
            val.append((seg_store[i], seg_start[i] + seg_count[i] - 1 + W))
        self.seg_store = np.asarray(seg_store, dtype=np.int64)
        self.seg_start = np.asarray(seg_start, dtype=np.int64)
        self.cum = np.cumsum(np.asarray(seg_count, dtype=np.int64))
        self.val_windows = np.asarray(val, dtype=np.int64)

    @property
    def n_train_starts(self) -> int:
        return int(self.cum[-1])

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, 2) array of (store, start) training windows, uniform over allowed starts."""
        u = rng.integers(self.n_train_starts, size=n)
        seg = np.searchsorted(self.cum, u, side="right")
        before = np.where(seg > 0, self.cum[seg - 1], 0)
        return np.stack([self.seg_store[seg], self.seg_start[seg] + (u - before)], axis=1)

    def gather(self, windows: np.ndarray) -> np.ndarray:
        """(n, n_levels, W) int64 codes of the given (store, start) windows."""
        out = np.empty((len(windows), self.n_levels, self.W), dtype=np.int64)
        ar = np.arange(self.W)
        for si in np.unique(windows[:, 0]):
            rows = np.flatnonzero(windows[:, 0] == si)
            idx = windows[rows, 1][:, None] + ar
            for level, arr in enumerate(self.stores[si].levels):
                out[rows, level] = arr[idx]
        return out


def _record_gaps(rec: dict, n: int, stride: int, skip_n_runs: int) -> list[tuple[int, int]]:
    """[start, end) token intervals of a record that lie in runs of >= ``skip_n_runs`` N/IUPAC letters."""
    if not skip_n_runs:
        return []
    if rec.get("nucleotides", n) == n:  # nucleotide = token coordinates
        return [(s, s + ln) for s, ln, _ in rec.get("non_acgt", []) if ln >= skip_n_runs]
    if stride > 1:  # the codes that lie wholly inside a gap
        return [(-(-s // stride), (s + ln) // stride) for s, ln, _ in rec.get("non_acgt", [])
                if ln >= skip_n_runs and (s + ln) // stride > -(-s // stride)]
    return []


def _stretches(store: CodeStore, W: int, stride: int, skip_n_runs: int, pack: bool):
    """(offset, length, gaps) of the stretches of a store that windows are drawn from: every record
    of at least ``W`` tokens alone; with ``pack``, each run of consecutive shorter records as one
    stretch (they lie back to back in the store), which is the only way they give a training
    window at all (module docstring, "Short records")."""
    run: list[dict] = []

    def flush():
        if run:
            off, gaps, pos = run[0]["offset"], [], 0
            for r in run:
                gaps.extend((pos + a, pos + b) for a, b in _record_gaps(r, r["length"], stride, skip_n_runs))
                pos += r["length"]
            run.clear()
            return [(off, pos, gaps)]
        return []

    runs = store.non_acgt
    for i, (offset, n, nucleotides) in enumerate(zip(store.offsets.tolist(), store.lengths.tolist(),
                                                     store.nucleotides.tolist())):
        rec = {"offset": offset, "length": n, "nucleotides": nucleotides, "non_acgt": runs.get(i, [])}
        if pack and n < W and (not run or run[-1]["offset"] + run[-1]["length"] == rec["offset"]):
            run.append(rec)
            continue
        yield from flush()
        if pack and n < W:
            run.append(rec)
            continue
        yield rec["offset"], n, _record_gaps(rec, n, stride, skip_n_runs)
    yield from flush()


def _complement(intervals, n):
    """Gaps of [0, n) not covered by the sorted (start, end) intervals."""
    out, pos = [], 0
    for s, e in intervals:
        if s > pos:
            out.append((pos, s))
        pos = max(pos, e)
    if pos < n:
        out.append((pos, n))
    return out


def mask_shares(tc) -> dict:
    """mask_codes' shares of the chosen positions: [MASK] gets what random codes and kept ones leave."""
    return dict(mask_token_prob=1.0 - tc.mask_random_prob - tc.mask_keep_prob, random_token_prob=tc.mask_random_prob)


def with_cls(codes: np.ndarray, vocab_sizes) -> torch.Tensor:
    """Put [CLS] in front of (B, n_levels, W) codes -> (B, n_levels, W + 1) tensor."""
    cls = np.asarray([v + CLS for v in vocab_sizes], dtype=np.int64)
    out = np.empty(codes.shape[:2] + (codes.shape[2] + 1,), dtype=np.int64)
    out[:, :, 0] = cls
    out[:, :, 1:] = codes
    return torch.from_numpy(out)


# ---------------------------------------------------------------- evaluation


class MLMStep(nn.Module):
    """Adapter for :func:`vqdna.train.train_loop`: ``forward(batch) -> {"loss", ...}``."""

    def __init__(self, model: VQDNAForMaskedLM):
        super().__init__()
        self.model = model

    def forward(self, batch):
        out = self.model(batch["input_ids"], labels=batch["labels"])
        return {"loss": out.loss, "level_losses": out.level_losses.detach()}


@torch.no_grad()
def masked_lm_metrics(model: VQDNAForMaskedLM, input_ids: torch.Tensor, labels: torch.Tensor,
                      batch_size: int = 32) -> dict:
    """Masked accuracy and perplexity per level (and their means) on pre-masked inputs."""
    device = next(model.parameters()).device
    n_levels = model.config.n_levels
    correct = np.zeros(n_levels)
    total = np.zeros(n_levels)
    nll = np.zeros(n_levels)
    for i in range(0, len(input_ids), batch_size):
        x, y = input_ids[i:i + batch_size].to(device), labels[i:i + batch_size].to(device)
        out = model(x, labels=y)
        sel = (y != -100).any(1)
        for level, lg in enumerate(out.masked_logits):
            lab = y[:, level][sel]
            ok = lab != -100
            lg, lab = lg[ok].float(), lab[ok]
            correct[level] += int((lg.argmax(-1) == lab).sum())
            total[level] += int(lab.numel())
            nll[level] += float(torch.nn.functional.cross_entropy(lg, lab, reduction="sum"))
    res = {}
    for level in range(n_levels):
        res[f"val_acc_l{level}"] = correct[level] / max(total[level], 1)
        res[f"val_ppl_l{level}"] = float(math.exp(nll[level] / max(total[level], 1)))
    res["val_acc"] = float(np.mean([res[f"val_acc_l{i}"] for i in range(n_levels)]))
    res["val_loss"] = float(np.mean(nll / np.maximum(total, 1)))
    res["val_masked"] = int(total[0])
    return res


# ---------------------------------------------------------------- the stage


def pretrain(codes, *, out, config: str = "tiny", max_steps: int | None = None, resume: bool = False,
             device: str | None = None, tokenizer=None, overrides: dict | None = None,
             stop_at: int | None = None, progress: bool = True) -> dict:
    """Pre-train a VQDNA masked LM on code folders ``codes`` and save it to ``out``.

    ``config``: preset (tiny | small | base) or YAML; ``overrides`` (field -> value of
    :class:`LMConfig` / :class:`LMTrainConfig`) and ``max_steps`` win over it
    (:func:`vqdna.config.lm_configs`; with ``max_steps`` the warm-up is capped at 10% of the run);
    ``tokenizer``: the tokenizer folder if it moved since tokenization; ``stop_at``: stop after this
    step, its checkpoint written (an interruption on purpose: the schedule stays that of
    ``max_steps``; resume later with ``resume=True``). Returns the metrics dict.
    """
    steps = None if max_steps is None else int(max_steps)
    mc, tc = lm_configs(config, overrides, max_steps=steps)
    if steps is not None:  # a run shortened by the flag warms up for at most 10% of it
        tc.warmup_steps = min(tc.warmup_steps, max(steps // 10, 1))
    out = Path(out)
    runtime = setup_runtime(device)
    stores, fp = open_code_stores(codes)
    tok, tok_path = load_verified_tokenizer(fp, tokenizer)
    # the run's config goes beside its checkpoints (a folder with only checkpoints/ is unfinished)
    # and beside the model when it is saved; --resume compares the one it finds
    cfg_file = out / "checkpoints" / CONFIG_NAME
    if resume:
        _check_resumed_config(next((f for f in (cfg_file, out / CONFIG_NAME) if f.exists()), None), mc)
    torch.manual_seed(tc.seed)
    model = build_masked_lm(tok, mc, sha256=fp.get("sha256"))
    if tc.gradient_checkpointing:
        model.activation_checkpointing_enable()  # transformers': each BERT layer recomputed in the backward pass
    vocab = model.config.vocab_sizes
    sampler = WindowSampler(stores, tc.seq_length, val_block=tc.val_block, val_every=tc.val_every,
                            skip_n_runs=tc.skip_n_runs, pack_short_records=tc.pack_short_records)
    if runtime.is_main:  # nothing is written before every input is read and the windows fit
        cfg_file.parent.mkdir(parents=True, exist_ok=True)
        save_yaml(cfg_file, model=mc, train=tc)
    micro = tc.batch_size // tc.grad_accum
    # fixed validation set: evenly spaced held-out windows, masks from a fixed generator
    vw = sampler.val_windows
    vw = vw[np.linspace(0, len(vw) - 1, min(tc.eval_windows, len(vw))).astype(int)]
    val_ids, val_labels = mask_codes(with_cls(sampler.gather(vw), vocab), vocab,
                                     generator=torch.Generator().manual_seed(tc.seed + 99991),
                                     mask_prob=tc.mask_prob, mode=tc.mask_mode, span_mean=tc.span_mean,
                                     **mask_shares(tc))
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if runtime.is_main and progress:
        print(f"pretrain: {sum(len(s) for s in stores):,} tokens in {sum(s.n_records for s in stores)} records "
              f"from {len(stores)} code folder(s); {sampler.n_train_starts:,} training window starts, "
              f"{len(sampler.val_windows)} validation windows ({len(vw)} scored); tokenizer {tok.tokenizer_type} "
              f"{vocab}, input {model.config.input_mode}; model {n_params / 1e6:.2f}M trainable parameters "
              f"on {runtime.device}")

    def get_batch(step, micro_i, rank):
        rng = np.random.default_rng([tc.seed, step, micro_i, rank])
        ids = with_cls(sampler.gather(sampler.sample(rng, micro)), vocab)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        x, y = mask_codes(ids, vocab, generator=gen, mask_prob=tc.mask_prob, mode=tc.mask_mode,
                          span_mean=tc.span_mean, **mask_shares(tc))
        return {"input_ids": x, "labels": y}

    def evaluate(step_model, step):
        return masked_lm_metrics(step_model.model, val_ids, val_labels)

    def show(net, o):
        return {"lvl": "/".join(f"{v:.3f}" for v in o["level_losses"].tolist())}

    loop = loop_config(tc, stop_at=stop_at, log_name="pretrain")
    step_model = MLMStep(model)
    state = train_loop(step_model, cfg=loop, get_batch=get_batch, evaluate=evaluate, out_dir=out, runtime=runtime,
                       resume=resume, hooks=Hooks(progress=show), units_per_batch=micro * tc.seq_length)
    complete = state["step"] >= tc.max_steps
    model = step_model.model.cpu()
    final = dict(state["history"][-1]) if state["history"] else {}
    metrics = dict(final, complete=complete, steps=state["step"], tokens_seen=state["seen"],
                   wall_time_s=state["wall_time"], tokens_per_s=state["seen"] / max(state["wall_time"], 1e-9),
                   parameters=n_params, code_folders=[str(s.path) for s in stores], tokenizer=fp,
                   model_config=to_dict(mc), train_config=to_dict(tc), history=state["history"])
    if runtime.is_main and complete:  # a run stopped early (stop_at) leaves its checkpoints only: --resume
        with staged(out) as stage:  # the model folder appears whole, config.json last
            save_model(model, stage)
            copy_tokenizer(tok_path, stage / "tokenizer", fp.get("sha256"))
            write_json_atomic(stage / "metrics.json", metrics)
            save_yaml(stage / CONFIG_NAME, model=mc, train=tc)
    return metrics


def _check_resumed_config(path: Path | None, mc: LMConfig) -> None:
    """--resume continues the same model: the model config saved by the run must equal ``mc``."""
    if path is None:
        return
    import yaml

    old = (yaml.safe_load(path.read_text()) or {}).get("model", {})
    if to_dict(from_dict(LMConfig, old, where=f"{path}, key model")) != to_dict(mc):  # fields added since: defaults
        raise ValueError(f"{path}: the model config differs from the run being resumed")
