"""tokenizer_type -> class: what :func:`vqdna.tokenizers.load_tokenizer` opens a folder with."""
from __future__ import annotations

TOKENIZERS: dict = {}


def _register():
    from .handcrafted import HANDCRAFTED
    from .learned import VQDNATokenizer

    TOKENIZERS["vq"] = VQDNATokenizer
    TOKENIZERS["hrq"] = VQDNATokenizer
    TOKENIZERS.update(HANDCRAFTED)  # the hand-crafted baselines (issue 4)


_register()
