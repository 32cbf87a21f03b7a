"""The one training loop: runs without checkpoints, keeps the best evaluation, stops on purpose, stays quiet."""
import pytest
import torch
import torch.nn as nn

from vqdna.config import FinetuneConfig, LMTrainConfig
from vqdna.train import Hooks, LoopConfig, loop_config, setup_runtime, train_loop


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 1)

    def forward(self, batch):
        return {"loss": ((self.lin(batch["x"]) - batch["y"]) ** 2).mean()}


def get_batch(step, micro, rank):
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(step))
    return {"x": x, "y": x.sum(1, keepdim=True)}


def run(cfg, out_dir=None, model=None, **kw):
    model = model or Toy()
    state = train_loop(model, cfg=cfg, get_batch=get_batch, evaluate=kw.pop("evaluate", lambda m, step: {}),
                       out_dir=out_dir, runtime=setup_runtime("cpu"), **kw)
    return model, state


def test_no_checkpoints_writes_nothing(tmp_path):
    model, state = run(LoopConfig(max_steps=5, lr=0.1, eval_every=2, checkpoint_every=0), tmp_path)
    assert state["step"] == 5 and [h["step"] for h in state["history"]] == [2, 4, 5]
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match="checkpoints"):
        run(LoopConfig(max_steps=5, lr=0.1, checkpoint_every=0), tmp_path, resume=True)


def test_best_metric_keeps_the_state_of_the_best_evaluation():
    model, seen = Toy(), {}
    cfg = LoopConfig(max_steps=8, lr=0.1, eval_every=2, checkpoint_every=0, best_metric="score")
    _, state = run(cfg, model=model, evaluate=lambda m, step: {"score": -float((step - 4) ** 2)},
                   hooks=Hooks(on_eval=lambda step, metrics: seen.update({step: model.lin.weight.detach().clone()})))
    best = state["best"]
    assert best["step"] == 4 and best["metrics"]["score"] == 0.0
    assert torch.equal(best["state"]["lin.weight"], seen[4])
    assert not torch.equal(model.lin.weight, seen[4])  # the model itself ends at the last step


def test_nan_scores_rank_last_and_a_run_always_has_a_best_state():
    """Spearman of constant predictions is NaN: it must neither win nor leave the run without a best."""
    cfg = LoopConfig(max_steps=6, lr=0.1, eval_every=2, checkpoint_every=0, best_metric="score")
    scores = {2: float("nan"), 4: -1.0, 6: float("nan")}
    _, state = run(cfg, evaluate=lambda m, step: {"score": scores[step]})
    assert state["best"]["step"] == 4
    _, state = run(cfg, evaluate=lambda m, step: {"score": float("nan")})
    assert state["best"]["step"] == 2 and "lin.weight" in state["best"]["state"]


def test_best_metric_needs_no_checkpoints():
    with pytest.raises(ValueError, match="checkpoint_every=0"):
        run(LoopConfig(max_steps=2, lr=0.1, best_metric="score"))


def test_stop_between_checkpoints_then_resume_equals_an_unbroken_run(tmp_path):
    cfg = LoopConfig(max_steps=8, lr=0.1, eval_every=4, checkpoint_every=3)
    whole, _ = run(cfg, tmp_path / "a")
    part, state = run(LoopConfig(**{**vars(cfg), "stop_at": 4}), tmp_path / "b")
    assert state["step"] == 4 and (tmp_path / "b" / "checkpoints" / "step-00000004").is_dir()
    resumed, state = run(cfg, tmp_path / "b", resume=True)
    assert state["step"] == 8 and [h["step"] for h in state["history"]] == [4, 8]
    assert torch.equal(whole.lin.weight, resumed.lin.weight) and torch.equal(whole.lin.bias, resumed.lin.bias)


def test_quiet_mode_shows_no_progress_bar(capsys):
    run(LoopConfig(max_steps=3, lr=0.1, eval_every=10, checkpoint_every=0, progress=False))
    captured = capsys.readouterr()
    assert "it/s" not in captured.err and "|" not in captured.err
    assert "[train] step 3" in captured.out  # the evaluation line stays


def test_loop_config_takes_the_fields_a_stage_shares():
    tc = LMTrainConfig(max_steps=7, lr=3e-3, betas=(0.9, 0.95), grad_accum=2, checkpoint_every=5)
    cfg = loop_config(tc, log_name="pretrain", checkpoint_every=0)
    assert (cfg.max_steps, cfg.lr, cfg.betas, cfg.grad_accum, cfg.log_name) == (7, 3e-3, (0.9, 0.95), 2, "pretrain")
    assert cfg.checkpoint_every == 0  # what the stage gives wins
    ft = loop_config(FinetuneConfig(decay="cosine"), max_steps=10)
    assert ft.decay == "cosine" and ft.betas == LoopConfig(1, 1.0).betas  # fine-tuning keeps AdamW's betas


def test_patience_stops_after_that_many_evaluations_without_a_better_score():
    scores = {2: 1.0, 4: 3.0, 6: 2.0, 8: 2.5, 10: 2.9, 12: 9.0, 14: 9.0}  # best at 4, then 3 worse ones
    cfg = LoopConfig(max_steps=14, lr=0.1, eval_every=2, checkpoint_every=0, best_metric="score", patience=3)
    _, state = run(cfg, evaluate=lambda m, step: {"score": scores[step]})
    assert state["step"] == 10 and state["stopped_early"] == 10 and state["best"]["step"] == 4
    assert [h["step"] for h in state["history"]] == [2, 4, 6, 8, 10]
    _, state = run(LoopConfig(max_steps=14, lr=0.1, eval_every=2, checkpoint_every=0, best_metric="score"),
                   evaluate=lambda m, step: {"score": scores[step]})
    assert state["step"] == 14 and "stopped_early" not in state and state["best"]["step"] == 12
    with pytest.raises(ValueError, match="best_metric"):
        run(LoopConfig(max_steps=4, lr=0.1, checkpoint_every=0, patience=2))


def test_finetune_patience_is_a_validated_shared_field():
    from vqdna.config import finetune_config

    assert loop_config(FinetuneConfig(patience=3), max_steps=10).patience == 3
    with pytest.raises(ValueError, match="patience"):
        finetune_config("cpu", patience=-1)
