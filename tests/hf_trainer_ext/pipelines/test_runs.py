"""Pipeline runs (``hf_trainer_ext/pipelines/runs.py``): `curricula doremi` and `curricula continual` killed mid-run
(SIGKILL) and rerun: the same weights and losses as an uninterrupted run, without retraining the parts that had
finished; a finished run with other settings is refused."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = Path(__file__).resolve().parents[2] / "drivers" / "pipeline_child.py"


TRAINING = {"per_device_train_batch_size": 8, "disable_tqdm": True, "logging_steps": 2, "use_cpu": True}


def curricula(steps_log: Path, *args, kill: tuple[str, int] | None = None) -> int:
    run, step = kill or ("-", 0)
    cmd = [sys.executable, str(CHILD), str(steps_log), run, str(step), "--", *map(str, args)]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    if kill is None:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.returncode


def trained(steps_log: Path) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for line in steps_log.read_text().splitlines():
        run, step = line.rsplit(" ", 1)
        out.setdefault(run, []).append(int(step))
    return out


def test_doremi_killed_mid_proxy_reruns_to_the_same_weights_without_retraining_the_reference(tiny_packed, tmp_path):
    recipe = tmp_path / "doremi.yaml"
    recipe.write_text(json.dumps({"method": "doremi", "rounds": 1, "reference_steps": 6, "proxy_steps": 8,
                                  "main_steps": 4, "model": {"n_layer": 1, "n_embd": 32, "n_head": 2},
                                  "max_eval_blocks": 32, "training": TRAINING}))
    common = ["doremi", "--recipe", recipe, "--packed", tiny_packed]
    curricula(tmp_path / "a.log", *common, "--out", tmp_path / "a")
    assert curricula(tmp_path / "b.log", *common, "--out", tmp_path / "b", kill=("proxy", 7)) == -9
    reference = tmp_path / "b" / "round0" / "reference" / "model.safetensors"
    cache = tmp_path / "b" / "round0" / "reference_losses" / "reference_losses.arrow"
    stamps = reference.stat().st_mtime_ns, cache.stat().st_mtime_ns
    first = trained(tmp_path / "b.log")
    (tmp_path / "b.log").unlink()
    curricula(tmp_path / "b.log", *common, "--out", tmp_path / "b")
    rerun = trained(tmp_path / "b.log")
    assert first["round0/reference"] == list(range(1, 7)) and "round0/reference" not in rerun  # not retrained
    assert (reference.stat().st_mtime_ns, cache.stat().st_mtime_ns) == stamps  # nor rescored
    assert first["round0/proxy"] == list(range(1, 8)) and rerun["round0/proxy"] == [7, 8]  # resumed at checkpoint 6
    a, b = (json.loads((tmp_path / x / "doremi.json").read_text()) for x in "ab")
    assert a == b  # the weights of every round, the reference's and the main model's evaluation: identical
    # a rerun of a finished pipeline trains nothing and changes nothing
    (tmp_path / "b.log").unlink()
    curricula(tmp_path / "b.log", *common, "--out", tmp_path / "b")
    assert not (tmp_path / "b.log").exists()


def test_continual_killed_mid_stage_reruns_to_the_same_losses_without_retraining_the_first_stage(two_stages, tmp_path):
    recipe = tmp_path / "continual.yaml"
    recipe.write_text(json.dumps({
        "method": "continual", "model": {"n_layer": 1, "n_embd": 32, "n_head": 2}, "eval_every": 4,
        "max_eval_blocks": 16, "training": TRAINING, "variants": {"replay": [0.0, 0.25]},
        "stages": [{"name": "en", "packed": str(two_stages / "packed-en"), "steps": 8},
                   {"name": "de", "packed": str(two_stages / "packed-de"), "steps": 8}]}))
    curricula(tmp_path / "a.log", "continual", recipe, "--out", tmp_path / "a")
    assert curricula(tmp_path / "b.log", "continual", recipe, "--out", tmp_path / "b", kill=("de-replay25", 5)) == -9
    first = trained(tmp_path / "b.log")
    (tmp_path / "b.log").unlink()
    curricula(tmp_path / "b.log", "continual", recipe, "--out", tmp_path / "b")
    rerun = trained(tmp_path / "b.log")
    assert first["b/en"] == list(range(1, 9)) and first["b/de-replay0"] == list(range(1, 9))
    assert "b/en" not in rerun and "b/de-replay0" not in rerun  # finished stage and variant reused
    assert rerun["b/de-replay25"] == [5, 6, 7, 8]  # resumed from its checkpoint at step 4
    a, b = (json.loads((tmp_path / x / "continual.json").read_text()) for x in "ab")
    strip = lambda r: [{k: v for k, v in h.items() if not any(t in k for t in ("runtime", "per_second", "_time"))}  # noqa: E731
                       for h in r["curve"]]
    for ra, rb in zip(a["stages"] + a["last_stage_variants"], b["stages"] + b["last_stage_variants"]):
        assert ra["before"] == rb["before"] and ra["after"] == rb["after"] and strip(ra) == strip(rb)


def test_a_finished_run_with_other_settings_is_refused(tiny_packed, tmp_path):
    from curricula.errors import RunFolderError
    from curricula.methods import DoReMiRecipe
    from hf_trainer_ext.pipelines.doremi import run_doremi

    small = dict(rounds=1, reference_steps=2, proxy_steps=2, run_main=False,
                 model={"n_layer": 1, "n_embd": 32, "n_head": 2}, training=TRAINING, max_eval_blocks=16)
    run_doremi(DoReMiRecipe(**small), tiny_packed, tmp_path)
    with pytest.raises(RunFolderError, match=r"reference holds a finished run with other settings \(differs in steps\)"):
        run_doremi(DoReMiRecipe(**{**small, "reference_steps": 3}), tiny_packed, tmp_path)
