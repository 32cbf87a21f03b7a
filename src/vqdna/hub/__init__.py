"""The model package a user loads: configuration, model classes and tokenizer (Hugging Face
classes that import torch, transformers and each other only, never the training harness, so
``vqdna export-hf`` copies these files as they are), and the shipped pre-trained models.

* :mod:`.configuration_vqdna`: ``VQDNAConfig`` (the language model), ``VQDNANucleotideConfig``
* :mod:`.modeling_vqdna`: ``VQDNAModel``, ``VQDNAForMaskedLM``, ``VQDNAForSequenceClassification``
  (they read codes)
* :mod:`.modeling_nucleotides`: ``VQDNANucleotideModel``: the frozen tokenizer network in front
  of the language model, reading nucleotides
* :mod:`.tokenization_vqdna`: ``VQDNANucleotideTokenizer``, its character tokenizer
* :mod:`.convnext`, :mod:`.quantizer`, :mod:`.hrq`: the tokenizer network (ConvNeXt-1D encoder /
  decoder, EMA vector quantizer, hierarchical residual quantizer); stage 1 trains them
  (:mod:`vqdna.tokenizers`)
* :mod:`.shipped`: the shipped models (``models/``), their index and hash check
"""
# the files `vqdna export-hf` copies into an exported folder: the model package, as it is
EXPORTED_FILES = ("configuration_vqdna.py", "modeling_vqdna.py", "modeling_nucleotides.py", "convnext.py",
                  "quantizer.py", "hrq.py", "tokenization_vqdna.py")
