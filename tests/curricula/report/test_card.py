"""The model card of a run folder (``curricula/report/card.py``, pure): built from synthetic run folders laid out as
continual / DoReMi / Trainer runs write them (replay and LR-schedule sections), the method and lineage from the run
record, Trainer's log-history parsing, the evaluations of the newest checkpoint; no torch, transformers or Hub client
needed. The card a live trainer writes is tested in tests/hf_trainer_ext/test_hub_card.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from curricula.report.card import continual_context, parse_log_history, prepare_extras, render_card
from curricula.report.files import CONTINUAL_PLOT, LR_PLOT

ROOT = Path(__file__).resolve().parents[3]


def _sections(card: str) -> dict[str, str]:
    """'## Title' -> its body."""
    out, title = {}, None
    for line in card.splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            out[title] = ""
        elif title is not None:
            out[title] += line + "\n"
    return out


def _front(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def _cosine(steps: int) -> dict:
    return {"type": "warmup_cosine", "max_lr": 0.002, "total_steps": steps}


def test_continual_stage_card_has_replay_and_lr_schedule_sections(tmp_path, continual_run):
    root = continual_run(tmp_path / "cont")
    run = root / "de-replay5"
    before = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    extras = prepare_extras(run, tmp_path / "stage")
    assert extras == [CONTINUAL_PLOT, LR_PLOT]
    assert (tmp_path / "stage" / CONTINUAL_PLOT).read_bytes() == (root / "continual.png").read_bytes()
    assert (tmp_path / "stage" / LR_PLOT).read_bytes().startswith(b"\x89PNG")
    assert sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*")
                  if "stage" not in p.relative_to(tmp_path).parts) == before  # the run folders are untouched

    card = render_card(run, "me/de-replay5", ["config.json", "model.safetensors", *extras])
    assert _front(card)["tags"] == ["curricula", "continual"] and "{{" not in card
    sec = _sections(card)
    replay = sec["Continual pretraining and replay"]
    assert "stage `de` (stage 2 of 2)" in replay and "optimizer state: `keep`" in replay
    rows = [line for line in replay.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert rows == [
        "| 1 | en | 600 | 0 % | — | warmup_cosine | 5.5000 | 9.6000 |",
        "| 2 | de | 400 | 5 % | all of the earlier stages' blocks | warmup_cosine | 6.8000 | 5.0000 |",
    ]
    assert "replay 0 %, replay 25 %" in replay and f"]({CONTINUAL_PLOT})" in replay
    lr = sec["Learning-rate schedule"]
    assert "`warmup_cosine` (curricula `lr_schedule`)" in lr
    for row in ("| `max_lr` | `0.002` |", "| `total_steps` | `400` |", "| `warmup_steps` | `4` |",
                "| `min_lr` | `0.0002` |"):  # defaults resolved: ceil(1 % of 400), 0.1 x max_lr
        assert row in lr
    assert f"]({LR_PLOT})" in lr
    assert "lr_scheduler_type" not in sec["Training configuration"]  # replaced by lr_schedule, not shown as used

    first = render_card(root / "en", "me/en", ["config.json"])
    assert "| 1 | en | 600 | 0 % | — |" in first and "| 2 |" not in first and "stage 1 of 2" in first
    assert "](continual/continual.png)" not in first and "](lr_schedule.png)" not in first  # not uploaded


def test_continual_infinite_schedule_from_the_parent_record(tmp_path, continual_run):
    """A stage folder without training_config.json (older runs) takes its schedule from continual.json; an infinite
    schedule spanning stages is shown with the global step it continues from."""
    root = continual_run(tmp_path / "cont", infinite=True)
    run = root / "de-replay25"
    (run / "training_config.json").unlink()
    card = render_card(run, "me/de", ["config.json"])
    sec = _sections(card)
    assert "| 2 | de | 400 | 25 % |" in sec["Continual pretraining and replay"]
    assert "infinite from global step 600" in sec["Continual pretraining and replay"]
    lr = sec["Learning-rate schedule"]
    assert "`infinite from global step 600`" in lr
    for row in ("| `constant_lr` | `0.001` |", "| `cooldown_steps` | `200` |", "| `offset` | `600` |",
                "| `max_lr` | `0.002` |"):
        assert row in lr
    assert prepare_extras(run, tmp_path / "stage") == [CONTINUAL_PLOT, LR_PLOT]  # closed form over 400 steps


def test_union_reference_card(tmp_path):
    root = tmp_path / "cont"
    (root / "union").mkdir(parents=True)
    res = {"stage": "union", "replay": 0.6, "steps": 1000, "after": {"eval_en_loss": 5.9, "eval_de_loss": 5.4},
           "schedule": _cosine(1000)}
    (root / "union.json").write_text(json.dumps({"union": res, "recipe": {"stages": [{"name": "en"}, {"name": "de"}]}}))
    assert continual_context(root / "union")["kind"] == "union"
    replay = _sections(render_card(root / "union", "me/union", ["config.json"]))["Continual pretraining and replay"]
    assert "union of all stages' data (1000 steps), 60 % of every batch from the earlier stages" in replay
    assert "| 1 | union | 1000 | 60 % | all of the earlier stages' blocks | warmup_cosine | 5.9000 | 5.4000 |" \
        in replay


def test_trainer_schedule_with_logged_lrs_from_the_last_checkpoint(tmp_path):
    """Trainer's own scheduler: name + parameters from training_config.json, the curve from the logged LRs of the
    newest checkpoint's trainer_state.json (no closed form is drawn for Trainer's schedulers)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "training_config.json").write_text(json.dumps({
        "learning_rate": 0.001, "lr_scheduler_type": "cosine_with_min_lr", "warmup_steps": 10,
        "lr_scheduler_kwargs": {"min_lr_rate": 0.1}, "max_steps": 100}))
    for step in (20, 100):  # checkpoint-100 is newer than checkpoint-20 (numeric, not lexical order)
        (run / f"checkpoint-{step}").mkdir()
        hist = [{"step": s, "learning_rate": 0.001 * (1 - s / 200), "loss": 3.0} for s in range(5, step + 1, 5)]
        (run / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"log_history": hist}))
    lr = _sections(render_card(run, "me/run", ["config.json", LR_PLOT]))["Learning-rate schedule"]
    assert "`cosine_with_min_lr` (Trainer `lr_scheduler_type`)" in lr
    for row in ("| `learning_rate` | `0.001` |", "| `warmup_steps` | `10` |", "| `min_lr_rate` | `0.1` |",
                "| `max_steps` | `100` |"):
        assert row in lr
    assert "Logged: 20 values from step 5 (0.000975) to step 100 (0.0005)." in lr
    assert prepare_extras(run, tmp_path / "stage") == [LR_PLOT]


