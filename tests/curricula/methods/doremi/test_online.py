"""The seam: methods by name, LFR over a weighted mixture, DoReMi in one run (exact, resumable, identical on 2 ranks)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from curricula.methods.doremi.update import DoReMiConfig, GroupDROWeights
from curricula.methods.lfr.policy import select_focus
from curricula.errors import ConfigError, CurriculaError
from curricula.methods import (METHODS, DataInfo, DoReMiOnlineConfig, LFRConfig, MixtureConfig, RunInfo,
                               method_config)
from curricula.methods import load_recipe
from curricula.methods.online import read_weights_history
from curricula.recipes import bundled
from hf_trainer_ext import CurriculumTrainer
from hf_trainer_ext.reference import score_reference
from test_trainer import LossTap, blocks, targs, tiny_gpt2

IDENTITY = {"name": "synthetic", "vocab_sha256": "0" * 64}
DOM = np.repeat([0, 1, 2], 32)
WEIGHTS = np.array([0.5, 0.3, 0.2])


def per_step(tap, ga=2):
    return [np.concatenate(tap.batches[i : i + ga]) for i in range(0, len(tap.batches), ga)]


def assert_counts_follow(ids, weights, batch=16):
    counts = np.bincount(DOM[ids], minlength=len(weights))
    assert counts.sum() == batch
    quota = batch * np.asarray(weights)
    assert np.all((counts == np.floor(quota)) | (counts == np.ceil(quota))), (counts, quota)


# ---- registry and recipes -----------------------------------------------------------------------------------------


def test_every_bundled_recipe_loads_through_one_loader():
    for name in bundled():
        config = load_recipe(name)
        assert config is not None
    assert set(METHODS) >= {"lfr", "mixture", "replay", "group_dro", "doremi_online"}
    assert isinstance(load_recipe("lfr_doremi"), LFRConfig) and load_recipe("lfr_doremi").mixture is not None
    assert load_recipe("doremi_online").mode == "online"


def test_recipe_errors_name_the_fix():
    with pytest.raises(ConfigError, match=r"no bundled recipe 'lfx' \(did you mean 'lfr'\?\)"):
        load_recipe("lfx")
    with pytest.raises(ConfigError, match="unknown method 'lfq' .*registered methods: .*lfr"):
        method_config("lfq")
    with pytest.raises(ConfigError, match=r"mixture recipe: unknown key\(s\) \['weight'\]"):
        load_recipe({"method": "mixture", "weight": "uniform"})
    with pytest.raises(ConfigError, match="sample_from='latest'"):
        DoReMiOnlineConfig(sample_from="latest")
    assert issubclass(ConfigError, CurriculaError) and issubclass(CurriculaError, ValueError)


# ---- LFR over a weighted mixture ----------------------------------------------------------------------------------


PLAN = {"phases": [{"kind": "learn", "epochs": 1}, {"kind": "focus", "drop_percent": 50, "epochs": 2}]}


def test_lfr_over_weights_keeps_the_proportions_and_drops_exactly_the_focus_blocks(tmp_path):
    config = LFRConfig.from_dict(PLAN).with_domain_weights(WEIGHTS.tolist())
    tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path / "run", curriculum=config), train_dataset=blocks())
    tap = LossTap(tr)
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


def test_domain_weights_flag_composes_with_an_lfr_recipe(tmp_path):
    args = targs(tmp_path, curriculum="lfr", domain_weights="[0.5, 0.3, 0.2]")
    assert isinstance(args.curriculum_config, LFRConfig) and args.curriculum_config.mixture == [0.5, 0.3, 0.2]
    with pytest.raises(ConfigError, match="already runs over the mixture"):
        targs(tmp_path, curriculum="lfr_doremi", domain_weights="uniform")


def test_mixture_recipe_is_the_same_as_the_domain_weights_flag(tmp_path):
    a = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path / "a", max_steps=3, domain_weights="[0.5, 0.3, 0.2]"),
                          train_dataset=blocks())
    b = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path / "b", max_steps=3),
                          curriculum=MixtureConfig(weights=[0.5, 0.3, 0.2]), train_dataset=blocks())
    assert list(iter(a.curriculum_sampler())) == list(iter(b.curriculum_sampler()))


# ---- DoReMi in one run --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    model = tiny_gpt2(dropout=0.0, seed=1)
    CurriculumTrainer(model=model, args=targs(out / "run", max_steps=6, domain_weights="uniform"),
                      train_dataset=blocks()).train()
    score_reference(model, blocks(), out / "cache", batch_size=16, tokenizer_identity=IDENTITY)
    return out / "cache"


def online(out, cache, steps=8, **kw):
    config = DoReMiOnlineConfig(smoothing=0.1, **kw.pop("config", {}))
    args = targs(out, max_steps=steps, **kw)
    tr = CurriculumTrainer(model=tiny_gpt2(dropout=0.0, seed=2), args=args, train_dataset=blocks(), curriculum=config,
                           reference_losses=cache, tokenizer_identity=IDENTITY)
    return tr, LossTap(tr)


def test_online_weights_update_every_step_from_the_excess_loss_and_drive_sampling(cache, tmp_path):
    tr, tap = online(tmp_path / "run", cache)
    tr.train()
    cur = tr.curriculum
    hist = read_weights_history(tmp_path / "run" / "doremi" / "weights_history.parquet")
    assert list(hist["step"]) == list(range(1, 9))
    assert np.all(np.abs(np.diff(hist["weights"], axis=0)).sum(1) > 0)  # the weights move at every step
    assert np.all(hist["excess"] >= 0) and hist["excess"].max() > 0
    # the weights are exactly Group DRO's update of the per-step excess: recompute them from the recorded excess
    dro = GroupDROWeights(3, DoReMiConfig(eta=1.0, smoothing=0.1))
    for t in range(8):
        dro.update(hist["excess"][t] * 1000.0, np.full(3, 1000.0))
        np.testing.assert_allclose(dro.weights, hist["weights"][t], rtol=0, atol=1e-12)
    # each step's batch follows the weights of `delay` steps before (exact per-batch counts)
    assert cur.delay == 2
    for t, ids in enumerate(per_step(tap)):
        assert_counts_follow(ids, cur.initial if t < 3 else hist["weights"][t - 3])
    # the state holds only the weights the next batches need, never the history
    assert sorted(cur.state_dict()["recent_steps"].tolist()) == [6, 7, 8]  # batch 8 is drawn from step 6's
    doc = json.loads((tmp_path / "run" / "doremi" / "domain_weights.json").read_text())
    np.testing.assert_allclose(list(doc["weights"].values()), hist["average"][-1], rtol=0, atol=1e-15)
    assert doc["extra"]["method"] == "doremi_online" and doc["tokenizer"] == IDENTITY


def test_online_resume_is_exact(cache, tmp_path):
    full, full_tap = online(tmp_path / "full", cache)
    full.train()
    part, part_tap = online(tmp_path / "part", cache, save_strategy="steps", save_steps=4)
    from transformers import TrainerCallback

    class Stop(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            control.should_training_stop = state.global_step == 4

    part.add_callback(Stop())
    part.train()
    rest, rest_tap = online(tmp_path / "part", cache, save_strategy="steps", save_steps=4)
    rest.train(resume_from_checkpoint=str(tmp_path / "part" / "checkpoint-4"))
    assert part_tap.batches + rest_tap.batches == full_tap.batches
    np.testing.assert_allclose(part_tap.losses + rest_tap.losses, full_tap.losses, rtol=0, atol=1e-6)
    history = [read_weights_history(tmp_path / r / "doremi" / "weights_history.parquet") for r in ("full", "part")]
    for key in ("step", "weights", "average", "excess"):
        np.testing.assert_array_equal(history[1][key], history[0][key])  # the crashed timeline's rows were cut
    np.testing.assert_array_equal(rest.curriculum.dro.average, full.curriculum.dro.average)


def test_online_refuses_a_loader_that_reads_further_ahead_than_its_delay(cache, tmp_path):
    tr, _ = online(tmp_path, cache, config={"delay": 1})
    cur = tr.curriculum
    batches = cur.batches(0)
    next(batches), next(batches)  # batches 0 and 1 use the initial weights
    with pytest.raises(CurriculaError, match="reads further ahead than delay=1"):
        next(batches)  # batch 2 needs the weights after step 1, which has not been observed


def test_online_needs_a_reference_and_a_tokenizer(tmp_path):
    args = targs(tmp_path, max_steps=2)
    with pytest.raises(ConfigError, match="needs exactly one reference"):
        CurriculumTrainer(model=tiny_gpt2(), args=args, train_dataset=blocks(), curriculum=DoReMiOnlineConfig(),
                          tokenizer_identity=IDENTITY)
    with pytest.raises(ConfigError, match="needs the packed data's tokenizer identity"):
        CurriculumTrainer(model=tiny_gpt2(), args=args, train_dataset=blocks(), curriculum=DoReMiOnlineConfig())


def test_online_two_ranks_hold_identical_weights_and_streams_and_resume_exactly(cache, tmp_path):
    def run(*extra):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(Path(__file__).parent / "dist_doremi_run.py"), str(tmp_path), str(cache), *map(str, extra)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "DOREMI_METHOD": "online"}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    run(8)
    r0, r1 = (json.loads((tmp_path / f"weights-rank{r}-online.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2 and len(r0["history"]) == 8 and len(r0["stream"]) == 8
    assert r0["history"] == r1["history"] and r0["stream"] == r1["stream"]  # bit-identical on both ranks
    run(8, tmp_path / "online" / "checkpoint-4")
    resumed = json.loads((tmp_path / "weights-rank0-online-resumed.json").read_text())
    # the resumed run continues the stream at step 4 (nothing replayed) and learns the same weights
    assert resumed["history"] == r0["history"][4:] and resumed["stream"] == r0["stream"][4:]


# ---- the seam is small --------------------------------------------------------------------------------------------


def test_a_new_method_is_one_config_and_one_curriculum(tmp_path):
    """A method defined here, in a few lines, trains through the same trainer (the seam is the whole interface)."""
    from dataclasses import dataclass

    from curricula.methods import Curriculum, MethodConfig, register

    class EasyFirst(Curriculum):
        name = "easy_first"

        def epoch_steps(self):
            return [self.run.max_steps]

        def batches(self, epoch, start=0):
            order = np.argsort(self.data.domain_ids, kind="stable")  # domain 0 first
            for t in range(start, self.run.max_steps):
                yield np.resize(np.roll(order, -t * self.run.global_batch), self.run.global_batch)

    @dataclass
    class EasyFirstConfig(MethodConfig):
        def build(self, data: DataInfo, run: RunInfo):
            return EasyFirst(data, run)

    register("easy_first_test")(EasyFirstConfig)
    try:
        tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, max_steps=2, curriculum='{method: easy_first_test}'),
                               train_dataset=blocks())
        tap = LossTap(tr)
        tr.train()
        assert set(DOM[per_step(tap)[0]]) == {0}
        assert json.loads((tmp_path / "run.json").read_text())["method"] == "easy_first"
    finally:
        METHODS.pop("easy_first_test")


def test_loss_weights_hook_weights_each_domains_tokens(tmp_path):
    """Group DRO's hook: per-domain token weights alpha_d / p_d enter the backpropagated loss."""
    from curricula.methods import GroupDROConfig

    tr = CurriculumTrainer(model=tiny_gpt2(dropout=0.0), args=targs(tmp_path, max_steps=1), train_dataset=blocks(),
                           curriculum=GroupDROConfig(), reference_losses=None, reference_model=tiny_gpt2(seed=5),
                           tokenizer_identity=IDENTITY)
    tr._loss_weights = torch.tensor([3.0, 0.0, 0.0])
    batch = tr.data_collator(tr.train_dataset.__getitems__(list(range(0, 96, 6))))
    tr.model.train()
    loss = tr.compute_loss(tr.model, dict(batch))
    tr._loss_weights = None
    plain_on_domain0 = tr.compute_loss(tr.model, {k: v[batch["domain_id"] == 0] for k, v in batch.items()})
    share = float((batch["domain_id"] == 0).float().mean())
    assert float(loss) == pytest.approx(3.0 * share * float(plain_on_domain0), rel=1e-5)
