"""Task folder loading: label-type detection and strict CSV validation."""
from pathlib import Path

import numpy as np
import pytest

from vqdna.sequence.alphabet import SequenceError
from vqdna.sequence.tasks import Task, TaskError, load_task

GOOD = {
    "train": "sequence,label\nACGTAC,0\nggccaa,1\nTTNNAC,1\nACGRYT,0\n",
    "dev": "sequence,label\nACGT,1\nTTTT,0\n",
    "test": "sequence,label\nCCCC,0\nAAAA,1\n",
}


def make_task(root: Path, files: dict, name: str = "task") -> Path:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    for split, text in files.items():
        if text is not None:
            (d / f"{split}.csv").write_text(text)
    return d


def test_integer_labels_give_classification(tmp_path):
    t = load_task(make_task(tmp_path, GOOD))
    assert isinstance(t, Task)
    assert t.kind == "classification" and t.n_classes == 2
    assert t.name == "task" and t.label_names is None
    tr = t.splits["train"]
    assert tr.sequences == ["ACGTAC", "GGCCAA", "TTNNAC", "ACGRYT"]  # upper-cased, N/IUPAC kept
    assert tr.labels.dtype == np.int64 and tr.labels.tolist() == [0, 1, 1, 0]
    assert len(t.test) == 2 and t.dev.labels.tolist() == [1, 0]
    assert tr.lines.tolist() == [2, 3, 4, 5]


def test_multiclass_and_extra_columns(tmp_path):
    files = {
        "train": "id,label,sequence,other\n a,0,ACGT,x\nb,3,CCGT,y\nc,2,GGGT,z\nd,1,TTGT,w\n",
        "dev": "label,sequence\n1,AAAA\n",
        "test": "sequence,label\nACGT,0\n",
    }
    t = load_task(make_task(tmp_path, files))
    assert t.kind == "classification" and t.n_classes == 4
    assert t.train.sequences == ["ACGT", "CCGT", "GGGT", "TTGT"]
    assert t.train.labels.tolist() == [0, 3, 2, 1]


def test_real_labels_give_regression(tmp_path):
    files = dict(GOOD)
    files["dev"] = "sequence,label\nACGT,0.53\nTTTT,1e-3\n"
    t = load_task(make_task(tmp_path, files))
    assert t.kind == "regression" and t.n_classes is None
    assert t.dev.labels.dtype == np.float32
    np.testing.assert_allclose(t.dev.labels, [0.53, 0.001], rtol=1e-6)
    np.testing.assert_allclose(t.train.labels, [0, 1, 1, 0])


def test_float_literal_one_point_zero_is_regression(tmp_path):
    files = {s: "sequence,label\nACGT,1.0\nCCCC,0\n" for s in ("train", "dev", "test")}
    assert load_task(make_task(tmp_path, files)).kind == "regression"


def test_labels_json_kept_and_numeric_folder_name(tmp_path):
    d = make_task(tmp_path / "tf", GOOD, name="0")
    (d / "labels.json").write_text('{"negative": 0, "bound": 1}')
    t = load_task(d)
    assert t.label_names == {"negative": 0, "bound": 1}
    assert t.name == "tf/0"
    assert load_task(d, name="x").name == "x"


def test_blank_lines_crlf_and_bom(tmp_path):
    files = dict(GOOD)
    files["train"] = "\ufeffSequence,Label\r\nACGT,0\r\n\r\nCCGG,1\r\n"
    t = load_task(make_task(tmp_path, files))
    assert t.train.sequences == ["ACGT", "CCGG"]
    assert t.train.lines.tolist() == [2, 4]


# ---- bad input: each message names the file and the 1-based line (header = line 1) ----

BAD = [
    # (split, content, expected fragments)
    ("train", "seq,label\nACGT,0\n", ["train.csv:1", "'sequence'"]),
    ("train", "sequence,lab\nACGT,0\n", ["train.csv:1", "'label'"]),
    ("train", "sequence,label\nACGT,0\n,1\n", ["train.csv:3", "empty sequence"]),
    ("train", "sequence,label\nACGT,0\nACGT,1\nAC-GT,0\n", ["train.csv:4", "'-'"]),
    ("dev", "sequence,label\nACGT,0\nAC GT,1\n", ["dev.csv:3", "' '"]),
    ("dev", "sequence,label\nACGT,0\nACGTé,1\n", ["dev.csv:3", "'é' at position 5"]),
    ("test", "sequence,label\nACGT,abc\n", ["test.csv:2", "'abc'", "not a number"]),
    ("test", "sequence,label\nACGT,0\nACGT,\n", ["test.csv:3", "not a number"]),
    ("test", "sequence,label\nACGT,0\nACGT,nan\n", ["test.csv:3", "finite"]),
    ("test", "sequence,label\nACGT,0\n\nACGT\n", ["test.csv:4", "field"]),
    ("dev", "", ["dev.csv", "empty file"]),
    ("dev", "sequence,label\n", ["dev.csv", "no data rows"]),
    ("train", "sequence,label\nACGT,0\nACGT,-1\n", ["train.csv:3", "negative"]),
]


@pytest.mark.parametrize("split,content,fragments", BAD)
def test_bad_csv_names_file_and_line(tmp_path, split, content, fragments):
    files = dict(GOOD)
    files[split] = content
    with pytest.raises(ValueError) as ei:
        load_task(make_task(tmp_path, files))
    assert isinstance(ei.value, (TaskError, SequenceError))
    msg = str(ei.value)
    for frag in fragments:
        assert frag in msg, msg


def test_invalid_character_is_sequence_error(tmp_path):
    files = dict(GOOD)
    files["train"] = "sequence,label\nACGT,0\nACXT,1\n"
    with pytest.raises(SequenceError, match=r"train\.csv:3.*'X' at position 3"):
        load_task(make_task(tmp_path, files))


def test_missing_file(tmp_path):
    files = dict(GOOD)
    files["dev"] = None
    with pytest.raises(TaskError, match=r"dev\.csv.*missing file"):
        load_task(make_task(tmp_path, files))
    with pytest.raises(TaskError, match="not a task folder"):
        load_task(tmp_path / "nowhere")


def test_class_ids_must_be_contiguous(tmp_path):
    files = {s: "sequence,label\nACGT,0\nCCCC,2\n" for s in ("train", "dev", "test")}
    with pytest.raises(TaskError, match=r"0\.\.2.*label 1"):
        load_task(make_task(tmp_path, files))


def test_single_class_is_an_error(tmp_path):
    files = {s: "sequence,label\nACGT,0\n" for s in ("train", "dev", "test")}
    with pytest.raises(TaskError, match="single class"):
        load_task(make_task(tmp_path, files))


def test_bad_labels_json(tmp_path):
    d = make_task(tmp_path, GOOD)
    (d / "labels.json").write_text('{"a": 0, "b": 5}')
    with pytest.raises(TaskError, match="labels.json"):
        load_task(d)
    (d / "labels.json").write_text('{"a": 0,')
    with pytest.raises(TaskError, match="labels.json:1"):
        load_task(d)


def test_large_file_loads(tmp_path):
    rng = np.random.default_rng(0)
    seqs = np.array(list("ACGT"))[rng.integers(0, 4, size=(20000, 70))]
    body = "\n".join(f"{''.join(s)},{i % 2}" for i, s in enumerate(seqs))
    files = {s: "sequence,label\n" + body + "\n" for s in ("train", "dev", "test")}
    t = load_task(make_task(tmp_path, files))
    assert len(t.train) == 20000 and t.n_classes == 2
