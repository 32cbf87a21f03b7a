"""Using a trained model: predictions (``vqdna predict``) and embeddings (``vqdna embed``).

Long sequences: the model reads at most ``max_position_embeddings - 1`` tokens after its [CLS]
(512 for the default absolute positions; up to 32,768 and beyond for a rotary / ALiBi model,
which then reads a 32k-token sequence in one piece). A longer sequence is cut into consecutive
chunks of at most that many tokens, each chunk
gets its own [CLS], and the chunks' pooled vectors are **averaged, weighted by their token
counts** (for mean pooling this is the mean over all tokens of the sequence, each token seeing
only its own chunk as context; for [CLS] pooling the chunks' [CLS] states are averaged). The
head is then applied to the averaged vector. Per-nucleotide embeddings concatenate the chunks'
token states. A batch holds at most ``batch_size`` chunks and, padded, at most ``batch_size x
512`` tokens (:data:`TOKENS_PER_ROW`), so long chunks go a few at a time.

Every entry point takes a model folder (``lm/`` from pre-training or ``ft/`` from fine-tuning);
the tokenizer is the copy in ``<folder>/tokenizer`` (its sha256 must match the model config).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..io import atomic_file, read_json
from ..sequence.tasks import read_sequence_csv  # the one sequence-CSV reader (also imported from here)
from ..tokenizers.base import GenomeTokenizer
from .artifacts import load_backbone, load_classifier, load_model_tokenizer, resolve_model
from ..hub.modeling_vqdna import CLS, PAD, VQDNAForSequenceClassification, VQDNAModel

# ---------------------------------------------------------------- tokens and batches


def tokenize(tokenizer: GenomeTokenizer, seqs: Sequence[str], *, where: str = "sequence",
             batch: int = 4096, rows: Sequence[int] | None = None) -> list[np.ndarray]:
    """Codes ``(n_levels, n_tokens)`` per sequence; a sequence that gives no token is an error
    that names it as ``where`` + its 1-based number (``rows[i]``: its 0-based row in a file)."""
    out: list[np.ndarray] = []
    for i in range(0, len(seqs), batch):
        out.extend(np.asarray(c, dtype=np.int64) for c in tokenizer.encode(list(seqs[i:i + batch])))
    for i, c in enumerate(out):
        if c.shape[-1] == 0:
            raise ValueError(f"{where} {(i if rows is None else rows[i]) + 1}: no tokens (sequence too short "
                             f"for the {tokenizer.tokenizer_type} tokenizer)")
    return out


class CodeCache:
    """Codes of task rows kept in memory, so that runs with one tokenizer encode each row once.

    The benchmark's fine-tuning, random-init and probe cells of a row read the same task rows
    with the same frozen tokenizer; each used to encode them again (about 7 of the 71 CPU-minutes
    of the `full-fast` table's hrq unit). Keys are (tokenizer id, file, row): the id is the
    tokenizer folder's sha256 (:data:`vqdna.lm.artifacts.tokenizer_sha256`, what code manifests
    and model configs record), so runs of different tokenizers that share a cache cannot read
    each other's codes. Codes are those :func:`tokenize` gives (encoding is per sequence, so
    which rows are encoded together does not change them; tested)."""

    def __init__(self):
        self._codes: dict[tuple[str, str, int], np.ndarray] = {}
        self.encoded = self.reused = 0  # rows encoded / rows served from the cache

    def tokenize(self, tokenizer: GenomeTokenizer, tokenizer_id: str, split, rows: Sequence[int] | None = None
                 ) -> list[np.ndarray]:
        """Codes of ``split``'s rows (a :class:`vqdna.sequence.tasks.Split`; ``rows``: indices,
        default all), encoding only those not cached for ``tokenizer_id``. A split read from no
        file (``path`` None) has no key to be found by again: it is encoded, not cached."""
        rows = list(range(len(split.sequences))) if rows is None else [int(i) for i in rows]
        if split.path is None:
            self.encoded += len(rows)
            return tokenize(tokenizer, [split.sequences[i] for i in rows], where="row", rows=rows)
        key = (tokenizer_id, str(Path(split.path).resolve()))
        todo = [i for i in rows if (*key, i) not in self._codes]
        if todo:
            new = tokenize(tokenizer, [split.sequences[i] for i in todo], where=f"{split.path}: row", rows=todo)
            self._codes.update({(*key, i): c for i, c in zip(todo, new)})
        self.encoded += len(todo)
        self.reused += len(rows) - len(todo)
        return [self._codes[(*key, i)] for i in rows]


def chunks_of(codes: Sequence[np.ndarray], max_tokens: int) -> list[tuple[int, int, int]]:
    """(sequence index, start, end) of the consecutive <= max_tokens chunks of every sequence."""
    out = []
    for i, c in enumerate(codes):
        n = c.shape[-1]
        for s in range(0, max(n, 1), max_tokens):
            out.append((i, s, min(s + max_tokens, n)))
    return out


def collate(parts: Sequence[np.ndarray], vocab_sizes) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] + codes + [PAD]... -> input_ids (B, n_levels, 1 + max_len), attention_mask (B, 1 + max_len)."""
    n_levels = len(vocab_sizes)
    L = 1 + max(p.shape[-1] for p in parts)
    pad = np.asarray([v + PAD for v in vocab_sizes], dtype=np.int64)[:, None]
    ids = np.repeat(pad[None], len(parts), axis=0).repeat(L, axis=2)
    mask = np.zeros((len(parts), L), dtype=np.int64)
    for b, p in enumerate(parts):
        ids[b, :, 0] = [v + CLS for v in vocab_sizes]
        ids[b, :, 1:1 + p.shape[-1]] = p.reshape(n_levels, -1)
        mask[b, :1 + p.shape[-1]] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


