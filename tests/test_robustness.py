"""Issue 10: nothing lost, nothing half-written. Every row drives the CLI as a user would and
checks the exit code and that the one-line message names the file (damaged checkpoints and
model folders, pickle-only folders, unwritable outputs, two writers, failed runs)."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vqdna.cli import main
from vqdna.io import LOCK_NAME, OutputLock, check_safetensors, read_json


def halve(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 12)


def run(capsys, *argv) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


def error_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ": error: " in ln]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


# ---------------------------------------------------------------- row 1: --resume falls back


@pytest.fixture(scope="module")
def two_checkpoints(lm_data, tmp_path_factory):
    """A tokenizer run with checkpoints at steps 4 and 8 (run to 4, then resumed to 8)."""
    out = tmp_path_factory.mktemp("ck") / "tok"
    args = ["train-tokenizer", "--fasta", lm_data["fasta"], "--config", "tiny", "--device", "cpu", "--out", out]
    assert main([str(a) for a in args + ["--max-steps", "4"]]) == 0
    assert main([str(a) for a in args + ["--max-steps", "8", "--resume"]]) == 0
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-00000004", "step-00000008"]
    return out, args


@pytest.mark.parametrize("damage", ["halved model.safetensors", "garbage optimizer.safetensors",
                                    "halved trainer.json"])
def test_resume_skips_a_damaged_checkpoint_and_falls_back(two_checkpoints, tmp_path, capsys, damage):
    src, args = two_checkpoints
    out = tmp_path / "tok"
    shutil.copytree(src, out)
    how, name = damage.split()
    bad = out / "checkpoints" / "step-00000008" / name
    (halve if how == "halved" else garbage)(bad)
    rc, text = run(capsys, *args[:-1], out, "--max-steps", "8", "--resume")
    assert rc == 0, text
    assert f"--resume: skipping checkpoint step-00000008: {bad}: not " in text
    assert "falling back to" in text and "step-00000004 (step 4)" in text
    # the replay from step 4 gives the run that wrote the damaged checkpoint, bit for bit
    a, b = load_file(src / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    check_safetensors(out / "checkpoints" / "step-00000008" / "model.safetensors")  # rewritten intact


def test_resume_with_garbage_latest_json_scans_step_folders(two_checkpoints, tmp_path, capsys):
    src, args = two_checkpoints
    out = tmp_path / "tok"
    shutil.copytree(src, out)
    garbage(out / "checkpoints" / "latest.json")
    rc, text = run(capsys, *args[:-1], out, "--max-steps", "8", "--resume")
    assert rc == 0, text
    assert f"--resume: skipping latest.json: {out / 'checkpoints' / 'latest.json'}: not valid JSON" in text
    assert "resumed from" in text and "at step 8" in text


def test_resume_with_no_intact_checkpoint_is_an_error_naming_them(two_checkpoints, tmp_path, capsys):
    src, args = two_checkpoints
    out = tmp_path / "tok"
    shutil.copytree(src, out)
    for step in ("00000004", "00000008"):
        halve(out / "checkpoints" / f"step-{step}" / "model.safetensors")
    rc, text = run(capsys, *args[:-1], out, "--max-steps", "8", "--resume")
    assert rc == 2
    line = error_line(text)
    assert f"{out / 'checkpoints'}: no intact checkpoint to resume from" in line
    assert "step-00000008, step-00000004" in line


def test_pretrain_resume_with_halved_latest_json(lm_data, tiny_lm, tmp_path, capsys):
    out = tmp_path / "lm"
    shutil.copytree(tiny_lm, out)
    halve(out / "checkpoints" / "latest.json")
    rc, text = run(capsys, "pretrain", "--codes", lm_data["codes"], "--config", "tiny", "--max-steps", "6",
                   "--out", out, "--resume", "--device", "cpu")
    assert rc == 0, text
    assert f"skipping latest.json: {out / 'checkpoints' / 'latest.json'}: not valid JSON" in text


# ---------------------------------------------------------------- row 1: damaged model and tokenizer folders


def classifier_folder(tiny_lm, dst: Path) -> Path:
    """A folder that claims to be a fine-tuned model (enough to reach the file checks)."""
    shutil.copytree(tiny_lm, dst, ignore=shutil.ignore_patterns("checkpoints"))
    cfg = read_json(dst / "config.json")
    cfg["architectures"] = ["VQDNAForSequenceClassification"]
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


DAMAGES = ["halved config.json", "garbage model.safetensors", "halved tokenizer/model.safetensors"]


@pytest.mark.parametrize("command,damage", [(c, d) for c in ("finetune", "predict", "embed") for d in DAMAGES]
                         + [(c, d) for c in ("tokenize", "evaluate-tokenizer") for d in DAMAGES[:2]])
def test_damaged_model_or_tokenizer_folder_is_named(lm_data, lm_tasks, tiny_lm, tmp_path, capsys, command, damage):
    if command in ("tokenize", "evaluate-tokenizer"):
        folder = tmp_path / "tok"
        shutil.copytree(lm_data["tokenizer"], folder)
    elif command == "predict":
        folder = classifier_folder(tiny_lm, tmp_path / "ft")
    else:
        folder = tmp_path / "lm"
        shutil.copytree(tiny_lm, folder)
    how, name = damage.split()
    bad = folder / name
    (halve if how == "halved" else garbage)(bad)
    csv = lm_tasks["classification"] / "test.csv"
    argv = {
        "finetune": ["finetune", "--model", folder, "--task", lm_tasks["classification"], "--out", tmp_path / "o"],
        "predict": ["predict", "--model", folder, "--csv", csv, "--out", tmp_path / "p.csv"],
        "embed": ["embed", "--model", folder, "--csv", csv, "--out", tmp_path / "e.npy"],
        "tokenize": ["tokenize", "--tokenizer", folder, "--fasta", lm_data["fasta"], "--out", tmp_path / "o"],
        "evaluate-tokenizer": ["evaluate-tokenizer", "--tokenizer", folder, "--fasta", lm_data["fasta"]],
    }[command]
    rc, text = run(capsys, *argv)
    assert rc == 2
    assert f": error: {bad}: not " in error_line(text)
    assert not (tmp_path / "o").exists() and not (tmp_path / "p.csv").exists()  # nothing written


def test_halved_code_manifest_is_named(lm_data, tmp_path, capsys):
    codes = tmp_path / "codes"
    shutil.copytree(lm_data["codes"], codes)
    halve(codes / "manifest.json")
    rc, text = run(capsys, "pretrain", "--codes", codes, "--out", tmp_path / "lm")
    assert rc == 2 and f"error: {codes / 'manifest.json'}: not valid JSON" in error_line(text)
    assert not (tmp_path / "lm").exists()


@pytest.mark.parametrize("shape", ["a list", "no n_records field"])
def test_code_manifest_of_the_wrong_shape_is_named(lm_data, tmp_path, capsys, shape):
    """Valid JSON that is not what we wrote (a list, a missing field): one line naming the file."""
    codes = tmp_path / "codes"
    shutil.copytree(lm_data["codes"], codes)
    man = json.loads((codes / "manifest.json").read_text())
    if shape == "a list":
        man = [man]
    else:
        del man["n_records"]
    (codes / "manifest.json").write_text(json.dumps(man))
    rc, text = run(capsys, "pretrain", "--codes", codes, "--out", tmp_path / "lm")
    line = error_line(text)
    assert rc == 2 and str(codes / "manifest.json") in line
    assert ("a JSON list" if shape == "a list" else "no field 'n_records'") in line


def test_read_json_objects_name_the_file_on_a_missing_field(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"a": {"b": 1}}')
    obj = read_json(p)
    assert obj["a"]["b"] == 1 and obj.get("zz") is None and obj == {"a": {"b": 1}}
    with pytest.raises(KeyError, match=r"x\.json: no field 'c'"):  # still a KeyError for callers
        obj["a"]["c"]
    with pytest.raises(ValueError, match="no field"):
        obj["c"]
    p.write_text("[1, 2]")
    assert read_json(p, top=object) == [1, 2]
    with pytest.raises(ValueError, match=r"x\.json: a JSON list where a JSON object was expected"):
        read_json(p)


# ---------------------------------------------------------------- row 2: safetensors only


class _Payload:
    """A pickle that creates a file when it is loaded (what a malicious checkpoint would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("command", ["predict", "embed"])
def test_pickle_only_model_folder_is_refused(tiny_lm, lm_tasks, tmp_path, capsys, command):
    folder = classifier_folder(tiny_lm, tmp_path / "m")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pickle-was-loaded"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"weights": _Payload(marker)}))
    csv = lm_tasks["classification"] / "test.csv"
    rc, text = run(capsys, command, "--model", folder, "--csv", csv, "--out", tmp_path / "out.csv")
    assert rc == 2
    assert f"error: {folder / 'pytorch_model.bin'}: refusing to load a pickle checkpoint" in error_line(text)
    assert not marker.exists() and not (tmp_path / "out.csv").exists()


def test_backbone_loads_safetensors_only(tiny_lm, tmp_path):
    """Library callers too: a folder with both files loads model.safetensors, never the pickle."""
    from vqdna.lm.inference import load_backbone

    folder = tmp_path / "m"
    shutil.copytree(tiny_lm, folder, ignore=shutil.ignore_patterns("checkpoints"))
    marker = tmp_path / "pickle-was-loaded"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    load_backbone(folder)
    assert not marker.exists()


# ---------------------------------------------------------------- row 3: outputs checked before any work


@pytest.mark.parametrize("command", ["train-tokenizer", "tokenize", "pretrain", "finetune", "predict", "embed",
                                     "decode"])
def test_unwritable_output_fails_before_the_work(lm_data, lm_tasks, tiny_lm, tmp_path, capsys, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way\n")
    out = blocker / "out"  # a folder can never be created under a file (root included)
    csv = lm_tasks["classification"] / "test.csv"
    argv = {
        "train-tokenizer": ["train-tokenizer", "--fasta", lm_data["fasta"], "--config", "tiny", "--out", out],
        "tokenize": ["tokenize", "--tokenizer", lm_data["tokenizer"], "--fasta", lm_data["fasta"], "--out", out],
        "pretrain": ["pretrain", "--codes", lm_data["codes"], "--out", out],
        "finetune": ["finetune", "--model", tiny_lm, "--task", lm_tasks["classification"], "--out", out],
        "predict": ["predict", "--model", tiny_lm, "--csv", csv, "--out", out / "p.csv"],
        "embed": ["embed", "--model", tiny_lm, "--csv", csv, "--out", out / "e.npy"],
        "decode": ["decode", "--tokenizer", lm_data["tokenizer"], "--codes", lm_data["codes"], "--out", out / "x.fa"],
    }[command]
    rc, text = run(capsys, *argv)
    assert rc == 2
    assert f"error: {blocker}: not a folder" in error_line(text)
    assert text.strip() == error_line(text)  # nothing else: no work started


def test_read_only_output_folder_message(lm_data, tmp_path, capsys, monkeypatch):
    """What a read-only folder (or file system) gives, also when the tests run as root: the probe
    file cannot be created."""
    import vqdna.io

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(vqdna.io.tempfile, "mkstemp", refuse)
    rc, text = run(capsys, "train-tokenizer", "--fasta", lm_data["fasta"], "--config", "tiny",
                   "--out", tmp_path / "tok")
    assert rc == 2
    assert error_line(text).endswith(f"error: {tmp_path}: folder that would hold the output {tmp_path / 'tok'} "
                                     f"is not writable (Permission denied)")
    assert text.strip() == error_line(text) and not (tmp_path / "tok").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_fails_before_training(lm_data, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        rc, text = run(capsys, "train-tokenizer", "--fasta", lm_data["fasta"], "--config", "tiny",
                       "--out", ro / "tok")
    finally:
        ro.chmod(0o755)
    assert rc == 2 and f"error: {ro}: " in error_line(text) and "not writable" in text
    assert text.strip() == error_line(text)  # nothing else: no training started


# ---------------------------------------------------------------- row 4: one writer per output folder


def test_second_writer_is_refused_naming_the_holder(lm_data, tmp_path, capsys):
    out = tmp_path / "codes"
    with OutputLock(out, "vqdna tokenize (the first writer)"):
        rc, text = run(capsys, "tokenize", "--tokenizer", lm_data["tokenizer"], "--fasta", lm_data["fasta"],
                       "--out", out)
        assert rc == 2
        line = error_line(text)
        assert f"error: {out / LOCK_NAME}: " in line and "is being written by pid" in line
        assert "vqdna tokenize (the first writer)" in line and socket.gethostname() in line
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # the second writer wrote nothing
    assert not out.exists()  # released; the folder it created was empty, so it is gone too


def test_stale_lock_of_a_killed_run_is_taken_over(lm_data, tmp_path, capsys):
    out = tmp_path / "codes"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = {"pid": dead.pid, "host": socket.gethostname(), "command": "vqdna tokenize (killed)",
             "started": "2020-01-01T00:00:00"}
    (out / LOCK_NAME).write_text(json.dumps(stale))
    rc, text = run(capsys, "tokenize", "--tokenizer", lm_data["tokenizer"], "--fasta", lm_data["fasta"],
                   "--out", out)
    assert rc == 0, text
    assert f"{out / LOCK_NAME}: taking over the stale lock of pid {dead.pid}" in text
    assert not (out / LOCK_NAME).exists() and read_json(out / "manifest.json")["complete"]


def test_lock_is_released_when_the_command_fails(lm_data, tmp_path, capsys):
    out = tmp_path / "tok"
    out.mkdir()
    bad = tmp_path / "bad.fa"
    bad.write_text(">a\nACGT123\n")
    rc, text = run(capsys, "train-tokenizer", "--fasta", bad, "--config", "tiny", "--out", out)
    assert rc == 2 and str(bad) in error_line(text)
    assert not (out / LOCK_NAME).exists()


def test_child_processes_write_under_their_parents_lock(tmp_path):
    """`vqdna benchmark --jobs 2`: the parent holds --out's lock, its shard processes write there too."""
    code = ("import sys; from vqdna.io import OutputLock; "
            "lock = OutputLock(sys.argv[1], 'shard').acquire(); print('owner', lock.owner); lock.release()")
    with OutputLock(tmp_path / "out", "vqdna benchmark (parent)") as lock:
        assert lock.owner
        r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.strip() == "owner False", r.stderr
        assert json.loads((tmp_path / "out" / LOCK_NAME).read_text())["pid"] == os.getpid()
    # with nobody holding it, the same process takes it
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out2")], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "owner True", r.stderr


# ---------------------------------------------------------------- row 6: failed runs leave nothing, or an unfinished mark


def test_tokenize_with_a_missing_input_leaves_nothing(lm_data, tmp_path, capsys):
    out = tmp_path / "codes"
    rc, text = run(capsys, "tokenize", "--tokenizer", lm_data["tokenizer"], "--fasta", lm_data["fasta"],
                   tmp_path / "missing.fa", "--out", out)
    assert rc == 2 and f"error: {tmp_path / 'missing.fa'}: no such FASTA file" in error_line(text)
    assert not out.exists()


def test_failed_tokenize_leaves_a_store_readers_call_unfinished(lm_data, tmp_path, capsys):
    bad = tmp_path / "bad.fa"
    bad.write_text(">a\nACGT123ACGT\n")
    out = tmp_path / "codes"
    rc, text = run(capsys, "tokenize", "--tokenizer", lm_data["tokenizer"], "--fasta", bad, "--out", out)
    assert rc == 2 and str(bad) in error_line(text)
    assert read_json(out / "manifest.json")["complete"] is False
    rc, text = run(capsys, "pretrain", "--codes", out, "--out", tmp_path / "lm")
    assert rc == 2 and f"error: {out / 'manifest.json'}: tokenization did not finish" in error_line(text)
    rc, text = run(capsys, "decode", "--tokenizer", lm_data["tokenizer"], "--codes", out, "--out", tmp_path / "x.fa")
    assert rc == 2 and "tokenization did not finish" in error_line(text)
    assert not (tmp_path / "x.fa").exists()


def test_unfinished_tokenizer_folder_is_named_as_such(two_checkpoints, lm_data, tmp_path, capsys):
    src, _ = two_checkpoints
    tok = tmp_path / "tok"
    shutil.copytree(src / "checkpoints", tok / "checkpoints")  # killed before the final save
    rc, text = run(capsys, "tokenize", "--tokenizer", tok, "--fasta", lm_data["fasta"], "--out", tmp_path / "c")
    assert rc == 2 and f"error: {tok}: unfinished" in error_line(text) and "--resume" in text
    assert not (tmp_path / "c").exists()
