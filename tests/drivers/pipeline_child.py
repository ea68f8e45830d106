"""Run by tests/hf_trainer_ext/pipelines/test_runs.py: a `curricula` command in a child process that records every training step
(output folder and step, one line each, flushed) and SIGKILLs itself at a given step of a given run.

argv: STEPS_LOG KILL_RUN KILL_STEP -- CURRICULA ARGS...   (KILL_RUN "-" for no kill)
"""

import os
import signal
import sys
from pathlib import Path

from transformers import Trainer

log, kill_run, kill_step = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
argv = sys.argv[sys.argv.index("--") + 1 :]
real = Trainer.training_step


def training_step(self, model, inputs, num_items_in_batch=None):
    step = self.state.global_step + 1
    run = Path(self.args.output_dir).name
    with open(log, "a") as fh:
        fh.write(f"{Path(self.args.output_dir).parent.name}/{run} {step}\n")
    if run == kill_run and step == kill_step:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, model, inputs, num_items_in_batch)


Trainer.training_step = training_step
from hf_trainer_ext.cli import main  # noqa: E402

sys.exit(main(argv))
