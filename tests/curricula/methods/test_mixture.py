"""Fixed domain mixtures (``curricula/methods/mixture.py``) through the trainer: exact per-step domain counts, the
recipe equal to ``--domain_weights``, bad weights refused."""

import numpy as np
import pytest

from curricula.methods import MixtureConfig
from curricula.mixing.mixer import MixingError
from hf_trainer_ext import CurriculumTrainer


def test_mixture_recipe_is_the_same_as_the_domain_weights_flag(tmp_path, blocks, targs, tiny_gpt2):
    a = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path / "a", max_steps=3, domain_weights="[0.5, 0.3, 0.2]"),
                          train_dataset=blocks())
    b = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path / "b", max_steps=3),
                          curriculum=MixtureConfig(weights=[0.5, 0.3, 0.2]), train_dataset=blocks())
    assert list(iter(a.curriculum_sampler())) == list(iter(b.curriculum_sampler()))


def test_each_step_draws_exact_domain_counts(tmp_path, blocks, loss_tap, targs, tiny_gpt2):
    tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, max_steps=6, domain_weights="[0.5, 0.3, 0.2]"),
                           train_dataset=blocks())
    tap = loss_tap(tr)
    tr.train()
    dom = np.repeat([0, 1, 2], 32)
    per_step = [np.concatenate(tap.batches[i : i + 2]) for i in range(0, len(tap.batches), 2)]  # GA 2
    residual = np.zeros(3)
    for ids in per_step:  # 16 blocks per step: 8 / 4.8 / 3.2, rounding carried across steps
        counts = np.bincount(dom[ids], minlength=3)
        assert counts.sum() == 16
        assert np.all(np.abs(counts - 16 * np.array([0.5, 0.3, 0.2])) < 1)
        residual += counts - 16 * np.array([0.5, 0.3, 0.2])
        assert np.all(np.abs(residual) < 1)


@pytest.mark.parametrize("weights, message", [("[0.5, 0.3, 0.3]", "sum"), ("[1.2, -0.1, -0.1]", "negative")])
def test_bad_weights_are_refused(tmp_path, weights, message, blocks, targs, tiny_gpt2):
    with pytest.raises(MixingError, match=message):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, max_steps=2, domain_weights=weights),
                          train_dataset=blocks())
