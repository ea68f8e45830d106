"""Continual pretraining's runner (``hf_trainer_ext/pipelines/continual.py``): seen-only replay, stages in order and
variants branching, the union reference, one infinite schedule across stages, a pretrained model's own data, a model
with another tokenizer refused, input folders left untouched. The two-process replay stream is in
tests/integration/test_distributed.py; the recipe's checks in tests/curricula/methods/continual/test_pipeline.py."""

import numpy as np
import pytest

from curricula.methods import ContinualRecipe
from hf_trainer_ext.pipelines.continual import _stage_data, run_continual, run_union

TRAINING = {"per_device_train_batch_size": 8, "disable_tqdm": True, "logging_steps": 2, "use_cpu": True}


def recipe(root, **kw):
    stages = kw.pop("stages", [{"name": "en", "packed": str(root / "packed-en"), "steps": 4},
                               {"name": "de", "packed": str(root / "packed-de"), "steps": 4, "replay": 0.25}])
    return ContinualRecipe.from_dict({"stages": stages, "model": {"n_layer": 1, "n_embd": 32, "n_head": 2},
                                     "eval_every": 2, "max_eval_blocks": 16,
                                     "training": {"per_device_train_batch_size": 8, "disable_tqdm": True}, **kw})


def test_seen_only_replay_never_draws_an_unseen_block(two_stages):
    from hf_trainer_ext.pipelines.continual import _load_stages

    r = recipe(two_stages)
    data = _load_stages(r)
    seen_en = np.array([1, 5, 9, 12])  # rows of stage 0 that stage 0 trained on
    combined, new_pool, replay_pool = _stage_data(data, 1, [seen_en, None], seen_only=True)
    assert len(replay_pool) == 4 and len(new_pool) == len(data[1]["train"])
    replayed = np.asarray(combined.select(replay_pool.tolist())["input_ids"])
    np.testing.assert_array_equal(replayed, np.asarray(data[0]["train"].select(seen_en.tolist())["input_ids"]))
    _, _, every = _stage_data(data, 1, [seen_en, None], seen_only=False)
    assert len(every) == len(data[0]["train"])


def test_stages_run_in_order_and_variants_branch(two_stages, tmp_path):
    result = run_continual(recipe(two_stages, variants={"replay": [0.0, 0.25]}), tmp_path)
    assert [s["stage"] for s in result["stages"]] == ["en"]
    assert [v["replay"] for v in result["last_stage_variants"]] == [0.0, 0.25]
    for v in result["last_stage_variants"]:
        assert set(v["before"]) >= {"eval_en_loss", "eval_de_loss"} and set(v["after"]) >= {"eval_en_loss", "eval_de_loss"}
    # both variants start from the same end-of-en model
    assert result["last_stage_variants"][0]["before"] == result["last_stage_variants"][1]["before"]
    assert result["last_stage_variants"][0]["before"]["eval_en_loss"] == pytest.approx(result["stages"][0]["after"]["eval_en_loss"])
    assert (tmp_path / "continual.png").stat().st_size > 5000 and (tmp_path / "continual.json").is_file()


def test_union_reference_trains_from_scratch_on_every_stage_at_their_step_shares(two_stages, tmp_path):
    r = recipe(two_stages, stages=[{"name": "en", "packed": str(two_stages / "packed-en"), "steps": 6},
                                   {"name": "de", "packed": str(two_stages / "packed-de"), "steps": 2}])
    res = run_union(r, tmp_path)
    assert res["steps"] == 8 and res["replay"] == pytest.approx(0.75)  # 6 of 8 steps' worth of en, all at once
    assert res["schedule"] == {"type": "warmup_cosine", "max_lr": r.max_lr, "total_steps": 8}
    # from scratch: before training, both languages are at an untrained model's loss (about ln(vocab 300) = 5.7)
    assert all(abs(v - np.log(300)) < 0.5 for v in res["before"].values())
    assert all(res["after"][k] < res["before"][k] for k in ("eval_en_loss", "eval_de_loss"))
    assert (tmp_path / "union.json").is_file() and (tmp_path / "union" / "model.safetensors").is_file()


def test_one_infinite_schedule_runs_across_stages(two_stages, tmp_path):
    """The recipe's ``infinite:`` schedule spans both stages (offset by the earlier stages' steps); its JSON is longer
    than a file name may be, which once crashed argument parsing."""
    infinite = {"constant_lr": 6e-4, "min_lr": 2e-4, "warmup_steps": 1, "cooldown_steps": 3, "cooldown": "cosine",
                "anneal": "exponential", "anneal_steps": 2, "anneal_start": 6, "max_steps": 8}
    import json

    from curricula.methods import stage_schedule

    assert len(json.dumps(stage_schedule(recipe(two_stages, infinite=infinite), 1))) > 255
    result = run_continual(recipe(two_stages, max_lr=2e-3, infinite=infinite), tmp_path)
    second = result["last_stage_variants"][0]["schedule"]
    assert second["type"] == "offset" and second["offset"] == 4 and second["schedule"]["anneal_start"] == 6
    from curricula.optim.schedules import schedule_from_dict

    sched = schedule_from_dict(second)
    assert sched.lr(0) == pytest.approx(6e-4)  # global step 4: constant phase, no re-warm at the switch
    assert sched.lr(3) == pytest.approx(6e-4 * (2e-4 / 6e-4) ** 0.5)  # global step 7: halfway through the anneal