def test_no_schedule_no_replay_sections(tmp_path):
    run = tmp_path / "plain"
    run.mkdir()
    (run / "config.json").write_text("{}")
    card = render_card(run, "me/plain", ["config.json"])
    assert "## Learning-rate schedule" not in card and "## Continual" not in card
    assert prepare_extras(run, tmp_path / "stage") == []


def test_doremi_main_run_card_reads_the_parent_weights(tmp_path):
    """``curricula doremi`` trains its final model in OUT/main; the weights it used are OUT/domain_weights.json."""
    (tmp_path / "doremi" / "main").mkdir(parents=True)
    (tmp_path / "doremi" / "domain_weights.json").write_text(json.dumps({"weights": {"prose": 0.7, "code": 0.3}}))
    (tmp_path / "doremi" / "main" / "training_config.json").write_text(json.dumps({
        "domain_weights": "[0.7, 0.3]", "learning_rate": 0.001, "lr_scheduler_type": "linear", "max_steps": 50}))
    card = render_card(tmp_path / "doremi" / "main", "me/dm", ["config.json"])
    assert _front(card)["tags"] == ["curricula", "doremi"]
    assert "| prose | 0.7000 |" in card and "`linear`" in _sections(card)["Learning-rate schedule"]


@pytest.mark.parametrize("bad", ["not json", "[1, 2]"])
def test_unreadable_records_do_not_break_the_card(tmp_path, bad):
    root = tmp_path / "cont"
    (root / "x").mkdir(parents=True)
    (root / "continual.json").write_text(bad)
    (root / "x" / "training_config.json").write_text(json.dumps({"lr_schedule": {"type": "nope"}, "max_steps": 5}))
    card = render_card(root / "x", "me/x", ["config.json"])
    assert "## Continual" not in card and "`nope`" in _sections(card)["Learning-rate schedule"]


# ---- the pure card: the method and lineage from run.json --------------------------------------------------------


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