# a batch's padded tokens are at most batch_size x this: the batches of a 512-token model are
# those of batch_size chunks, and 32k-token chunks go a few at a time
TOKENS_PER_ROW = 512


def _batches(parts_meta, batch_size):
    """Chunk indices grouped into batches of similar length (sorted), in a fixed order: at most
    ``batch_size`` chunks and ``batch_size * TOKENS_PER_ROW`` padded tokens ([CLS] aside; one chunk at least)."""
    order = sorted(range(len(parts_meta)), key=lambda j: parts_meta[j][2] - parts_meta[j][1])
    budget = batch_size * TOKENS_PER_ROW
    batch: list[int] = []
    for j in order:
        longest = parts_meta[j][2] - parts_meta[j][1]  # tokens ([CLS] aside); sorted: the newest is the longest
        if batch and (len(batch) == batch_size or (len(batch) + 1) * longest > budget):
            yield batch
            batch = []
        batch.append(j)
    if batch:
        yield batch


@torch.no_grad()
def pooled_features(backbone: VQDNAModel, codes: Sequence[np.ndarray], *, batch_size: int = 128,
                    device=None) -> torch.Tensor:
    """(N, pooled_size) pooled vector per sequence: chunks of a long sequence combine token-weighted
    (mean) and by maximum (``meanmax``)."""
    cfg = backbone.config
    device = device or next(backbone.parameters()).device
    meta = chunks_of(codes, cfg.max_tokens)
    H = cfg.hidden_size
    total = torch.zeros(len(codes), H, dtype=torch.float64)
    count = torch.zeros(len(codes), 1, dtype=torch.float64)
    mx = torch.full((len(codes), H), float("-inf"), dtype=torch.float64) if cfg.pooling == "meanmax" else None
    for idx in _batches(meta, batch_size):
        parts = [codes[meta[j][0]][:, meta[j][1]:meta[j][2]] for j in idx]
        ids, mask = collate(parts, cfg.vocab_sizes)
        ids, mask = ids.to(device), mask.to(device)
        h = backbone(ids, mask).last_hidden_state
        pooled = backbone.pool(h, ids, mask, return_sum=True)
        rows = torch.tensor([meta[j][0] for j in idx])
        total.index_add_(0, rows, pooled[0].double().cpu())
        count.index_add_(0, rows, pooled[1].double().cpu())
        if mx is not None:
            mx.scatter_reduce_(0, rows[:, None].expand(-1, H), pooled[2].double().cpu(), reduce="amax")
    mean = (total / count.clamp(min=1)).float()
    return mean if mx is None else torch.cat([mean, mx.clamp(min=-1e30).float()], dim=-1)


