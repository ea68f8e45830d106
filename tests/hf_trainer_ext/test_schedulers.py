"""Torch glue for the LR schedules (``hf_trainer_ext/schedulers.py``): ``ScheduleLR`` drives AdamW exactly, keeps
param-group ratios, resumes mid-cooldown identically, persists a requested anneal; the anneal callback; a real
Trainer resumed after an anneal."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
import torch

from curricula.optim.schedules import Infinite, ScheduleError, WarmupCosine
from hf_trainer_ext.schedulers import AnnealCallback, ScheduleLR, create_schedule_scheduler

MAX, CONST, MIN = 1e-3, 4e-4, 4e-5  # as in tests/curricula/optim/test_schedules.py


def infinite(**kw) -> Infinite:
    base = dict(max_lr=MAX, constant_lr=CONST, min_lr=MIN, warmup_steps=100, cooldown_steps=400, anneal_steps=200)
    return Infinite(**{**base, **kw})


def _model_and_opt(lr=1.0, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 2)
    return model, torch.optim.AdamW(model.parameters(), lr=lr)


def _train_steps(model, opt, sched, steps: range, record: list):
    g = torch.Generator().manual_seed(1234 + steps.start)
    for k in steps:
        assert sched.last_epoch == k
        record.append(opt.param_groups[0]["lr"])
        x = torch.randn(8, 4, generator=g)
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step()


def _roundtrip(state: dict) -> dict:
    buf = io.BytesIO()  # like Trainer: torch.save, then torch.load(weights_only=True)
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_schedule_lr_drives_adamw_exactly():
    s = infinite(warmup_steps=10, cooldown_steps=40).with_anneal(60, 20)
    model, opt = _model_and_opt(lr=123.0)  # the optimizer's own lr is ignored (only group ratios matter)
    sched = ScheduleLR(opt, s)
    seen: list[float] = []
    _train_steps(model, opt, sched, range(0, 90), seen)
    assert seen == [s.lr(k) for k in range(90)]  # exact, not approximately
    assert sched.get_last_lr() == [s.lr(90)]


def test_param_group_ratios_kept():
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW([{"params": [model.weight], "lr": 1e-3}, {"params": [model.bias], "lr": 2.5e-4}])
    s = WarmupCosine(MAX, 50, warmup_steps=5)
    sched = ScheduleLR(opt, s)
    for k in range(60):
        assert opt.param_groups[0]["lr"] == s.lr(k)
        assert opt.param_groups[1]["lr"] == pytest.approx(s.lr(k) * 0.25, rel=1e-15, abs=0)
        opt.step()
        sched.step()
    opt0 = torch.optim.AdamW([{"params": [model.weight], "lr": 0.0}, {"params": [model.bias], "lr": 1e-3}])
    with pytest.raises(ScheduleError, match="first param group has lr=0"):
        ScheduleLR(opt0, s)


@pytest.mark.parametrize("cooldown", ["cosine", "inv_sqrt"])
def test_resume_mid_cooldown_gives_identical_lrs(cooldown):
    s = infinite(warmup_steps=10, cooldown_steps=40, cooldown=cooldown, timescale=8.0 if cooldown == "inv_sqrt"
                 else None)
    total, cut = 80, 27  # step 27 is in the middle of the cooldown (10 <= 27 < 50)
    assert s.phase(cut) == "cooldown"

    model, opt = _model_and_opt()
    sched = ScheduleLR(opt, s)
    straight: list[float] = []
    _train_steps(model, opt, sched, range(0, cut), straight)
    saved = _roundtrip({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()})
    _train_steps(model, opt, sched, range(cut, total), straight)

    model2, opt2 = _model_and_opt(seed=99)  # fresh objects, other weights, as in a new process
    sched2 = create_schedule_scheduler(opt2, s.to_dict())  # built from the recipe dict
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    assert sched2.last_epoch == cut and opt2.param_groups[0]["lr"] == s.lr(cut)
    resumed: list[float] = []
    _train_steps(model2, opt2, sched2, range(cut, total), resumed)
    assert resumed == straight[cut:]
    assert torch.equal(model.weight, model2.weight) and torch.equal(model.bias, model2.bias)


def test_requested_anneal_is_persisted_through_state_dict():
    s = infinite(warmup_steps=10, cooldown_steps=40, anneal_steps=30)
    model, opt = _model_and_opt()
    sched = ScheduleLR(opt, s)
    lrs: list[float] = []
    _train_steps(model, opt, sched, range(0, 70), lrs)
    with pytest.raises(ScheduleError, match="anneal from step 60 is in the past: the scheduler is at step 70"):
        sched.request_anneal(60)
    annealed = sched.request_anneal()  # from now, without knowing any budget
    assert annealed.anneal_start == 70 and sched.schedule.anneal_start == 70
    _train_steps(model, opt, sched, range(70, 85), lrs)
    state = _roundtrip(sched.state_dict())
    assert state["schedule"]["anneal_start"] == 70 and state["schedule"]["anneal_steps"] == 30

    model2, opt2 = _model_and_opt()
    opt2.load_state_dict(opt.state_dict())
    sched2 = ScheduleLR(opt2, s)  # the run's config has no anneal: the checkpoint's request wins
    sched2.load_state_dict(state)
    assert sched2.schedule == annealed
    rest: list[float] = []
    _train_steps(model2, opt2, sched2, range(85, 110), rest)
    assert rest == [annealed.lr(k) for k in range(85, 110)]
    assert rest[100 - 85] == MIN and lrs[70] == CONST


def test_anneal_added_on_resume_and_mismatches():
    s = infinite(warmup_steps=10, cooldown_steps=40, anneal_steps=30)
    model, opt = _model_and_opt()
    sched = ScheduleLR(opt, s)
    _train_steps(model, opt, sched, range(0, 60), [])
    state = _roundtrip(sched.state_dict())  # no anneal yet

    _, opt2 = _model_and_opt()
    cli = ScheduleLR(opt2, s.with_anneal(65))  # e.g. --anneal_at 65 on resume
    cli.load_state_dict(state)
    assert cli.schedule.anneal_start == 65 and cli.last_epoch == 60

    _, opt3 = _model_and_opt()
    with pytest.raises(ScheduleError, match="asks to anneal from step 55, but the checkpoint is at step 60"):
        ScheduleLR(opt3, s.with_anneal(55)).load_state_dict(state)
    with pytest.raises(ScheduleError, match="checkpoint was saved with schedule .* resume with the same schedule"):
        ScheduleLR(opt3, infinite(warmup_steps=10, cooldown_steps=41)).load_state_dict(state)
    annealed_state = _roundtrip(cli.state_dict())
    with pytest.raises(ScheduleError, match="checkpoint's schedule anneals from step 65, this run's from step 70"):
        ScheduleLR(opt3, s.with_anneal(70)).load_state_dict(annealed_state)
    with pytest.raises(ScheduleError, match="no 'schedule' entry"):
        ScheduleLR(opt3, s).load_state_dict({"last_epoch": 3})


def test_anneal_callback_trigger_file_and_at_step(tmp_path):
    from transformers import TrainerControl, TrainerState

    s = infinite(warmup_steps=10, cooldown_steps=40, anneal_steps=20)
    model, opt = _model_and_opt()
    sched = ScheduleLR(opt, s)
    trigger = tmp_path / "ANNEAL"
    cb = AnnealCallback(trigger_file=trigger)
    args, state, control = SimpleNamespace(device="cpu"), TrainerState(), TrainerControl()
    cb.on_train_begin(args, state, control, lr_scheduler=sched)
    stopped_at = None
    for k in range(200):
        opt.step()
        sched.step()
        state.global_step = k + 1
        if state.global_step == 77:
            trigger.touch()  # "anneal now", from outside the run
        control = cb.on_step_end(args, state, control, lr_scheduler=sched)
        if control.should_training_stop:
            stopped_at = state.global_step
            break
    assert sched.schedule.anneal_start == 77 and stopped_at == 97 and control.should_save
    assert opt.param_groups[0]["lr"] == MIN

    # a step number in the file; and at_step
    _, opt2 = _model_and_opt()
    sched2 = ScheduleLR(opt2, s)
    trigger.write_text("120\n")
    AnnealCallback(trigger_file=trigger).on_step_end(args, state, TrainerControl(), lr_scheduler=sched2)
    assert sched2.schedule.anneal_start == 120
    _, opt3 = _model_and_opt()
    sched3 = ScheduleLR(opt3, s)
    AnnealCallback(at_step=300, anneal_steps=50).on_train_begin(args, state, control, lr_scheduler=sched3)
    assert (sched3.schedule.anneal_start, sched3.schedule.anneal_end) == (300, 350)
    with pytest.raises(ScheduleError, match="needs the trainer's LR scheduler to be a ScheduleLR"):
        AnnealCallback(at_step=3).on_train_begin(args, state, control, lr_scheduler=object())
    trigger.write_text("soon")
    _, opt4 = _model_and_opt()
    with pytest.raises(ScheduleError, match="holds 'soon'; leave it empty to anneal now, or write a step number"):
        AnnealCallback(trigger_file=trigger).on_step_end(args, state, control, lr_scheduler=ScheduleLR(opt4, s))


def test_trainer_resume_restores_lr_and_anneal(tmp_path):
    """Through a real Trainer: anneal triggered by a file mid-run, checkpoint, resume in a fresh Trainer whose
    scheduler is built from the original (anneal-free) schedule: the logged LRs continue exactly."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 1)

        def forward(self, x, labels=None):
            out = self.lin(x).squeeze(-1)
            return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 64

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return {"x": torch.randn(4, generator=g), "labels": torch.randn((), generator=g)}

    class Touch(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 12:
                (tmp_path / "out" / "ANNEAL").touch()

    s = infinite(warmup_steps=2, cooldown_steps=6, anneal_steps=10)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=40, per_device_train_batch_size=4,
                             logging_steps=1, save_steps=15, save_only_model=False, report_to=[], use_cpu=True,
                             disable_tqdm=True, seed=0)

    def run(resume=None, touch=True):
        torch.manual_seed(0)
        model = Toy()
        opt = torch.optim.AdamW(model.parameters(), lr=s.max_lr)
        callbacks = ([Touch()] if touch else []) + [AnnealCallback(trigger_file=tmp_path / "out" / "ANNEAL")]
        trainer = Trainer(model=model, args=args, train_dataset=Data(), optimizers=(opt, ScheduleLR(opt, s)),
                          callbacks=callbacks)
        trainer.train(resume_from_checkpoint=resume)
        logs = [h for h in trainer.state.log_history if "learning_rate" in h]
        return trainer, {h["step"]: (h["learning_rate"], h["loss"]) for h in logs}

    first, lrs = run()
    assert first.lr_scheduler.schedule.anneal_start == 12
    assert first.state.global_step == 22  # stopped (and saved) once the anneal reached min_lr
    annealed = s.with_anneal(12)
    assert sorted(lrs) == list(range(1, 23))
    # the LR logged at step g is the one its update used: lr(g - 1)
    assert [lrs[g][0] for g in lrs] == pytest.approx([annealed.lr(g - 1) for g in lrs], rel=1e-12)
    (tmp_path / "out" / "ANNEAL").unlink()
    second, lrs2 = run(resume=str(tmp_path / "out" / "checkpoint-15"), touch=False)
    assert second.lr_scheduler.schedule == annealed  # restored from the checkpoint, not the fresh config
    assert second.state.global_step == 22
    assert lrs2 == lrs  # steps 1-15 from the checkpoint's history, 16-22 retrained: same LRs and losses
