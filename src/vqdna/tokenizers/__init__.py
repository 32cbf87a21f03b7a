"""Genome tokenizers behind one interface (:class:`GenomeTokenizer`)."""
from __future__ import annotations

from pathlib import Path

from ..io import read_json
from .base import GenomeTokenizer


def load_tokenizer(path) -> GenomeTokenizer:
    """Open any saved tokenizer folder by the ``tokenizer_type`` in its ``config.json``."""
    cfg_path = Path(path) / "config.json"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{path}: not a tokenizer folder (no config.json)")
    kind = read_json(cfg_path).get("tokenizer_type")
    from . import registry

    if kind not in registry.TOKENIZERS:
        raise ValueError(f"{cfg_path}: unknown tokenizer_type {kind!r}; known: {sorted(registry.TOKENIZERS)}")
    return registry.TOKENIZERS[kind].from_pretrained(path)
