"""ODM on the seam (``curricula/methods/odm/method.py``) in ``CurriculumTrainer``: the weights follow the official rule
after the warm-up and drive sampling with exact per-batch counts, a resume is exact (the crashed timeline's log rows
cut), two processes hold identical state and draw identical streams, LFR runs over the weights file it wrote, and
the recipe holds the paper's defaults."""

import json

import numpy as np
import pytest

from curricula.errors import ConfigError
from curricula.methods import LFRConfig, ODMConfig, load_recipe
from curricula.methods.online import read_weights_history
from hf_trainer_ext import CurriculumTrainer


@pytest.fixture
def odm(blocks, loss_tap, targs, tiny_gpt2, stop_after):
    """``odm(out, steps=12, stop_at=None, resume=None, **args)``: an ODM run (warm-up 2 steps) and its loss tap."""

    def run(out, steps=12, stop_at=None, resume=None, **kw):
        tr = CurriculumTrainer(model=tiny_gpt2(dropout=0.0, seed=2), args=targs(out, max_steps=steps, **kw),
                               train_dataset=blocks(), curriculum=ODMConfig(warmup_steps=2))
        tap = loss_tap(tr)
        if stop_at:
            tr.add_callback(stop_after(stop_at))
        tr.train(resume_from_checkpoint=resume)
        return tr, tap

    return run


def test_odm_weights_follow_the_rule_after_the_warmup_and_drive_sampling(tmp_path, odm, per_step,
                                                                         assert_counts_follow):
    tr, tap = odm(tmp_path / "run")
    cur = tr.curriculum
    hist = read_weights_history(tmp_path / "run" / "odm" / "weights_history.parquet")
    assert list(hist["step"]) == list(range(1, 13))
    w, R = hist["weights"], hist["reward"]
    np.testing.assert_array_equal(w[:2], np.tile(cur.initial, (2, 1)))  # the warm-up: initial weights, R = 0
    assert np.all(R[:2] == 0) and np.all(R[2:] > 0)
    assert np.all(np.abs(np.diff(w[2:], axis=0)).sum(1) > 0)  # moved at every step after the first update (eps_3 = 1/K)
    for t in range(2, 12):  # pi_k = (1 - K eps_t) R_k / sum R + eps_t with eps_t = min(1/K, sqrt(ln K / (K t)))
        eps = min(1 / 3, np.sqrt(np.log(3) / (3 * (t + 1))))
        np.testing.assert_allclose(w[t], (1 - 3 * eps) * R[t] / R[t].sum() + eps, rtol=0, atol=1e-14)
    assert cur.delay == 2
    for t, ids in enumerate(per_step(tap)):  # batch t is drawn from the weights after step t - 2, exact counts
        assert_counts_follow(ids, cur.initial if t < 3 else w[t - 3])
    assert sorted(cur.state_dict()["recent_steps"].tolist()) == [10, 11, 12]  # flat: never the history
    doc = json.loads((tmp_path / "run" / "odm" / "domain_weights.json").read_text())
    np.testing.assert_array_equal(list(doc["weights"].values()), w[-1])
    assert doc["extra"]["method"] == "odm" and doc["extra"]["updates"] == 10
    assert tr.curriculum.result()["weights"] == w[-1].tolist()


def test_odm_resume_is_exact_and_cuts_the_crashed_timeline(tmp_path, odm):
    full, full_tap = odm(tmp_path / "full")
    part, part_tap = odm(tmp_path / "part", stop_at=8, save_strategy="steps", save_steps=3)  # crashes after step 8
    rest, rest_tap = odm(tmp_path / "part", resume=str(tmp_path / "part" / "checkpoint-6"), save_strategy="steps",
                         save_steps=3)
    assert part_tap.batches[:12] + rest_tap.batches == full_tap.batches  # 6 steps x 2 micro-batches, then the rest
    np.testing.assert_allclose(part_tap.losses[:12] + rest_tap.losses, full_tap.losses, rtol=0, atol=1e-6)
    history = [read_weights_history(tmp_path / r / "odm" / "weights_history.parquet") for r in ("full", "part")]
    for key in ("step", "weights", "reward"):  # rows 7 and 8 of the crashed timeline were cut, then re-logged
        np.testing.assert_array_equal(history[1][key], history[0][key])
    assert rest.curriculum.result() == full.curriculum.result()
    for key, value in full.curriculum.rule.state_dict().items():
        np.testing.assert_array_equal(rest.curriculum.rule.state_dict()[key], value)


def test_odm_two_processes_hold_identical_state_and_streams_and_resume_exactly(
        tmp_path, online_mixer_on_two_processes):
    runs = online_mixer_on_two_processes(tmp_path, "odm")
    r0, r1 = runs
    assert r0["world"] == r1["world"] == 2 and len(r0["history"]) == 8 and len(r0["stream"]) == 8
    assert r0["history"] == r1["history"] and r0["stream"] == r1["stream"]  # bit-identical on both ranks
    assert r0["history"][-1]["state"]["odm_updates"] == 6  # the rule ran (warm-up 2)
    resumed = online_mixer_on_two_processes(tmp_path, "odm", 8, tmp_path / "odm" / "checkpoint-4")[0]
    assert resumed["history"] == r0["history"][4:] and resumed["stream"] == r0["stream"][4:]
    assert resumed["final"] == r0["final"]


def test_lfr_runs_over_the_weights_file_a_finished_odm_run_wrote(tmp_path, odm, blocks, loss_tap, per_step, targs,
                                                                 tiny_gpt2, assert_counts_follow):
    odm(tmp_path / "odm-run")
    path = tmp_path / "odm-run" / "odm" / "domain_weights.json"
    weights = np.array(list(json.loads(path.read_text())["weights"].values()))
    config = LFRConfig.from_dict({"phases": [{"kind": "learn", "epochs": 1}, {"kind": "focus", "drop_percent": 50}],
                                  "mixture": str(path)})
    tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path / "lfr", curriculum=config), train_dataset=blocks())
    tap = loss_tap(tr)
    tr.train()
    steps = per_step(tap)
    assert len(steps) == 6 + 3  # the plan's steps: learn 96 / 16, focus 48 / 16
    for ids in steps[:6]:  # learn: ODM's proportions in every batch
        assert_counts_follow(ids, weights)
    np.testing.assert_array_equal(tr.curriculum.mixture, weights)  # read from the file, exactly
    run = json.loads((tmp_path / "lfr" / "run.json").read_text())
    assert run["curriculum"]["mixture"] == str(path)


def test_odm_recipe_holds_the_papers_defaults_and_errors_name_the_fix():
    config = load_recipe("odm")
    assert config == ODMConfig() and (config.smoothing, config.warmup_steps, config.update_frequency) == (0.5, 2000, 1)
    assert config.initial == "token_proportional"
    with pytest.raises(ConfigError, match=r"smoothing=1\.0 must be a number in \[0, 1\)"):
        ODMConfig(smoothing=1.0)
    with pytest.raises(ConfigError, match="warmup_steps=-1 must be an integer >= 0"):
        load_recipe({"method": "odm", "warmup_steps": -1})
    with pytest.raises(ConfigError, match="update_frequency=0 must be an integer >= 1"):
        ODMConfig(update_frequency=0)
    with pytest.raises(ConfigError, match="delay=0 must be a positive integer"):
        ODMConfig(delay=0)
    assert ODMConfig().with_domain_weights([0.2, 0.3, 0.5]).initial == [0.2, 0.3, 0.5]

