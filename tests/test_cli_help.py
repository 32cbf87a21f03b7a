"""Issue 23: the help says what runs, and every command that trains or encodes takes --threads
(default: torch's choice, with a one-line warning on a busy machine)."""
from __future__ import annotations

import pytest
import torch

from vqdna import threads
from vqdna.cli import main

HEAVY = [["train-tokenizer"], ["evaluate-tokenizer"], ["tokenize"], ["decode"], ["pretrain"], ["finetune"],
         ["predict"], ["embed"], ["analyze"], ["benchmark"], ["demo"], ["baseline", "cnn"]]


def help_text(capsys, *command: str) -> str:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse's line breaks undone


def test_help_says_the_default_fine_tuning_is_full_and_lora_is_the_paper_recipe(capsys):
    top = help_text(capsys)
    assert "finetune stage 3: fine-tuning" in top and "full fine-tuning" in top
    assert "LoRA fine-tuning" not in top and "the paper's LoRA" in top
    ft = help_text(capsys, "finetune")
    assert "cpu (default: every LM weight trains" in ft and "paper (LoRA" in ft


@pytest.mark.parametrize("command", HEAVY, ids=" ".join)
def test_every_command_that_trains_or_encodes_takes_threads(capsys, command):
    assert "--threads THREADS torch CPU threads (default: torch's choice" in help_text(capsys, *command)


def test_demo_help_gives_its_time_on_a_busy_machine_with_one_thread(capsys):
    assert "with --threads 1 on 2 cores busy" in help_text(capsys, "demo")


def test_busy_machine_warning_only_when_the_load_exceeds_the_cores():
    line = threads.busy_machine_warning(2, load=7.5, cores=2)
    assert "load average 7.5 on 2 cores" in line and "--threads 1" in line and "\n" not in line
    assert threads.busy_machine_warning(2, load=1.9, cores=2) is None
    assert threads.busy_machine_warning(1, load=7.5, cores=2) is None  # one thread already


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_use_threads_sets_them_or_warns_once(monkeypatch, capsys, restore_threads):
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    assert threads.use_threads(1) == 1 and torch.get_num_threads() == 1
    assert capsys.readouterr().err == ""  # the user chose: no warning
    torch.set_num_threads(2)
    assert threads.use_threads(None) == 2 and torch.get_num_threads() == 2  # torch's choice stays
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: the machine is busy")


def test_the_command_line_applies_threads(tmp_path, capsys, restore_threads):
    assert main(["demo", "--out", str(tmp_path / "d"), "--threads", "0"]) == 2
    assert "--threads 0: give at least 1" in capsys.readouterr().err
