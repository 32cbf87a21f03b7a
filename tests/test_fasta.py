"""FASTA streaming, windows, and the N / IUPAC policy."""
import gzip

import numpy as np
import pytest

from vqdna.sequence import alphabet
from vqdna.sequence.alphabet import SequenceError
from vqdna.sequence.fasta import Corpus, read_fasta, window_starts


def _write(path, text, gz=False):
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def test_reads_plain_and_gzip_many_records_soft_masked(tmp_path):
    text = ">chr1 first\nACGTacgt\nNNAC\n>chr2\nGGGG\n"
    for gz in (False, True):
        p = _write(tmp_path / ("a.fa.gz" if gz else "a.fa"), text, gz)
        recs = list(read_fasta(p))
        assert [r.name for r in recs] == ["chr1", "chr2"]
        assert recs[0].sequence == "ACGTacgtNNAC"
        assert alphabet.encode(recs[0].sequence).tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 0, 1]


def test_n_and_iupac_policy_keeps_every_letter(tmp_path):
    seq = "ACNNRYkmGT"
    idx = alphabet.encode(seq)
    assert idx.tolist() == [0, 1, 4, 4, 4, 4, 4, 4, 2, 3]
    runs = alphabet.non_acgt_runs(seq)
    assert runs == [[2, 2, "N"], [4, 1, "R"], [5, 1, "Y"], [6, 1, "K"], [7, 1, "M"]]
    assert alphabet.restore_non_acgt(alphabet.decode(idx), runs) == seq.upper()


def test_invalid_character_names_file_record_and_position(tmp_path):
    p = _write(tmp_path / "bad.fa", ">ok\nACGT\n>broken\nAC-GT\n")
    from vqdna.sequence.fasta import encode_record

    recs = list(read_fasta(p))
    encode_record(recs[0])
    with pytest.raises(SequenceError, match=r"bad\.fa.*'broken'.*'-' at position 3"):
        encode_record(recs[1])


@pytest.mark.parametrize("text,match", [
    ("", "no FASTA records"),
    ("ACGT\n", "malformed FASTA"),
    (">a\n>b\nACGT\n", "record 1 .*no sequence"),
])
def test_malformed_files_give_clear_errors(tmp_path, text, match):
    p = _write(tmp_path / "m.fa", text)
    with pytest.raises(SequenceError, match=match):
        list(read_fasta(p))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.fa"):
        list(read_fasta(tmp_path / "nope.fa"))


def test_window_starts_cover_the_tail():
    assert window_starts(10, 4, 4).tolist() == [0, 4, 6]
    assert window_starts(8, 4, 2).tolist() == [0, 2, 4]
    assert window_starts(3, 4, 2).tolist() == []


def test_validation_windows_never_overlap_training_windows():
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 4, 50_000).astype(np.uint8), rng.integers(0, 4, 7_000).astype(np.uint8)]
    c = Corpus(arrays, ["a", "b"], val_fraction=0.05, val_block=1000)
    tr, va = c.windows("train", 128, 64), c.windows("val", 128, 128)
    assert len(va) > 0 and len(tr) > 0
    covered = {r: np.zeros(len(a), bool) for r, a in enumerate(arrays)}
    for r, s in va:
        covered[r][s:s + 128] = True
    for r, s in tr:
        assert not covered[r][s:s + 128].any()
    held = sum(e - s for _, s, e in c.val_regions) / c.n_nucleotides
    assert 0.03 < held < 0.07


def test_too_short_corpus_is_a_clear_error():
    c = Corpus([np.zeros(50, np.uint8)], ["a"], val_fraction=0.1, val_block=1000)
    with pytest.raises(SequenceError, match="too short"):
        c.windows("train", 128, 64)
