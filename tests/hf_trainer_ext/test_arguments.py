"""CurriculumTrainingArguments (``hf_trainer_ext/arguments.py``): conflicting or ignored arguments are named when the
arguments are built; launches that would train alone or silently as DDP are named; long inline LR-schedule JSON."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from curricula.errors import ConfigError

PROBE = Path(__file__).resolve().parents[1] / "drivers" / "launch_probe.py"


def test_max_steps_conflicts_with_a_plan(tmp_path, targs):
    with pytest.raises(ValueError, match="leave max_steps unset"):
        targs(tmp_path, curriculum="lfr", max_steps=10)


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
def test_bad_arguments_are_named_when_the_arguments_are_built(tmp_path, kw, message, targs):
    with pytest.raises(ConfigError, match=message):
        targs(tmp_path, **kw)


def _in_subprocess(args: list[str], env: dict) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, **env, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300)


def test_a_multi_process_launch_that_trains_alone_is_refused(tmp_path):
    # accelerate launch --multi_gpu --num_processes 2 without --use_cpu on a CPU machine: two processes, each alone
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(PROBE), str(tmp_path / "run"), "--no-cpu"], env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "LaunchError" in proc.stderr + proc.stdout
    assert "started 2 processes (WORLD_SIZE=2) but this one trains alone" in proc.stderr + proc.stdout
    assert "--use_cpu true" in proc.stderr + proc.stdout
    # accelerate launch --num_processes 2 without --multi_gpu: one process started
    proc = _in_subprocess([str(PROBE), str(tmp_path)], {"ACCELERATE_MIXED_PRECISION": "no", "MASTER_ADDR": "127.0.0.1"})
    assert "without --multi_gpu its multi-CPU path needs MPI" in proc.stderr


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


def test_lr_schedule_argument_takes_long_inline_json_a_file_or_yaml(tmp_path):
    """An offset-wrapped infinite schedule is > 255 characters of JSON: it must not be taken for a file name."""
    import json

    from hf_trainer_ext.arguments import CurriculumTrainingArguments

    sched = {"type": "offset", "offset": 400, "schedule": {
        "type": "infinite", "max_lr": 0.002, "constant_lr": 0.0006, "min_lr": 0.0002, "warmup_steps": 7,
        "cooldown_steps": 200, "cooldown": "cosine", "anneal": "exponential", "anneal_steps": 100, "anneal_start": 600}}
    text = json.dumps(sched)
    assert len(text) > 255
    args = CurriculumTrainingArguments(output_dir=str(tmp_path), lr_schedule=text, report_to="none")
    assert args.lr_schedule == sched
    (tmp_path / "s.yaml").write_text("type: constant\nmax_lr: 0.001\n")
    args = CurriculumTrainingArguments(output_dir=str(tmp_path), lr_schedule=str(tmp_path / "s.yaml"), report_to="none")
    assert args.lr_schedule == {"type": "constant", "max_lr": 0.001}
    args = CurriculumTrainingArguments(output_dir=str(tmp_path), lr_schedule="{type: constant, max_lr: 0.001}",
                                       report_to="none")
    assert args.lr_schedule == {"type": "constant", "max_lr": 0.001}


def test_eval_tasks_need_a_tokenizer(tmp_path, targs):

    with pytest.raises(ValueError, match="eval_tasks needs eval_tokenizer"):
        targs(tmp_path, max_steps=1, eval_tasks="x.jsonl")
