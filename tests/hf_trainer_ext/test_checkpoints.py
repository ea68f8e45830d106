"""Crash safety and named errors: checkpoints, run folders, divergence, reproducibility, corrupted files, full disks."""

import errno
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from curricula.logs import read_curriculum_log
from curricula.errors import (CheckpointError, ConfigError, CorruptFileError, DiskFullError, DivergenceError,
                              RunFolderError)
from curricula.run_layout import COMPLETE, read_jsonl, write_json
from hf_trainer_ext import CurriculumTrainer
from test_continual import two_stages  # noqa: F401  (fixture: tiny packed datasets)
from test_trainer import LossTap, blocks, plan_file, targs, tiny_gpt2

PLAN = "phases: [{kind: learn, epochs: 1}, {kind: focus, drop_percent: 50, epochs: 2}, {kind: review, epochs: 1}]"


class StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == self.step:
            control.should_training_stop = True


def lfr(tmp_path, out, stop_at=None, resume=None, eval_dataset=None, **kw):
    args = targs(out, curriculum=plan_file(tmp_path, PLAN), save_strategy="steps", save_steps=kw.pop("save_steps", 3),
                 **kw)
    tr = CurriculumTrainer(model=tiny_gpt2(), args=args, train_dataset=blocks(), eval_dataset=eval_dataset)
    tap = LossTap(tr)
    if stop_at:
        tr.add_callback(StopAt(stop_at))
    tr.train(resume_from_checkpoint=resume)
    return tr, tap


# ---- checkpoints --------------------------------------------------------------------------------------------------


def test_resume_latest_skips_an_incomplete_checkpoint_and_names_it(tmp_path, caplog):
    full, full_tap = lfr(tmp_path, tmp_path / "full")
    part, part_tap = lfr(tmp_path, tmp_path / "part", stop_at=9)
    (tmp_path / "part" / "checkpoint-9" / COMPLETE).unlink()  # as if the run died while saving checkpoint-9
    with caplog.at_level(logging.WARNING):
        rest, rest_tap = lfr(tmp_path, tmp_path / "part", resume="latest")
    assert "skipping" in caplog.text and "checkpoint-9: incomplete (missing COMPLETE" in caplog.text
    # resumed from checkpoint-6, so steps 7..9 run again: the stream from there equals the uninterrupted run's
    assert rest_tap.batches == full_tap.batches[2 * 6:]
    np.testing.assert_allclose(rest_tap.losses, full_tap.losses[2 * 6:], rtol=0, atol=1e-6)


def test_resume_refuses_missing_and_incomplete_checkpoints_with_the_fix(tmp_path):
    lfr(tmp_path, tmp_path / "run", stop_at=6)
    with pytest.raises(CheckpointError, match=r"checkpoint-99: no such folder; resume from .*checkpoint-6 \(the "
                                              r"newest complete one\) or with --resume_from_checkpoint latest"):
        lfr(tmp_path, tmp_path / "run", resume=str(tmp_path / "run" / "checkpoint-99"))
    (tmp_path / "run" / "checkpoint-6" / "curriculum" / "state.json").unlink()
    with pytest.raises(CheckpointError, match=r"checkpoint-6 is incomplete \(missing curriculum/state.json\).*resume "
                                              r"from .*checkpoint-3"):
        lfr(tmp_path, tmp_path / "run", resume=str(tmp_path / "run" / "checkpoint-6"))
    for c in ("checkpoint-3", "checkpoint-6"):
        (tmp_path / "run" / c / COMPLETE).unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match=r"has no complete checkpoint \(2 incomplete: checkpoint-3, checkpoint-6\)"):
        lfr(tmp_path, tmp_path / "run", resume=True)
    with pytest.raises(CheckpointError, match=r"has no complete checkpoint \(none at all\)"):
        lfr(tmp_path, tmp_path / "empty", resume="True")  # the command line's string form of True


def test_rotation_waits_for_the_curriculum_state(tmp_path, monkeypatch):
    """With save_total_limit=1, a crash while the new checkpoint's curriculum state is written leaves the old one."""
    import hf_trainer_ext.checkpoints as checkpoints_mod

    calls = []

    def dying_atomic_dir(target):
        calls.append(target)
        if len(calls) == 2:  # the second checkpoint's curriculum state
            raise KeyboardInterrupt("killed")
        return real(target)

    real = checkpoints_mod.atomic_dir
    monkeypatch.setattr(checkpoints_mod, "atomic_dir", dying_atomic_dir)
    with pytest.raises(KeyboardInterrupt):
        lfr(tmp_path, tmp_path / "run", save_total_limit=1)
    names = sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*"))
    assert names == ["checkpoint-3", "checkpoint-6"]
    assert (tmp_path / "run" / "checkpoint-3" / COMPLETE).is_file()  # still there: it was not rotated away
    assert not (tmp_path / "run" / "checkpoint-6" / COMPLETE).is_file()


