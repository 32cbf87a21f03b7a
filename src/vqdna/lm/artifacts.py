"""Model folders: what ``vqdna pretrain`` and ``vqdna finetune`` write and every later command reads.

A model folder holds ``config.json`` + ``model.safetensors`` (a model of :mod:`vqdna.hub.modeling_vqdna`),
``tokenizer/`` (a copy of the tokenizer the model reads; the model config records its hash as
``tokenizer_sha256``) and the stage's own JSON files. This module is the one place that writes,
copies, verifies and loads them, so the stages (pretrain, finetune, inference) need not import
each other:

* :func:`tokenizer_sha256`: a tokenizer's identity (code manifests and model configs record it)
* :func:`check_tokenizer`, :func:`open_tokenizer`, :func:`load_model_tokenizer`: a tokenizer
  folder, verified against the hash recorded for it
* :func:`copy_tokenizer`, :func:`save_tokenizer`: the ``tokenizer/`` subfolder, written atomically
* :func:`resolve_model`: a shipped model's name (``hrq-cpu-v1``) as its hash-checked folder
* :func:`tokenizer_encoder_spec`: a VQ/HRQ tokenizer's encoder shape, for a model that carries it
* :func:`save_model`: ``config.json`` + ``model.safetensors``, written atomically
* :func:`check_model_files`: every file of a model folder checked before any work
* :func:`load_backbone`, :func:`load_classifier`, :func:`backbone_weights`: reading a model back
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from ..hub.shipped import resolve_model  # noqa: F401 (a model folder or a shipped model's name)
from ..io import (FileFormatError, check_model_folder, check_tensors, load_safetensors, model_shapes, read_json,
                  share_like_open, weights_sha256)
from ..tokenizers.base import GenomeTokenizer
from ..hub.modeling_vqdna import VQDNAConfig, VQDNAForMaskedLM, VQDNAForSequenceClassification, VQDNAModel

# A tokenizer is identified by the sha256 of its weights (of config.json, and BPE's bpe.json, for a
# hand-crafted one without weights); the one function that computes it, shared with the code store (vqdna.codes).
tokenizer_sha256 = weights_sha256


# ---------------------------------------------------------------- the tokenizer copy


def check_tokenizer(path, expected_sha256: str | None, *, recorded: str = "the code manifest's",
                    consequence: str = "the codes were made by another tokenizer") -> None:
    """Raise ``ValueError`` unless the tokenizer folder ``path`` has the hash ``recorded`` for it
    (``expected_sha256``; None or "": nothing was recorded, nothing to check)."""
    if not expected_sha256:
        return
    if not isinstance(expected_sha256, str):  # a damaged config.json / manifest.json (found by the fuzz test)
        raise FileFormatError(f"{path}: {recorded} tokenizer sha256 is {expected_sha256!r}, not a hex string: "
                              f"the file that records it is damaged")
    check_model_folder(path)  # a damaged file is named as damaged, not as "another tokenizer"
    got = tokenizer_sha256(path)
    if got != expected_sha256:
        raise ValueError(f"{path}: tokenizer sha256 {got[:12]}... does not match {recorded} "
                         f"{expected_sha256[:12]}...; {consequence}")


def open_tokenizer(path, expected_sha256: str | None, **why) -> GenomeTokenizer:
    """The tokenizer in folder ``path``, loaded (so every file is checked: a damaged one is named
    as damaged), then :func:`check_tokenizer` (``why``: its wording)."""
    from ..tokenizers import load_tokenizer

    tokenizer = load_tokenizer(path)
    check_tokenizer(path, expected_sha256, **why)
    return tokenizer


def load_model_tokenizer(model_dir) -> GenomeTokenizer:
    """The tokenizer copy saved beside a model (``<model_dir>/tokenizer``), sha256 checked."""
    model_dir = Path(model_dir)
    tdir = model_dir / "tokenizer"
    if not (tdir / "config.json").exists():
        raise FileNotFoundError(f"{model_dir}: no tokenizer/ folder beside the model (not a vqdna model folder?)")
    want = read_json(model_dir / "config.json").get("tokenizer_sha256")
    return open_tokenizer(tdir, want, recorded="the model config's",
                          consequence="the model was trained with another tokenizer")


def copy_tokenizer(src, dst, expected_sha256: str | None = None, **why) -> Path:
    """Copy a tokenizer folder (files only: no ``checkpoints/``) to ``dst`` through a temporary
    folder, checking its sha256 before and after (``why``: see :func:`check_tokenizer`)."""
    src, dst = Path(src), Path(dst)
    check_tokenizer(src, expected_sha256, **why)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and ".tmp" not in f.name:
            shutil.copy2(f, tmp / f.name)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    if expected_sha256 is not None and tokenizer_sha256(dst) != expected_sha256:
        raise ValueError(f"{dst}: copied tokenizer does not match sha256 {expected_sha256[:12]}...")
    return dst


def save_tokenizer(tokenizer: GenomeTokenizer, dst) -> str:
    """Save ``tokenizer`` as the folder ``dst`` (through a temporary folder); returns its sha256."""
    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save_pretrained(tmp)
    sha = tokenizer_sha256(tmp)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    return sha


# ---------------------------------------------------------------- the model


@contextmanager
def _quiet_transformers():
    """transformers without its progress bars and below-error messages (loading, saving)."""
    import transformers
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    verbosity = transformers.logging.get_verbosity()
    hf_logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def tokenizer_encoder_spec(tok_dir: Path) -> dict:
    """The encoder arguments + ``levels`` + ``residual`` of a VQ/HRQ tokenizer folder (its
    ``config.json``), as :class:`~vqdna.hub.configuration_vqdna.VQDNAConfig` records them
    (``tokenizer_encoder``): for a model that carries the tokenizer's encoder, the fine-tuned
    ``--unfreeze-tokenizer`` model and the exported nucleotide model alike."""
    spec = read_json(tok_dir / "config.json")
    t = spec.get("model") or {}
    if spec.get("tokenizer_type") not in ("vq", "hrq"):
        raise ValueError(f"{tok_dir}: a {spec.get('tokenizer_type')} tokenizer has no network to carry; a model "
                         f"that reads nucleotides needs a VQ/HRQ tokenizer")
    return dict(n_inputs=5 if t.get("n_policy") == "channel" else 4, stem_dim=t["stem_dim"], dim=t["dim"],
                depth=t["depth"], kernel_size=t["kernel_size"], mlp_ratio=t["mlp_ratio"],
                layer_scale=t.get("layer_scale", 0.0), stride=t.get("stride", 1),
                levels=list(t["levels"]), residual=t.get("hrq_residual", "doubled"))


def save_model(model, out) -> None:
    """``model.save_pretrained`` into ``out`` (``config.json``, ``model.safetensors``), atomically:
    the files are written in ``out/.model.tmp/`` and then renamed into ``out``, the weights before
    the config, so a reader never sees half a file nor a config newer than its weights."""
    out = Path(out)
    tmp = out / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with _quiet_transformers():
        model.save_pretrained(tmp)
    for f in sorted(tmp.iterdir(), key=lambda f: f.name == "config.json"):
        share_like_open(f)  # transformers writes the weights with safetensors: mode 600
        os.replace(f, out / f.name)
    tmp.rmdir()


def backbone_weights(model_dir) -> dict:
    """The encoder weights (``vqdna.*``, prefix dropped) of a model folder's ``model.safetensors``."""
    model_dir = Path(model_dir)
    state = load_safetensors(model_dir / "model.safetensors")
    backbone = {k[len("vqdna."):]: v for k, v in state.items() if k.startswith("vqdna.")}
    if not backbone:
        raise ValueError(f"{model_dir}/model.safetensors holds no VQDNA encoder weights")
    return backbone


