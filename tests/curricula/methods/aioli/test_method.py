"""Aioli on the seam (``curricula/methods/aioli/method.py``) in ``CurriculumTrainer`` with held-out blocks of every
domain: the round schedule (LearnParams segments on the perturbed mixtures in the round's sweep order, a held-out
measurement after each, the mixed phase on the learned proportions ``delay`` steps after they are known), every
batch with exact per-domain counts, the proportions exactly the rule's on the measured losses, a resume in the middle
of LearnParams that is exact (the crashed timeline's log rows cut), two processes with identical state and streams,
LFR over its weights file, and the recipe's defaults."""

import json

import numpy as np
import pytest

from curricula.errors import ConfigError, CurriculaError
from curricula.methods import AioliConfig, LFRConfig, load_recipe
from curricula.methods.aioli.rule import AioliRule, lp_mixture
from curricula.methods.online import read_weights_history
from hf_trainer_ext import CurriculumTrainer

DOM = np.repeat([0, 1, 2], 32)  # the domains of blocks()
TINY = dict(eta=1.0, update_steps=8, lp_rounds=1, lp_steps=1, one_hot_factor=0.625)
# 17 steps: step 1 on the initial weights; round 0 = steps 2..9 (LearnParams 2, 3, 4; mixed 5..9), round 1 = 10..17;
# held-out measurements after steps 1, 2, 3, 4 and 9, 10, 11, 12
EVALS = [1, 2, 3, 4, 9, 10, 11, 12]


@pytest.fixture
def aioli(blocks, loss_tap, targs, tiny_gpt2, stop_after):
    """``aioli(out, steps=17, stop_at=None, resume=None, config={}, **args)``: an Aioli run (``TINY``) with 24
    held-out blocks (8 per domain); returns (trainer, loss tap, the EvalStats it observed)."""

    def run(out, steps=17, stop_at=None, resume=None, config=None, eval_dataset=None, **kw):
        tr = CurriculumTrainer(model=tiny_gpt2(dropout=0.0, seed=2), args=targs(out, max_steps=steps, **kw),
                               train_dataset=blocks(), eval_dataset=eval_dataset or blocks(24, seed=1),
                               curriculum=AioliConfig(**{**TINY, **(config or {})}))
        tap = loss_tap(tr)
        seen = []
        observe = tr.curriculum.observe_eval

        def record(stats):
            seen.append(stats)
            return observe(stats)

        tr.curriculum.observe_eval = record
        if stop_at:
            tr.add_callback(stop_after(stop_at))
        tr.train(resume_from_checkpoint=resume)
        return tr, tap, seen

    return run


def test_aioli_schedule_measurements_and_proportions_follow_the_rule_and_drive_sampling(tmp_path, aioli, per_step,
                                                                                       assert_counts_follow):
    tr, tap, seen = aioli(tmp_path / "run")
    cur = tr.curriculum
    assert [s.step for s in seen] == EVALS
    assert tr.probe.blocks_scored == len(EVALS) * 24  # 1 + k * lp_rounds measurements per round, of all 24 blocks
    hist = read_weights_history(tmp_path / "run" / "aioli" / "weights_history.parquet")
    assert list(hist["step"]) == list(range(1, 18))
    trained, learned = hist["weights"], hist["learned"]
    # the proportions are exactly the rule's on the measured losses and the rounds' sweep orders
    rule = AioliRule(3, 1.0, lp_rounds=1, one_hot_factor=0.625, ema=0.1, normalize_A=True)
    p = []
    for r, first in enumerate((0, 4)):
        rule.begin_round(seen[first].loss, cur.order(r))
        for stats in seen[first + 1: first + 4]:
            rule.record_lp_eval(stats.loss)
        p.append(rule.finish_round()[1])
    u = cur.initial
    # learned after the measurements of steps 4 and 12 (a step's row is logged before its measurement)
    np.testing.assert_array_equal(learned, [u] * 4 + [p[0]] * 8 + [p[1]] * 5)
    assert np.abs(p[0] - u).max() > 1e-3 and np.abs(p[1] - p[0]).max() > 1e-4
    # what each step trained on: LearnParams mixtures in the sweep order, mixed phases `delay` = 2 steps late
    lp = [lp_mixture(3, 0.625, j) for j in (*cur.order(0), *cur.order(1))]
    expected = [u, *lp[:3], u, u, p[0], p[0], p[0], *lp[3:], p[0], p[0], p[1], p[1], p[1]]
    np.testing.assert_array_equal(trained, expected)
    for t, ids in enumerate(per_step(tap)):  # exact counts; a LearnParams batch is [10, 3, 3] in some order
        assert_counts_follow(ids, trained[t])
        if t + 1 in (2, 3, 4, 10, 11, 12):
            assert sorted(np.bincount(DOM[ids], minlength=3)) == [3, 3, 10]
    events = [json.loads(line) for line in (tmp_path / "run" / "curriculum" / "reports.jsonl").read_text().split("\n")
              if line]
    assert [(e["step"], e["round"]) for e in events] == [(4, 0), (12, 1)]
    np.testing.assert_array_equal(list(events[1]["weights"].values()), p[1])
    doc = json.loads((tmp_path / "run" / "aioli" / "domain_weights.json").read_text())
    np.testing.assert_array_equal(list(doc["weights"].values()), p[1])
    assert doc["extra"]["method"] == "aioli" and doc["extra"]["rounds"] == 2
    assert doc["extra"]["evaluations_per_round"] == 4


