"""report_to="tensorboard" (the `tensorboard` extra): the event file holds the per-domain perplexities."""

import pytest

from hf_trainer_ext import CurriculumTrainer
from test_trainer import blocks, targs, tiny_gpt2


def test_tensorboard_event_file_has_the_per_domain_perplexities(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard", reason="pip install 'curricula[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))  # transformers 5: where the events go
    args = targs(tmp_path / "run", max_steps=4, logging_steps=2, report_to="tensorboard", domain_weights="uniform",
                 eval_strategy="steps", eval_steps=4)
    CurriculumTrainer(model=tiny_gpt2(), args=args, train_dataset=blocks(), eval_dataset=blocks(24, seed=3),
                      domain_names=["easy", "half", "random"]).train()
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    tags = set(events.Tags()["scalars"])
    for name in ("easy", "half", "random"):
        assert f"train/train_ppl/{name}" in tags and f"eval/ppl/{name}" in tags  # Trainer files eval_x as eval/x
    assert [e.step for e in events.Scalars("train/train_ppl/easy")] == [2, 4]
    assert "eval/ppl_worst" in tags and "train/loss" in tags
