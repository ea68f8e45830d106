"""Continual pretraining: compute-equivalent replay with exact counts, seen-only replay, stages, bad input."""

import numpy as np
import pytest

from curricula.methods import DataInfo, ReplayConfig, RunInfo
from curricula.methods import ContinualError, ContinualRecipe, Stage
from hf_trainer_ext.pipelines.continual import _stage_data, run_continual, run_union


def replay_stream(n_new, n_old, x, batch, steps, seed):
    data = DataInfo(np.zeros(n_new + n_old, dtype=np.int64), ['d'])
    cur = ReplayConfig(replay=x, new_rows=n_new, seed=seed).build(data, RunInfo(batch, steps, 0))
    return np.concatenate(list(cur.batches(0)))


@pytest.fixture(scope="module")
def two_stages(tmp_path_factory):
    from curricula.data.corpus import write_corpus
    from curricula.data.pack import PackConfig, pack_corpus
    from curricula.data.tokenizers import train_bpe
    from test_pack import synthetic_docs

    root = tmp_path_factory.mktemp("cont")
    d0 = synthetic_docs(n_per_domain=40, domains=("code", "prose"), seed=0)
    d1 = [{**d, "domain": "german", "doc_id": "de/" + d["doc_id"], "text": d["text"].upper()}
          for d in synthetic_docs(n_per_domain=60, domains=("x",), seed=1)]
    train_bpe([d["text"] for d in d0 + d1], root / "bpe", vocab_size=300)
    for name, docs in (("en", d0), ("de", d1)):
        write_corpus(docs, root / name, val_fraction=0.1)
        pack_corpus(root / name, root / f"packed-{name}", PackConfig(tokenizer=str(root / "bpe"), block_size=64))
    return root


def recipe(root, **kw):
    stages = kw.pop("stages", [{"name": "en", "packed": str(root / "packed-en"), "steps": 4},
                               {"name": "de", "packed": str(root / "packed-de"), "steps": 4, "replay": 0.25}])
    return ContinualRecipe.from_dict({"stages": stages, "model": {"n_layer": 1, "n_embd": 32, "n_head": 2},
                                     "eval_every": 2, "max_eval_blocks": 16,
                                     "training": {"per_device_train_batch_size": 8, "disable_tqdm": True}, **kw})


def test_every_batch_has_the_exact_number_of_replay_blocks():
    for x in (0.05, 0.25):
        stream = replay_stream(1000, 200, x, 16, 200, seed=3)
        per_batch = (stream.reshape(200, 16) >= 1000).sum(1)
        assert set(per_batch) <= {int(np.floor(16 * x)), int(np.ceil(16 * x))}  # 0/1 at 5 %, exactly 4 at 25 %
        cum = np.cumsum(per_batch) - 16 * x * np.arange(1, 201)
        assert np.all(np.abs(cum) < 1)  # rounding carried across batches
    zero = replay_stream(1000, 200, 0.0, 16, 50, seed=3)
    assert zero.max() < 1000


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


def test_model_with_another_tokenizer_is_refused(two_stages, tmp_path):
    from hf_trainer_ext.reference import ReferenceMismatchError
    from test_trainer import tiny_gpt2

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


def test_two_ranks_share_one_replay_stream(two_stages, tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(Path(__file__).parent / "dist_replay_run.py"), str(tmp_path),
           str(two_stages / "packed-en"), str(two_stages / "packed-de")]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == 2 and r0["stream"] == r1["stream"]  # the identical stream on every rank
    stream = np.array(r0["stream"]).reshape(10, 16)
    # each rank's micro-batches are its shard of the stream: together, every global batch exactly once
    got = np.array(r0["rows"] + r1["rows"])
    assert sorted(got.reshape(-1).tolist()) == sorted(stream.reshape(-1).tolist())
    assert not set(map(tuple, r0["rows"])) & set(map(tuple, r1["rows"]))
    assert np.all((stream >= r0["n_new"]).sum(1) == 4)  # 25 % of 16 replayed in every global batch