def test_aioli_resume_in_the_middle_of_learnparams_is_exact(tmp_path, aioli):
    full, full_tap, full_seen = aioli(tmp_path / "full")
    part, part_tap, _ = aioli(tmp_path / "part", stop_at=11, save_strategy="steps", save_steps=3)  # crash after 11
    state = json.loads((tmp_path / "part" / "checkpoint-9" / "curriculum" / "state.json").read_text())["state"]
    assert state["aioli_rounds"] == 1 and state["aioli_lp_pos"] == 0  # round 1 begun (loss_0 measured after step 9)
    rest, rest_tap, rest_seen = aioli(tmp_path / "part", resume=str(tmp_path / "part" / "checkpoint-9"),
                                      save_strategy="steps", save_steps=3)
    assert [s.step for s in rest_seen] == [10, 11, 12]
    for a, b in zip(rest_seen, full_seen[-3:]):  # the same model: the same held-out losses
        np.testing.assert_allclose(a.loss_sum, b.loss_sum, rtol=0, atol=1e-9)
    assert part_tap.batches[:18] + rest_tap.batches == full_tap.batches  # 9 steps x 2 micro-batches, then the rest
    np.testing.assert_allclose(part_tap.losses[:18] + rest_tap.losses, full_tap.losses, rtol=0, atol=1e-6)
    history = [read_weights_history(tmp_path / r / "aioli" / "weights_history.parquet") for r in ("full", "part")]
    for key in ("step", "weights", "learned"):  # rows 10 and 11 of the crashed timeline were cut
        np.testing.assert_array_equal(history[1][key], history[0][key])
    np.testing.assert_array_equal(rest.curriculum.learned, full.curriculum.learned)
    assert rest.probe.blocks_scored == full.probe.blocks_scored  # the measurements before the resume still count
    for key, value in full.curriculum.rule.state_dict().items():
        np.testing.assert_array_equal(rest.curriculum.rule.state_dict()[key], value)


def test_aioli_two_processes_hold_identical_state_and_streams_and_resume_exactly(
        tmp_path, online_mixer_on_two_processes):
    r0, r1 = online_mixer_on_two_processes(tmp_path, "aioli")
    assert r0["world"] == r1["world"] == 2 and len(r0["history"]) == 8 and len(r0["stream"]) == 8
    assert r0["history"] == r1["history"] and r0["stream"] == r1["stream"]  # bit-identical on both ranks
    assert r0["history"][-1]["state"]["aioli_rounds"] == 1 and r0["blocks_scored"] == 6 * 24  # evals 1-4, 7, 8
    resumed = online_mixer_on_two_processes(tmp_path, "aioli", 8, tmp_path / "aioli" / "checkpoint-4")[0]
    assert resumed["history"] == r0["history"][4:] and resumed["stream"] == r0["stream"][4:]
    assert resumed["final"] == r0["final"]


