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


def test_block_reader_agrees_with_dnaio_at_every_block_size(tmp_path):
    """The numpy block parser against dnaio's reader (names: the header's first word): multi-line
    records, CRLF, descriptions, blank lines, no final newline, every block size down to 1 byte."""
    import random

    import dnaio

    from vqdna.sequence.fasta import read_fasta_blocks

    rng = random.Random(0)
    for trial in range(60):
        eol = rng.choice(["\n", "\r\n"])
        text = ""
        for i in range(rng.randint(1, 8)):
            text += ">" + rng.choice([f"r{i}", f"chr{i} a description", f"x{i}\ty", f"a>b{i}"]) + eol
            seq = "".join(rng.choice("ACGTNacgtry") for _ in range(rng.randint(1, 200)))
            w = rng.randint(1, 70)
            text += "".join(seq[j:j + w] + eol for j in range(0, len(seq), w)) + (eol if rng.random() < 0.2 else "")
        if rng.random() < 0.3:
            text = text.rstrip("\r\n")
        p = tmp_path / "f.fa"
        p.write_bytes(text.encode())
        with dnaio.open(p, fileformat="fasta") as r:
            want = [(rec.name.split()[0], rec.sequence) for rec in r]
        for block_bytes in (1, 2, 5, 64, 1 << 20):
            got = []
            for b in read_fasta_blocks(p, block_bytes=block_bytes):
                raw, s = b.raw.tobytes().decode(), 0
                for name, n in zip(b.names, b.lengths.tolist()):
                    got.append((name, raw[s:s + n]))
                    s += n
            assert got == want, (trial, block_bytes)
    assert [r.name for r in read_fasta(p)] == [n for n, _ in want]


def test_block_reader_numbers_records_across_blocks_in_its_errors(tmp_path):
    from vqdna.sequence.fasta import read_fasta_blocks

    p = _write(tmp_path / "m.fa", ">a\nACGT\n>b\nAC\n>\nGG\n")
    with pytest.raises(SequenceError, match=r"m\.fa: record 3 has an empty header"):
        list(read_fasta_blocks(p, block_bytes=4))
    p = _write(tmp_path / "n.fa", "\n\n>a\nACGT\n>b\n>c\nAC\n", gz=False)
    with pytest.raises(SequenceError, match=r"record 2 \('b'\) has no sequence"):
        list(read_fasta_blocks(p, block_bytes=3))
