"""Run by tests/integration/test_scale_out.py under torchrun (2 processes): a `curricula` pipeline command with every file write
recorded per process (our atomic writes and folders, builtins.open for writing, torch.save, numpy.save).

argv: WRITES_DIR -- CURRICULA ARGS...   Each process writes WRITES_DIR/writes-rank<R>.json at the end.
"""

import builtins
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

import curricula.run_layout as layout

writes_dir = Path(sys.argv[1])
argv = sys.argv[sys.argv.index("--") + 1 :]
rank = int(os.environ.get("RANK", "0"))
written: list[str] = []


def record(path) -> None:
    written.append(str(Path(path).resolve()))


def wrap(owner, name, path_of):
    real = getattr(owner, name)

    def wrapper(*a, **kw):
        p = path_of(*a, **kw)
        if isinstance(p, (str, os.PathLike)):
            record(p)
        return real(*a, **kw)

    setattr(owner, name, wrapper)


wrap(layout, "atomic_write", lambda path, *a, **kw: path)
wrap(layout, "atomic_dir", lambda target, *a, **kw: target)
wrap(layout, "append_jsonl", lambda path, *a, **kw: path)
wrap(torch, "save", lambda obj, f, *a, **kw: f)
wrap(np, "save", lambda f, *a, **kw: f)
real_open = builtins.open


def open_(file, mode="r", *a, **kw):
    if any(c in mode for c in "wax+") and isinstance(file, (str, os.PathLike)):
        record(file)
    return real_open(file, mode, *a, **kw)


builtins.open = open_
from hf_trainer_ext.cli import main  # noqa: E402

code = main(argv)
builtins.open = real_open
(writes_dir / f"writes-rank{rank}.json").write_text(json.dumps(written))
sys.exit(code)
