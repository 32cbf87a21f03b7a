"""Issue 23: every file vqdna writes has the mode a plain ``open()`` gives (0o666 less the umask),
weights too: safetensors alone writes them 600, unreadable by a group sharing the folder."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from vqdna.config import finetune_config
from vqdna.io import save_safetensors
from vqdna.lm.finetune import finetune


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


def test_tokenizer_lm_and_fine_tuned_model_files_are_readable_like_the_others(lm_data, tiny_lm, lm_tasks, tmp_path):
    ft = tmp_path / "ft"
    finetune(tiny_lm, lm_tasks["classification"], out=ft, seeds=1, progress=False,
             config=finetune_config("cpu", epochs=1, max_train=32))
    expected = 0o666 & ~_umask()
    for folder in (lm_data["tokenizer"], tiny_lm, ft):
        found = modes(Path(folder))
        assert "model.safetensors" in found and "config.json" in found, found
        assert all(m == expected for m in found.values()), {f: oct(m) for f, m in found.items()}
    assert any(f.startswith("checkpoints/") and f.endswith(".safetensors") for f in modes(Path(tiny_lm)))


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_save_safetensors_honours_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        save_safetensors({"w": torch.zeros(3)}, tmp_path / "w.safetensors")
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert modes(tmp_path)["w.safetensors"] == modes(tmp_path)["plain.txt"] == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt", "w.safetensors"]  # no temporary left