# ---- run folders and launches -------------------------------------------------------------------------------------


def test_a_new_run_refuses_a_folder_holding_another_run(tmp_path):
    lfr(tmp_path, tmp_path / "run")
    log_before = read_curriculum_log(tmp_path / "run").num_rows
    with pytest.raises(RunFolderError, match=r"holds another run \(run \w+ \(lfr\), a curriculum log, 6 checkpoint"
                                             r"\(s\)\).*--resume_from_checkpoint latest.*--overwrite_output_dir"):
        lfr(tmp_path, tmp_path / "run")
    assert read_curriculum_log(tmp_path / "run").num_rows == log_before  # nothing was deleted
    old_id = json.loads((tmp_path / "run" / "run.json").read_text())["run_id"]
    lfr(tmp_path, tmp_path / "run", overwrite_output_dir=True)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["run_id"] != old_id


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    lfr(tmp_path, tmp_path / "a", stop_at=3)
    lfr(tmp_path, tmp_path / "b", stop_at=3)
    with pytest.raises(RunFolderError, match="belongs to run .* records run"):
        lfr(tmp_path, tmp_path / "b", resume=str(tmp_path / "a" / "checkpoint-3"))


def _in_subprocess(code: str, env: dict) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, **env, "PYTHONPATH": f"{root}:{root / 'tests'}"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_a_multi_process_launch_that_trains_alone_is_refused(tmp_path):
    # accelerate launch --multi_gpu --num_processes 2 without --use_cpu on a CPU machine: two processes, each alone
    script = tmp_path / "probe.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\nfrom test_trainer import targs\n"
                      f"targs({str(tmp_path / 'run')!r}, max_steps=1, use_cpu=False)\n")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0 and "LaunchError" in proc.stderr + proc.stdout
    assert "started 2 processes (WORLD_SIZE=2) but this one trains alone" in proc.stderr + proc.stdout
    assert "--use_cpu true" in proc.stderr + proc.stdout
    # accelerate launch --num_processes 2 without --multi_gpu: one process started
    code = f"from test_trainer import targs\ntargs({str(tmp_path)!r}, max_steps=1)"
    proc = _in_subprocess(code, {"ACCELERATE_MIXED_PRECISION": "no", "MASTER_ADDR": "127.0.0.1"})
    assert "without --multi_gpu its multi-CPU path needs MPI" in proc.stderr


# ---- divergence ---------------------------------------------------------------------------------------------------


def test_divergence_stops_with_a_clear_error(tmp_path):
    # at lr 1e4 the losses explode (about 2e9) but stay finite: every perplexity overflows to inf
    with pytest.raises(DivergenceError, match=r"training diverged in epoch 0: the mean block loss is .* \(> max_loss "
                                              r"14.56, 3 x ln\(vocab\).*The last complete checkpoint is "
                                              r".*checkpoint-6: lower the learning rate"):
        lfr(tmp_path, tmp_path / "run", learning_rate=1e4)
    assert not (tmp_path / "run" / "curriculum" / "focus_reports.jsonl").exists()  # no Focus decided on garbage


def test_a_nan_weight_stops_at_the_first_logging_step(tmp_path):
    model = tiny_gpt2()
    with torch.no_grad():
        model.transformer.wte.weight[3, 0] = float("nan")
    tr = CurriculumTrainer(model=model, args=targs(tmp_path, max_steps=6, logging_steps=2), train_dataset=blocks())
    with pytest.raises(DivergenceError, match=r"diverged in the steps up to 2: \d+ of \d+ block losses"):
        tr.train()


def test_warn_policy_and_max_loss(tmp_path, caplog):
    model = tiny_gpt2()
    with torch.no_grad():
        model.transformer.wte.weight[3, 0] = float("nan")
    args = targs(tmp_path / "w", max_steps=2, logging_steps=1, nonfinite_policy="warn")
    with caplog.at_level(logging.WARNING):
        CurriculumTrainer(model=model, args=args, train_dataset=blocks()).train()
    assert "training diverged" in caplog.text and "--nonfinite_policy warn continues anyway" in caplog.text
    with pytest.raises(DivergenceError, match=r"the mean block loss is .* \(> max_loss 0.1\)"):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path / "m", max_steps=2, logging_steps=1, max_loss=0.1),
                          train_dataset=blocks()).train()


