"""Stage 2 and 3: the VQDNA BERT language model, masked-LM pre-training, fine-tuning (full by
default, LoRA in the ``paper`` recipe), use.

* the model classes live in the model package :mod:`vqdna.hub` (``VQDNAConfig``, ``VQDNAModel``,
  ``VQDNAForMaskedLM``, ``VQDNAForSequenceClassification``; Hugging Face classes,
  ``model_type="vqdna"``), kept apart from this training harness; re-exported here
* :mod:`.masking`: ``mask_codes`` (25%, 80/10/10, joint across HRQ levels, token or span mode)
* :mod:`.pretrain`: ``pretrain`` (``vqdna pretrain``)
* :mod:`.finetune`: ``finetune`` (``vqdna finetune``)
* :mod:`.inference`: ``predict`` and ``embed`` (``vqdna predict`` / ``vqdna embed``)
* :mod:`.artifacts`: model folders (atomic save, loading, the tokenizer copy and its hash)
"""
from ..hub.modeling_vqdna import (VQDNAConfig, VQDNAForMaskedLM, VQDNAForSequenceClassification, VQDNAModel,
                       register_auto_classes)

register_auto_classes()

__all__ = ["VQDNAConfig", "VQDNAModel", "VQDNAForMaskedLM", "VQDNAForSequenceClassification",
           "pretrain", "finetune", "predict", "embed", "mask_codes"]


def __getattr__(name):
    if name == "pretrain":
        from .pretrain import pretrain
        return pretrain
    if name == "finetune":
        from .finetune import finetune
        return finetune
    if name in ("predict", "embed"):
        from . import inference
        return getattr(inference, name)
    if name == "mask_codes":
        from .masking import mask_codes
        return mask_codes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
