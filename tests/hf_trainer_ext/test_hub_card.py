"""The model card a live trainer writes (``hf_trainer_ext.hub.write_trainer_card``, what
``CurriculumTrainer.create_model_card`` calls): configuration and results and never the token; what Trainer's own
card has (the evaluation results and their table, the keywords given to ``create_model_card``); the plan's real
number of epochs; only the main process writes, atomically. The pure card is tested in
tests/curricula/report/test_card.py."""

import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from curricula.report.card import parse_log_history
from hf_trainer_ext import CurriculumTrainer
from hf_trainer_ext.hub import LR_PLOT, write_trainer_card


@pytest.fixture
def one_thread():
    """A 2-layer d=32 model gains nothing from 2 threads, and stalls (seconds per step) when the CPU is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("writer", ["create_model_card", "write_trainer_card"])
def test_trainer_card_has_config_results_and_no_token(tmp_path, one_thread, writer, blocks, plan_file, targs,
                                                      tiny_gpt2):
    """Through the trainer's create_model_card and through write_trainer_card (what it becomes a call of)."""
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
    if writer == "create_model_card":
        tr.create_model_card()
    else:
        write_trainer_card(tr)
    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "transformers" and "curricula" in front["tags"]
    result = front["model-index"][0]["results"][0]
    assert result["dataset"]["name"] == "codeline" and result["metrics"][0]["value"] == 0.38
    assert "## Training configuration" in card and "## Zero-shot results" in card and "learn" in card
    # Trainer's own schedule (linear), over the plan's 9 steps; too few logged LRs here for a plot
    assert "## Learning-rate schedule" in card and "`linear` (Trainer `lr_scheduler_type`)" in card
    assert "## Continual pretraining and replay" not in card and not (out / LR_PLOT).exists()
    for path in out.rglob("*"):  # training_args.bin too: push_to_hub() uploads it, even with push_to_hub=False
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert tr.args.hub_token == secret  # still there for push_to_hub()


# ---- Trainer's card, kept ----------------------------------------------------------------------------------------


FOUR_EPOCHS = ("name: four\nphases: [{kind: learn, epochs: 1}, {kind: focus, drop_percent: 50, epochs: 2}, "
               "{kind: review, epochs: 1}]")


KEYWORDS = dict(language="en", license="mit", tags=["my-tag"], model_name="tiny-four",
                finetuned_from="openai-community/gpt2", tasks="text-generation", dataset_tags="curricula/sample",
                dataset="curricula sample", dataset_args="en")


