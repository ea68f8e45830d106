"""The data commands start without torch or transformers: `curricula --help`, `curricula pack --help`,
`curricula info DIR` and a whole `curricula pack` run where importing torch fails."""

import os
import subprocess
import sys
from pathlib import Path


def _no_torch(tmp_path: Path) -> dict:
    fake = tmp_path / "no-torch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("torch is not installed here (a test stand-in)")\n')
    return {**os.environ, "PYTHONPATH": str(fake.parent)}


def _curricula(args, env, cwd):
    code = "import sys; from hf_trainer_ext.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_pure_commands_run_where_torch_cannot_be_imported(tmp_path, tiny_packed):
    env = _no_torch(tmp_path)
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert check.returncode != 0 and "not installed here" in check.stderr  # the stand-in is in force
    for args in (["--help"], ["pack", "--help"], ["corpus", "--help"], ["info", str(tiny_packed)]):
        proc = _curricula(args, env, tmp_path)
        assert proc.returncode == 0, (args, proc.stderr[-2000:])
        assert "torch" not in proc.stderr
    info = _curricula(["info", str(tiny_packed)], env, tmp_path)
    assert "total" in info.stdout


def test_a_whole_pack_runs_where_torch_cannot_be_imported(tmp_path, tiny_packed):
    corpus = tiny_packed.parent / "corpus"
    env = _no_torch(tmp_path)
    proc = _curricula(["pack", str(corpus), "--out", str(tmp_path / "packed"), "--tokenizer",
                       str(tiny_packed.parent / "bpe"), "--block-size", "64"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "packed" / "meta.json").is_file()
