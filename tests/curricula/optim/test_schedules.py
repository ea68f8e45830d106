"""LR schedules: values at key steps against closed forms, JSON round trips, the torch scheduler (exact LRs, exact
resume mid-cooldown, a requested anneal surviving checkpoints), the anneal callback, bad input, the plot."""

from __future__ import annotations

import io
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from curricula.optim.schedules import (
    Constant,
    Infinite,
    ScheduleError,
    Stages,
    WarmupCosine,
    example_schedules,
    plot_schedules,
    schedule_from_dict,
)
from hf_trainer_ext.schedulers import AnnealCallback, ScheduleLR, create_schedule_scheduler

approx = lambda x: pytest.approx(x, rel=1e-12, abs=1e-18)  # noqa: E731

MAX, CONST, MIN = 1e-3, 4e-4, 4e-5


def infinite(**kw) -> Infinite:
    base = dict(max_lr=MAX, constant_lr=CONST, min_lr=MIN, warmup_steps=100, cooldown_steps=400, anneal_steps=200)
    return Infinite(**{**base, **kw})


# ---- closed forms ------------------------------------------------------------------------------------------------


def test_warmup_cosine_closed_forms():
    s = WarmupCosine(MAX, 1000)  # defaults: warmup ceil(1% of 1000) = 10, min_lr = 0.1 * max
    assert s.warmup_steps == 10 and s.min_lr == approx(0.1 * MAX)
    mn = 0.1 * MAX
    assert s.lr(0) == 0.0
    assert s.lr(5) == approx(MAX / 2)  # warmup midpoint
    assert s.lr(10) == approx(MAX)  # end of warmup
    assert s.lr(505) == approx((MAX + mn) / 2)  # cosine midpoint: 10 + 990 / 2
    assert s.lr(262) == approx(mn + (MAX - mn) * (1 + math.cos(math.pi * (262 - 10) / 990)) / 2)
    assert s.lr(1000) == approx(mn)  # end
    assert s.lr(1001) == s.lr(10**9) == approx(mn)  # after the end
    lrs = s.lrs(range(10, 1001))
    assert np.all(np.diff(lrs) <= 0)  # monotone decay

    w = WarmupCosine(2.0, 101, warmup_steps=20, min_lr=0.5, start_lr=1.0)
    assert w.lr(0) == 1.0 and w.lr(10) == approx(1.5) and w.lr(20) == approx(2.0)
    assert w.lr(20 + 81 // 2) != approx(1.25)  # 81 decay steps: the midpoint is at 60.5, between steps
    assert WarmupCosine(2.0, 100, warmup_steps=20, min_lr=0.5).lr(60) == approx(1.25)
    assert WarmupCosine(1.0, 150).warmup_steps == 2  # ceil(1.5)
    assert WarmupCosine(1.0, 1).warmup_steps == 0 and WarmupCosine(1.0, 1).lr(0) == 1.0


def test_constant():
    c = Constant(3e-4)
    assert [c.lr(k) for k in (0, 1, 10**9)] == [3e-4] * 3
    assert Constant(lr=1.0).to_dict() == {"type": "constant", "lr": 1.0}


def test_stages_rewarm_local_steps():
    s = Stages.rewarm(MAX, [100, 200, 300], warmup_steps=10)  # min_lr 0.1 * max in every stage
    mn = 0.1 * MAX
    assert s.starts == (0, 100, 300) and s.total_steps == 600
    # stage 0: a WarmupCosine(100) on the global step
    assert s.lr(5) == approx(MAX / 2) and s.lr(10) == approx(MAX) and s.lr(55) == approx((MAX + mn) / 2)
    assert s.lr(99) == approx(WarmupCosine(MAX, 100, 10).lr(99))
    # stage 1 re-warms from 0 on its local step
    assert s.lr(100) == 0.0 and s.lr(105) == approx(MAX / 2) and s.lr(110) == approx(MAX)
    assert s.lr(110 + 95) == approx((MAX + mn) / 2)  # local decay midpoint: 10 + 190 / 2
    # stage 2
    assert s.lr(300) == 0.0 and s.lr(310) == approx(MAX) and s.lr(310 + 145) == approx((MAX + mn) / 2)
    assert s.lr(599) == approx(WarmupCosine(MAX, 300, 10).lr(299))
    assert s.lr(600) == s.lr(10**8) == approx(mn)  # the last stage holds its min after the end
    assert s.stage_of(299) == (1, 199) and s.stage_of(300) == (2, 0)

    mixed = Stages([WarmupCosine(1.0, 10, 2), Constant(0.3)], [10, 5])
    assert mixed.lr(1) == approx(0.5) and mixed.lr(10) == 0.3 and mixed.lr(1000) == 0.3


def test_infinite_cosine_closed_forms():
    s = infinite()
    assert s.constant_start == 500 and s.anneal_start is None
    assert s.lr(0) == 0.0 and s.lr(50) == approx(MAX / 2)  # warmup midpoint
    assert s.lr(100) == approx(MAX)  # end of warmup = start of cooldown
    assert s.lr(300) == approx((MAX + CONST) / 2)  # cosine cooldown midpoint
    assert s.lr(500) == CONST and s.lr(10**9) == CONST  # constant forever without an anneal
    assert [s.phase(k) for k in (0, 100, 499, 500, 10**6)] == ["warmup", "cooldown", "cooldown", "constant",
                                                                "constant"]
    a = s.with_anneal(1000)
    assert a.anneal_start == 1000 and a.anneal_end == 1200 and s.anneal_start is None  # a copy
    assert a.lr(999) == CONST and a.lr(1000) == approx(CONST)
    assert a.lr(1100) == approx(math.sqrt(CONST * MIN))  # exponential midpoint: geometric mean
    assert a.lr(1050) == approx(CONST * (MIN / CONST) ** 0.25)
    assert a.lr(1200) == MIN and a.lr(10**9) == MIN  # after the anneal
    assert [a.phase(k) for k in (1000, 1199, 1200)] == ["anneal", "anneal", "annealed"]
    assert np.all(np.diff(a.lrs(range(100, 1300))) <= 0)

    lin = infinite(anneal="linear").with_anneal(500, anneal_steps=100)  # anneal right at the constant phase start
    assert lin.lr(500) == approx(CONST) and lin.lr(550) == approx((CONST + MIN) / 2) and lin.lr(600) == MIN


def test_infinite_inv_sqrt_closed_forms():
    tau, cool = 50.0, 400
    s = infinite(cooldown="inv_sqrt", timescale=tau)
    h = lambda x: 1 / math.sqrt(1 + x / tau) - 1  # noqa: E731
    assert s.lr(50) == approx(MAX / 2)
    assert s.lr(100) == approx(MAX)  # h(0) = 0
    assert s.lr(300) == approx(MAX + (CONST - MAX) * h(200) / h(cool))  # cooldown midpoint
    assert s.lr(300) == approx(MAX + (CONST - MAX) * (1 / math.sqrt(5) - 1) / (1 / 3 - 1))  # same, by hand
    assert s.lr(499) == approx(MAX + (CONST - MAX) * h(399) / h(cool))
    assert s.lr(500) == CONST and s.lr(10**7) == CONST
    cooldown = s.lrs(range(100, 501))
    assert np.all(np.diff(cooldown) < 0) and cooldown.min() >= CONST - 1e-18
    # faster than cosine early on (inverse-sqrt front-loads the drop)
    assert s.lr(150) < infinite().lr(150)
    a = s.with_anneal(700)
    assert a.lr(800) == approx(math.sqrt(CONST * MIN)) and a.lr(900) == MIN


def test_min_lr_clamp_holds_everywhere_after_warmup():
    for s in (infinite(), infinite(cooldown="inv_sqrt", timescale=1.0).with_anneal(600),
              infinite(anneal="linear", min_lr=0.0).with_anneal(500, 1)):
        assert s.lrs(range(s.warmup_steps, 2000)).min() >= s.min_lr
    # constant_lr == min_lr: a flat anneal, never below the floor
    flat = infinite(constant_lr=MIN).with_anneal(500)
    assert flat.lrs(range(500, 800)).tolist() == [MIN] * 300


# ---- serialisation -----------------------------------------------------------------------------------------------


def test_round_trip_through_json():
    cases = list(example_schedules().values()) + [
        infinite(max_steps=5000).with_anneal(1000),
        Stages([WarmupCosine(MAX, 100), infinite()], [100, 10]).with_anneal(700),
    ]
    for s in cases:
        back = schedule_from_dict(json.loads(json.dumps(s.to_dict())))
        assert back == s and type(back) is type(s)
        assert back.lrs(range(0, 1500, 7)).tolist() == s.lrs(range(0, 1500, 7)).tolist()
    st = cases[-1]
    assert st.anneal_start == 700 and st.schedules[-1].anneal_start == 600 and st.anneal_end == 900
    assert st.lr(800) == approx(math.sqrt(CONST * MIN))


def test_from_dict_defaults_fill_missing_fields():
    s = schedule_from_dict({"type": "warmup_cosine"}, {"max_lr": 2e-4, "total_steps": 300})
    assert s == WarmupCosine(2e-4, 300)
    st = schedule_from_dict(
        {"type": "stages", "lengths": [100, 50], "schedules": [{"type": "warmup_cosine"}, {"type": "warmup_cosine"}]},
        {"max_lr": 1e-3, "total_steps": 999},
    )
    assert st == Stages.rewarm(1e-3, [100, 50])  # each stage's total_steps is its own length
    assert schedule_from_dict({"type": "constant", "lr": "3e-4"}) == Constant(3e-4)  # YAML reads 3e-4 as a string
    inf = schedule_from_dict({"type": "infinite", "constant_lr": 1e-4, "min_lr": 1e-5, "warmup_steps": 1,
                              "cooldown_steps": 9}, {"max_lr": 1e-3, "total_steps": 50})  # total_steps: not a field
    assert inf.max_lr == 1e-3 and inf.max_steps is None
    with pytest.raises(ScheduleError, match="unknown schedule type 'cosine'; known: constant, infinite"):
        schedule_from_dict({"type": "cosine"})
    with pytest.raises(ScheduleError, match=r"has no field\(s\) \['warmup'\]"):
        schedule_from_dict({"type": "warmup_cosine", "max_lr": 1.0, "total_steps": 10, "warmup": 1})
    with pytest.raises(ScheduleError, match="'warmup_cosine'.*total_steps"):
        schedule_from_dict({"type": "warmup_cosine", "max_lr": 1.0})


# ---- bad input ---------------------------------------------------------------------------------------------------


def test_anneal_requested_past_the_end():
    s = infinite(max_steps=1000)
    with pytest.raises(ScheduleError, match=r"anneal requested past the end: .* from step 900 over 200 steps ends at "
                                            r"step 1100, after max_steps=1000; start it at step <= 800"):
        s.with_anneal(900)
    assert s.with_anneal(800).anneal_end == 1000  # ending exactly at the end is fine


def test_anneal_before_constant_phase_or_negative():
    with pytest.raises(ScheduleError, match=r"anneal_start=499 is before the constant phase, which begins at step "
                                            r"500 \(warmup 100 \+ cooldown 400 steps\)"):
        infinite().with_anneal(499)
    with pytest.raises(ScheduleError, match="anneal_start=-1 must be >= 0"):
        infinite().with_anneal(-1)
    with pytest.raises(ScheduleError, match="needs anneal_steps"):
        infinite(anneal_steps=None).with_anneal(600)
    with pytest.raises(ScheduleError, match="falls before the last stage, which begins at step 100"):
        Stages([Constant(1.0), infinite()], [100, 10]).with_anneal(50)
    with pytest.raises(ScheduleError, match="WarmupCosine schedule has no anneal phase.*use an Infinite"):
        WarmupCosine(1.0, 10).with_anneal(5)


def test_stage_with_no_steps():
    with pytest.raises(ScheduleError, match=r"stage 1 has no steps \(length=0\).*give it a positive length"):
        Stages([Constant(1.0), Constant(0.5), Constant(0.1)], [10, 0, 5])
    with pytest.raises(ScheduleError, match=r"stage 2 has no steps \(length=-3\)"):
        Stages.rewarm(1.0, [10, 10, -3])
    with pytest.raises(ScheduleError, match="3 schedules but 2 lengths"):
        Stages([Constant(1.0)] * 3, [1, 2])
    with pytest.raises(ScheduleError, match="stage 0: its WarmupCosine decays over total_steps=200 but the stage "
                                            "lasts 100 steps"):
        Stages([WarmupCosine(1.0, 200)], [100])


def test_inv_sqrt_needs_timescale():
    with pytest.raises(ScheduleError, match="cooldown='inv_sqrt' needs timescale"):
        infinite(cooldown="inv_sqrt")
    with pytest.raises(ScheduleError, match="timescale=0 must be a number of steps > 0"):
        infinite(cooldown="inv_sqrt", timescale=0)
    with pytest.raises(ScheduleError, match="timescale=5 only applies to cooldown='inv_sqrt'"):
        infinite(timescale=5)


def test_bad_rates_and_steps():
    with pytest.raises(ScheduleError, match="max_lr=-0.001 must be a finite learning rate >= 0"):
        WarmupCosine(-1e-3, 100)
    with pytest.raises(ScheduleError, match="lr=-1.0 must be a finite learning rate >= 0"):
        Constant(-1.0)
    with pytest.raises(ScheduleError, match="min_lr=nan must be a finite"):
        infinite(min_lr=float("nan"))
    with pytest.raises(ScheduleError, match=r"min_lr=0.01 > max_lr=0.001: the decay would raise the LR"):
        WarmupCosine(1e-3, 100, min_lr=1e-2)
    with pytest.raises(ScheduleError, match=r"need min_lr <= constant_lr <= max_lr, got min_lr=0.01"):
        infinite(min_lr=1e-2)
    with pytest.raises(ScheduleError, match=r"got min_lr=4e-05, constant_lr=0.002, max_lr=0.001"):
        infinite(constant_lr=2e-3)
    with pytest.raises(ScheduleError, match="exponential anneal cannot reach min_lr=0.0.*anneal='linear'"):
        infinite(min_lr=0.0)
    with pytest.raises(ScheduleError, match="warmup_steps=100 must be < total_steps=100"):
        WarmupCosine(1.0, 100, warmup_steps=100)
    with pytest.raises(ScheduleError, match="cooldown_steps=0 with constant_lr"):
        infinite(cooldown_steps=0)
    with pytest.raises(ScheduleError, match="warmup_steps=1.5 must be an integer"):
        infinite(warmup_steps=1.5)
    with pytest.raises(ScheduleError, match=r"step=-1 must be >= 0"):
        Constant(1.0).lr(-1)
    assert infinite(cooldown_steps=0, constant_lr=MAX).lr(100) == MAX  # no cooldown: warmup straight to constant


# ---- torch -------------------------------------------------------------------------------------------------------


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


# ---- plot --------------------------------------------------------------------------------------------------------


def test_plot_schedules_writes_png(tmp_path):
    out = plot_schedules(tmp_path / "fig" / "schedules.png", log_y=True)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_lr_schedule_argument_takes_long_inline_json_a_file_or_yaml(tmp_path):
    """An offset-wrapped infinite schedule is > 255 characters of JSON: it must not be taken for a file name."""
    import json

    from hf_trainer_ext.arguments import CurriculumTrainingArguments

    sched = {"type": "offset", "offset": 400, "schedule": {
        "type": "infinite", "max_lr": 0.002, "constant_lr": 0.0006, "min_lr": 0.0002, "warmup_steps": 7,
        "cooldown_steps": 200, "cooldown": "cosine", "anneal": "exponential", "anneal_steps": 100, "anneal_start": 600}}
    text = json.dumps(sched)
    assert len(text) > 255
    args = CurriculumTrainingArguments(output_dir=str(tmp_path), lr_schedule=text, report_to="none")
    assert args.lr_schedule == sched
    (tmp_path / "s.yaml").write_text("type: constant\nmax_lr: 0.001\n")
    args = CurriculumTrainingArguments(output_dir=str(tmp_path), lr_schedule=str(tmp_path / "s.yaml"), report_to="none")
    assert args.lr_schedule == {"type": "constant", "max_lr": 0.001}
    args = CurriculumTrainingArguments(output_dir=str(tmp_path), lr_schedule="{type: constant, max_lr: 0.001}",
                                       report_to="none")
    assert args.lr_schedule == {"type": "constant", "max_lr": 0.001}