def _accuracy(p):
    """Next-token accuracy (a metric the Hub knows, so Trainer's card puts it in the model-index)."""
    pred, labels = p.predictions[:, :-1].argmax(-1), p.label_ids[:, 1:]
    return {"accuracy": float((pred == labels).mean())}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, blocks, plan_file, targs, tiny_gpt2):
    """A 4-epoch LFR plan (Trainer's num_train_epochs stays at its default 3.0) with 5 evaluations."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 2-layer d=32 model gains nothing from 2 threads and stalls when the CPU is busy
    try:
        tmp = tmp_path_factory.mktemp("card")
        plan = plan_file(tmp, FOUR_EPOCHS)
        tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp / "run", curriculum=plan, eval_strategy="steps",
                                                             eval_steps=4, logging_steps=2),
                               train_dataset=blocks(), eval_dataset=blocks(24, seed=1), compute_metrics=_accuracy)
        tr.train()
        tr.save_model()
        yield tr
    finally:
        torch.set_num_threads(threads)


def _front(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def _sections(card: str) -> dict[str, str]:
    out, title = {}, None
    for line in card.splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            out[title] = ""
        elif title is not None:
            out[title] += line + "\n"
    return out


def test_the_card_keeps_what_trainers_card_has(trained):
    from huggingface_hub import ModelCard
    from transformers.modelcard import TrainingSummary
    from transformers.modelcard import parse_log_history as hf_parse

    path = write_trainer_card(trained, **{k: (list(v) if isinstance(v, list) else v) for k, v in KEYWORDS.items()})
    assert path == Path(trained.args.output_dir) / "README.md"
    card = path.read_text()
    assert "{{" not in card
    meta = _front(card)
    theirs = TrainingSummary.from_trainer(trained, **{k: (list(v) if isinstance(v, list) else v)
                                                      for k, v in KEYWORDS.items()}).create_metadata()
    # every field of Trainer's front matter, with the same value (tags and model-index: a superset)
    for key, value in theirs.items():
        if key == "tags":
            assert set(value) <= set(meta["tags"]) and meta["tags"][:2] == ["curricula", "lfr"]
        elif key == "metrics":  # ours adds perplexity: the per-domain held-out result below
            assert meta["metrics"] == value + ["perplexity"]
        elif key == "model-index":
            assert meta["model-index"][0]["name"] == value[0]["name"] == "tiny-four"
            # Trainer adds {config: null, split: "None"} for an in-memory eval dataset (no builder): not kept
            for r in value[0]["results"]:
                r["dataset"] = {k: v for k, v in r["dataset"].items() if v not in (None, "None")}
            assert value[0]["results"] and all(r in meta["model-index"][0]["results"] for r in value[0]["results"])
        else:
            assert meta[key] == value, key
    assert meta["language"] == ["en"] and meta["license"] == "mit" and meta["base_model"] == "openai-community/gpt2"
    assert meta["datasets"] == ["curricula/sample"] and meta["metrics"] == ["accuracy", "perplexity"]
    result = meta["model-index"][0]["results"][0]
    final = [h for h in trained.state.log_history if "eval_loss" in h][-1]
    assert result["task"] == {"name": "Causal Language Modeling", "type": "text-generation"}
    assert result["dataset"] == {"name": "curricula sample", "type": "curricula/sample", "args": "en"}
    assert result["metrics"] == [{"name": "Accuracy", "type": "accuracy", "value": final["eval_accuracy"]}]
    assert ModelCard(card).data.eval_results[0].metric_value == final["eval_accuracy"]  # the Hub's own parser

    # the text: the keywords, the final results and every evaluation during training, as Trainer's table has them
    assert "fine-tuned version of [openai-community/gpt2](https://huggingface.co/openai-community/gpt2)" in card
    assert "on the curricula sample dataset (`en`)" in card and "Task: `text-generation`" in card
    assert "Language: `en`" in card and card.count("# tiny-four\n") == 1
    assert f"- Loss: {final['eval_loss']:.4f}" in card and f"- Accuracy: {final['eval_accuracy']:.4f}" in card
    _, their_lines, _ = hf_parse(trained.state.log_history)
    _, lines, _ = parse_log_history(trained.state.log_history)
    assert lines == their_lines and len(lines) == 5
    table = _sections(card)["Training results"]
    assert "| Training Loss | Epoch | Step | Validation Loss | Accuracy |" in table
    rows = [r for r in table.splitlines() if r.startswith("| ") and not r.startswith("| Training")]
    assert len(rows) == 5
    for row, line in zip(rows, lines):
        assert f"| {line['Step']} |" in row and f"{line['Validation Loss']:.4f}" in row
    assert "## Framework versions" in card and "- Transformers " in card


def test_the_card_counts_the_plans_epochs_never_num_train_epochs(trained, monkeypatch):
    assert trained.args.num_train_epochs == 3.0  # Trainer's default; the plan ran 4 epochs
    config = _sections(write_trainer_card(trained).read_text())["Training configuration"]
    assert "| epochs (the curriculum plan's) | `4` |" in config and "num_train_epochs` was not used" in config
    assert "| `num_train_epochs` |" not in config and "3.0" not in config
    assert "| optimizer steps (the run's) | `18` |" in config and "| total_train_batch_size | `16` |" in config
    assert "| `curriculum` | `…/plan.yaml` |" in config  # the local path is not published
    assert trained.curriculum_epochs == 4
    monkeypatch.setattr(type(trained), "curriculum_epochs", property(lambda self: 5))  # the trainer's count wins
    config = _sections(write_trainer_card(trained).read_text())["Training configuration"]
    assert "| epochs (the curriculum plan's) | `5` |" in config


def test_the_card_says_how_the_loss_counts_tokens(trained):
    note = trained.loss_type_note
    assert note and "ForCausalLM" in note
    config = _sections(write_trainer_card(trained).read_text())["Training configuration"]
    assert f"Loss: {note}." in config
    trained.loss_type_note = None  # the run record (run.json) has it too: the card still says it
    try:
        config = _sections(write_trainer_card(trained).read_text())["Training configuration"]
    finally:
        trained.loss_type_note = note
    assert f"Loss: {note}." in config


def test_defaults_as_trainers_card(trained):
    """No keywords: Trainer's defaults (the task from the model class, the model name from output_dir, the
    generated_from_trainer tag; no dataset, so no dataset-tagged result, as in Trainer's card); license apache-2.0.
    The model-index still holds the trainer's own held-out perplexity per domain (the Hub shows it)."""
    card = write_trainer_card(trained).read_text()
    meta = _front(card)
    assert meta["tags"] == ["curricula", "lfr", "generated_from_trainer"] and meta["license"] == "apache-2.0"
    assert "datasets" not in meta and "base_model" not in meta
    [result] = meta["model-index"][0]["results"]
    assert result["dataset"] == {"name": "training data, held-out blocks per domain",
                                 "type": "curricula/per-domain-validation"}
    names = [m["name"] for m in result["metrics"]]
    assert names[:2] == ["perplexity, average over domains", "perplexity, worst domain"] and len(names) == 2 + 3
    final = [h for h in trained.state.log_history if "eval_ppl_avg" in h][-1]
    assert result["metrics"][0]["value"] == pytest.approx(final["eval_ppl_avg"])
    assert "trained from scratch on an unknown dataset. Task: `text-generation`." in card
    assert "# run\n" in card and "- Accuracy: " in card
    sec = _sections(card)
    assert "| method | `lfr` |" in sec["Run"] and "Lineage: none" in sec["Run"]


def test_only_the_main_process_writes_and_atomically(trained, monkeypatch):
    readme = Path(trained.args.output_dir) / "README.md"
    write_trainer_card(trained)
    before = readme.read_bytes()
    monkeypatch.setattr(trained, "is_world_process_zero", lambda: False)
    assert write_trainer_card(trained, model_name="other") is None and readme.read_bytes() == before
    monkeypatch.undo()

    replaced = []
    real = os.replace

    def spy(src, dst):
        replaced.append((Path(src).name, Path(dst).name))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write_trainer_card(trained, model_name="other")
    assert "# other\n" in readme.read_text()
    names = dict((dst, src) for src, dst in replaced)
    assert names["README.md"].startswith("_README.md.") and names["lr_schedule.png"].startswith("_")
    assert not [p for p in Path(trained.args.output_dir).iterdir() if p.name.startswith("_") and "tmp" in p.name]
