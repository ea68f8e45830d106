"""The model card a live trainer writes (``hf_trainer_ext.hub.write_trainer_card``, what
``CurriculumTrainer.create_model_card`` calls) keeps what Trainer's own card has: the evaluation results and their
table, the keywords given to ``create_model_card``, and the plan's real number of epochs; and the pure card
(``curricula.report.card``) reads the method and lineage from the run record."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from curricula.report.card import parse_log_history, render_card
from hf_trainer_ext import CurriculumTrainer
from hf_trainer_ext.hub import write_trainer_card
from test_trainer import blocks, plan_file, targs, tiny_gpt2

ROOT = Path(__file__).resolve().parents[1]
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
def trained(tmp_path_factory):
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
        elif key == "model-index":
            assert meta["model-index"][0]["name"] == value[0]["name"] == "tiny-four"
            # Trainer adds {config: null, split: "None"} for an in-memory eval dataset (no builder): not kept
            for r in value[0]["results"]:
                r["dataset"] = {k: v for k, v in r["dataset"].items() if v not in (None, "None")}
            assert value[0]["results"] and all(r in meta["model-index"][0]["results"] for r in value[0]["results"])
        else:
            assert meta[key] == value, key
    assert meta["language"] == ["en"] and meta["license"] == "mit" and meta["base_model"] == "openai-community/gpt2"
    assert meta["datasets"] == ["curricula/sample"] and meta["metrics"] == ["accuracy"]
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
    generated_from_trainer tag; no dataset, so no model-index result, as in Trainer's card); license apache-2.0."""
    card = write_trainer_card(trained).read_text()
    meta = _front(card)
    assert meta["tags"] == ["curricula", "lfr", "generated_from_trainer"] and meta["license"] == "apache-2.0"
    assert "datasets" not in meta and "base_model" not in meta and "model-index" not in meta
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


# ---- the pure card: the method and lineage from run.json ------------------------------------------------------------


def _folder(tmp_path: Path) -> Path:
    run = tmp_path / "main"
    (run / "curriculum").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    # an older folder would be guessed from this plan name: the record wins
    (run / "curriculum" / "plan.json").write_text(json.dumps({"plan": {"name": "guess-me"}, "epochs": []}))
    return run


def test_method_and_lineage_come_from_the_run_record(tmp_path):
    run = _folder(tmp_path)
    (run / "run.json").write_text(json.dumps({
        "format": "curricula-run/1", "run_id": "r-main", "method": "doremi_online", "seed": 3,
        "curriculum": {"method": "doremi_online", "reference_losses": "/home/me/secret/ref.parquet", "eta": 1.0},
        "domain_names": ["prose", "code"], "created": "2026-12-01T10:00:00+00:00",
        "lineage": [{"role": "reference", "path": "/home/me/secret/runs/ref-7", "run_id": "r-ref"},
                    {"role": "proxy", "path": "/home/me/secret/runs/proxy", "run_id": None}]}))
    card = render_card(run, "me/main", ["config.json"])
    assert _front(card)["tags"] == ["curricula", "doremi-online"] and "method `doremi_online`" in card
    sec = _sections(card)["Run"]
    for row in ("| run id | `r-main` |", "| method | `doremi_online` |", "| seed | `3` |",
                "| domains | `prose`, `code` |", "| reference | `r-ref` | `ref-7` |", "| proxy | — | `proxy` |"):
        assert row in sec, row
    assert '"reference_losses": "…/ref.parquet"' in sec and '"eta": 1.0' in sec
    assert "/home/me" not in card and "guess-me" not in _front(card)["tags"]


def test_a_continual_stage_record_is_tagged_continual(tmp_path):
    run = _folder(tmp_path)
    (run / "run.json").write_text(json.dumps({"run_id": "s2", "method": "replay", "lineage": [
        {"role": "previous_stage", "path": "runs/en", "run_id": "s1"}]}))
    card = render_card(run, "me/de", ["config.json"])
    assert _front(card)["tags"] == ["curricula", "replay", "continual"]
    assert "| previous_stage | `s1` | `en` |" in card


