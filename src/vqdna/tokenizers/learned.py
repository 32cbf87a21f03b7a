"""``VQDNATokenizer``: the trained VQ-VAE / HRQ tokenizer as a user holds it.

```python
tok = VQDNATokenizer.from_pretrained("tok/")
codes = tok.encode(["ACGTNACGT"])   # [(n_levels, 9) int64]: one code per nucleotide per level
emb = tok.embed(["ACGT"])           # [(4, dim) float32]: the quantized embedding the LM reads
seqs = tok.decode(codes)            # "ACGTNACGT": codes.non_acgt ([[[4, 1, "N"]]]) puts the N back
```

Sequences of any length are cut into chunks with a halo of the network's receptive
field, so chunked encoding gives exactly the codes of the whole sequence while memory
stays bounded; chunks of equal length are batched together on the tokenizer's device.
A folder holds ``config.json`` (model config, type, format version) and
``model.safetensors``; both are written atomically.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import save_file

from ..config import TokenizerConfig, from_dict, to_dict, validate_tokenizer_config
from ..io import read_json, write_json_atomic
from ..sequence import alphabet
from .base import GenomeTokenizer, encoded, restore_letters
from .vqvae import InferenceModel, VQDNAAutoencoder

FORMAT = "vqdna-tokenizer/1"


class VQDNATokenizer(GenomeTokenizer):
    """``fast`` (default): on a CPU, run the packed inference path (:class:`InferenceModel`:
    oneDNN GEMMs with fused GELU / residual, stem table, no transposes); codes equal the
    plain modules' up to float rounding of near-ties. ``fast=False`` runs the modules as
    trained. ``compile``: wrap the plain model's encoding in ``torch.compile`` (used when
    the packed path is off or unavailable, e.g. on a GPU); falls back to eager if compiling fails.
    Off by default: on CPU the packed path is faster and needs no compile time
    (benchmarks/tokenize_throughput.py measures both).

    Long sequences are cut into ``chunk_length`` pieces (+ a halo of the receptive field on
    each side); chunks of equal length are batched up to ``batch_tokens`` tokens per forward.
    """

    def __init__(self, model: VQDNAAutoencoder, config: TokenizerConfig, *, device: str | None = None,
                 chunk_length: int = 4096, batch_tokens: int | None = None, fast: bool = True,
                 compile: bool = False):
        self.model = model.eval()
        self.config = config
        self.tokenizer_type = config.quantizer
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        self.chunk_length = chunk_length  # nucleotides kept per chunk
        # nucleotides (with halos) per forward pass. Default: the widest activation (tokens x
        # mlp_ratio x dim float32) stays under 24 MiB, so it fits the last-level cache and stays
        # below glibc's 32 MiB mmap threshold (reused, not page-faulted anew every batch): one
        # 4096-nt chunk per forward for d = 384, more chunks for narrower models
        self.batch_tokens = batch_tokens or max(4096, (24 << 20) // (4 * config.mlp_ratio * config.dim))
        self.fast, self.compile = fast, compile
        self._engine_cache: InferenceModel | None = None
        self._compiled = None

    # ------------------------------------------------------------ interface
    @property
    def vocab_sizes(self) -> list[int]:
        return list(self.config.codebook_sizes)

    @property
    def halo(self) -> int:
        """The receptive-field radius of the encoder / decoder (nucleotides each side)."""
        c = self.config
        return 2 + c.depth * (c.kernel_size // 2)

    @property
    def codebook_combine(self) -> str:
        """``"sum"`` for plain residual quantization with several levels (its levels add up to the
        vector), else ``"mean"`` (Eq. 7)."""
        return "sum" if self.config.hrq_residual == "plain" and self.n_levels > 1 else "mean"

    def flops_per_nucleotide(self) -> int:
        """The encoder's and code distances' FLOPs per nucleotide (:meth:`VQDNAAutoencoder.flops_per_nucleotide`)."""
        return self.model.flops_per_nucleotide()

    @property
    def dim(self) -> int:
        return self.config.dim

    def codebooks(self) -> list[torch.Tensor]:
        return [vq.embed.detach().cpu().clone() for vq in self.model.quantizer.quantizers]

    def encode(self, seqs: Sequence[str]) -> list[np.ndarray]:
        """One (n_levels, len) int64 code array per sequence, as an :class:`~.base.Encoded` list
        whose ``non_acgt`` holds each sequence's runs of N / IUPAC letters (for ``decode``)."""
        idx = [alphabet.encode(s, where=f"sequence {i}") for i, s in enumerate(seqs)]
        return encoded(self.encode_indices(idx), seqs, idx)

    def encode_chunks(self, idx: np.ndarray, chunk_length: int = 1 << 20):
        """Pieces of ``chunk_length`` nt, each encoded with a halo of the receptive field on
        both sides and cut back to its centre: the codes of the whole sequence."""
        h = self.halo
        for s in range(0, len(idx), chunk_length):
            e = min(s + chunk_length, len(idx))
            lo, hi = max(s - h, 0), min(e + h, len(idx))
            yield e - s, self.encode_indices([idx[lo:hi]])[0][:, s - lo:e - lo]

    def encode_indices(self, idx: Sequence[np.ndarray]) -> list[np.ndarray]:
        outs = [np.zeros((self.config.n_levels, len(a)), dtype=np.int64) for a in idx]
        encode = self._encoder()
        self._chunked(idx, lambda x: encode(x).permute(1, 0, 2), outs)
        return outs

    def embed(self, seqs: Sequence[str]) -> list[torch.Tensor]:
        """The quantized embedding (mean of level codes) per nucleotide: (len, dim) per sequence."""
        return [self.embed_codes(torch.from_numpy(c)) for c in self.encode(seqs)]

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (n_levels, ...) -> (..., dim) embedding, on the CPU."""
        with torch.no_grad():
            return self.model.quantizer.embed_codes(codes.to(self.device)).float().cpu()

    def decode(self, codes: Sequence[np.ndarray], non_acgt: Sequence[list] | None = None) -> list[str]:
        """Most likely nucleotide per position (A/C/G/T; N only under the 'channel' policy), with
        the non-ACGT runs of ``non_acgt`` (or ``codes.non_acgt``, set by ``encode``) put back."""
        n = self.config.n_levels
        arrays = [np.asarray(c).reshape(n, -1) for c in codes]
        outs = [np.zeros(a.shape[1], dtype=np.int64) for a in arrays]
        # chunk over positions: present codes as (len, n_levels) "sequences"
        engine = self._engine()
        decode = engine.decode_logits if engine is not None else self.model.decode_logits
        self._chunked([a.T for a in arrays], lambda x: decode(x.permute(2, 0, 1)).argmax(-1), outs)
        return restore_letters([alphabet.decode(o) for o in outs], codes, non_acgt)

    # ------------------------------------------------------------ inference paths
    def _engine(self) -> InferenceModel | None:
        """The packed inference path for the model's current weights (rebuilt when they change),
        or None when ``fast`` is off or the packed path is unavailable / fails its self-check."""
        if not self.fast or self.device.type != "cpu":
            return None
        eng = self._engine_cache
        if eng is None or not eng.matches(self.model):
            eng = self._engine_cache = None
            try:
                eng = InferenceModel(self.model)
                _self_check(eng, self.model)
            except Exception as e:  # noqa: BLE001 - any failure means: use the plain modules
                warnings.warn(f"VQDNATokenizer: packed inference path unavailable ({e}); using the plain model")
                self.fast = False
                return None
            self._engine_cache = eng
        return eng

    def _encoder(self):
        """(B, L) indices -> (n_levels, B, L) codes, by the fastest available path."""
        engine = self._engine()
        if engine is not None:
            return engine.encode
        if not self.compile:
            return self.model.encode
        if self._compiled is None:
            model = self.model

            def plain(x):
                return model.quantizer.codes(model.encoder(x, model.config.levels))

            self._compiled = torch.compile(plain, dynamic=True)

        def run(x):
            if self._compiled is not False:
                try:
                    return self._compiled(x)
                except Exception as e:  # noqa: BLE001
                    warnings.warn(f"VQDNATokenizer: torch.compile failed ({e}); running eagerly")
                    self._compiled = False
            return self.model.encode(x)

        return run

    # ------------------------------------------------------------ chunking
    @torch.inference_mode()
    def _chunked(self, arrays, fn, outs) -> None:
        """Run ``fn`` over halo'd chunks of each array, batching chunks of equal length,
        and write the kept centre of each result into ``outs``."""
        groups: dict[int, list] = {}
        C, h = self.chunk_length, self.halo
        for i, a in enumerate(arrays):
            n = len(a)
            for s in range(0, n, C):
                e = min(s + C, n)
                lo, hi = max(s - h, 0), min(e + h, n)
                groups.setdefault(hi - lo, []).append((i, lo, s, e))
        for length, items in groups.items():
            per = max(self.batch_tokens // max(length, 1), 1)
            for b in range(0, len(items), per):
                part = items[b:b + per]
                x = np.stack([arrays[i][lo:lo + length] for i, lo, _, _ in part])
                y = fn(torch.from_numpy(np.ascontiguousarray(x)).to(self.device)).cpu().numpy()
                for row, (i, lo, s, e) in zip(y, part):
                    outs[i][..., s:e] = row[..., s - lo:e - lo]

    # ------------------------------------------------------------ files
    def save_pretrained(self, path, *, train_config=None) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / f".model.safetensors.tmp{os.getpid()}"
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, tmp, metadata={"format": FORMAT})
        os.replace(tmp, path / "model.safetensors")
        cfg = {"format": FORMAT, "tokenizer_type": self.config.quantizer, "model": to_dict(self.config)}
        if train_config is not None:
            cfg["train"] = to_dict(train_config)
        write_json_atomic(path / "config.json", cfg)

    @classmethod
    def from_pretrained(cls, path, *, device: str | None = None, **kwargs) -> "VQDNATokenizer":
        path = Path(path)
        cfg_file, weights = path / "config.json", path / "model.safetensors"
        for f in (cfg_file, weights):
            if not f.exists():
                raise FileNotFoundError(f"{path}: not a VQDNA tokenizer folder (missing {f.name})")
        cfg = read_json(cfg_file)
        if cfg.get("format") != FORMAT:
            raise ValueError(f"{cfg_file}: format {cfg.get('format')!r}, expected {FORMAT!r}")
        config = from_dict(TokenizerConfig, cfg["model"])
        validate_tokenizer_config(config)
        model = VQDNAAutoencoder(config)
        model.load_state_dict(load_safetensors(weights))
        return cls(model, config, device=device, **kwargs)


def _self_check(engine: InferenceModel, model: VQDNAAutoencoder) -> None:
    """Raise if the packed encoder disagrees with the model's modules beyond float rounding."""
    if not engine.packed:
        return
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 5, (2, 97), generator=g, dtype=torch.uint8).to(next(model.parameters()).device)
    with torch.inference_mode():
        ref = model.encoder(idx, model.config.levels)
        got = engine.encoder_outputs(idx)
    for a, b in zip(ref, got):
        tol = 1e-4 * max(float(a.abs().max()), 1.0)
        if a.shape != b.shape or not bool(((a - b).abs() <= tol).all()):
            raise RuntimeError("packed encoder outputs differ from the model's")


# file_sha256 moved to vqdna.io; still importable from here
from ..io import file_sha256, load_safetensors  # noqa: E402,F401
