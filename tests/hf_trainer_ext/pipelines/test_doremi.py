"""DoReMi on the trainer: cached = live reference, identical weights on 2 ranks, exact resume, exact batch counts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from curricula.mixing.mixer import MixingError
from hf_trainer_ext import CurriculumDataError, CurriculumTrainer
from curricula.methods import GroupDROConfig
from curricula.methods.online import read_weights_history
from hf_trainer_ext.reference import ReferenceMismatchError, ReferenceLosses, score_reference
from test_trainer import LossTap, blocks, targs, tiny_gpt2

IDENTITY = {"name": "synthetic", "vocab_sha256": "0" * 64}
NAMES = ["easy", "half", "random"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    model = tiny_gpt2(dropout=0.0, seed=1)
    CurriculumTrainer(model=model, args=targs(out / "run", max_steps=6, domain_weights="uniform"),
                      train_dataset=blocks()).train()
    score_reference(model, blocks(), out / "cache", batch_size=16, tokenizer_identity=IDENTITY)
    return model, out / "cache"


def proxy(tmp_path, **kw):
    args = targs(tmp_path, max_steps=kw.pop("max_steps", 8), **kw.pop("args", {}))
    return CurriculumTrainer(model=tiny_gpt2(dropout=0.0, seed=2), args=args, train_dataset=blocks(), curriculum=GroupDROConfig(),
                              domain_names=NAMES, tokenizer_identity=IDENTITY, **kw)


def test_cached_and_live_reference_give_the_same_weights(reference, tmp_path):
    model, cache = reference
    cached = proxy(tmp_path / "cached", reference_losses=cache)
    cached.train()
    live = proxy(tmp_path / "live", reference_model=model)
    live.train()
    hist = {r: read_weights_history(tmp_path / r / "doremi" / "weights_history.parquet") for r in ("cached", "live")}
    np.testing.assert_allclose(hist["cached"]["weights"], hist["live"]["weights"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(cached.curriculum.dro.average, live.curriculum.dro.average, rtol=0, atol=1e-9)
    assert len(hist["cached"]["step"]) == 8 and not np.allclose(cached.curriculum.dro.average, 1 / 3)  # they moved
    doc = json.loads((tmp_path / "cached" / "doremi" / "domain_weights.json").read_text())
    assert doc["tokenizer"]["vocab_sha256"] == IDENTITY["vocab_sha256"]
    assert (tmp_path / "cached" / "doremi" / "domain_weights.png").stat().st_size > 5000


def test_cached_losses_equal_the_reference_forward(reference):
    model, cache = reference
    ds = blocks()
    cached = ReferenceLosses(cache, len(ds), 32).take(np.arange(5))
    with torch.no_grad():
        x = torch.tensor(np.asarray(ds.with_format("numpy")[:5]["input_ids"]), dtype=torch.long)
        logp = torch.log_softmax(model(input_ids=x).logits.float(), -1)
        expected = -logp[:, :-1].gather(-1, x[:, 1:, None]).squeeze(-1)
    np.testing.assert_allclose(cached[:, :-1], expected.numpy(), rtol=1e-5, atol=1e-5)
    assert np.all(cached[:, -1] == 0)


def test_each_step_draws_exact_domain_counts(tmp_path):
    tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, max_steps=6, domain_weights="[0.5, 0.3, 0.2]"),
                           train_dataset=blocks())
    tap = LossTap(tr)
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
def test_bad_weights_are_refused(tmp_path, weights, message):
    with pytest.raises(MixingError, match=message):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, max_steps=2, domain_weights=weights),
                          train_dataset=blocks())


def test_weights_need_domain_ids(tmp_path):
    with pytest.raises(CurriculumDataError, match="method 'mixture' needs training data with block_id and domain_id"):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, max_steps=2, domain_weights="uniform"),
                          train_dataset=blocks().remove_columns(["domain_id"]))


def test_reference_with_another_tokenizer_is_refused(reference, tmp_path):
    _, cache = reference
    other = {"name": "gpt2", "vocab_sha256": "f" * 64}
    with pytest.raises(ReferenceMismatchError, match="token ids would not mean the same thing"):
        ReferenceLosses(cache, 96, 32, tokenizer_identity=other)
    with pytest.raises(ReferenceMismatchError, match="cover 96 blocks of 32 tokens"):
        ReferenceLosses(cache, 90, 32)


def _torchrun(out, cache, *extra):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(Path(__file__).parent / "dist_doremi_run.py"), str(out), str(cache),
           *map(str, extra)]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_two_ranks_hold_identical_weights_and_resume_exactly(reference, tmp_path):
    _, cache = reference
    _torchrun(tmp_path, cache, 8)
    r0, r1 = (json.loads((tmp_path / f"weights-rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["history"] == r1["history"] and len(r0["history"]) == 8  # every step, bit-identical
    # resume in the middle (checkpoint at step 4) restores the weights and the running average exactly
    _torchrun(tmp_path, cache, 8, tmp_path / "proxy" / "checkpoint-4")
    resumed = json.loads((tmp_path / "weights-rank0-resumed.json").read_text())
    assert resumed["history"] == r0["history"][4:]
    assert resumed["average"] == r0["average"]


@pytest.fixture(scope="module")
def tiny_packed(tmp_path_factory):
    from curricula.data.corpus import write_corpus
    from curricula.data.pack import PackConfig, pack_corpus
    from curricula.data.tokenizers import train_bpe
    from test_pack import synthetic_docs

    root = tmp_path_factory.mktemp("tiny")
    docs = synthetic_docs(n_per_domain=80)
    write_corpus(docs, root / "corpus", val_fraction=0.1)
    train_bpe([d["text"] for d in docs], root / "bpe", vocab_size=300)
    pack_corpus(root / "corpus", root / "packed", PackConfig(tokenizer=str(root / "bpe"), block_size=64))
    return root / "packed"


def test_pipeline_iterates_rounds_and_trains_the_main_model(tiny_packed, tmp_path):
    from curricula.methods import DoReMiRecipe
    from hf_trainer_ext.pipelines.doremi import run_doremi

    recipe = DoReMiRecipe(rounds=2, reference_steps=4, proxy_steps=4, main_steps=4,
                          model={"n_layer": 1, "n_embd": 32, "n_head": 2}, max_eval_blocks=32,
                          training={"per_device_train_batch_size": 8, "disable_tqdm": True, "logging_steps": 1000})
    result = run_doremi(recipe, tiny_packed, tmp_path)
    assert [r["round"] for r in result["rounds"]] == [0, 1]
    assert result["rounds"][1]["reference_weights"] == result["rounds"][0]["weights"]  # round k → round k+1
    for r in result["rounds"]:
        assert abs(sum(r["weights"]) - 1) < 1e-9 and r["l1_change"] >= 0
    assert set(result["main_eval"]) >= {"eval_ppl_avg", "eval_ppl_worst", "eval_ppl/prose"}
    assert result["main_eval"]["eval_ppl_worst"] >= result["main_eval"]["eval_ppl_avg"]
    doc = json.loads((tmp_path / "domain_weights.json").read_text())
    assert doc["tokenizer"]["name"] and (tmp_path / "domain_weights_by_round.png").is_file()
    assert (tmp_path / "round1" / "reference_losses" / "reference_losses.arrow").is_file()


def test_pipeline_refuses_a_domain_missing_from_the_data(tiny_packed, tmp_path):
    from curricula.methods import DoReMiRecipe
    from hf_trainer_ext.pipelines.doremi import run_doremi

    with pytest.raises(ValueError, match=r"domain\(s\) \['web'\] are not in"):
        run_doremi(DoReMiRecipe(domains=["prose", "web"]), tiny_packed, tmp_path)


def test_reference_model_folder_with_another_tokenizer_is_refused(tmp_path):
    from curricula.data.tokenizers import train_bpe
    from test_pack import synthetic_docs

    folder = tmp_path / "ref"
    tiny_gpt2().save_pretrained(folder)
    train_bpe([d["text"] for d in synthetic_docs(n_per_domain=10)], folder, vocab_size=300)
    with pytest.raises(ReferenceMismatchError, match="the reference model .* token ids would not mean the same thing"):
        proxy(tmp_path / "run", reference_model=str(folder))