def test_a_focus_that_empties_a_domain_warns():
    from curricula.methods import DataInfo, LFRConfig, RunInfo

    dom = np.repeat([0, 1, 2], 32)
    cur = LFRConfig.from_dict({"phases": [{"kind": "learn"}, {"kind": "focus", "drop_percent": 40}]}).build(
        DataInfo(dom, ["easy", "half", "random"]), RunInfo(16, None, 0))
    cur.start_epoch(0)
    cur.table.update(np.arange(96), np.where(dom == 0, 0.1, 3.0) + np.arange(96) * 1e-3, 0)  # "easy" is easiest
    report = cur.start_epoch(1)
    assert report.event["kept_per_domain"]["0"] == 0
    assert report.warnings == ["focus at epoch 1 drops every block of domain 'easy' (its blocks are all among the 40 % "
                               "lowest perplexities); it is not trained until the next review"]
    assert report.metrics["curriculum/kept_share/easy"] == 0.0


# ---- arguments that conflict or are ignored -----------------------------------------------------------------------


@pytest.mark.parametrize("kw, message", [
    ({"curriculum": "lfx"}, r"no bundled recipe 'lfx' \(did you mean 'lfr'\?\)"),
    ({"curriculum": "lfr", "curriculum_params": "{reps: [1"}, "--curriculum_params .* is neither JSON nor YAML"),
    ({"curriculum_params": "{reps: 1}"}, "--curriculum_params is given without --curriculum"),
    ({"curriculum": "lfr", "curriculum_params": "{rep: 1}"}, r"unknown parameter\(s\) \['rep'\]"),
    ({"domain_weights": "unifrom", "max_steps": 2}, r"did you mean 'uniform'"),
    ({"domain_weights": "[0.5, 0.5", "max_steps": 2}, "--domain_weights .* is not valid JSON"),
    ({"curriculum_seed": 3, "max_steps": 2}, "--curriculum_seed is given without a curriculum"),
    ({"anneal_at": 5, "max_steps": 9}, "--anneal_at 5 needs an LR schedule with an anneal phase"),
    ({"curriculum": "doremi"}, r"--curriculum 'doremi' is a doremi pipeline recipe .* `curricula doremi --recipe"),
    ({"curriculum": "lfr", "max_steps": 5}, "leave max_steps unset"),
    ({"domain_weights": "uniform"}, "has no natural epoch: set max_steps"),
    ({"nonfinite_policy": "ignore"}, "--nonfinite_policy 'ignore'"),
])
def test_bad_arguments_are_named_when_the_arguments_are_built(tmp_path, kw, message):
    with pytest.raises(ConfigError, match=message):
        targs(tmp_path, **kw)


def test_a_reference_for_a_method_that_uses_none_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="does not use one; drop reference_losses"):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, max_steps=2, domain_weights="uniform"),
                          train_dataset=blocks(), reference_model=tiny_gpt2())


# ---- reproducibility ----------------------------------------------------------------------------------------------


def test_resume_at_a_plan_epoch_boundary_with_epoch_evaluation_is_identical(tmp_path):
    # the checkpoint at step 6 is the learn epoch's last step: saved before the boundary and the epoch-end evaluation
    ev = dict(eval_strategy="epoch", per_device_eval_batch_size=16, eval_dataset=blocks(24, seed=5))
    full, full_tap = lfr(tmp_path, tmp_path / "full", save_steps=6, **ev)
    part, part_tap = lfr(tmp_path, tmp_path / "part", stop_at=6, save_steps=6, **ev)
    rest, rest_tap = lfr(tmp_path, tmp_path / "part", resume=str(tmp_path / "part" / "checkpoint-6"), save_steps=6, **ev)
    assert part_tap.batches + rest_tap.batches == full_tap.batches
    np.testing.assert_allclose(part_tap.losses + rest_tap.losses, full_tap.losses, rtol=0, atol=1e-6)
    a, b = read_curriculum_log(tmp_path / "full").to_pandas(), read_curriculum_log(tmp_path / "part").to_pandas()
    np.testing.assert_allclose(a.loss, b.loss, rtol=0, atol=1e-6)
    assert read_jsonl(tmp_path / "full" / "curriculum" / "focus_reports.jsonl") == \
        read_jsonl(tmp_path / "part" / "curriculum" / "focus_reports.jsonl")


def test_focus_reports_have_one_line_per_decision_after_resumes(tmp_path):
    full, _ = lfr(tmp_path, tmp_path / "run")
    decisions = read_jsonl(tmp_path / "run" / "curriculum" / "focus_reports.jsonl")
    assert [d["epoch"] for d in decisions] == [1]
    for ckpt in ("checkpoint-3", "checkpoint-6", "checkpoint-9"):  # re-run the boundary from before and after it
        lfr(tmp_path, tmp_path / "run", resume=str(tmp_path / "run" / ckpt))
        assert read_jsonl(tmp_path / "run" / "curriculum" / "focus_reports.jsonl") == decisions


