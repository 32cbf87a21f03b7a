"""The from-scratch CNN reference row (vqdna.references.cnn) on small synthetic task folders."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vqdna.cli import main
from vqdna.lm.finetune import subsample
from vqdna.references.cnn import (PAD, CNNConfig, SequenceCNN, _encode_split, _reverse_complement,
                                  count_parameters, run_cnn_baseline)
from vqdna.sequence.tasks import SequenceError, TaskError, load_task

SMALL = CNNConfig(channels=(16, 16), dense=16, epochs=2)  # seconds: API and determinism tests
# One thread: the runs are tiny, and two threads on a busy 2-core machine are 10-50x slower.
T = 1


def _random_seqs(rng, n, lo, hi=None):
    lens = rng.integers(lo, (hi or lo) + 1, size=n)
    return ["".join(np.array(list("ACGT"))[rng.integers(0, 4, size=L)]) for L in lens]


def _write_task(root: Path, splits: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, (seqs, labels) in splits.items():
        body = "".join(f"{s},{y}\n" for s, y in zip(seqs, labels))
        (root / f"{name}.csv").write_text("sequence,label\n" + body)
    return root


def _motif_task(tmp_path, n_train=400, seed=0):
    """Label 1 = TATAAA planted at a random position; lengths 50-80 nt, some N."""
    rng = np.random.default_rng(seed)
    splits = {}
    for name, n in (("train", n_train), ("dev", 100), ("test", 100)):
        seqs = _random_seqs(rng, n, 50, 80)
        labels = rng.integers(0, 2, n)
        for i in range(n):
            if labels[i]:
                p = int(rng.integers(0, len(seqs[i]) - 6))
                seqs[i] = seqs[i][:p] + "TATAAA" + seqs[i][p + 6:]
            if i % 7 == 0:
                seqs[i] = "NN" + seqs[i][2:]
        splits[name] = (seqs, labels)
    return load_task(_write_task(tmp_path / "motif", splits))


def _gc_task(tmp_path):
    rng = np.random.default_rng(1)
    splits = {}
    for name, n in (("train", 300), ("dev", 100), ("test", 100)):
        gc = rng.random(n)
        seqs = ["".join(rng.choice(list("ACGT"), p=[(1 - g) / 2, g / 2, g / 2, (1 - g) / 2], size=40)) for g in gc]
        splits[name] = (seqs, [f"{v:.4f}" for v in gc + rng.normal(0, 0.05, n)])
    return load_task(_write_task(tmp_path / "gc", splits))


def test_learns_planted_motif(tmp_path):
    task = _motif_task(tmp_path, n_train=800)
    r = run_cnn_baseline(task, epochs=6, threads=T)  # the default 0.5M-parameter architecture
    assert r["kind"] == "classification" and r["primary_metric"] == "mcc"
    assert r["test"]["mcc"] > 0.7, r["test"]  # chance is 0
    assert set(r["test"]) == {"mcc", "f1_macro", "accuracy"}
    s = r["per_seed"][0]
    assert 1 <= s["best_epoch"] <= s["epochs_run"] <= 6 and len(s["history"]) == s["epochs_run"]
    assert s["dev"]["mcc"] == max(h["dev"] for h in s["history"])  # best-dev weights restored
    assert r["values"] == [r["test"]["mcc"]] and r["test_std"]["mcc"] == 0.0
    assert r["n_train"] == 800 and r["wall_time"] > 0 and r["config"]["epochs"] == 6


def test_regression_reports_spearman(tmp_path):
    task = _gc_task(tmp_path)
    r = run_cnn_baseline(task, epochs=4, threads=T)
    assert r["kind"] == "regression" and r["primary_metric"] == "spearman"
    assert set(r["test"]) == {"spearman", "pearson", "mse"}
    assert r["test"]["spearman"] > 0.5, r["test"]
    assert r["test"]["mse"] < 0.2  # predictions are back in label units (labels in ~0..1)


def test_default_parameter_count():
    for n_out in (1, 2, 3):
        n = count_parameters(SequenceCNN(CNNConfig(), n_out))
        assert 300_000 <= n <= 800_000, n


def test_same_seed_same_result_and_seed_summary(tmp_path):
    task = _motif_task(tmp_path, n_train=120)
    a = run_cnn_baseline(task, seeds=2, config=SMALL, threads=T)
    b = run_cnn_baseline(task, seeds=2, config=SMALL, threads=T)
    assert a["per_seed"][0]["history"] == b["per_seed"][0]["history"]
    assert a["per_seed"][1]["test"] == b["per_seed"][1]["test"]
    assert a["test"] == b["test"] and a["values"] == b["values"]
    assert [s["seed"] for s in a["per_seed"]] == [0, 1] and len(a["values"]) == 2
    v = np.array(a["values"])
    assert a["test"]["mcc"] == pytest.approx(v.mean())
    assert a["test_std"]["mcc"] == pytest.approx(v.std(ddof=1))
    # the caller's torch RNG is left alone
    torch.manual_seed(123)
    x = torch.rand(3)
    torch.manual_seed(123)
    run_cnn_baseline(task, config=SMALL, epochs=1, threads=T)
    assert torch.equal(torch.rand(3), x)


def test_max_train_uses_the_benchmark_subsample(tmp_path, monkeypatch):
    task = _motif_task(tmp_path, n_train=200)
    seen = {}
    import vqdna.references.cnn as cnn

    real = cnn._encode_split

    def spy(seqs):
        seqs = list(seqs)
        seen.setdefault("train", seqs)  # the first call encodes the training rows
        return real(seqs)

    monkeypatch.setattr(cnn, "_encode_split", spy)
    r = run_cnn_baseline(task, max_train=60, config=SMALL, epochs=1, threads=T)
    assert r["n_train"] == 60 and r["config"]["max_train"] == 60
    idx = subsample(task.train.labels, 60, "classification", seed=0)
    assert seen["train"] == [task.train.sequences[i] for i in idx]
    assert run_cnn_baseline(task, max_train=10_000, config=SMALL, epochs=1, threads=T)["n_train"] == 200


def test_padding_and_batch_do_not_change_a_prediction():
    torch.manual_seed(0)
    model = SequenceCNN(SMALL, 2).eval()
    seqs = ["ACGTTATAAAGC", "GGGCCCATATTTANNACGTACGTTTGACA" * 3, "TTAC"]
    codes, lens = _encode_split(seqs)
    assert codes.shape == (3, len(seqs[1])) and (codes[2, 4:] == PAD).all()
    with torch.no_grad():
        together = model(torch.from_numpy(codes).long(), torch.from_numpy(lens))
        for i, s in enumerate(seqs):
            c, ln = _encode_split([s])
            alone = model(torch.from_numpy(c).long(), torch.from_numpy(ln))
            torch.testing.assert_close(alone[0], together[i], rtol=1e-5, atol=1e-5)


def test_one_hot_and_reverse_complement():
    codes, lens = _encode_split(["ACGTN", "AC"])
    assert codes.tolist() == [[0, 1, 2, 3, 4], [0, 1, PAD, PAD, PAD]]
    model = SequenceCNN(SMALL, 2)
    assert model.one_hot[4].sum() == 0 and model.one_hot[PAD].sum() == 0  # N and padding: all-zero
    rc = _reverse_complement(codes, lens, np.array([True, True]))
    assert rc.tolist() == [[4, 0, 1, 2, 3], [2, 3, PAD, PAD, PAD]]  # ACGTN -> NACGT, AC -> GT


def test_rc_augment_and_overrides_run(tmp_path):
    task = _motif_task(tmp_path, n_train=80)
    r = run_cnn_baseline(task, config=CNNConfig(channels=(8,), dense=8, rc_augment=True, lr_schedule="cosine"),
                         epochs=1, batch_size=16, lr=3e-3, patience=1, threads=1)
    assert r["config"]["rc_augment"] and r["config"]["batch_size"] == 16 and r["config"]["lr"] == 3e-3
    assert r["per_seed"][0]["epochs_run"] == 1
    with pytest.raises(ValueError, match="lr_schedule"):
        CNNConfig(lr_schedule="step")
    with pytest.raises(ValueError, match="seeds"):
        run_cnn_baseline(task, seeds=0)


def test_cli_writes_results_json(tmp_path, capsys):
    task = _motif_task(tmp_path, n_train=80)
    out = tmp_path / "res" / "cnn.json"
    rc = main(["baseline", "cnn", "--task", str(task.path), "--epochs", "1", "--seeds", "2",
               "--max-train", "50", "--threads", "1", "--out", str(out), "--quiet"])
    assert rc == 0
    r = json.loads(out.read_text())
    for key in ("primary_metric", "test", "dev", "per_seed", "test_std", "values", "n_train",
                "n_parameters", "wall_time", "config"):
        assert key in r
    assert r["n_train"] == 50 and len(r["per_seed"]) == 2 and r["config"]["epochs"] == 1
    assert "cnn on motif: test mcc" in capsys.readouterr().out


def test_bad_task_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["baseline", "cnn", "--task", str(tmp_path / "absent")]) == 2
    assert "not a task folder" in capsys.readouterr().err

    d = _write_task(tmp_path / "broken", {"train": (["ACGT", "AC-T"], [0, 1]), "dev": (["ACGT"], [0]),
                                          "test": (["ACGT"], [1])})
    with pytest.raises(SequenceError, match=r"train.csv:3: invalid character '-'"):
        load_task(d)
    assert main(["baseline", "cnn", "--task", str(d), "--quiet"]) == 2
    assert "invalid character" in capsys.readouterr().err

    (tmp_path / "nodev").mkdir()
    (tmp_path / "nodev" / "train.csv").write_text("sequence,label\nACGT,0\nACGA,1\n")
    with pytest.raises(TaskError, match="dev.csv: missing file"):
        load_task(tmp_path / "nodev")


def test_grid_picks_the_best_dev_point_and_runs_the_other_seeds_there(tmp_path):
    task = _motif_task(tmp_path, n_train=120)
    grid = [{"lr": 1e-5, "epochs": 1}, {"lr": 3e-3, "epochs": 2}]
    r = run_cnn_baseline(task, seeds=2, config=SMALL, threads=T, grid=grid)
    assert [(g["lr"], g["epochs"]) for g in r["grid"]] == [(1e-5, 1), (3e-3, 2)]
    best = max(r["grid"], key=lambda g: g["dev"]["mcc"])
    assert (r["config"]["lr"], r["config"]["epochs"]) == (best["lr"], best["epochs"])
    assert r["per_seed"][0]["dev"] == best["dev"]  # seed 0 is the grid's run, not trained again
    alone = run_cnn_baseline(task, seeds=2, config=SMALL, threads=T, lr=best["lr"], epochs=best["epochs"])
    assert alone["values"] == r["values"]  # the grid's choice, run with every seed, as without a grid
    assert run_cnn_baseline(task, config=SMALL, threads=T, epochs=1)["grid"] is None
