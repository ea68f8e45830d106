"""ADO on the seam (``curricula/methods/ado/method.py``) in ``CurriculumTrainer``, with a tiny history (window 5, every
step a fit point, 6 points kept) so that refits, the background fit and the bounded history all run within 12 steps:
the distribution follows the rule and drives sampling with exact per-batch counts, a resume is exact (also with a
refit in flight at the checkpoint; the crashed timeline's log rows cut), two processes hold identical state and
streams, LFR runs over its weights file, and the recipe holds the official defaults."""

import json

import numpy as np
import pytest

from curricula.errors import ConfigError
from curricula.methods import ADOConfig, LFRConfig, load_recipe
from curricula.methods.online import read_weights_history
from hf_trainer_ext import CurriculumTrainer

DOM = np.repeat([0, 1, 2], 32)  # the domains of blocks()
TINY = dict(ignore_steps=0, start_step=4, update_interval=4, savgol_window=5, point_stride=1, max_fit_points=6,
            fit_starts=8, fit_lag=2)  # refits start after steps 5 and 9, applied after steps 7 and 11


@pytest.fixture
def ado(blocks, loss_tap, targs, tiny_gpt2, stop_after):
    """``ado(out, steps=12, stop_at=None, resume=None, config={}, **args)``: an ADO run (``TINY``), its loss tap."""

    def run(out, steps=12, stop_at=None, resume=None, config=None, **kw):
        tr = CurriculumTrainer(model=tiny_gpt2(dropout=0.0, seed=2), args=targs(out, max_steps=steps, **kw),
                               train_dataset=blocks(), curriculum=ADOConfig(**{**TINY, **(config or {})}))
        tap = loss_tap(tr)
        if stop_at:
            tr.add_callback(stop_after(stop_at))
        tr.train(resume_from_checkpoint=resume)
        return tr, tap

    return run


def test_ado_distribution_follows_the_rule_and_drives_sampling(tmp_path, ado, per_step, assert_counts_follow):
    tr, tap = ado(tmp_path / "run")
    cur = tr.curriculum
    hist = read_weights_history(tmp_path / "run" / "ado" / "weights_history.parquet")
    assert list(hist["step"]) == list(range(1, 13))
    p, avg, credit = hist["weights"], hist["average"], hist["credit"]
    batches = per_step(tap)
    # the credit is the EMA of the realised batch composition (ADO 135-137), from the prior
    share = np.array([np.bincount(DOM[ids], minlength=3) / 16 for ids in batches])
    expected = cur.initial.copy()
    for t in range(12):
        expected = 0.9 * expected + (1 - 0.9) * share[t]
        np.testing.assert_allclose(credit[t], expected, rtol=0, atol=1e-15)
    # nothing is fitted before step 7 (the refit started after step 5 lands fit_lag = 2 steps later): the prior
    np.testing.assert_array_equal(p[:6], np.tile(cur.initial, (6, 1)))
    assert np.all(np.abs(np.diff(p[5:], axis=0)).sum(1) > 0)  # then it moves every step
    for t in range(6, 12):  # p_t = 0.9 p_avg_{t-1} + 0.1 d_t, p_avg_t = (1 - 1/(t+1)) p_avg_{t-1} + d_t / (t+1)
        d = (p[t] - 0.9 * avg[t - 1]) / 0.1
        np.testing.assert_allclose(avg[t], (1 - 1 / (t + 1)) * avg[t - 1] + d / (t + 1), rtol=0, atol=1e-12)
        assert d.min() >= 0.0099 and abs(d.sum() - 1) < 1e-12  # clip_min_probability(., 0.01)
    for t, ids in enumerate(batches):  # batch t is drawn from the distribution after step t - 2, exact counts
        assert_counts_follow(ids, cur.initial if t < 3 else p[t - 3])
    events = [json.loads(line) for line in (tmp_path / "run" / "curriculum" / "reports.jsonl").read_text().split("\n")
              if line]
    assert [(e["step"], e["fit"]["started_at_step"]) for e in events] == [(7, 5), (11, 9)]
    assert events[1]["fit"]["weight"] == 2.0 and events[1]["fit"]["points"] == 5  # the bounded history: stride 2
    np.testing.assert_array_equal(np.array(list(events[1]["fit"]["params_a_e_alpha"].values())), cur.rule.params)
    assert cur.rule.history.stride == 2 and cur.rule.history.n_points <= 6
    doc = json.loads((tmp_path / "run" / "ado" / "domain_weights.json").read_text())
    np.testing.assert_array_equal(list(doc["weights"].values()), p[-1])
    assert doc["extra"]["method"] == "ado" and doc["extra"]["fits"] == 2


