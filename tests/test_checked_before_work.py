"""Issue 21: checked before work. Every row of the issue's table drives the CLI as a user would:
exit 2, one line naming the field (with its value and where it came from) or the file, no
traceback, and no file a later command would take for a result. Then a property test throws
random corruptions at the JSON and safetensors files of every folder kind."""
from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from vqdna.cli import main
from vqdna.io import read_json

from conftest import _write_fasta
from test_robustness import error_line


def run(capsys, *argv) -> tuple[int, str]:
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse: a flag's type
        rc = e.code
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


def fails_naming(capsys, *argv, names=()) -> str:
    rc, text = run(capsys, *argv)
    line = error_line(text)
    assert rc == 2, text
    for n in names:
        assert str(n) in line, (n, line)
    return line


@pytest.fixture(scope="module")
def finetuned(tiny_lm, lm_tasks, tmp_path_factory):
    """A fine-tuned folder (1 seed, 1 epoch, 16 rows)."""
    from vqdna.config import finetune_config
    from vqdna.lm.finetune import finetune

    out = tmp_path_factory.mktemp("ft") / "ft"
    finetune(tiny_lm, lm_tasks["classification"], out=out, seeds=1, progress=False,
             config=finetune_config("cpu", epochs=1, max_train=16, batch_size=8))
    return out


def finetune_argv(tiny_lm, lm_tasks, out, *flags):
    return ["finetune", "--model", tiny_lm, "--task", lm_tasks["classification"], "--out", out, "--seeds", "1",
            *flags]


# ---------------------------------------------------------------- config values: type and range, before work


