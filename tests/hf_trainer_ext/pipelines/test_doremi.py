"""The DoReMi pipeline (``hf_trainer_ext/pipelines/doremi.py``): rounds of reference, proxy and weights, then the main
model; a domain missing from the data is refused."""

import json

import pytest


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
