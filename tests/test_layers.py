"""Issue 11 item 1: imports go one way. The ground floor (io, config, train, sequence/) imports
nothing above it, and the stages that use a model (pretrain, finetune, inference) reach model
folders through lm/artifacts, not through each other in a circle."""
from __future__ import annotations

import ast
from pathlib import Path

import vqdna

ROOT = Path(vqdna.__file__).parent


def vqdna_imports(module: str) -> set[str]:
    """The vqdna modules ``module`` imports anywhere in its file (function-level imports too)."""
    path = ROOT.joinpath(*module.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            name = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
            found.add(name)
            found.update(f"{name}.{a.name}" for a in node.names)  # "from . import inference"
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("vqdna.") and _exists(m)}


def _exists(module: str) -> bool:
    path = ROOT.joinpath(*module.split(".")[1:])
    return path.is_dir() or path.with_suffix(".py").is_file()


def test_the_ground_floor_imports_nothing_above_it():
    ground = ["vqdna.io", "vqdna.config", "vqdna.train"] + [
        f"vqdna.sequence.{p.stem}" for p in (ROOT / "sequence").glob("*.py") if p.stem != "__init__"]
    allowed = ("vqdna.io", "vqdna.config", "vqdna.train", "vqdna.sequence")
    for module in ground:
        upward = {m for m in vqdna_imports(module) if not m.startswith(allowed)}
        assert not upward, f"{module} imports {sorted(upward)}"


def test_the_model_package_imports_only_itself():
    """vqdna.hub is what `vqdna export-hf` copies and what a user loads: no vqdna module outside it."""
    for p in (ROOT / "hub").glob("*.py"):
        module = "vqdna.hub" if p.stem == "__init__" else f"vqdna.hub.{p.stem}"
        outside = {m for m in vqdna_imports(module) if not m.startswith("vqdna.hub")}
        assert not outside, f"{module} imports {sorted(outside)}"


def test_no_import_circle_among_the_model_stages():
    stages = ["vqdna.lm.pretrain", "vqdna.lm.finetune", "vqdna.lm.inference", "vqdna.lm.artifacts"]
    uses = {m: vqdna_imports(m) & set(stages) for m in stages}
    assert not uses["vqdna.lm.artifacts"], uses
    assert not uses["vqdna.lm.inference"] - {"vqdna.lm.artifacts"}, uses
    assert not uses["vqdna.lm.pretrain"] - {"vqdna.lm.artifacts"}, uses
    assert "vqdna.lm.pretrain" not in uses["vqdna.lm.finetune"], uses


def test_one_tokenizer_hash():
    from vqdna import codes, io
    from vqdna.lm import artifacts, finetune, inference, pretrain

    assert artifacts.tokenizer_sha256 is io.weights_sha256 is pretrain.tokenizer_sha256
    for m in (finetune, inference):  # no module hashes a tokenizer its own way
        assert vars(m).get("tokenizer_sha256", io.weights_sha256) is io.weights_sha256
    assert codes.weights_sha256 is io.weights_sha256


def _modules() -> list[str]:
    out = []
    for p in ROOT.rglob("*.py"):
        rel = p.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
        out.append(".".join(parts))
    return out


def test_no_import_circle_between_files():
    """No two files reach each other through imports (a package's __init__ re-exports are left out:
    they only hand names on)."""
    mods = [m for m in _modules() if not (ROOT.joinpath(*m.split(".")[1:]) / "__init__.py").exists()]
    graph = {m: {n for n in vqdna_imports(m) if n in mods and n != m} for m in mods}
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(n):] + [n]))
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(mods):
        if m not in state:
            visit(m, [m])
