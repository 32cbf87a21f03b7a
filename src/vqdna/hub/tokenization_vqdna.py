"""The character tokenizer of :class:`~.modeling_nucleotides.VQDNANucleotideModel` (a Hugging Face
:class:`~transformers.PreTrainedTokenizer`).

The learned vocabulary lives in the model (its frozen tokenizer network), so the text side is
one id per nucleotide: A C G T = 0-3, N and every other IUPAC code = 4 (the policy of
``vqdna.sequence.alphabet``: the network sees them as an all-zero one-hot), lower case as upper
case; ``[CLS]`` = 5 goes first, ``[PAD]`` = 6 after. A letter that is no nucleotide code is an
error naming it, never a silent substitute. ``model_max_length`` is [CLS] plus the nucleotides
the model reads per forward pass (stride 1), so ``truncation=True`` cuts to what fits.

Part of the model package: torch-free, transformers and its sibling files only.
"""
from __future__ import annotations

from transformers import PreTrainedTokenizer

from .configuration_vqdna import NUCLEOTIDE_CLS, NUCLEOTIDE_PAD, NUCLEOTIDES

IUPAC = set("ACGTNRYSWKMBDHVU")  # U (RNA) reads as N too: the vocabulary was learned on DNA
VOCAB = {**{c: i for i, c in enumerate(NUCLEOTIDES)}, "[CLS]": NUCLEOTIDE_CLS, "[PAD]": NUCLEOTIDE_PAD}



class VQDNANucleotideTokenizer(PreTrainedTokenizer):
    vocab_files_names: dict = {}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, model_max_length: int = 512, **kwargs):
        kwargs.setdefault("cls_token", "[CLS]")
        kwargs.setdefault("pad_token", "[PAD]")
        super().__init__(model_max_length=model_max_length, **kwargs)

    @property
    def vocab_size(self) -> int:
        return len(VOCAB)

    def get_vocab(self) -> dict:
        return dict(VOCAB)

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        out = []
        for i, c in enumerate(text.upper()):
            if c not in IUPAC:
                raise ValueError(f"position {i}: {c!r} is not a nucleotide (IUPAC) code")
            out.append(c if c in "ACGT" else "N")
        return out

    def _convert_token_to_id(self, token: str) -> int:
        return VOCAB[token]

    def _convert_id_to_token(self, index: int) -> str:
        return {v: k for k, v in VOCAB.items()}[int(index)]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return "".join(t for t in tokens if t in NUCLEOTIDES)

    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: list[int] | None = None) -> list[int]:
        if token_ids_1 is not None:
            raise ValueError("one DNA sequence per input (no pairs)")
        return [NUCLEOTIDE_CLS] + list(token_ids_0)

    def get_special_tokens_mask(self, token_ids_0: list, token_ids_1: list | None = None,
                                already_has_special_tokens: bool = False) -> list[int]:
        if already_has_special_tokens:
            return [int(t in (NUCLEOTIDE_CLS, NUCLEOTIDE_PAD)) for t in token_ids_0]
        return [1] + [0] * len(token_ids_0)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 1

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple:
        return ()  # the vocabulary is fixed (VOCAB): no file to write