def model_class(cfg: VQDNAConfig) -> type:
    """The model class a folder's config names (``architectures``): a classifier or the masked LM."""
    arch = (cfg.architectures or ["VQDNAForMaskedLM"])[0]
    return VQDNAForSequenceClassification if arch == "VQDNAForSequenceClassification" else VQDNAForMaskedLM


@contextmanager
def _reading(cfg_file: Path):
    """transformers reading a model folder back: after the file checks, what can still fail is a
    value of ``config.json`` of a type it does not expect; its errors (which name no file, and are
    of many classes) become a ``FileFormatError`` naming the file."""
    try:
        with _quiet_transformers():
            yield
    except (FileFormatError, FileNotFoundError):
        raise
    except Exception as e:  # noqa: BLE001 - see the docstring
        raise FileFormatError(f"{cfg_file}: not a model config vqdna can read ({type(e).__name__}: "
                              f"{' '.join(str(e).split())[:300]}); the file is damaged or hand-edited") from None


def check_model_files(model_dir) -> VQDNAConfig:
    """Every file a model folder's readers open, checked before any work; returns its config.
    ``config.json`` must build a model, ``model.safetensors`` hold every tensor of that model with
    its shape and no other (:func:`vqdna.io.check_tensors`), ``tokenizer/`` and ``metrics.json``
    (when present) be intact. A damaged file is a ``FileFormatError`` naming it; a pickle-only
    folder is refused (:func:`vqdna.io.check_model_folder`)."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(f"{model_dir}: not a model folder (no config.json)")
    check_model_folder(model_dir)
    cfg_file = model_dir / "config.json"
    with _reading(cfg_file):
        cfg = VQDNAConfig.from_pretrained(model_dir)
        shapes = model_shapes(lambda: model_class(cfg)(cfg), cfg_file)
    check_tensors(model_dir / "model.safetensors", shapes, described_by=cfg_file)
    if (model_dir / "metrics.json").exists():
        read_json(model_dir / "metrics.json")
    return cfg


def _load(cls, model_dir: Path):
    """``cls.from_pretrained`` of a checked folder (safetensors only)."""
    with _reading(model_dir / "config.json"):
        return cls.from_pretrained(model_dir, use_safetensors=True).eval()


def load_backbone(model_dir) -> VQDNAModel:
    """The encoder (embeddings + BERT) of a pre-trained or fine-tuned model folder."""
    model_dir = Path(model_dir)
    return _load(model_class(check_model_files(model_dir)), model_dir).vqdna


def load_classifier(model_dir) -> VQDNAForSequenceClassification:
    """The fine-tuned classifier (or regressor) of a ``vqdna finetune`` output folder."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists() or \
            model_class(check_model_files(model_dir)) is not VQDNAForSequenceClassification:
        raise ValueError(f"{model_dir}: not a fine-tuned model folder (run `vqdna finetune` first)")
    return _load(VQDNAForSequenceClassification, model_dir)
