"""The distribution: a wheel named curricula-lm builds, carries its package data (recipes, configs, the model-card
template, the embedded sample, the metric scripts), and works installed away from the source tree."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_builds_installs_and_runs_away_from_the_source(tmp_path):
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--skip-dependency-check",
                            "--outdir", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("curricula_lm-*-py3-none-any.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("curricula/report/templates/run_card.md", "curricula/recipes/lfr.yaml", "curricula/recipes/odm.yaml",
                   "curricula/configs/lfr_sample_cpu.yaml", "curricula/data/sample/prose.jsonl.gz",
                   "curricula/metrics/cloze/cloze.py", "hf_trainer_ext/trainer.py"):
        assert needed in names, needed
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Name: curricula-lm" in meta
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target),
                              str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    code = ("import curricula, hf_trainer_ext; from curricula.methods import load_recipe; "
            "from curricula.report.card import CARD_TEMPLATE; from hf_trainer_ext.cli import main; "
            "assert curricula.__file__.startswith(sys.argv[1]), curricula.__file__; "
            "assert CARD_TEMPLATE.is_file(); load_recipe('lfr'); load_recipe('aioli'); "
            "import importlib.metadata as m; print(m.version('curricula-lm')); sys.exit(main(['--help']))")
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-c", "import sys; " + code, str(target)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines()[0] == "0.2.0" and "curricula" in run.stdout
