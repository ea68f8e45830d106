"""The divergence policy (``hf_trainer_ext/divergence.py``), through the trainer: exploding losses and a NaN weight
stop with the checkpoint to go back to; ``--nonfinite_policy warn`` and ``--max_loss``. Unit tests of
``DivergenceMonitor`` below."""

import logging
import math
from types import SimpleNamespace

import pytest
import torch

from curricula.errors import DivergenceError
from hf_trainer_ext import CurriculumTrainer
from hf_trainer_ext.divergence import DivergenceMonitor


def test_divergence_stops_with_a_clear_error(tmp_path, lfr):
    # at lr 1e4 the losses explode (about 2e9) but stay finite: every perplexity overflows to inf
    with pytest.raises(DivergenceError, match=r"training diverged in epoch 0: the mean block loss is .* \(> max_loss "
                                              r"14.56, 3 x ln\(vocab\).*The last complete checkpoint is "
                                              r".*checkpoint-6: lower the learning rate"):
        lfr(tmp_path, tmp_path / "run", learning_rate=1e4)
    assert not (tmp_path / "run" / "curriculum" / "focus_reports.jsonl").exists()  # no Focus decided on garbage


def test_a_nan_weight_stops_at_the_first_logging_step(tmp_path, blocks, targs, tiny_gpt2):
    model = tiny_gpt2()
    with torch.no_grad():
        model.transformer.wte.weight[3, 0] = float("nan")
    tr = CurriculumTrainer(model=model, args=targs(tmp_path, max_steps=6, logging_steps=2), train_dataset=blocks())
    with pytest.raises(DivergenceError, match=r"diverged in the steps up to 2: \d+ of \d+ block losses"):
        tr.train()


def test_warn_policy_and_max_loss(tmp_path, caplog, blocks, targs, tiny_gpt2):
    model = tiny_gpt2()
    with torch.no_grad():
        model.transformer.wte.weight[3, 0] = float("nan")
    args = targs(tmp_path / "w", max_steps=2, logging_steps=1, nonfinite_policy="warn")
    with caplog.at_level(logging.WARNING):
        CurriculumTrainer(model=model, args=args, train_dataset=blocks()).train()
    assert "training diverged" in caplog.text and "--nonfinite_policy warn continues anyway" in caplog.text
    with pytest.raises(DivergenceError, match=r"the mean block loss is .* \(> max_loss 0.1\)"):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path / "m", max_steps=2, logging_steps=1, max_loss=0.1),
                          train_dataset=blocks()).train()


# ---- DivergenceMonitor on its own ------------------------------------------------------------------------------------


def test_stop_raises_naming_the_problem_and_the_last_complete_checkpoint(tmp_path):
    last = tmp_path / "run" / "checkpoint-6"
    monitor = DivergenceMonitor("stop", max_nonfinite_share=0.1, max_loss=5.0, last_checkpoint=lambda: last)
    monitor.check("epoch 0", 100, 10, 5.0)  # at both limits: fine
    monitor.check("epoch 0", 0, 0, float("nan"))  # nothing recorded: nothing to check
    with pytest.raises(DivergenceError, match=r"training diverged in epoch 1: 11 of 100 block losses are non-finite "
                                              r"\(NaN/inf; 11.0% > max_nonfinite_share 0.1\).*The last complete "
                                              r"checkpoint is .*checkpoint-6: lower the learning rate and resume"):
        monitor.check("epoch 1", 100, 11, 1.0)
    with pytest.raises(DivergenceError, match=r"diverged in the steps up to 8: the mean block loss is 5.5 \(> max_loss "
                                              r"5\)\. .*--nonfinite_policy warn continues anyway"):
        monitor.check("the steps up to 8", 100, 0, 5.5)
    with pytest.raises(DivergenceError, match="No checkpoint was saved: lower the learning rate and start again"):
        DivergenceMonitor(max_loss=1.0).check("epoch 0", 4, 0, 2.0)


def test_warn_logs_and_goes_on(caplog):
    monitor = DivergenceMonitor("warn", max_nonfinite_share=0.5, max_loss=1.0)
    with caplog.at_level(logging.WARNING, logger="hf_trainer_ext.divergence"):
        monitor.check("epoch 2", 10, 0, 3.0)
        monitor.check("epoch 3", 10, 10, float("nan"))
    assert caplog.text.count("training diverged") == 2 and "--nonfinite_policy warn continues anyway" in caplog.text


def test_max_loss_defaults_to_three_ln_vocab():
    monitor = DivergenceMonitor(vocab_size=128)
    assert monitor.max_loss == pytest.approx(3 * math.log(128))
    monitor.check("epoch 0", 1, 0, 14.5)
    with pytest.raises(DivergenceError, match=r"\(> max_loss 14.56, 3 x ln\(vocab\): far worse than guessing"):
        monitor.check("epoch 0", 1, 0, 14.6)
    assert DivergenceMonitor(max_loss=2.0, vocab_size=128).max_loss == 2.0  # an explicit bound wins
    DivergenceMonitor().check("epoch 0", 1, 0, 1e9)  # no vocabulary, no bound: only non-finite losses count
    args = SimpleNamespace(nonfinite_policy="warn", max_nonfinite_share=0.5, max_loss=None)
    model = SimpleNamespace(config=SimpleNamespace(vocab_size=50257))
    monitor = DivergenceMonitor.from_args(args, model, lambda: None)
    assert (monitor.policy, monitor.max_share) == ("warn", 0.5)
    assert monitor.max_loss == pytest.approx(3 * math.log(50257))