def test_lfr_runs_over_the_weights_file_a_finished_aioli_run_wrote(tmp_path, aioli, blocks, loss_tap, per_step, targs,
                                                                   tiny_gpt2, assert_counts_follow):
    aioli(tmp_path / "aioli-run", steps=5)
    path = tmp_path / "aioli-run" / "aioli" / "domain_weights.json"
    weights = np.array(list(json.loads(path.read_text())["weights"].values()))
    config = LFRConfig.from_dict({"phases": [{"kind": "learn", "epochs": 1}], "mixture": str(path)})
    tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path / "lfr", curriculum=config), train_dataset=blocks())
    tap = loss_tap(tr)
    tr.train()
    np.testing.assert_array_equal(tr.curriculum.mixture, weights)
    for ids in per_step(tap):
        assert_counts_follow(ids, weights)


def test_aioli_needs_held_out_blocks_of_every_domain(tmp_path, blocks, targs, tiny_gpt2, aioli):
    with pytest.raises(ConfigError, match="pass eval_dataset"):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path / "a", max_steps=4), train_dataset=blocks(),
                          curriculum=AioliConfig(**TINY))
    two_domains = blocks(24, seed=1).select(range(16))  # domains 0 and 1 only
    with pytest.raises(CurriculaError, match=r"but \['2'\] has none"):
        aioli(tmp_path / "b", steps=2, eval_dataset=two_domains)


def test_aioli_schedule_with_a_prior_phase_and_a_cut_last_round():
    from curricula.methods import DataInfo, EvalStats, RunInfo, StepStats

    initial = [0.5, 0.3, 0.2]
    cur = AioliConfig(**TINY, prior_steps=3, initial=initial).build(DataInfo(DOM, ["a", "b", "c"]), RunInfo(16, 14, 0))
    batches = cur.batches(0)
    trained, evals = [], []
    for step in range(1, 15):  # 14 steps: prior 1-3, round 0 = 4..11, round 1 = 12..14 (cut)
        ids = next(batches)
        trained.append(np.bincount(DOM[ids], minlength=3))
        cur.observe_step(StepStats(step, np.ones(3), np.ones(3)))
        if cur.wants_eval(step):
            evals.append(step)
            cur.observe_eval(EvalStats(step, np.full(3, 10.0), 10.0 * (5.0 - 0.1 * step - np.arange(3) * 0.01 * step)))
    assert evals == [3, 4, 5, 6, 11, 12, 13, 14]
    assert [c.tolist() for c in trained[:3]] == [[8, 5, 3]] * 3  # exact counts of the initial weights
    assert all(sorted(c.tolist()) == [3, 3, 10] for c in trained[3:6] + trained[11:14])  # LearnParams
    assert cur.rule.rounds == 2 and np.abs(cur.learned - cur.rule.proportions()).max() == 0


def test_aioli_recipe_holds_the_papers_defaults_and_errors_name_the_fix():
    from curricula.methods import DataInfo, RunInfo

    config = load_recipe("aioli")
    assert config == AioliConfig()
    assert (config.eta, config.update_steps, config.lp_rounds, config.lp_steps) == (0.2, 250, 4, 4)
    assert (config.one_hot_factor, config.ema, config.normalize_A) == (0.625, 0.1, True)
    data = DataInfo(np.repeat(np.arange(20), 5), [f"d{i}" for i in range(20)])
    with pytest.raises(ConfigError, match="= 320 steps, not less than update_steps=250; raise update_steps above 320"):
        config.build(data, RunInfo(16, 1000, 0))
    with pytest.raises(ConfigError, match=r"one_hot_factor=0.3 must be above 1/k = 0.3333"):
        AioliConfig(one_hot_factor=0.3).build(DataInfo(DOM, ["a", "b", "c"]), RunInfo(16, 1000, 0))
    with pytest.raises(ConfigError, match="eta=0 must be a positive number"):
        AioliConfig(eta=0)
    with pytest.raises(ConfigError, match=r"ema=1.0 must be in \[0, 1\)"):
        load_recipe({"method": "aioli", "ema": 1.0})