@pytest.mark.parametrize("record", ["not json", "[1, 2]", json.dumps({"method": ""})])
def test_older_or_damaged_records_fall_back_to_the_guess(tmp_path, record):
    run = _folder(tmp_path)
    (run / "run.json").write_text(record)
    card = render_card(run, "me/main", ["config.json"])
    assert _front(card)["tags"] == ["curricula", "guess-me"] and "method `guess-me`" in card


def test_parse_log_history_is_trainers():
    from transformers.modelcard import parse_log_history as hf_parse

    history = [{"loss": 4.0, "epoch": 0.5, "step": 2}, {"eval_loss": 3.5, "eval_accuracy": 0.2, "eval_runtime": 0.1,
                                                         "eval_samples_per_second": 9.0, "epoch": 0.5, "step": 2},
               {"loss": 3.0, "epoch": 1.0, "step": 4},
               {"eval_loss": 3.1, "eval_accuracy": 0.3, "eval_ppl/prose": 22.0, "epoch": 1.0, "step": 4},
               {"train_runtime": 1.0, "train_loss": 3.5, "epoch": 1.0, "step": 4}]
    assert parse_log_history(history) == hf_parse(history)
    assert parse_log_history([]) == (None, [], None)


def test_a_push_reads_the_evaluations_from_the_newest_checkpoint(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint-4").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "checkpoint-4" / "trainer_state.json").write_text(json.dumps({"log_history": [
        {"loss": 4.0, "learning_rate": 0.001, "epoch": 0.5, "step": 2},
        {"eval_loss": 3.25, "eval_accuracy": 0.5, "epoch": 1.0, "step": 4}]}))
    card = render_card(run, "me/run", ["config.json"], keywords={"tasks": "text-generation",
                                                                  "dataset_tags": "me/data"})
    assert "evaluation set (the last one logged in `checkpoint-4/trainer_state.json`):\n- Loss: 3.25" in card
    assert "| 4.0 | 0.5 | 2 | — |" not in card and "| 4.0 | 1.0 | 4 | 3.25 | 0.5 |" in card
    result = _front(card)["model-index"][0]["results"][0]
    assert result["dataset"] == {"name": "me/data", "type": "me/data"} and result["metrics"][0]["value"] == 0.5


def test_zero_shot_scores_logged_by_the_trainer_reach_the_model_index(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    history = [{"eval_loss": 3.0, "eval_task/codeline/accuracy": 0.4, "eval_task/codeline/accuracy_norm": 0.45,
                "step": 5}]
    meta = _front(render_card(run, "me/run", [], log_history=history))
    assert meta["model-index"][0]["results"] == [{
        "task": {"type": "text-generation"}, "dataset": {"name": "codeline", "type": "curricula/codeline"},
        "metrics": [{"type": "accuracy", "value": 0.4}, {"type": "accuracy_norm", "value": 0.45}]}]


def test_the_report_package_needs_no_torch_transformers_or_hub_client(tmp_path):
    """curricula.report renders a card with an LR plot and analyses with torch, transformers, accelerate,
    huggingface_hub and the glue unimportable."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "training_config.json").write_text(json.dumps({
        "learning_rate": 0.002, "max_steps": 100, "lr_schedule": {"type": "warmup_cosine", "max_lr": 0.002}}))
    code = f"""
import sys
for name in ("torch", "transformers", "accelerate", "huggingface_hub", "hf_trainer_ext"):
    sys.modules[name] = None
import curricula.analysis, curricula.report.analysis, curricula.report.files, curricula.report.plots
from curricula.report.card import prepare_extras, render_card
extras = prepare_extras({str(run)!r}, {str(run)!r})
assert extras == ["lr_schedule.png"], extras
card = render_card({str(run)!r}, "me/run", ["config.json", *extras])
assert "`warmup_cosine`" in card and "](lr_schedule.png)" in card
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "lr_schedule.png").read_bytes().startswith(b"\x89PNG")
