"""tokenizer_type -> class. Each tokenizer module adds itself here."""
from __future__ import annotations

TOKENIZERS: dict = {}


def _register():
    from .learned import VQDNATokenizer

    TOKENIZERS["vq"] = VQDNATokenizer
    TOKENIZERS["hrq"] = VQDNATokenizer
    try:  # hand-crafted baselines (issue 4)
        from .handcrafted import HANDCRAFTED

        TOKENIZERS.update(HANDCRAFTED)
    except ImportError:
        pass


_register()
