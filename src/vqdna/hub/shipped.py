"""The pre-trained models shipped inside the package (``vqdna models``; ``--model NAME``).

Each lives in ``models/<name>/`` as a model folder of ``vqdna pretrain`` (``config.json``,
``model.safetensors``, ``tokenizer/``, ``metrics.json``) with its model card (``README.md``);
``models/index.json`` lists them with the sha256 and size of every file, the corpus and the
scores. :func:`shipped_model_path` checks every hash before a folder is handed out, so a damaged
or edited copy is refused by name, never loaded. :func:`package_model` is how a folder gets
there (``benchmarks/train_shipped_model.py``).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

MODELS_DIR = Path(__file__).parent / "models"
INDEX = MODELS_DIR / "index.json"
# what a shipped folder holds (checkpoints, logs and curves stay behind)
SHIPPED_FILES = ("README.md", "config.json", "model.safetensors", "metrics.json", "pretrain_config.yaml",
                 "tokenizer/config.json", "tokenizer/model.safetensors", "tokenizer/metrics.json")


class DamagedModelError(ValueError):
    """A shipped model's file is missing or its bytes differ from the recorded sha256."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shipped_models() -> dict[str, dict]:
    """name -> its index entry (``files`` {path: {sha256, bytes}}, ``bytes``, ``corpus``,
    ``scores``, ``summary``); {} when none is shipped."""
    if not INDEX.exists():
        return {}
    return json.loads(INDEX.read_text())["models"]


def is_shipped(name) -> bool:
    return isinstance(name, str) and name in shipped_models()


def shipped_model_path(name: str) -> Path:
    """The folder of shipped model ``name``, after checking the sha256 of every file."""
    models = shipped_models()
    if name not in models:
        known = ", ".join(sorted(models)) or "none"
        raise FileNotFoundError(f"{name!r} is neither a model folder nor a shipped model (shipped: {known})")
    folder = MODELS_DIR / name
    for rel, want in models[name]["files"].items():
        f = folder / rel
        if not f.is_file():
            raise DamagedModelError(f"{f}: missing from the shipped model {name!r}; reinstall vqdna")
        if _sha256(f) != want["sha256"]:
            raise DamagedModelError(f"{f}: damaged (its sha256 differs from the one shipped with {name!r}); "
                                    f"reinstall vqdna")
    return folder


def resolve_model(name_or_dir) -> Path:
    """A model folder as given, or the checked folder of the shipped model of that name (an
    existing folder wins over a shipped name)."""
    p = Path(name_or_dir)
    if p.is_dir() or not is_shipped(str(name_or_dir)):
        return p
    return shipped_model_path(str(name_or_dir))


def _without_paths(obj):
    """``obj`` with every absolute path (a string starting with /) cut to its last component."""
    if isinstance(obj, dict):
        return {k: _without_paths(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_without_paths(v) for v in obj]
    return Path(obj).name if isinstance(obj, str) and obj.startswith("/") else obj


def package_model(lm_dir, name: str, *, card: str, info: dict) -> Path:
    """Copy the model folder ``lm_dir`` (``SHIPPED_FILES`` it has) and its model card text into
    ``models/<name>/`` and record it in the index with every file's hash and ``info`` (corpus,
    scores, summary). Files are written beside, then swapped in."""
    lm_dir = Path(lm_dir)
    tmp = MODELS_DIR / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "tokenizer").mkdir(parents=True)
    (tmp / "README.md").write_text(card)
    for rel in SHIPPED_FILES[1:]:
        if (lm_dir / rel).is_file() and rel.endswith(".json"):  # no path of the machine that trained it
            (tmp / rel).write_text(json.dumps(_without_paths(json.loads((lm_dir / rel).read_text())), indent=1) + "\n")
        elif (lm_dir / rel).is_file():
            shutil.copyfile(lm_dir / rel, tmp / rel)
    files = {str(f.relative_to(tmp)): {"sha256": _sha256(f), "bytes": f.stat().st_size}
             for f in sorted(tmp.rglob("*")) if f.is_file()}
    dst = MODELS_DIR / name
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)
    index = json.loads(INDEX.read_text()) if INDEX.exists() else {"format": "vqdna-shipped/1", "models": {}}
    index["models"][name] = {**info, "files": files, "bytes": sum(v["bytes"] for v in files.values())}
    INDEX.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    return dst
