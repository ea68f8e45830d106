"""LR schedules (``curricula/optim/schedules.py``): values at key steps against closed forms, JSON round trips, bad
input, the plot. The torch scheduler and the anneal callback are tested in tests/hf_trainer_ext/test_schedulers.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

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


approx = lambda x: pytest.approx(x, rel=1e-12, abs=1e-18)  # noqa: E731


MAX, CONST, MIN = 1e-3, 4e-4, 4e-5


def infinite(**kw) -> Infinite:
    base = dict(max_lr=MAX, constant_lr=CONST, min_lr=MIN, warmup_steps=100, cooldown_steps=400, anneal_steps=200)
    return Infinite(**{**base, **kw})


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


# ---- plot --------------------------------------------------------------------------------------------------------


def test_plot_schedules_writes_png(tmp_path):
    out = plot_schedules(tmp_path / "fig" / "schedules.png", log_y=True)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
