"""The card Trainer's push_to_hub uploads: curricula's, with configuration, results (model-index) and no token."""

import json

import yaml

from hf_trainer_ext import CurriculumTrainer
from test_trainer import blocks, plan_file, targs, tiny_gpt2


def test_trainer_card_has_config_results_and_no_token(tmp_path):
    secret = "hf_" + "s3cr3t" * 6
    plan = plan_file(tmp_path, "phases: [{kind: learn, epochs: 1}, {kind: focus, drop_percent: 50, epochs: 1}]")
    out = tmp_path / "run"
    tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(out, curriculum=plan, hub_token=secret, hub_model_id="me/run"),
                           train_dataset=blocks())
    tr.train()
    tr.save_model()
    config = json.loads((out / "training_config.json").read_text())
    assert config["curriculum"] == plan and secret not in (out / "training_config.json").read_text()
    (out / "eval_results.json").write_text(json.dumps({"tasks": {
        "codeline": {"kind": "multiple_choice", "n": 200, "accuracy": 0.38, "accuracy_norm": 0.415}}}))
    tr.create_model_card()
    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "transformers" and "curricula" in front["tags"]
    result = front["model-index"][0]["results"][0]
    assert result["dataset"]["name"] == "codeline" and result["metrics"][0]["value"] == 0.38
    assert "## Training configuration" in card and "## Zero-shot results" in card and "learn" in card
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md", ".jsonl"):
            assert secret not in path.read_text(errors="ignore"), path
