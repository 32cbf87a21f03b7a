"""vqdna: genome language modelling with a learned vocabulary (VQDNA, ICML 2024)."""
__version__ = "0.1.0"

# public names, imported on first use (``import vqdna`` stays light: no torch / transformers)
_LAZY = {
    "VQDNATokenizer": "vqdna.tokenizers.learned",
    "VQDNAConfig": "vqdna.lm.modeling",
    "VQDNAModel": "vqdna.lm.modeling",
    "VQDNAForMaskedLM": "vqdna.lm.modeling",
    "VQDNAForSequenceClassification": "vqdna.lm.modeling",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vqdna' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
