"""Run by tests/hf_trainer_ext/test_arguments.py, alone or under torchrun: build the tiny training arguments
(``support.targs``, one step) the way a launched process does; a launch that cannot train as asked fails here.

argv: OUTPUT_DIR [--no-cpu]   (--no-cpu: ``use_cpu=False``, as ``accelerate launch`` without ``--use_cpu``)
"""

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support.py only:
from support import targs  # noqa: E402
del sys.path[0]  # tests/curricula and tests/hf_trainer_ext must not shadow the packages

extra = {"use_cpu": False} if "--no-cpu" in sys.argv[2:] else {}
targs(sys.argv[1], max_steps=1, **extra)
