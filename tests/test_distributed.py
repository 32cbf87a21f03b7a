"""Data-parallel training with 2 CPU processes (torchrun, gloo), as on a GPU cluster."""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_two_process_training_keeps_codebooks_in_sync(yeast_genome, tmp_path):
    out = tmp_path / "tok"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "vqdna", "train-tokenizer", "--fasta", str(yeast_genome), "--quantizer", "hrq",
           "--config", "tiny", "--max-steps", "24", "--out", str(out), "--device", "cpu"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 24
    # both processes drew their own batches: twice the nucleotides of one process
    mc_batch, L_short, L_long, warm = 16, 64, 128, 20
    assert m["nucleotides_seen"] == 2 * mc_batch * (warm * L_short + 4 * L_long)
    w = load_file(out / "model.safetensors")
    assert torch.isfinite(w["quantizer.quantizers.0.embed"]).all()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_two_process_fine_tuning_writes_one_model(tiny_lm, lm_tasks, tmp_path):
    """The README's `torchrun ... -m vqdna finetune`: rank 0 alone writes the folder (issue 23: every
    rank wrote it, and one failed on the other's temporary folder)."""
    out = tmp_path / "ft"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "vqdna", "finetune", "--model", str(tiny_lm), "--task", str(lm_tasks["classification"]),
           "--seeds", "1", "--epochs", "1", "--out", str(out), "--device", "cpu", "--threads", "1"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "results.json", "task.json",
                                                     "tokenizer"]
    assert r.stdout.count("against the reference: ") == 1  # rank 0's line only
