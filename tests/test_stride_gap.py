"""benchmarks/stride_gap.py (issue 22, item 4): each row chooses its recipe on dev, never on test."""
from __future__ import annotations

import json

from conftest import load_benchmark_script

gap = load_benchmark_script("stride_gap")
TASKS = ["a", "b"]


def _bench(folder, row, scores):
    """A benchmark --out folder with ``row``'s fine-tuning cells: task -> (test, dev)."""
    (folder / "cells").mkdir(parents=True)
    for t, (test, dev) in scores.items():
        (folder / "cells" / f"{row}__{t}__finetune.json").write_text(
            json.dumps({"metric": "mcc", "score": test, "dev": {"mcc": dev, "accuracy": 0.9}}))
    return folder


def test_rows_choose_on_dev_one_recipe_and_per_task(tmp_path, capsys):
    s1 = _bench(tmp_path / "r" / "s1", "hrq", {"a": (0.60, 0.50), "b": (0.40, 0.50)})
    # stride 4: option x has the better test mean but the worse dev mean; y wins task b on dev only
    x = _bench(tmp_path / "r" / "x", "hrq-s4", {"a": (0.70, 0.30), "b": (0.50, 0.30)})
    y = _bench(tmp_path / "r" / "y", "hrq-s4", {"a": (0.20, 0.40), "b": (0.30, 0.60)})
    phases = tmp_path / "p" / "cells"
    phases.mkdir(parents=True)
    (phases / "average_a.json").write_text(json.dumps({"variant": "average", "task": "a", "score": 0.55, "dev": 0.45}))
    rows = {"hrq (stride 1)": {"s1": gap.benchmark_option(s1, "hrq", TASKS)},
            "hrq-s4": {"x": gap.benchmark_option(x, "hrq-s4", TASKS), "y": gap.benchmark_option(y, "hrq-s4", TASKS),
                       **gap.phase_options(phases, TASKS)}}
    one, per = gap.choose(rows["hrq-s4"], TASKS)
    assert one["picked"] == "y" and abs(one["test"] - 0.25) < 1e-9  # dev mean 0.5 beats x's 0.3; "average" lacks b
    assert per["picked"] == {"a": "average", "b": "y"} and abs(per["test"] - 0.425) < 1e-9
    text = gap.table(rows, TASKS)
    assert "one recipe each -25.0" in text and "per task each -7.5" in text

    assert gap.main(["--tasks", "t/a", "t/b", "--stride1", str(s1), "--stride4", str(x), str(y),
                     "--phases", str(phases)]) == 0
    assert "per task each -7.5" in capsys.readouterr().out
