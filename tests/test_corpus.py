"""`vqdna data corpus`: genomes + task training sequences, the k-mer leakage guard, the record of what went in."""
import json

import numpy as np
import pytest

from vqdna.data.corpus import KmerIndex, build_corpus
from vqdna.sequence.fasta import read_fasta

from conftest import _write_fasta, _yeast_sequence

DNA = _yeast_sequence(20_000)


def rc(s: str) -> str:
    return s[::-1].translate(str.maketrans("ACGT", "TGCA"))


def write_task(folder, train, dev, test):
    folder.mkdir(parents=True)
    for name, seqs in (("train", train), ("dev", dev), ("test", test)):
        rows = [f"{s},{i % 2}" for i, s in enumerate(seqs)]
        (folder / f"{name}.csv").write_text("sequence,label\n" + "\n".join(rows) + "\n")
    return folder


@pytest.fixture
def corpus_inputs(tmp_path):
    piece = [DNA[i * 100:(i + 1) * 100] for i in range(60)]
    test_seq, dev_seq = piece[0], piece[1]
    train = [piece[i] for i in range(10, 30)]
    train += [piece[10],                      # an exact copy of a training sequence: written once
              piece[40][:50] + test_seq[20:60],  # shares 40 nt with a test sequence: dropped
              rc(dev_seq)[:70] + piece[41][:30]]  # holds a dev sequence's other strand: dropped
    task = write_task(tmp_path / "GUE" / "mouse" / "0", train, [dev_seq, piece[2]], [test_seq, piece[3]])
    other = write_task(tmp_path / "other", [piece[50], piece[51]], [piece[52], piece[53]], [piece[4], piece[5]])
    genome = _write_fasta(tmp_path / "genome.fa", {"chrA": DNA[6000:9000] + piece[4] + DNA[9000:12000]})
    return task, other, genome, piece


def test_guard_drops_leaking_sequences_masks_genomes_and_records_what_went_in(tmp_path, corpus_inputs):
    task, other, genome, piece = corpus_inputs
    s = build_corpus(tmp_path / "out", fasta=[genome], tasks=[task], guard_tasks=[other], progress=False)
    recs = {r.name: r.sequence for r in read_fasta([tmp_path / "out" / "corpus.fa"])}
    task_seqs = [v for k, v in recs.items() if k.startswith("mouse0|train|")]
    assert len(task_seqs) == 20 and set(task_seqs) == {piece[i] for i in range(10, 30)}
    t = s["task_sequences"]
    assert (t["kept"], t["dropped_leak"], t["dropped_duplicate"]) == (20, 2, 1)
    # the genome keeps its record, with the guarded test sequence of `other` (and only it) masked
    g = recs["genome|chrA"]
    assert len(g) == 6100 and g[3000:3100] == "N" * 100 and "N" not in g[:3000] + g[3100:]
    assert s["genome_masked_nucleotides"] == 100
    meta = json.loads((tmp_path / "out" / "corpus.json").read_text())
    assert meta["guard"]["on"] and meta["guard"]["k"] == 32 and len(meta["guard"]["tasks"]) == 2
    assert meta["records"] == 21 and meta["nucleotides"] == 20 * 100 + 6100
    assert {x["kind"] for x in meta["sources"]} == {"fasta", "task"} and all(len(x["sha256"]) == 64
                                                                            for x in meta["sources"])
    assert "/" not in meta["sources"][0]["path"] or not meta["sources"][0]["path"].startswith("/")


def test_without_the_guard_everything_is_kept_and_the_record_says_so(tmp_path, corpus_inputs):
    task, _, genome, _ = corpus_inputs
    s = build_corpus(tmp_path / "out", fasta=[genome], tasks=[task], guard=False, dedupe=False, progress=False)
    assert s["task_sequences"]["kept"] == 23 and not s["guard"]["on"]


def test_kmer_index_is_exact_at_k_32_on_both_strands():
    idx = KmerIndex([DNA[:200]], k=32)
    assert len(idx) == 200 - 32 + 1
    hits = idx.shared_rows([DNA[150:182], rc(DNA[10:42]), DNA[300:400], DNA[150:181], "N" * 40])
    assert hits.tolist() == [True, True, False, False, False]
    with pytest.raises(ValueError, match="k must be"):
        KmerIndex([DNA[:100]], k=33)


def test_bad_inputs_fail_before_any_output(tmp_path, corpus_inputs):
    task, _, genome, _ = corpus_inputs
    with pytest.raises(FileNotFoundError, match="no such FASTA"):
        build_corpus(tmp_path / "a", fasta=[tmp_path / "missing.fa"], tasks=[task], progress=False)
    bad = write_task(tmp_path / "bad", ["ACGTXX"], ["ACGT"], ["ACGT"])
    with pytest.raises(ValueError, match="train.csv"):
        build_corpus(tmp_path / "b", fasta=[genome], tasks=[bad], progress=False)
    with pytest.raises(ValueError, match="empty corpus"):
        build_corpus(tmp_path / "c", progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_builds_a_corpus_the_benchmark_records(tmp_path, corpus_inputs):
    from vqdna.benchmark.budgets import get_budget
    from vqdna.benchmark.inputs import prepare_corpus
    from vqdna.cli import main

    task, other, genome, _ = corpus_inputs
    assert main(["data", "corpus", "--fasta", str(genome), "--tasks", str(task), "--guard-tasks", str(other),
                 "--out", str(tmp_path / "c"), "--quiet"]) in (0, None)
    info = prepare_corpus([tmp_path / "c" / "corpus.fa"], tmp_path / "work", get_budget("indomain"))
    assert info["built"][0]["task_sequences"]["dropped_leak"] == 2
    from vqdna.benchmark.report import corpus_line

    line = corpus_line(info["built"][0])
    assert "leakage guard on" in line and "2 sequences" in line
    with open(tmp_path / "c" / "corpus.fa", "a") as f:  # a corpus changed after it was built is refused
        f.write(">x\nACGT\n")
    with pytest.raises(ValueError, match="sha256"):
        prepare_corpus([tmp_path / "c" / "corpus.fa"], tmp_path / "work2", get_budget("indomain"))