def test_a_pretrained_models_own_data_is_replayed_and_evaluated_but_not_trained(two_stages, tmp_path):
    """``steps: 0`` stands for what a pretrained model already knows: the next stage starts from the model itself
    (no AdamW state), replays every block of that data and evaluates it, before and after."""
    from curricula.data.packed import PackedData
    from hf_trainer_ext.pipelines.continual import SEEN
    from hf_trainer_ext.reference import model_for_data, save_tokenizer_folder

    model_dir = tmp_path / "pretrained"  # a "pretrained" model folder: a GPT-2 for the data, with its tokenizer
    model_for_data(PackedData.load(two_stages / "packed-en").meta, seed=3, n_layer=1, n_embd=32,
                   n_head=2).save_pretrained(model_dir)
    save_tokenizer_folder(str(two_stages / "bpe"), model_dir)
    stages = [{"name": "en", "packed": str(two_stages / "packed-en"), "steps": 0},
              {"name": "de", "packed": str(two_stages / "packed-de"), "steps": 4, "replay": 0.5}]
    result = run_continual(recipe(two_stages, stages=stages, model_name_or_path=str(model_dir)), tmp_path / "out")
    assert result["stages"] == [{"stage": "en", "replay": 0.0, "steps": 0, "trained": False, "curve": []}]
    assert not (tmp_path / "out" / "en").exists()  # nothing trained, nothing saved for it
    (variant,) = result["last_stage_variants"]
    assert set(variant["before"]) >= {"eval_en_loss", "eval_de_loss"}
    # "before" is the pretrained model itself
    import torch
    from transformers import AutoModelForCausalLM

    from hf_trainer_ext.pipelines.continual import _load_stages

    data = _load_stages(recipe(two_stages, stages=stages, model_name_or_path=str(model_dir)))
    ids = torch.as_tensor(np.asarray(data[0]["validation"]["input_ids"])).long()
    with torch.inference_mode():
        own = AutoModelForCausalLM.from_pretrained(model_dir).eval()(input_ids=ids, labels=ids).loss.item()
    assert variant["before"]["eval_en_loss"] == pytest.approx(own, rel=1e-4)
    # the replay pool is every en block (nothing says which ones the model saw), and half of every batch is replayed:
    # de trained on at most 4 steps x 4 of its own blocks
    _, _, pool = _stage_data(data, 1, [None, None], seen_only=True)
    assert len(pool) == len(data[0]["train"])
    assert len(np.load(tmp_path / "out" / "de-replay50" / SEEN)) <= 16


def test_model_with_another_tokenizer_is_refused(two_stages, tmp_path, tiny_gpt2):
    from hf_trainer_ext.reference import ReferenceMismatchError

    tiny_gpt2().save_pretrained(tmp_path / "m")
    from curricula.data.tokenizers import gpt2_files
    import shutil

    vb, ej = gpt2_files()  # a GPT-2 tokenizer folder: not the data's 300-token BPE
    shutil.copy(ej, tmp_path / "m" / "vocab.json")
    shutil.copy(vb, tmp_path / "m" / "merges.txt")
    from transformers import GPT2TokenizerFast

    GPT2TokenizerFast.from_pretrained(str(tmp_path / "m")).save_pretrained(str(tmp_path / "m"))
    with pytest.raises(ReferenceMismatchError, match="token ids would not mean the same thing"):
        run_continual(recipe(two_stages, model_name_or_path=str(tmp_path / "m")), tmp_path / "out")


def test_continual_writes_nothing_into_its_input_folders(two_stages, tmp_path):
    from curricula.methods import ContinualRecipe
    from hf_trainer_ext.pipelines.continual import run_continual

    inputs = [two_stages / "packed-en", two_stages / "packed-de"]
    before = {p: sorted(x.relative_to(p) for x in p.rglob("*")) for p in inputs}
    recipe = ContinualRecipe.from_dict({
        "model": {"n_layer": 1, "n_embd": 32, "n_head": 2}, "eval_every": 2, "max_eval_blocks": 8, "training": TRAINING,
        "stages": [{"name": "en", "packed": str(inputs[0]), "steps": 2},
                   {"name": "de", "packed": str(inputs[1]), "steps": 2, "replay": 0.25}]})
    run_continual(recipe, tmp_path / "out")
    assert {p: sorted(x.relative_to(p) for x in p.rglob("*")) for p in inputs} == before  # no cache-*.arrow there
