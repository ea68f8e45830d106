"""The continual recipe (``curricula/methods/continual/pipeline.py``): stages and their replay fractions, known
(pretrained) stages, stage names that must be folder names. The runner's tests are in
tests/hf_trainer_ext/pipelines/test_continual.py."""

import pytest

from curricula.methods import ContinualError, ContinualRecipe, Stage


@pytest.mark.parametrize("replay", [-0.1, 1.0, 1.5])
def test_replay_fraction_outside_range(replay):
    with pytest.raises(ContinualError, match=r"must be in \[0, 1\)"):
        Stage("de", "x", 10, replay=replay)


def test_stage_with_negative_steps():
    with pytest.raises(ContinualError, match="stage 'de' has steps=-1; give every stage a number of steps >= 0"):
        Stage("de", "x", -1)


@pytest.mark.parametrize("steps, model, match", [
    ([0, 4], None, "set model_name_or_path to the pretrained model"),
    ([4, 0], "m", "must all come before the first trained stage, and the last stage must train"),
    ([0, 0], "m", "the last stage must train"),
])
def test_known_stages_only_first_and_only_with_a_pretrained_model(steps, model, match):
    stages = [{"name": n, "packed": "x", "steps": k} for n, k in zip(("en", "de"), steps)]
    with pytest.raises(ContinualError, match=match):
        ContinualRecipe.from_dict({"stages": stages, "model_name_or_path": model})


def test_stage_names_cannot_leave_the_output_folder():
    from curricula.methods import ContinualError, Stage

    for bad in ("../../x", "a/b", ".hidden", ""):
        with pytest.raises(ContinualError, match="cannot be a folder name under --out"):
            Stage(bad, "p", 3)