def test_ado_resume_is_exact_with_a_refit_in_flight_at_the_checkpoint(tmp_path, ado):
    full, full_tap = ado(tmp_path / "full")
    part, part_tap = ado(tmp_path / "part", stop_at=8, save_strategy="steps", save_steps=3)  # crashes after step 8
    state = json.loads((tmp_path / "part" / "checkpoint-6" / "curriculum" / "state.json").read_text())["state"]
    assert state["ado_pending_start"] == 4 and state["ado_pending_apply_at"] == 6  # the refit of step 5, in flight
    rest, rest_tap = ado(tmp_path / "part", resume=str(tmp_path / "part" / "checkpoint-6"), save_strategy="steps",
                         save_steps=3)
    assert part_tap.batches[:12] + rest_tap.batches == full_tap.batches
    np.testing.assert_allclose(part_tap.losses[:12] + rest_tap.losses, full_tap.losses, rtol=0, atol=1e-6)
    history = [read_weights_history(tmp_path / r / "ado" / "weights_history.parquet") for r in ("full", "part")]
    for key in ("step", "weights", "average", "credit"):  # rows 7 and 8 of the crashed timeline were cut
        np.testing.assert_array_equal(history[1][key], history[0][key])
    assert rest.curriculum.result() == full.curriculum.result()
    for key, value in full.curriculum.rule.state_dict().items():
        np.testing.assert_array_equal(rest.curriculum.rule.state_dict()[key], value)


def test_ado_two_processes_hold_identical_state_and_streams_and_resume_exactly(
        tmp_path, online_mixer_on_two_processes):
    r0, r1 = online_mixer_on_two_processes(tmp_path, "ado")
    assert r0["world"] == r1["world"] == 2 and len(r0["history"]) == 8 and len(r0["stream"]) == 8
    assert r0["history"] == r1["history"] and r0["stream"] == r1["stream"]  # bit-identical on both ranks
    assert r0["history"][-1]["state"]["ado_fits"] == 1  # the refit after step 5, each rank in its own thread
    resumed = online_mixer_on_two_processes(tmp_path, "ado", 8, tmp_path / "ado" / "checkpoint-4")[0]
    assert resumed["history"] == r0["history"][4:] and resumed["stream"] == r0["stream"][4:]
    assert resumed["final"] == r0["final"]


def test_lfr_runs_over_the_weights_file_a_finished_ado_run_wrote(tmp_path, ado, blocks, loss_tap, per_step, targs,
                                                                 tiny_gpt2, assert_counts_follow):
    ado(tmp_path / "ado-run")
    path = tmp_path / "ado-run" / "ado" / "domain_weights.json"
    weights = np.array(list(json.loads(path.read_text())["weights"].values()))
    config = LFRConfig.from_dict({"phases": [{"kind": "learn", "epochs": 1}], "mixture": str(path)})
    tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path / "lfr", curriculum=config), train_dataset=blocks())
    tap = loss_tap(tr)
    tr.train()
    np.testing.assert_array_equal(tr.curriculum.mixture, weights)
    for ids in per_step(tap):
        assert_counts_follow(ids, weights)


def test_ado_recipe_holds_the_official_defaults_and_errors_name_the_fix():
    config = load_recipe("ado")
    assert config == ADOConfig()
    assert (config.ignore_steps, config.start_step, config.update_interval) == (1000, 500, 1000)
    assert (config.savgol_window, config.savgol_order, config.point_stride, config.fit_starts) == (101, 3, 10, 512)
    with pytest.raises(ConfigError, match="raise start_step to >= 100"):
        ADOConfig(start_step=50)
    with pytest.raises(ConfigError, match="fit_starts=100: use 512"):
        ADOConfig(fit_starts=100)
    with pytest.raises(ConfigError, match="fit_lag=1000 must be below update_interval=1000"):
        load_recipe({"method": "ado", "fit_lag": 1000})
    with pytest.raises(ConfigError, match="savgol_window=100 must be odd"):
        ADOConfig(savgol_window=100, start_step=500)
    assert ADOConfig().with_domain_weights("uniform").prior == "uniform"

