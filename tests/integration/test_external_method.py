"""A method from the user's own package (outside the repository): per-block records and per-step statistics, trained
through ``curricula train --recipe '{method: "package.module:Config"}'``, SIGKILLed mid-run, resumed exactly; and the
same method found through an installed package's entry point (``method: hard_domains``)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ext_methods"
SPEC = "ext_methods.hard_domains:HardDomainsConfig"


def user_package(tmp_path: Path, entry_point: bool = False) -> Path:
    """The user's package, copied outside the repository; with ``entry_point``, installed metadata registering it."""
    site = tmp_path / "site"
    shutil.copytree(FIXTURE, site / "ext_methods")
    if entry_point:
        info = site / "ext_methods-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ext-methods\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[curricula.methods]\nhard_domains = {SPEC}\n")
    return site


def train(site: Path, packed: Path, out: Path, recipe: str, *extra: str, kill_at: int | None = None):
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    env.pop("KILL_AT_STEP", None)
    if kill_at is not None:
        env["KILL_AT_STEP"] = str(kill_at)
    cmd = [sys.executable, "-m", "hf_trainer_ext", "train", "--recipe", recipe, "--packed", str(packed),
           "--output_dir", str(out), "--n_layer", "1", "--n_embd", "32", "--n_head", "2", "--use_cpu", "true",
           "--per_device_train_batch_size", "8", "--learning_rate", "3e-3", "--save_strategy", "steps",
           "--save_steps", "3", "--logging_steps", "1", "--report_to", "none", "--disable_tqdm", "true",
           "--eval_strategy", "no", "--seed", "0", *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=site)


def fingerprint(out: Path) -> dict:
    from safetensors.numpy import load_file

    import pyarrow.parquet as pq

    weights = load_file(str(out / "model.safetensors"))
    last = max(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    state = json.loads((last / "trainer_state.json").read_text())
    return {
        "weights": {k: v.tobytes() for k, v in weights.items()},
        "logs": {p.name: pq.read_table(p).to_pydict() for p in sorted((out / "curriculum").glob("epoch-*.parquet"))},
        "reports": (out / "curriculum" / "reports.jsonl").read_text(),
        "losses": [(h["step"], h["loss"]) for h in state["log_history"] if "loss" in h],
        "weights_logged": [(h["step"], {k: v for k, v in h.items() if k.startswith("hard/")})
                           for h in state["log_history"] if any(k.startswith("hard/") for k in h)],
    }


def test_a_method_from_the_users_package_trains_and_resumes_exactly_after_a_kill(tiny_packed, tmp_path):
    site = user_package(tmp_path)
    recipe = json.dumps({"method": SPEC, "epochs": 3, "steps_per_epoch": 4})
    full = train(site, tiny_packed, tmp_path / "full", recipe)
    assert full.returncode == 0, full.stderr[-3000:]
    run = json.loads((tmp_path / "full" / "run.json").read_text())
    assert run["method"] == "hard_domains" and run["curriculum"]["method"] == SPEC  # found again from the record
    assert len(list((tmp_path / "full" / "curriculum").glob("epoch-*-train.parquet"))) == 3  # block records
    reports = [json.loads(x) for x in (tmp_path / "full" / "curriculum" / "reports.jsonl").read_text().splitlines()]
    assert len(reports) == 3 and reports[0]["eligible"] < reports[-1]["eligible"] * 2  # records drove the choice
    assert not np.allclose(reports[0]["weights"], 1 / len(reports[0]["weights"]))  # step statistics drove the weights

    killed = train(site, tiny_packed, tmp_path / "part", recipe, kill_at=8)  # mid-epoch 2, after checkpoint-6
    assert killed.returncode == -9, killed.stderr[-2000:]  # SIGKILL
    assert (tmp_path / "part" / "checkpoint-6" / "COMPLETE").is_file()
    resumed = train(site, tiny_packed, tmp_path / "part", recipe, "--resume_from_checkpoint", "latest")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = fingerprint(tmp_path / "full"), fingerprint(tmp_path / "part")
    assert a["weights"] == b["weights"] and a["logs"] == b["logs"] and a["reports"] == b["reports"]
    assert a["weights_logged"] == b["weights_logged"]
    np.testing.assert_allclose([x for _, x in b["losses"]], [x for _, x in a["losses"]], rtol=0, atol=1e-6)


def test_an_installed_packages_entry_point_registers_its_method_by_name(tiny_packed, tmp_path):
    site = user_package(tmp_path, entry_point=True)
    code = ("from curricula.methods import load_recipe, ENTRY_POINT_GROUP; "
            "c = load_recipe({'method': 'hard_domains', 'epochs': 2}); "
            "print(type(c).__module__, type(c).__name__, c.method, c.epochs, ENTRY_POINT_GROUP)")
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["ext_methods.hard_domains", "HardDomainsConfig", "hard_domains", "2",
                                   "curricula.methods"]
    done = train(site, tiny_packed, tmp_path / "run", '{method: hard_domains, epochs: 1, steps_per_epoch: 2}')
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["curriculum"]["method"] == "hard_domains"
