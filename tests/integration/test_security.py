"""A security pass: nothing a run writes lands outside its output_dir, and resuming never unpickles arbitrary objects
(Trainer's torch.load calls are weights_only, curricula's state is JSON and numpy without pickle). That no token is
written anywhere (files, logs, cards, checkpoints, Trainer's training_args.bin) is tested with the Hub stand-in in
tests/hf_trainer_ext/test_hub.py (``_assert_no_token`` over every file, request and log line)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def test_a_run_writes_nothing_outside_its_output_dir(tmp_path):
    sandbox = tmp_path / "sandbox"
    for d in ("cwd", "home", "tmp", "hf"):
        (sandbox / d).mkdir(parents=True)
    script = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("support", {str(ROOT / "tests" / "support.py")!r})
        support = importlib.util.module_from_spec(spec); spec.loader.exec_module(support)
        from hf_trainer_ext import CurriculumTrainer
        plan = support.plan_file(__import__("pathlib").Path("{sandbox / 'tmp'}"), support.LFR_PLAN)
        args = support.targs("{sandbox / 'out'}", curriculum=plan, save_strategy="steps", save_steps=3, eval_strategy="epoch")
        tr = CurriculumTrainer(model=support.tiny_gpt2(), args=args, train_dataset=support.blocks(),
                               eval_dataset=support.blocks(12))
        tr.train()
        tr.save_model()
    """)
    env = {**os.environ, "HOME": str(sandbox / "home"), "TMPDIR": str(sandbox / "tmp"), "HF_HOME": str(sandbox / "hf"),
           "HF_DATASETS_CACHE": str(sandbox / "hf" / "datasets"), "OMP_NUM_THREADS": "1",
           "CURRICULA_SHARED_DIR": str(sandbox / "tmp")}
    before = {p for p in sandbox.rglob("*")}
    proc = subprocess.run([sys.executable, "-c", script], cwd=sandbox / "cwd", env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    new = {p for p in sandbox.rglob("*") if p.is_file()} - before
    outside = sorted(str(p.relative_to(sandbox)) for p in new
                     if not p.is_relative_to(sandbox / "out") and not p.is_relative_to(sandbox / "tmp")
                     and not p.is_relative_to(sandbox / "hf"))
    assert outside == [], outside
    assert (sandbox / "out" / "model.safetensors").is_file()
    assert not [p for p in (sandbox / "tmp").rglob("*") if p.is_file() and p.suffix in (".arrow", ".bits")]


def test_a_resume_never_unpickles_arbitrary_objects(tmp_path, lfr, monkeypatch):
    import pickle

    import torch

    lfr(tmp_path, tmp_path / "run", stop_at=6)
    calls = []
    real_load = torch.load

    def checked_load(*a, **kw):
        calls.append(kw.get("weights_only"))
        return real_load(*a, **kw)

    real_np_load = np.load

    def checked_np_load(*a, **kw):
        assert kw.get("allow_pickle", False) is False, "a numpy file loaded with allow_pickle"
        return real_np_load(*a, **kw)

    def refuse(*a, **kw):
        raise AssertionError("pickle.load was called while resuming")

    monkeypatch.setattr(torch, "load", checked_load)
    monkeypatch.setattr(np, "load", checked_np_load)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    lfr(tmp_path, tmp_path / "run", resume="latest")
    assert calls and all(w is True for w in calls), calls  # every torch.load of the resume is weights_only
