"""The run folder's guard and record (``hf_trainer_ext/run_folder.py``): a new run refuses a folder holding another
run unless told to overwrite, a resume refuses another run's checkpoint. Unit tests of ``RunFolder`` below."""

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from curricula.errors import RunFolderError
from curricula.logs import read_curriculum_log
from curricula.methods import LFRConfig
from curricula.run_layout import COMPLETE, write_json
from hf_trainer_ext.run_folder import RunFolder


def test_a_new_run_refuses_a_folder_holding_another_run(tmp_path, lfr):
    lfr(tmp_path, tmp_path / "run")
    log_before = read_curriculum_log(tmp_path / "run").num_rows
    with pytest.raises(RunFolderError, match=r"holds another run \(run \w+ \(lfr\), a curriculum log, 6 checkpoint"
                                             r"\(s\)\).*--resume_from_checkpoint latest.*--overwrite_output_dir"):
        lfr(tmp_path, tmp_path / "run")
    assert read_curriculum_log(tmp_path / "run").num_rows == log_before  # nothing was deleted
    old_id = json.loads((tmp_path / "run" / "run.json").read_text())["run_id"]
    lfr(tmp_path, tmp_path / "run", overwrite_output_dir=True)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["run_id"] != old_id


def test_a_checkpoint_of_another_run_is_refused(tmp_path, lfr):
    lfr(tmp_path, tmp_path / "a", stop_at=3)
    lfr(tmp_path, tmp_path / "b", stop_at=3)
    with pytest.raises(RunFolderError, match="belongs to run .* records run"):
        lfr(tmp_path, tmp_path / "b", resume=str(tmp_path / "a" / "checkpoint-3"))


# ---- RunFolder on its own --------------------------------------------------------------------------------------------


def _checkpoint(root: Path, step: int, run_id: str = "r1", curriculum: bool = True, complete: bool = True) -> Path:
    """A checkpoint folder as a finished save leaves it (or one without the curriculum state, or the marker)."""
    ckpt = root / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text("{}")
    (ckpt / "model.safetensors").write_bytes(b"x")
    if curriculum:
        (ckpt / "curriculum").mkdir()
        (ckpt / "curriculum" / "state.json").write_text("{}")
    if complete:
        write_json(ckpt / COMPLETE, {"step": step, "run_id": run_id, "loss_sum": 0.0})
    return ckpt


def _another_run(root: Path) -> None:
    """A folder holding a finished run (record, curriculum log, DoReMi weights, analysis, 2 checkpoints) and a file of
    the user's."""
    root.mkdir(parents=True)
    write_json(root / "run.json", {"format": "curricula-run/1", "run_id": "abc123", "method": "lfr"})
    (root / "curriculum").mkdir()
    (root / "curriculum" / "epoch-000-learn.parquet").write_bytes(b"x")
    (root / "doremi").mkdir()
    (root / "analysis").mkdir()
    _checkpoint(root, 3, "abc123")
    _checkpoint(root, 6, "abc123")
    (root / "notes.txt").write_text("the user's")


