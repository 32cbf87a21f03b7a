"""A model folder (or a shipped model) as one nucleotide-reading module, and as a folder that
transformers loads without vqdna (``vqdna export-hf``).

:func:`nucleotide_model` joins a model folder's tokenizer copy (its ConvNeXt encoder and
codebooks, frozen) and its language model into :class:`~vqdna.hub.modeling_nucleotides.VQDNANucleotideModel`;
:func:`export_hf` saves it with ``auto_map`` and the model package's own files
(:data:`vqdna.hub.EXPORTED_FILES`), so ``AutoModel.from_pretrained(DIR, trust_remote_code=True)``
and ``AutoTokenizer.from_pretrained(DIR, trust_remote_code=True)`` work where vqdna is not
installed. :func:`resolve_model` turns a shipped model's name into its checked folder: every
command and function that takes a model folder takes a name too.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .. import hub
from ..hub.configuration_vqdna import VQDNANucleotideConfig
from ..hub.modeling_nucleotides import VQDNANucleotideModel
from ..hub.tokenization_vqdna import VQDNANucleotideTokenizer
from ..io import load_safetensors
from .artifacts import _quiet_transformers, load_backbone, resolve_model, tokenizer_encoder_spec

AUTO_MAP = {"AutoConfig": "configuration_vqdna.VQDNANucleotideConfig",
            "AutoModel": "modeling_nucleotides.VQDNANucleotideModel"}
TOKENIZER_AUTO_MAP = {"AutoTokenizer": ["tokenization_vqdna.VQDNANucleotideTokenizer", None]}


def nucleotide_model(name_or_dir) -> tuple[VQDNANucleotideModel, VQDNANucleotideTokenizer]:
    """(model, tokenizer) that read DNA strings: the model folder's frozen tokenizer network in
    front of its language model (the backbone of a fine-tuned folder). ``vqdna.load``."""
    model_dir = resolve_model(name_or_dir)
    backbone = load_backbone(model_dir)  # checks the folder (config, weights, tokenizer copy)
    tok_dir = model_dir / "tokenizer"
    fields = {k: v for k, v in backbone.config.to_dict().items()
              if k not in ("model_type", "architectures", "transformers_version", "auto_map", "tokenizer_encoder",
                           "id2label", "label2id", "num_labels")}
    cfg = VQDNANucleotideConfig(**fields, tokenizer_encoder=tokenizer_encoder_spec(tok_dir))
    cfg.architectures = ["VQDNANucleotideModel"]
    with _quiet_transformers():
        model = VQDNANucleotideModel(cfg)
    model.vqdna.load_state_dict(backbone.state_dict())
    state = load_safetensors(tok_dir / "model.safetensors")
    for prefix, module in (("encoder.", model.tokenizer_encoder), ("quantizer.", model.quantizer)):
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        missing, unexpected = module.load_state_dict(part, strict=False)
        if missing or unexpected:
            raise ValueError(f"{tok_dir}/model.safetensors: the {prefix[:-1]} weights do not fit its config "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    tokenizer = VQDNANucleotideTokenizer(model_max_length=1 + cfg.max_tokens * cfg.tokenizer_encoder["stride"])
    return model.eval(), tokenizer


def export_hf(name_or_dir, out, *, overwrite: bool = False) -> dict:
    """Write ``out``: ``config.json`` (with ``auto_map``), ``model.safetensors``, the tokenizer's
    ``tokenizer_config.json``, the model package's code files and the model card (a shipped
    model's ``README.md``) if there is one. Written in ``out.tmp`` and renamed: never half a folder."""
    src = resolve_model(name_or_dir)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: exists; choose another --out or pass --overwrite")
    model, tokenizer = nucleotide_model(src)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.config.auto_map = dict(AUTO_MAP)
    with _quiet_transformers():
        model.save_pretrained(tmp)
        tokenizer.init_kwargs["auto_map"] = TOKENIZER_AUTO_MAP
        tokenizer.save_pretrained(tmp)
    package = Path(hub.__file__).parent
    for f in hub.EXPORTED_FILES:
        shutil.copyfile(package / f, tmp / f)
    if (src / "README.md").is_file():
        shutil.copyfile(src / "README.md", tmp / "README.md")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return {"out": str(out), "source": str(name_or_dir), "files": sorted(p.name for p in out.iterdir()),
            "max_nucleotides": tokenizer.model_max_length - 1}
