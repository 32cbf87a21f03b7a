"""vqdna: genome language modelling with a learned vocabulary (VQDNA, ICML 2024)."""
__version__ = "0.1.0"

# public names, imported on first use (``import vqdna`` stays light: no torch / transformers)
_LAZY = {
    "VQDNATokenizer": "vqdna.tokenizers.learned",
    "VQDNAConfig": "vqdna.hub.modeling_vqdna",
    "VQDNAModel": "vqdna.hub.modeling_vqdna",
    "VQDNAForMaskedLM": "vqdna.hub.modeling_vqdna",
    "VQDNAForSequenceClassification": "vqdna.hub.modeling_vqdna",
}

__all__ = ["__version__", "load", *_LAZY]


def load(name_or_dir):
    """``(model, tokenizer)`` for a model folder or a shipped model's name (``vqdna models``, e.g.
    ``"hrq-cpu-v1"``, hash-checked): a Hugging Face model that reads DNA strings, the frozen
    tokenizer network in front of the language model
    (:class:`~vqdna.hub.modeling_nucleotides.VQDNANucleotideModel`), and its character tokenizer.
    ``model(**tokenizer(["ACGT..."], return_tensors="pt")).last_hidden_state``: [CLS], then one
    vector per nucleotide; ``vqdna export-hf`` writes the same model for transformers alone."""
    from .lm.export import nucleotide_model

    return nucleotide_model(name_or_dir)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vqdna' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