def test_yaml_value_of_the_wrong_type_names_file_key_and_value(tiny_lm, lm_tasks, lm_data, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: three\n")
    line = fails_naming(capsys, *finetune_argv(tiny_lm, lm_tasks, tmp_path / "ft", "--config", bad),
                        names=["epochs = 'three'", f"{bad}, key epochs", "an integer >= 1"])
    assert "fine-tuning config" in line
    lm_yaml = tmp_path / "lm.yaml"
    lm_yaml.write_text("train: {max_steps: ten}\n")
    fails_naming(capsys, "pretrain", "--codes", lm_data["codes"], "--config", lm_yaml, "--out", tmp_path / "lm",
                 names=["max_steps = 'ten'", f"{lm_yaml}, key train.max_steps"])
    assert not (tmp_path / "ft").exists() and not (tmp_path / "lm").exists()


@pytest.mark.parametrize("flag,value,field", [
    ("--epochs", "0", "epochs = 0"), ("--epochs", "-1", "epochs = -1"), ("--batch-size", "0", "batch_size = 0"),
    ("--lr", "0", "lr = 0.0"), ("--max-length", "0", "max_length = 0"), ("--max-length", "-5", "max_length = -5"),
    ("--seeds", "0", "seeds = 0"), ("--backbone-lr-scale", "-1", "backbone_lr_scale = -1.0"),
    ("--position-lr-scale", "-2", "position_lr_scale = -2.0")])
def test_finetune_flag_out_of_range_is_refused(tiny_lm, lm_tasks, tmp_path, capsys, flag, value, field):
    out = tmp_path / "ft"
    fails_naming(capsys, *finetune_argv(tiny_lm, lm_tasks, out, flag, value), names=[field, f"flag {flag}"])
    assert not out.exists()


def test_finetune_max_length_beyond_the_lms_positions(tiny_lm, lm_tasks, tmp_path, capsys):
    """The tiny LM has an absolute table of 512 positions: 4096 is refused, not capped silently."""
    out = tmp_path / "ft"
    line = fails_naming(capsys, *finetune_argv(tiny_lm, lm_tasks, out, "--max-length", "4096"),
                        names=["max_length = 4096", "flag --max-length", "at most 512", tiny_lm])
    assert "language model" in line and not out.exists()


@pytest.mark.parametrize("steps", ["0", "-1"])
def test_pretrain_max_steps_below_one(lm_data, tmp_path, capsys, steps):
    out = tmp_path / "lm"
    fails_naming(capsys, "pretrain", "--codes", lm_data["codes"], "--max-steps", steps, "--out", out,
                 names=[f"max_steps = {steps}", "flag --max-steps"])
    assert not out.exists()


def test_library_overrides_are_checked_by_the_same_rule(lm_data, tmp_path):
    from vqdna.config import ConfigError, finetune_config
    from vqdna.lm.pretrain import pretrain

    with pytest.raises(ConfigError, match=r"lr = 0 \(from argument lr\): must be a number > 0"):
        finetune_config("cpu", lr=0)
    with pytest.raises(ConfigError, match=r"seq_length = 'x' \(from argument seq_length\)"):
        pretrain(lm_data["codes"], out=tmp_path / "lm", overrides=dict(seq_length="x"))
    assert not (tmp_path / "lm").exists()


# ---------------------------------------------------------------- files: opened and checked before the first step


def test_corrupt_lm_metrics_fails_finetune_before_training(tiny_lm, lm_tasks, tmp_path, capsys):
    lm = tmp_path / "lm"
    shutil.copytree(tiny_lm, lm, ignore=shutil.ignore_patterns("checkpoints"))
    (lm / "metrics.json").write_text('{"steps": 6, "val_acc"')
    out = tmp_path / "ft"
    line = fails_naming(capsys, *finetune_argv(lm, lm_tasks, out), names=[lm / "metrics.json", "not valid JSON"])
    assert "seed 0" not in line and not out.exists()  # nothing trained, nothing written
    fails_naming(capsys, "predict", "--model", out, "--csv", lm_tasks["classification"] / "test.csv",
                 "--out", tmp_path / "p.csv")
    assert not (tmp_path / "p.csv").exists()


def test_failed_finetune_leaves_no_model_that_predict_uses(tiny_lm, lm_tasks, tmp_path, capsys, monkeypatch):
    """A failure after training (writing results.json) leaves no model.safetensors / config.json."""
    import vqdna.lm.finetune as ft

    real = ft.write_json_atomic

    def fail_on_results(path, obj):
        if Path(path).name == "results.json":
            raise OSError(28, "No space left on device")
        return real(path, obj)

    monkeypatch.setattr(ft, "write_json_atomic", fail_on_results)
    out = tmp_path / "ft"
    rc, text = run(capsys, *finetune_argv(tiny_lm, lm_tasks, out, "--epochs", "1", "--max-train", "16"))
    assert rc == 2 and "No space left" in error_line(text)
    assert not out.exists() or not any(out.iterdir())


def renamed_tensor(path: Path) -> str:
    """Rename one tensor in a safetensors file: a valid header, a file of the right size."""
    tensors = load_file(path)
    name = sorted(tensors)[0]
    tensors[name + "_renamed"] = tensors.pop(name)
    save_file(tensors, path)
    return name


@pytest.mark.parametrize("kind", ["tokenizer", "lm"])
def test_renamed_tensor_is_named(lm_data, tiny_lm, lm_tasks, tmp_path, capsys, kind):
    folder = tmp_path / kind
    shutil.copytree(lm_data["tokenizer"] if kind == "tokenizer" else tiny_lm, folder,
                    ignore=shutil.ignore_patterns("checkpoints"))
    name = renamed_tensor(folder / "model.safetensors")
    if kind == "tokenizer":
        argv = ["tokenize", "--tokenizer", folder, "--fasta", lm_data["fasta"], "--out", tmp_path / "codes"]
    else:
        argv = ["embed", "--model", folder, "--csv", lm_tasks["classification"] / "test.csv",
                "--out", tmp_path / "e.npy"]
    fails_naming(capsys, *argv, names=[folder / "model.safetensors", f"no tensor {name!r}"])
    assert not (tmp_path / "codes").exists() and not (tmp_path / "e.npy").exists()


@pytest.mark.parametrize("value,named", [(48, "model.safetensors"), ("abc", "dim = 'abc'")])
def test_tokenizer_config_with_a_wrong_dim(lm_data, tmp_path, capsys, value, named):
    tok = tmp_path / "tok"
    shutil.copytree(lm_data["tokenizer"], tok, ignore=shutil.ignore_patterns("checkpoints"))
    cfg = json.loads((tok / "config.json").read_text())
    cfg["model"]["dim"] = value
    (tok / "config.json").write_text(json.dumps(cfg))
    fails_naming(capsys, "evaluate-tokenizer", "--tokenizer", tok, "--fasta", lm_data["fasta"],
                 names=[tok / "config.json", named])


@pytest.mark.parametrize("command", ["pretrain", "decode"])
def test_record_index_with_a_broken_length(lm_data, tmp_path, capsys, command):
    codes = tmp_path / "codes"
    shutil.copytree(lm_data["codes"], codes)
    rows = np.fromfile(codes / "records.i64", dtype="<i8").reshape(-1, 4)
    rows[0, 2] = -5  # a negative length: no record after it can follow
    rows.tofile(codes / "records.i64")
    argv = {"pretrain": ["pretrain", "--codes", codes, "--out", tmp_path / "lm"],
            "decode": ["decode", "--tokenizer", lm_data["tokenizer"], "--codes", codes, "--out", tmp_path / "x.fa"]}
    fails_naming(capsys, *argv[command], names=[codes / "records.i64", "record 0: {'file': 0, 'offset': 0, 'length': -5"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes"]  # no lm/, no x.fa, no x.fa.tmp


def test_failed_pretrain_leaves_no_config_in_out(lm_data, tmp_path, capsys, monkeypatch):
    import vqdna.lm.pretrain as pt

    def broken_loop(*args, **kwargs):
        raise ValueError("the loop failed")

    monkeypatch.setattr(pt, "train_loop", broken_loop)
    out = tmp_path / "lm"
    rc, text = run(capsys, "pretrain", "--codes", lm_data["codes"], "--out", out, "--max-steps", "2")
    assert rc == 2 and "the loop failed" in error_line(text)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints"]  # unfinished, as readers call it
    assert not (out / "pretrain_config.yaml").exists() and not (out / "config.json").exists()


def test_truncated_tokenizer_weights_are_damaged_not_another_tokenizer(lm_data, tmp_path, capsys):
    tok, codes = tmp_path / "tok", tmp_path / "codes"
    shutil.copytree(lm_data["tokenizer"], tok, ignore=shutil.ignore_patterns("checkpoints"))
    shutil.copytree(lm_data["codes"], codes)
    man = json.loads((codes / "manifest.json").read_text())
    man["tokenizer"]["path"] = str(tok)  # the manifest names the copy: no --tokenizer flag
    (codes / "manifest.json").write_text(json.dumps(man))
    weights = tok / "model.safetensors"
    os.truncate(weights, weights.stat().st_size - 100)
    line = fails_naming(capsys, "pretrain", "--codes", codes, "--out", tmp_path / "lm",
                        names=[weights, "not a valid safetensors file"])
    assert "another tokenizer" not in line


# ---------------------------------------------------------------- overwriting needs --overwrite


def test_data_species_into_an_existing_task_folder(lm_data, tmp_path, capsys):
    task = tmp_path / "task"
    task.mkdir()
    (task / "train.csv").write_text("sequence,label\nACGT,0\n")
    fails_naming(capsys, "data", "species", "--window", "1000", "--species", f"a={lm_data['fasta']}",
                 f"b={lm_data['fasta']}", "--out", task, names=[task, "already holds train.csv", "--overwrite"])
    assert (task / "train.csv").read_text() == "sequence,label\nACGT,0\n"


def test_finetune_overwrite_replaces_and_resume_is_no_overwrite(finetuned, tiny_lm, lm_tasks, lm_data, tmp_path,
                                                                capsys):
    out = tmp_path / "ft"
    shutil.copytree(finetuned, out)
    fails_naming(capsys, *finetune_argv(tiny_lm, lm_tasks, out), names=[out, "--overwrite"])
    rc, text = run(capsys, *finetune_argv(tiny_lm, lm_tasks, out, "--epochs", "1", "--max-train", "16",
                                          "--overwrite"))
    assert rc == 0, text
    assert read_json(out / "results.json")["config"]["epochs"] == 1
    assert not (out / ".staged.tmp").exists()
    # --resume into one's own unfinished run is allowed (the resume itself is test_robustness's)
    from vqdna.cli import build_parser, check_outputs

    a = build_parser().parse_args(["pretrain", "--codes", str(lm_data["codes"]), "--out", str(out), "--resume"])
    check_outputs(a)


# ---------------------------------------------------------------- property: random corruptions, clean errors


def _json_paths(value, prefix=()):
    """Every key path of a JSON value (objects and lists), the shallow ones first."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix + (k,)
            yield from _json_paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:4]):
            yield prefix + (i,)
            yield from _json_paths(v, prefix + (i,))


WRONG = ["x", -1, 0, None, [], {}, 1.5, True, 10**12]


def _corrupt(path: Path, how: str, data) -> None:
    raw = path.read_bytes()
    if how == "truncate":
        path.write_bytes(raw[:data.draw(st.integers(0, max(len(raw) - 1, 0)))])
    elif how == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        path.write_bytes(raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255))]) + raw[i + 1:])
    elif path.suffix == ".json":  # a value of the wrong type at a random key
        obj = json.loads(raw)
        keys = list(_json_paths(obj))[:200]
        if not keys:
            return
        *parent, last = data.draw(st.sampled_from(keys))
        node = obj
        for k in parent:
            node = node[k]
        node[last] = data.draw(st.sampled_from(WRONG))
        path.write_text(json.dumps(obj))
    else:  # safetensors: a header field of the wrong type or a renamed tensor, the size kept consistent
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + n])
        name = data.draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
        field = data.draw(st.sampled_from(["name", "shape", "dtype", "data_offsets"]))
        if field == "name":
            header[name + "x"] = header.pop(name)
        else:
            header[name][field] = data.draw(st.sampled_from(WRONG))
        text = json.dumps(header).encode()
        path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])


@pytest.fixture(scope="module")
def folder_kinds(lm_data, tiny_lm, finetuned, lm_tasks, tmp_path_factory):
    """(folder, files to corrupt, command given the folder and a scratch dir) per folder kind."""
    from vqdna.codes import write_codes
    from vqdna.tokenizers import load_tokenizer

    root = tmp_path_factory.mktemp("fuzz")
    small = _write_fasta(root / "small.fa", [("a", lm_data["sequence"][:900]), ("b", "ACGTN" * 40)])
    codes = root / "codes"
    write_codes(load_tokenizer(lm_data["tokenizer"]), small, codes, tokenizer_path=lm_data["tokenizer"],
                progress=False)
    csv = root / "rows.csv"
    csv.write_text("".join((lm_tasks["classification"] / "test.csv").read_text().splitlines(True)[:5]))
    tok = lm_data["tokenizer"]
    return {
        "tokenizer": (tok, ["config.json", "model.safetensors"],
                      lambda f, d: ["evaluate-tokenizer", "--tokenizer", f, "--fasta", small, "--json"]),
        "lm": (tiny_lm, ["config.json", "model.safetensors", "metrics.json", "tokenizer/config.json"],
               lambda f, d: ["embed", "--model", f, "--csv", csv, "--out", d / "e.npy"]),
        "finetuned": (finetuned, ["config.json", "model.safetensors", "task.json", "tokenizer/model.safetensors"],
                      lambda f, d: ["predict", "--model", f, "--csv", csv, "--out", d / "p.csv"]),
        "codes": (codes, ["manifest.json"],
                  lambda f, d: ["decode", "--tokenizer", tok, "--codes", f, "--out", d / "x.fa"]),
    }


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_corruptions_give_a_clean_error(folder_kinds, tmp_path_factory, capsys, data):
    """Truncation, byte flips and wrong types, at any file of any folder kind: the command ends
    with exit 0 (a flip that leaves a valid file) or 2 and one error line, never a traceback."""
    kind = data.draw(st.sampled_from(sorted(folder_kinds)))
    src, names, argv = folder_kinds[kind]
    work = tmp_path_factory.mktemp("case")
    folder = work / src.name
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("checkpoints"))
    name = data.draw(st.sampled_from(names))
    _corrupt(folder / name, data.draw(st.sampled_from(["truncate", "flip", "type"])), data)
    rc = main([str(a) for a in argv(folder, work)])
    cap = capsys.readouterr()
    assert rc in (0, 2), (kind, name, cap.err[-2000:])
    if rc == 2:
        error_line(cap.out + cap.err)
    shutil.rmtree(work)


def test_a_recorded_tokenizer_hash_of_another_type_is_a_clean_error(tiny_lm, tmp_path):
    """A config.json whose tokenizer_sha256 is a number (found by the fuzz test above) is named
    as damaged, not a TypeError."""
    import json
    import shutil

    from vqdna.io import FileFormatError
    from vqdna.lm.artifacts import load_model_tokenizer

    m = tmp_path / "m"
    shutil.copytree(tiny_lm, m)
    cfg = json.loads((m / "config.json").read_text())
    cfg["tokenizer_sha256"] = 7
    (m / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(FileFormatError, match="tokenizer sha256 is 7"):
        load_model_tokenizer(m)