@torch.no_grad()
def predict_codes(model: VQDNAForSequenceClassification, codes: Sequence[np.ndarray], *,
                  batch_size: int = 128) -> np.ndarray:
    """Head outputs per sequence: (N, num_labels) logits, or (N,) values for regression."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    pooled = pooled_features(model.vqdna, codes, batch_size=batch_size, device=device)
    out = model.head(pooled.to(device)).float().cpu().numpy()
    model.train(was)
    return out[:, 0] if model.is_regression else out


@torch.no_grad()
def token_states(backbone: VQDNAModel, codes: Sequence[np.ndarray], *, batch_size: int = 64) -> list[np.ndarray]:
    """(n_tokens, hidden) final hidden states per sequence (chunks concatenated, [CLS]/pads dropped)."""
    cfg = backbone.config
    device = next(backbone.parameters()).device
    meta = chunks_of(codes, cfg.max_tokens)
    pieces: dict[int, list] = {}
    for idx in _batches(meta, batch_size):
        parts = [codes[meta[j][0]][:, meta[j][1]:meta[j][2]] for j in idx]
        ids, mask = collate(parts, cfg.vocab_sizes)
        h = backbone(ids.to(device), mask.to(device)).last_hidden_state.float().cpu().numpy()
        for b, j in enumerate(idx):
            i, s, e = meta[j]
            pieces.setdefault(i, []).append((s, h[b, 1:1 + e - s]))
    return [np.concatenate([p for _, p in sorted(pieces[i], key=lambda t: t[0])]) for i in range(len(codes))]


# ---------------------------------------------------------------- input files


def read_sequences(fasta=None, csv_path=None) -> tuple[list[str], list[str]]:
    """(names, sequences) from FASTA files or a CSV (names are ``line<N>`` for CSV rows)."""
    if (fasta is None) == (csv_path is None):
        raise ValueError("give exactly one of --fasta or --csv")
    if csv_path is not None:
        seqs, _, lines = read_sequence_csv(csv_path)
        return [f"line{n}" for n in lines], seqs
    from ..sequence.fasta import encode_record, read_fasta

    names, seqs = [], []
    for rec in read_fasta(fasta):
        encode_record(rec)  # validate, naming file and record
        names.append(rec.name)
        seqs.append(rec.sequence.upper())
    return names, seqs


# ---------------------------------------------------------------- the commands


def predict(model_dir, csv_path, out_csv, *, batch_size: int = 128, device: str | None = None) -> dict:
    """Predict every sequence of ``csv_path`` with a fine-tuned model; writes ``out_csv``
    (sequence, prediction, then one probability column per class, or the regression value).
    If the CSV has a ``label`` column the metrics are computed too. Returns a summary."""
    from ..metrics import classification_metrics, regression_metrics

    model_dir = resolve_model(model_dir)
    model = load_classifier(model_dir)
    if device:
        model.to(device)
    tok = load_model_tokenizer(model_dir)
    task = read_json(model_dir / "task.json") if (model_dir / "task.json").exists() else {}
    seqs, labels, lines = read_sequence_csv(csv_path)
    codes = tokenize(tok, seqs, where=f"{csv_path}: row")
    out = predict_codes(model, codes, batch_size=batch_size)
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    # class names from the task's labels.json (kept in task.json); otherwise the class ids
    names = {int(v): k for k, v in (task.get("label_names") or {}).items()}
    with atomic_file(out_csv, "w", newline="") as fh:  # a failed run leaves no CSV, not even half of one
        w = csv.writer(fh)
        if model.is_regression:
            w.writerow(["sequence", "prediction"])
            for s, v in zip(seqs, out):
                w.writerow([s, f"{v:.6g}"])
        else:
            prob = torch.softmax(torch.from_numpy(out), -1).numpy()
            k = prob.shape[1]
            w.writerow(["sequence", "prediction"] + [f"prob_{names.get(c, c)}" for c in range(k)])
            for s, p in zip(seqs, prob):
                w.writerow([s, names.get(int(p.argmax()), int(p.argmax()))] + [f"{x:.6f}" for x in p])
    summary = {"n": len(seqs), "out": str(out_csv), "task": task.get("name")}
    if labels is not None and all(labels):
        try:
            if model.is_regression:
                summary["metrics"] = regression_metrics(np.asarray(labels, dtype=float), out)
            else:
                summary["metrics"] = classification_metrics(np.asarray(labels, dtype=int), out)
        except ValueError:
            pass  # labels that are not numbers: no metrics
    return summary


def embed(model_dir, out, *, fasta=None, csv_path=None, per_nucleotide: bool = False, batch_size: int = 64,
          device: str | None = None) -> dict:
    """Embeddings written to exactly ``out``: mean-pooled ``(N, hidden)`` (rows in input order) as
    ``.npy``, or, if ``out`` ends in ``.npz``, an ``.npz`` with ``embeddings`` and ``names``; with
    ``per_nucleotide`` one ``(length, hidden)`` array per sequence in an ``.npz`` (keys ``seq0``,
    ``seq1``, ... and ``names``), whatever the suffix."""
    model_dir = resolve_model(model_dir)
    backbone = load_backbone(model_dir)
    if device:
        backbone.to(device)
    tok = load_model_tokenizer(model_dir)
    names, seqs = read_sequences(fasta, csv_path)
    codes = tokenize(tok, seqs)
    out = Path(out)
    if per_nucleotide:
        for name, s, c in zip(names, seqs, codes):
            if c.shape[-1] != len(s):
                raise ValueError(f"--per-nucleotide needs one token per nucleotide; the {tok.tokenizer_type} "
                                 f"tokenizer gives {c.shape[-1]} tokens for the {len(s)} nt of {name}")
        states = token_states(backbone, codes, batch_size=batch_size)
        arrays = {f"seq{i}": a.astype(np.float32) for i, a in enumerate(states)}
        arrays["names"] = np.asarray(names)
        with atomic_file(out, "wb") as fh:
            np.savez(fh, **arrays)
        return {"n": len(seqs), "out": str(out), "shape": "per sequence (length, hidden)"}
    feats = pooled_features(backbone, codes, batch_size=batch_size).numpy()
    if backbone.config.pooling != "mean":  # embeddings are always mean-pooled
        feats = _mean_pooled(backbone, codes, batch_size)
    feats = feats.astype(np.float32)
    with atomic_file(out, "wb") as fh:  # a file handle: np.save(path) would append .npy to the name
        if out.suffix == ".npz":
            np.savez(fh, embeddings=feats, names=np.asarray(names))
        else:
            np.save(fh, feats)
    return {"n": len(seqs), "out": str(out), "shape": list(feats.shape)}


def _mean_pooled(backbone, codes, batch_size):
    pooling = backbone.config.pooling
    backbone.config.pooling = "mean"
    try:
        return pooled_features(backbone, codes, batch_size=batch_size).numpy()
    finally:
        backbone.config.pooling = pooling
