"""LFR on the seam (``curricula/methods/lfr/method.py``): over a weighted mixture it keeps the proportions and drops
exactly the focus blocks; ``--domain_weights`` composes with the recipe; a focus that empties a domain warns."""

import json

import numpy as np
import pytest

from curricula.errors import ConfigError
from curricula.methods import LFRConfig
from curricula.methods.lfr.policy import select_focus
from hf_trainer_ext import CurriculumTrainer

DOM = np.repeat([0, 1, 2], 32)  # the domains of the blocks fixture
WEIGHTS = np.array([0.5, 0.3, 0.2])


PLAN = {"phases": [{"kind": "learn", "epochs": 1}, {"kind": "focus", "drop_percent": 50, "epochs": 2}]}


def test_lfr_over_weights_keeps_the_proportions_and_drops_exactly_the_focus_blocks(tmp_path, assert_counts_follow,
                                                                                   blocks, loss_tap, per_step, targs,
                                                                                   tiny_gpt2):
    config = LFRConfig.from_dict(PLAN).with_domain_weights(WEIGHTS.tolist())
    tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path / "run", curriculum=config), train_dataset=blocks())
    tap = loss_tap(tr)
    decided = []
    finish = tr.finish_epoch

    def record():
        finish()
        if tr.curriculum.epoch == 1:  # just decided from the learn epoch's losses (the decision sets only eligible)
            decided.append((select_focus(tr.curriculum.table, 50), tr.curriculum.table.eligible.copy()))

    tr.finish_epoch = record
    tr.train()
    steps = per_step(tap)
    assert len(steps) == 6 + 3 + 3  # learn 96/16; each focus epoch 48/16: the plan's steps, mixture or not
    for ids in steps[:6]:  # learn: every domain in the mixture's proportions, every batch
        assert_counts_follow(ids, WEIGHTS)
    (kept, report), kept_mask = decided[0]
    np.testing.assert_array_equal(np.flatnonzero(kept_mask), kept)  # the focus kept exactly select_focus's blocks
    dropped = np.setdiff1d(np.arange(96), kept)
    assert report.n_dropped == len(dropped) > 0
    focus_ids = np.concatenate(steps[6:])
    assert not np.isin(focus_ids, dropped).any()  # no dropped block is ever trained in the focus phase
    remaining = np.array([np.isin(np.flatnonzero(DOM == d), kept).any() for d in range(3)])
    w = np.where(remaining, WEIGHTS, 0) / np.where(remaining, WEIGHTS, 0).sum()
    for ids in steps[6:]:  # the mixture keeps its weights over what the focus left
        assert_counts_follow(ids, w)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["method"] == "lfr" and run["curriculum"]["mixture"] == WEIGHTS.tolist()


def test_domain_weights_flag_composes_with_an_lfr_recipe(tmp_path, targs):
    args = targs(tmp_path, curriculum="lfr", domain_weights="[0.5, 0.3, 0.2]")
    assert isinstance(args.curriculum_config, LFRConfig) and args.curriculum_config.mixture == [0.5, 0.3, 0.2]
    with pytest.raises(ConfigError, match="already runs over the mixture"):
        targs(tmp_path, curriculum="lfr_doremi", domain_weights="uniform")


def test_a_focus_that_empties_a_domain_warns():
    from curricula.methods import DataInfo, LFRConfig, RunInfo

    dom = np.repeat([0, 1, 2], 32)
    cur = LFRConfig.from_dict({"phases": [{"kind": "learn"}, {"kind": "focus", "drop_percent": 40}]}).build(
        DataInfo(dom, ["easy", "half", "random"]), RunInfo(16, None, 0))
    cur.start_epoch(0)
    cur.table.update(np.arange(96), np.where(dom == 0, 0.1, 3.0) + np.arange(96) * 1e-3, 0)  # "easy" is easiest
    report = cur.start_epoch(1)
    assert report.event["kept_per_domain"]["0"] == 0
    assert report.warnings == ["focus at epoch 1 drops every block of domain 'easy' (its blocks are all among the 40 % "
                               "lowest perplexities); it is not trained until the next review"]
    assert report.metrics["curriculum/kept_share/easy"] == 0.0