def _tree(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*"))


def test_claim_takes_a_missing_or_empty_folder(tmp_path, single_process):
    acc = single_process()
    RunFolder(tmp_path / "new", acc, should_save=True).claim(overwrite=False)
    (tmp_path / "empty").mkdir()
    RunFolder(tmp_path / "empty", acc, should_save=True).claim(overwrite=False)
    assert acc.waits == 2  # each process has looked before the main one could write
    assert not (tmp_path / "new").exists() and _tree(tmp_path / "empty") == []  # claiming writes nothing


def test_claim_refuses_a_folder_holding_another_run_and_deletes_nothing(tmp_path, single_process):
    _another_run(tmp_path / "run")
    before = _tree(tmp_path)
    with pytest.raises(RunFolderError, match=r"run holds another run \(run abc123 \(lfr\), a curriculum log, "
                                             r"2 checkpoint\(s\)\).*--resume_from_checkpoint latest.*"
                                             r"--overwrite_output_dir"):
        RunFolder(tmp_path / "run", single_process(), should_save=True).claim(overwrite=False)
    assert _tree(tmp_path) == before
    _checkpoint(tmp_path / "bare", 2)  # checkpoints alone (no record, no log) are another run too
    with pytest.raises(RunFolderError, match=r"bare holds another run \(1 checkpoint\(s\)\)"):
        RunFolder(tmp_path / "bare", single_process(), should_save=True).claim(overwrite=False)


def test_claim_with_overwrite_deletes_the_runs_artifacts_on_the_main_process_only(tmp_path, single_process):
    _another_run(tmp_path / "run")
    before = _tree(tmp_path)
    other = single_process()
    RunFolder(tmp_path / "run", other, should_save=False).claim(overwrite=True)  # not the main process
    assert _tree(tmp_path) == before and other.waits == 2
    main = single_process()
    RunFolder(tmp_path / "run", main, should_save=True).claim(overwrite=True)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["notes.txt"]  # the run's artifacts only
    assert main.waits == 2  # looked, then deleted before any process goes on


def test_check_same_run_refuses_another_runs_checkpoint(tmp_path, single_process):
    root = tmp_path / "run"
    folder = RunFolder(root, single_process(), should_save=True)
    mine, theirs = _checkpoint(root, 3, "r-mine"), _checkpoint(tmp_path / "other", 3, "r-theirs")
    folder.check_same_run(theirs)  # no run record yet: nothing to compare with
    write_json(root / "run.json", {"run_id": "r-mine", "method": "lfr"})
    folder.check_same_run(mine)
    with pytest.raises(RunFolderError, match=r"checkpoint-3 belongs to run r-theirs, but .*run.json records run "
                                             r"r-mine: resuming would continue one run's training with another's log"):
        folder.check_same_run(theirs)
    write_json(theirs / COMPLETE, {"step": 3})  # a marker without a run id (an older checkpoint): not refused
    folder.check_same_run(theirs)


def _trainer(curriculum=None, config=None, seed=7):
    """What ``RunFolder.write_record`` reads from a trainer (no training data to record)."""
    return SimpleNamespace(curriculum=curriculum, curriculum_config=config, args=SimpleNamespace(seed=seed),
                           domain_names=["easy", "hard"], tokenizer_identity={"name": "synthetic"}, lineage=[],
                           loss_type_note=None, train_dataset=None)


def test_write_record_keeps_run_id_and_created_across_resumes(tmp_path, single_process, tiny_lfr):
    folder = RunFolder(tmp_path, single_process(), should_save=True)
    cur = tiny_lfr()
    config = LFRConfig.from_plan(cur.plan)
    folder.write_record(resumed=False, trainer=_trainer(cur, config))
    first = json.loads((tmp_path / "run.json").read_text())
    assert first["format"] == "curricula-run/1" and first["method"] == "lfr" and first["seed"] == 7
    assert first["curriculum"] == config.to_dict() and first["domain_names"] == ["easy", "hard"]
    assert re.fullmatch(r"[0-9a-f]{12}", first["run_id"]) and first["created"]
    assert json.loads((tmp_path / "curriculum" / "plan.json").read_text()) == json.loads(json.dumps(cur.plan_info()))
    assert folder.run_id() == first["run_id"]

    write_json(tmp_path / "run.json", {**first, "created": "2020-01-01T00:00:00+00:00"})
    folder.write_record(resumed=True, trainer=_trainer(cur, config, seed=8))
    resumed = json.loads((tmp_path / "run.json").read_text())
    assert resumed["run_id"] == first["run_id"] and resumed["created"] == "2020-01-01T00:00:00+00:00"
    assert resumed["seed"] == 8  # everything else is this train() call's

    folder.write_record(resumed=False, trainer=_trainer())  # a fresh run (e.g. after --overwrite_output_dir)
    fresh = json.loads((tmp_path / "run.json").read_text())
    assert fresh["run_id"] != first["run_id"] and fresh["created"] != "2020-01-01T00:00:00+00:00"
    assert fresh["method"] == "none" and fresh["curriculum"] is None

    RunFolder(tmp_path / "other", single_process(), should_save=False).write_record(False, _trainer(cur))
    assert not (tmp_path / "other").exists()  # only the main process writes


def test_last_complete_is_the_newest_complete_checkpoint(tmp_path, single_process):
    folder = RunFolder(tmp_path, single_process(), should_save=True)
    assert folder.last_complete(curriculum=None) is None and folder.run_id() is None
    for step in (3, 6):
        _checkpoint(tmp_path, step)
    _checkpoint(tmp_path, 9, curriculum=False)  # complete only for a run without a curriculum
    _checkpoint(tmp_path, 12, complete=False)  # being written when the run stopped
    assert folder.last_complete(curriculum=object()).name == "checkpoint-6"
    assert folder.last_complete(curriculum=None).name == "checkpoint-9"
    (tmp_path / "run.json").write_text("{not json")
    assert folder.run_id() is None  # a damaged record never fails the checkpoint marker that asks for it
