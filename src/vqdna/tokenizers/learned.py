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

A strided tokenizer (``config.stride`` s = 2, 4 or 8) gives one code per s nucleotides:
``ceil(n / s)`` codes for n nt. Chunks start at multiples of s and their halos are whole
codes, so chunked encoding stays exact. **Lengths that are not a multiple of s:** encoding
pads the sequence with zeros (no letter) up to the next multiple, so its last code also covers
the padding; decoding gives ``s`` letters per code and cuts them back to the sequence's
length, which ``encode`` remembers (``codes.nucleotides``, beside ``codes.non_acgt``), the code
store records (``nucleotides`` of every record) and ``decode(codes, lengths=...)`` takes. Codes
without a length (plain arrays) decode to ``s`` letters per code.
A folder holds ``config.json`` (model config, type, format version) and
``model.safetensors``; both are written atomically.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..config import TokenizerConfig, from_dict, to_dict, validate_tokenizer_config
from ..io import read_json, save_safetensors, write_json_atomic
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
        self.stride = config.stride  # nucleotides per code
        # nucleotides kept per chunk: a multiple of the stride, so that chunks start on code boundaries
        self.chunk_length = max(chunk_length // self.stride, 1) * self.stride
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
        """The receptive-field radius of the encoder / decoder (nucleotides each side), in whole
        codes: the stem's 2 nt (``ceil(2 / stride)`` codes) plus ``kernel_size // 2`` codes per block;
        ``stride`` times that many codes."""
        c = self.config
        return c.stride * (-(-2 // c.stride) + c.depth * (c.kernel_size // 2))

    def nucleotides_per_token(self, seqs: Sequence[str] | None = None) -> float:
        """Mean nucleotides per token on ``seqs`` (the last code of a sequence may cover fewer
        than ``stride``); without ``seqs`` the stride itself, nucleotides per code."""
        if seqs is None:
            return float(self.stride)
        return super().nucleotides_per_token(seqs)

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
        """One (n_levels, ceil(len / stride)) int64 code array per sequence, as an
        :class:`~.base.Encoded` list whose ``non_acgt`` holds each sequence's runs of N / IUPAC
        letters and whose ``nucleotides`` holds each sequence's length (both for ``decode``)."""
        idx = [alphabet.encode(s, where=f"sequence {i}") for i, s in enumerate(seqs)]
        out = encoded(self.encode_indices(idx), seqs, idx)
        out.nucleotides = [len(a) for a in idx]
        return out

    def encode_chunks(self, idx: np.ndarray, chunk_length: int = 1 << 20):
        """Pieces of ``chunk_length`` nt (rounded down to a multiple of the stride), each encoded
        with a halo of the receptive field on both sides and cut back to its centre: the codes of
        the whole sequence."""
        h, st = self.halo, self.stride
        chunk_length = max(chunk_length // st, 1) * st
        for s in range(0, len(idx), chunk_length):
            e = min(s + chunk_length, len(idx))
            lo, hi = max(s - h, 0), min(e + h, len(idx))
            # lo and s are multiples of the stride; e is one too, or the end of the sequence
            yield e - s, self.encode_indices([idx[lo:hi]])[0][:, (s - lo) // st:-(-(e - lo) // st)]

    def encode_indices(self, idx: Sequence[np.ndarray]) -> list[np.ndarray]:
        st = self.stride
        outs = [np.zeros((self.config.n_levels, -(-len(a) // st)), dtype=np.int64) for a in idx]
        encode = self._encoder()
        self._chunked(idx, lambda x: encode(x).permute(1, 0, 2), outs, chunk=self.chunk_length, halo=self.halo,
                      out_index=lambda i: -(-i // st), cost=1)
        return outs

    @property
    def batch_invariant(self) -> bool:
        """True on the packed oneDNN CPU path (the default on a CPU), which computes every sequence
        of a batch as it would alone: encoder outputs equal bit for bit, batch against alone
        (``tests/test_codes_records.py``). The plain modules (``fast=False``, a GPU) and the packed
        path without oneDNN give floats that can differ in their last bits with the batch (measured
        on the CPU), so codes at near-ties could: there each sequence is encoded alone."""
        engine = self._engine()
        return engine is not None and engine.onednn

    def embed(self, seqs: Sequence[str]) -> list[torch.Tensor]:
        """The quantized embedding (mean of level codes) per nucleotide: (len, dim) per sequence."""
        return [self.embed_codes(torch.from_numpy(c)) for c in self.encode(seqs)]

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (n_levels, ...) -> (..., dim) embedding, on the CPU."""
        with torch.no_grad():
            return self.model.quantizer.embed_codes(codes.to(self.device)).float().cpu()

    def decode(self, codes: Sequence[np.ndarray], non_acgt: Sequence[list] | None = None, *,
               lengths: Sequence[int] | None = None) -> list[str]:
        """Most likely nucleotide per position (A/C/G/T; N only under the 'channel' policy), with
        the non-ACGT runs of ``non_acgt`` (or ``codes.non_acgt``, set by ``encode``) put back.

        ``stride`` letters per code, cut to ``lengths`` (nucleotides per sequence; default
        ``codes.nucleotides``, set by ``encode``): a strided sequence whose length is not a
        multiple of the stride comes back at its own length (module docstring)."""
        n, st = self.config.n_levels, self.stride
        arrays = [np.asarray(c).reshape(n, -1) for c in codes]
        full = [a.shape[1] * st for a in arrays]
        if lengths is not None:
            if isinstance(lengths, (int, np.integer)) or len(lengths) != len(arrays):
                raise ValueError(f"lengths must give one length per sequence ({len(arrays)})")
            for i, (a, m) in enumerate(zip(arrays, lengths)):
                if -(-int(m) // st) != a.shape[1]:
                    raise ValueError(f"sequence {i}: {a.shape[1]} codes of {st} nt cannot give {m} nt")
        else:  # the lengths encode remembered, where they still fit the codes (an edited list may not)
            known = getattr(codes, "nucleotides", None) if st > 1 else None
            known = known if known is not None and len(known) == len(arrays) else [None] * len(arrays)
            lengths = [m if m is not None and -(-m // st) == a.shape[1] else f
                       for m, a, f in zip(known, arrays, full)]
        outs = [np.zeros(a.shape[1] * st, dtype=np.int64) for a in arrays]
        # chunk over positions: present codes as (len, n_levels) "sequences"
        engine = self._engine()
        decode = engine.decode_logits if engine is not None else self.model.decode_logits
        self._chunked([a.T for a in arrays], lambda x: decode(x.permute(2, 0, 1)).argmax(-1), outs,
                      chunk=self.chunk_length // st, halo=self.halo // st, out_index=lambda i: i * st, cost=st)
        return restore_letters([alphabet.decode(o[:m]) for o, m in zip(outs, lengths)], codes, non_acgt)

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
    def _chunked(self, arrays, fn, outs, *, chunk: int, halo: int, out_index, cost: int) -> None:
        """Run ``fn`` over chunks of ``chunk`` positions of each array with ``halo`` positions on
        each side, batching chunks of equal length, and write the kept centre of each result into
        ``outs``. ``out_index`` maps an input position to an output one (encode: nucleotide ->
        code, ``ceil(i / stride)``; decode: code -> nucleotide, ``i * stride``); chunk starts and
        halos are whole codes, so the map is exact at every cut. ``cost``: output positions per
        input position, for the batch size."""
        groups: dict[int, list] = {}
        C, h = chunk, halo
        for i, a in enumerate(arrays):
            n = len(a)
            for s in range(0, n, C):
                e = min(s + C, n)
                lo, hi = max(s - h, 0), min(e + h, n)
                groups.setdefault(hi - lo, []).append((i, lo, s, e))
        f = out_index
        for length, items in groups.items():
            per = max(self.batch_tokens // max(length * cost, 1), 1)
            for b in range(0, len(items), per):
                part = items[b:b + per]
                x = np.stack([arrays[i][lo:lo + length] for i, lo, _, _ in part])
                y = fn(torch.from_numpy(np.ascontiguousarray(x)).to(self.device)).cpu().numpy()
                for row, (i, lo, s, e) in zip(y, part):
                    outs[i][..., f(s):f(e)] = row[..., f(s) - f(lo):f(e) - f(lo)]

    # ------------------------------------------------------------ files
    def save_pretrained(self, path, *, train_config=None) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_safetensors(state, path / "model.safetensors", metadata={"format": FORMAT})
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
        config = from_dict(TokenizerConfig, cfg["model"], where=f"{cfg_file}, key model")
        validate_tokenizer_config(config)
        check_tensors(weights, model_shapes(lambda: VQDNAAutoencoder(config), cfg_file), described_by=cfg_file)
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


from ..io import check_tensors, load_safetensors, model_shapes  # noqa: E402 (used by the functions above)
