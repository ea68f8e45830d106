"""The model card: Trainer's push_to_hub writes curricula's (configuration, results, no token); replay and the LR
schedule get their own sections, built from synthetic run folders laid out as continual / DoReMi / Trainer runs
write them."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from hf_trainer_ext import CurriculumTrainer
from hf_trainer_ext.hub import CONTINUAL_PLOT, LR_PLOT, continual_context, prepare_extras, render_card, write_trainer_card
from test_trainer import blocks, plan_file, targs, tiny_gpt2


@pytest.fixture
def one_thread():
    """A 2-layer d=32 model gains nothing from 2 threads, and stalls (seconds per step) when the CPU is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("writer", ["create_model_card", "write_trainer_card"])
def test_trainer_card_has_config_results_and_no_token(tmp_path, one_thread, writer):
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


# ---- synthetic run folders ----------------------------------------------------------------------------------------


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


def _continual_run(root: Path, infinite: bool = False) -> Path:
    """``curricula continual`` output: OUT/continual.json + continual.png, one folder per stage / last-stage variant
    (``<stage>`` and ``<last stage>-replay<percent>``) holding the model and its training_config.json."""
    root.mkdir(parents=True)
    if infinite:
        inner = {"type": "infinite", "max_lr": 0.002, "constant_lr": 0.001, "min_lr": 0.0001, "warmup_steps": 20,
                 "cooldown_steps": 200}
        sched = {"en": {"type": "offset", "schedule": inner, "offset": 0},
                 "de": {"type": "offset", "schedule": inner, "offset": 600}}
    else:
        sched = {"en": _cosine(600), "de": _cosine(400)}
    stages = [{"stage": "en", "replay": 0.0, "steps": 600, "before": {"eval_en_loss": 9.0, "eval_de_loss": 9.0},
               "after": {"eval_en_loss": 5.5, "eval_de_loss": 9.6}, "curve": [], "schedule": sched["en"]}]
    variants = [{"stage": "de", "replay": r, "steps": 400, "before": {}, "curve": [], "schedule": sched["de"],
                 "after": {"eval_en_loss": round(7.0 - 4 * r, 3), "eval_de_loss": 5.0}} for r in (0.0, 0.05, 0.25)]
    recipe = {"stages": [{"name": "en", "packed": "/data/en", "steps": 600, "replay": 0.0, "replay_seen_only": True},
                         {"name": "de", "packed": "/data/de", "steps": 400, "replay": 0.05, "replay_seen_only": False}],
              "optimizer": "keep", "max_lr": 0.002, "infinite": None}
    (root / "continual.json").write_text(json.dumps({"stages": stages, "last_stage_variants": variants,
                                                     "recipe": recipe}))
    (root / "continual.png").write_bytes(b"\x89PNG\r\n\x1a\n not a real plot")
    for name, steps, key in (("en", 600, "en"), ("de-replay0", 400, "de"), ("de-replay5", 400, "de"),
                             ("de-replay25", 400, "de")):
        (root / name).mkdir()
        (root / name / "config.json").write_text("{}")
        (root / name / "model.safetensors").write_bytes(b"x")
        config = {"learning_rate": 0.002, "max_steps": steps, "lr_scheduler_type": "linear",
                  "lr_schedule": sched[key]}
        (root / name / "training_config.json").write_text(json.dumps(config))
    return root


def test_continual_stage_card_has_replay_and_lr_schedule_sections(tmp_path):
    root = _continual_run(tmp_path / "cont")
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


def test_continual_infinite_schedule_from_the_parent_record(tmp_path):
    """A stage folder without training_config.json (older runs) takes its schedule from continual.json; an infinite
    schedule spanning stages is shown with the global step it continues from."""
    root = _continual_run(tmp_path / "cont", infinite=True)
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
