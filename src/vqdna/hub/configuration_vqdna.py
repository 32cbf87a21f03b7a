"""The configuration of the VQDNA language model (``model_type = "vqdna"``): a Hugging Face
:class:`~transformers.PretrainedConfig`, with the special-token layout every model class shares.

Part of :mod:`vqdna.hub`, the model package: it imports torch / transformers and its sibling
files only, so ``vqdna export-hf`` copies it as it is into a folder that transformers loads
without vqdna (``trust_remote_code``).
"""
from __future__ import annotations

from transformers import BertConfig, PretrainedConfig

POSITION_EMBEDDINGS = ("absolute", "rotary", "alibi")  # = vqdna.config.POSITION_EMBEDDINGS (tested)
N_SPECIAL = 3
POOLINGS = ("mean", "cls", "meanmax")
PAD, MASK, CLS = 0, 1, 2  # offsets after each level's vocabulary


class VQDNAConfig(PretrainedConfig):
    """Configuration of the VQDNA language model (``model_type = "vqdna"``).

    ``vocab_sizes``: tokenizer codes per level (special ids come after them);
    ``codebook_dim``: width of the tokenizer codebooks (codebook mode);
    the BERT hyper-parameters keep their ``transformers.BertConfig`` names.
    """

    model_type = "vqdna"

    def __init__(self, vocab_sizes=(512,), input_mode: str = "codebook", codebook_dim: int | None = None,
                 codebook_combine: str = "mean", hidden_size: int = 768, num_hidden_layers: int = 12,
                 num_attention_heads: int = 12, intermediate_size: int = 3072, hidden_act: str = "gelu",
                 hidden_dropout_prob: float = 0.1, attention_probs_dropout_prob: float = 0.1,
                 max_position_embeddings: int = 513, layer_norm_eps: float = 1e-12,
                 initializer_range: float = 0.02, pooling: str = "mean", mlm_shared_transform: bool = True,
                 classifier_dropout: float | None = None, classifier_norm: bool = True, regression_mean: float = 0.0,
                 regression_std: float = 1.0, tokenizer_type: str | None = None,
                 tokenizer_sha256: str | None = None, tokenizer_encoder: dict | None = None,
                 position_embedding: str = "absolute", rope_theta: float = 10000.0, **kwargs):
        self.vocab_sizes = [int(v) for v in vocab_sizes]
        self.input_mode = input_mode
        self.codebook_dim = codebook_dim
        self.codebook_combine = codebook_combine
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.pooling = pooling
        self.mlm_shared_transform = mlm_shared_transform
        self.classifier_dropout = classifier_dropout
        self.classifier_norm = bool(classifier_norm)  # batch-normalise the pooled vector (see ClassificationHead)
        self.regression_mean = float(regression_mean)
        self.regression_std = float(regression_std)
        self.tokenizer_type = tokenizer_type
        self.tokenizer_sha256 = tokenizer_sha256
        # input_mode "encoder": the shape of the tokenizer's ConvNeXt encoder that the model
        # carries (Encoder arguments + "levels" + "residual"); None otherwise
        self.tokenizer_encoder = dict(tokenizer_encoder) if tokenizer_encoder else None
        # "absolute" (learned table, BERT's), "rotary" or "alibi" (positions inside attention: runs
        # beyond the training length); see the module docstring
        self.position_embedding = position_embedding
        self.rope_theta = float(rope_theta)  # RoPE base (RoFormer's and Llama's 10000)
        super().__init__(**kwargs)
        self._validate()

    def _validate(self) -> None:
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings"):  # a config.json read back may hold anything
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} = {v!r} (from the model config): must be an integer >= 1")
        if self.input_mode not in ("codebook", "learned", "encoder"):
            raise ValueError(f"input_mode must be 'codebook', 'learned' or 'encoder', not {self.input_mode!r}")
        if self.input_mode in ("codebook", "encoder") and not self.codebook_dim:
            raise ValueError(f"input_mode {self.input_mode!r} needs codebook_dim")
        if self.input_mode == "encoder" and (not self.tokenizer_encoder or self.vocab_sizes != [5]):
            raise ValueError("input_mode 'encoder' reads nucleotides (vocab_sizes [5]) and needs tokenizer_encoder")
        if self.codebook_combine not in ("mean", "sum"):
            raise ValueError(f"codebook_combine must be 'mean' or 'sum', not {self.codebook_combine!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {self.pooling!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                             f"{self.num_attention_heads}")
        if not self.vocab_sizes or min(self.vocab_sizes) < 1:
            raise ValueError(f"vocab_sizes must be positive, got {self.vocab_sizes}")
        if self.position_embedding not in POSITION_EMBEDDINGS:
            raise ValueError(f"position_embedding must be one of {POSITION_EMBEDDINGS}, not {self.position_embedding!r}")
        if self.position_embedding == "rotary" and (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError(f"rotary positions need an even head size, not {self.hidden_size // self.num_attention_heads}")

    # ------------------------------------------------------------ special ids
    @property
    def n_levels(self) -> int:
        return len(self.vocab_sizes)

    @property
    def pooled_size(self) -> int:
        """Width of the pooled vector the sequence head reads (``meanmax`` concatenates two)."""
        return 2 * self.hidden_size if self.pooling == "meanmax" else self.hidden_size

    @property
    def max_tokens(self) -> int:
        """Tokens per forward pass besides [CLS]."""
        return self.max_position_embeddings - 1

    def special_ids(self, name: str) -> list[int]:
        """Per-level id of ``"pad"``, ``"mask"`` or ``"cls"``."""
        off = {"pad": PAD, "mask": MASK, "cls": CLS}[name]
        return [v + off for v in self.vocab_sizes]

    def bert_config(self) -> BertConfig:
        """The BertConfig of the encoder body (its word embeddings are unused: we pass inputs_embeds;
        with rotary / ALiBi positions its position table is replaced, so it gets one row)."""
        positions = self.max_position_embeddings if self.position_embedding == "absolute" else 1
        return BertConfig(vocab_size=1, pad_token_id=0, hidden_size=self.hidden_size,
                          num_hidden_layers=self.num_hidden_layers, num_attention_heads=self.num_attention_heads,
                          intermediate_size=self.intermediate_size, hidden_act=self.hidden_act,
                          hidden_dropout_prob=self.hidden_dropout_prob,
                          attention_probs_dropout_prob=self.attention_probs_dropout_prob,
                          max_position_embeddings=positions, type_vocab_size=1,
                          layer_norm_eps=self.layer_norm_eps, initializer_range=self.initializer_range,
                          use_cache=False,  # an encoder: no cache (BERT ignores it; no warning under checkpointing)
                          attn_implementation=getattr(self, "_attn_implementation", None) or "sdpa")


# the nucleotide ids of VQDNANucleotideModel and its character tokenizer (tokenization_vqdna.py):
# A C G T, N (any IUPAC code: the tokenizer network sees it as an all-zero one-hot), then specials
NUCLEOTIDES = "ACGTN"
NUCLEOTIDE_CLS, NUCLEOTIDE_PAD = 5, 6


class VQDNANucleotideConfig(VQDNAConfig):
    """The language model with its frozen tokenizer network in front (``model_type =
    "vqdna-nucleotide"``): the model reads nucleotide ids (``NUCLEOTIDES``; [CLS] = 5, [PAD] = 6),
    encodes them with the tokenizer's ConvNeXt encoder, rounds each level to its nearest code
    (HRQ, Eq. 5-8) and runs the language model on those codes: what ``vqdna embed`` does in
    two steps, in one module that transformers loads alone (``vqdna export-hf``).

    ``tokenizer_encoder``: the encoder's arguments (``n_inputs``, ``stem_dim``, ``dim``, ``depth``,
    ``kernel_size``, ``mlp_ratio``, ``layer_scale``, ``stride``) plus ``levels`` (the blocks each
    level quantizes after) and ``residual`` (HRQ's level input); the codebooks are ``vocab_sizes``
    codes of ``codebook_dim`` values, as in the language model.
    """

    model_type = "vqdna-nucleotide"

    def _validate(self) -> None:
        super()._validate()
        if self.tokenizer_encoder is None:  # an empty config (transformers builds one to diff against)
            return
        need = {"n_inputs", "stem_dim", "dim", "depth", "kernel_size", "mlp_ratio", "levels", "residual"}
        missing = sorted(need - set(self.tokenizer_encoder))
        if missing:
            raise ValueError(f"tokenizer_encoder lacks {missing}")
        if self.input_mode != "codebook" or len(self.tokenizer_encoder["levels"]) != self.n_levels:
            raise ValueError("a nucleotide model reads codebook inputs, one codebook per encoder level")
