"""DoReMi in one run (``curricula/methods/doremi/online.py``): the weights update every step from the excess loss and
drive sampling, exact resume, a loader that reads too far ahead, the reference and tokenizer it needs. Its two-process
run is in tests/integration/test_distributed.py."""

import json

import numpy as np
import pytest

from curricula.errors import ConfigError, CurriculaError
from curricula.methods import DoReMiOnlineConfig
from curricula.methods.doremi.update import DoReMiConfig, GroupDROWeights
from curricula.methods.online import read_weights_history
from hf_trainer_ext import CurriculumTrainer

IDENTITY = {"name": "synthetic", "vocab_sha256": "0" * 64}  # the reference fixture's tokenizer identity


@pytest.fixture(scope="module")
def cache(reference):
    """The reference's cached losses."""
    return reference[1]


@pytest.fixture
def online(blocks, loss_tap, targs, tiny_gpt2):
    """``online(out, cache, steps=8, config={}, **args)``: a one-run DoReMi trainer and its loss tap."""

    def make(out, cache, steps=8, **kw):
        config = DoReMiOnlineConfig(smoothing=0.1, **kw.pop("config", {}))
        args = targs(out, max_steps=steps, **kw)
        tr = CurriculumTrainer(model=tiny_gpt2(dropout=0.0, seed=2), args=args, train_dataset=blocks(),
                               curriculum=config, reference_losses=cache, tokenizer_identity=IDENTITY)
        return tr, loss_tap(tr)

    return make


def test_online_weights_update_every_step_from_the_excess_loss_and_drive_sampling(cache, tmp_path, assert_counts_follow,
                                                                                  online, per_step):
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


def test_online_resume_is_exact(cache, tmp_path, online):
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


def test_online_refuses_a_loader_that_reads_further_ahead_than_its_delay(cache, tmp_path, online):
    tr, _ = online(tmp_path, cache, config={"delay": 1})
    cur = tr.curriculum
    batches = cur.batches(0)
    next(batches), next(batches)  # batches 0 and 1 use the initial weights
    with pytest.raises(CurriculaError, match="reads further ahead than delay=1"):
        next(batches)  # batch 2 needs the weights after step 1, which has not been observed


def test_online_needs_a_reference_and_a_tokenizer(tmp_path, blocks, targs, tiny_gpt2):
    args = targs(tmp_path, max_steps=2)
    with pytest.raises(ConfigError, match="needs exactly one reference"):
        CurriculumTrainer(model=tiny_gpt2(), args=args, train_dataset=blocks(), curriculum=DoReMiOnlineConfig(),
                          tokenizer_identity=IDENTITY)
    with pytest.raises(ConfigError, match="needs the packed data's tokenizer identity"):
        CurriculumTrainer(model=tiny_gpt2(), args=args, train_dataset=blocks(), curriculum=DoReMiOnlineConfig())