def test_the_summary_loss_covers_the_whole_run_after_a_resume(tmp_path):
    full, _ = lfr(tmp_path, tmp_path / "full", logging_steps=1)
    lfr(tmp_path, tmp_path / "part", stop_at=9, logging_steps=1)
    rest, _ = lfr(tmp_path, tmp_path / "part", resume="latest", logging_steps=1)
    summary = [h for h in rest.state.log_history if "train_loss" in h][-1]["train_loss"]
    expected = [h for h in full.state.log_history if "train_loss" in h][-1]["train_loss"]
    assert summary == pytest.approx(expected, rel=1e-6)


def test_the_same_seed_gives_the_same_run(two_stages, tmp_path):  # noqa: F811
    from safetensors.torch import load_file

    from hf_trainer_ext.train import main

    common = ["--packed", str(two_stages / "packed-en"), "--n_layer", "1", "--n_embd", "32", "--n_head", "2",
              "--max_steps", "3", "--per_device_train_batch_size", "4", "--report_to", "none", "--eval_strategy",
              "no", "--save_strategy", "no", "--disable_tqdm", "true", "--use_cpu", "true", "--domain_weights",
              "uniform"]
    torch.manual_seed(123)  # whatever the global state, --seed decides the model and the data order
    main([*common, "--seed", "7", "--output_dir", str(tmp_path / "a")])
    torch.manual_seed(456)
    main([*common, "--seed", "7", "--output_dir", str(tmp_path / "b")])
    main([*common, "--seed", "8", "--output_dir", str(tmp_path / "c")])
    a, b, c = (load_file(str(tmp_path / x / "model.safetensors")) for x in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


# ---- files that cannot be read, a disk that is full ---------------------------------------------------------------


@pytest.mark.parametrize("name, content, message", [
    ("state.json", b"\xff\xfe garbage", r"curriculum state .*state.json is corrupted"),
    ("events.json", b"[{", r"curriculum reports .*events.json is corrupted"),
    ("pending.parquet", b"not parquet", r"pending block losses .*pending.parquet cannot be read"),
    ("table.arrow", b"not arrow", r"index table .*table.arrow cannot be read"),
])
def test_a_corrupted_checkpoint_file_is_named(tmp_path, name, content, message):
    lfr(tmp_path, tmp_path / "run", stop_at=8, save_steps=8)
    (tmp_path / "run" / "checkpoint-8" / "curriculum" / name).write_bytes(content)
    with pytest.raises(CorruptFileError, match=message):
        lfr(tmp_path, tmp_path / "run", resume="latest", save_steps=8)


def test_a_malformed_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n{"a": 2\n{"a": 3}\n')
    with pytest.raises(CorruptFileError, match=r"r.jsonl:2: not valid JSON"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n{"a": 2')  # a torn last line (a crash during an append) is dropped
    assert read_jsonl(path) == [{"a": 1}]


def test_a_full_disk_names_the_path_and_the_free_space(tmp_path, monkeypatch):
    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(DiskFullError, match=r"no space left on the device while writing .*x.json \([\d,]+ MiB free on"):
        write_json(tmp_path / "x.json", {"a": 1})
    monkeypatch.undo()

    def torch_full(*a, **kw):  # what torch.save raises on a full disk
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4096 vs 2048")

    monkeypatch.setattr(torch, "save", torch_full)
    with pytest.raises(DiskFullError, match=r"while writing .*checkpoint-3 .*lower save_total_limit"):
        lfr(tmp_path, tmp_path / "run")


def test_fsdp_on_cpu_processes_is_said_to_run_as_ddp(monkeypatch, caplog):
    """accelerate turns FSDP on only for accelerator process groups: asked for on CPU processes, it silently runs DDP."""
    import logging
    from types import SimpleNamespace

    from hf_trainer_ext import arguments

    on_cpu = [True]
    monkeypatch.setattr(arguments, "cpu_process_group", lambda: on_cpu[0])  # as under torchrun --use_cpu
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    with caplog.at_level(logging.WARNING, logger="hf_trainer_ext.arguments"):
        arguments.check_launch(SimpleNamespace(fsdp=True, world_size=2))
        assert "runs the 2 processes as plain DDP" in caplog.text and "FSDP needs CUDA or ROCm" in caplog.text
        caplog.clear()
        monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # accelerate launch --use_fsdp --cpu
        arguments.check_launch(SimpleNamespace(fsdp=False, world_size=2))
        assert "plain DDP" in caplog.text
        caplog.clear()
        on_cpu[0] = False  # an accelerator process group: FSDP runs, nothing to say
        arguments.check_launch(SimpleNamespace(fsdp=True, world_size=2))
        on_cpu[0] = True
        monkeypatch.delenv("ACCELERATE_USE_FSDP")
        arguments.check_launch(SimpleNamespace(fsdp=False, world_size=2))  # DDP asked for: nothing to say
        assert caplog.text == ""
